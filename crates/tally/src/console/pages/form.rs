//! Forms whose fields become a REST JSON body: a resource page declares
//! its [`Field`]s once, and gets the form's markup ([`render`]) and the
//! body its REST `create` handler reads ([`body`]), so validation (and
//! the messages naming the field) stays the REST API's.

use std::collections::HashMap;

use maud::{Markup, html};
use serde_json::{Map, Value, json};

use crate::api::ApiError;

/// How a field is typed in and sent.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A string; empty is left out of the body.
    Text,
    /// A write-only string.
    Password,
    /// A whole number.
    Number,
    /// One of fixed `(value, label)` pairs.
    Select(&'static [(&'static str, &'static str)]),
    /// One of the options the page supplies (e.g. a trunk id).
    Choice,
    /// Any of the options the page supplies, as a JSON array, in the
    /// order of the options.
    Choices,
    /// A comma-separated list, sent as a JSON array of strings.
    List,
    /// A checkbox, sent as `true`/`false`.
    Flag,
}

/// One field of a resource form.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The REST body's field name (also the form's).
    pub name: &'static str,
    pub label: &'static str,
    pub kind: Kind,
    pub required: bool,
}

impl Field {
    pub const fn new(name: &'static str, label: &'static str, kind: Kind) -> Field {
        Field {
            name,
            label,
            kind,
            required: false,
        }
    }

    pub const fn required(self) -> Field {
        Field {
            required: true,
            ..self
        }
    }
}

/// The options of `Choice`/`Choices` fields, by field name: `(value,
/// label)`.
pub type Options = HashMap<&'static str, Vec<(String, String)>>;

/// The form posting `fields` to `action`; `labelled_by` is its heading's
/// id, also the prefix of the inputs' ids.
pub fn render(
    action: &str,
    csrf: &str,
    labelled_by: &str,
    fields: &[Field],
    options: &Options,
    submit: &str,
) -> Markup {
    render_with(
        action,
        csrf,
        labelled_by,
        fields,
        options,
        &Value::Null,
        submit,
    )
}

/// [`render`] filled with `values` (a REST item: the edit form of a
/// resource). Passwords are never filled (REST never returns them).
pub fn render_with(
    action: &str,
    csrf: &str,
    labelled_by: &str,
    fields: &[Field],
    options: &Options,
    values: &Value,
    submit: &str,
) -> Markup {
    let none = Vec::new();
    let editing = !values.is_null();
    let current = |name: &str| super::text(values, name);
    let chosen = |name: &str, value: &str| match &values[name] {
        Value::Array(list) => list.iter().any(|v| v.as_str() == Some(value)),
        Value::String(s) => s == value,
        Value::Number(n) => n.to_string() == value,
        Value::Bool(b) => b.to_string() == value,
        Value::Null | Value::Object(_) => false,
    };
    let listed = |name: &str| match &values[name] {
        Value::Array(list) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect::<Vec<_>>()
            .join(", "),
        _ => current(name),
    };
    html! {
        form.stack method="post" action=(action) aria-labelledby=(labelled_by) {
            (crate::console::layout::csrf_field(csrf))
            @for f in fields {
                @let id = format!("{labelled_by}-{}", f.name);
                @match f.kind {
                    Kind::Flag => {
                        label for=(id) {
                            input #(id) name=(f.name) type="checkbox" value="true"
                                checked[!editing || values[f.name] == Value::Bool(true)];
                            " " (f.label)
                        }
                    }
                    Kind::Select(choices) => {
                        label for=(id) { (f.label) }
                        select #(id) name=(f.name) required[f.required] {
                            @for (value, text) in choices { option value=(value) selected[chosen(f.name, value)] { (text) } }
                        }
                    }
                    Kind::Choice | Kind::Choices => {
                        @let multiple = matches!(f.kind, Kind::Choices);
                        label for=(id) { (f.label) @if multiple { span.help { " (several: Ctrl/⌘-click)" } } }
                        select #(id) name=(f.name) required[f.required] multiple[multiple] {
                            @for (value, text) in options.get(f.name).unwrap_or(&none) {
                                option value=(value) selected[chosen(f.name, value)] { (text) }
                            }
                        }
                    }
                    _ => {
                        label for=(id) { (f.label) @if matches!(f.kind, Kind::List) { span.help { " (comma-separated)" } } }
                        @let password = matches!(f.kind, Kind::Password);
                        input #(id) name=(f.name) required[f.required && !(editing && password)]
                            type=(match f.kind { Kind::Password => "password", Kind::Number => "number", _ => "text" })
                            value=[(editing && !password).then(|| listed(f.name))]
                            autocomplete=[password.then_some("new-password")];
                    }
                }
            }
            div.actions { button type="submit" { (submit) } }
        }
    }
}

/// What a posted form stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A new resource (`POST`): empty fields are left out, so REST's
    /// defaults apply.
    Create,
    /// A change (`PATCH`) of every field shown: an empty text or number
    /// is `null` (cleared, or REST's default), an empty password is left
    /// out (kept).
    Edit,
}

/// The posted form (`name=value` pairs, a multiple select repeating its
/// name) as the REST body of `fields`.
pub fn body(fields: &[Field], form: &[(String, String)], mode: Mode) -> Result<Value, ApiError> {
    let mut body = Map::new();
    for f in fields {
        let values = || {
            form.iter()
                .filter(|(k, _)| k == f.name)
                .map(|(_, v)| v.trim())
        };
        let first = values().next().filter(|v| !v.is_empty());
        let value = match f.kind {
            Kind::Flag => Some(json!(first.is_some())),
            Kind::Choices => Some(json!(
                values().filter(|v| !v.is_empty()).collect::<Vec<_>>()
            )),
            Kind::List => first.map(|v| {
                json!(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                )
            }),
            Kind::Number => first
                .map(|v| {
                    v.parse::<u64>()
                        .map(|n| json!(n))
                        .map_err(|_| ApiError::validate(f.name, "must be a whole number"))
                })
                .transpose()?,
            Kind::Text | Kind::Password | Kind::Select(_) | Kind::Choice => first.map(|v| json!(v)),
        };
        let cleared = mode == Mode::Edit && !matches!(f.kind, Kind::Password);
        match value {
            Some(value) => {
                body.insert(f.name.to_owned(), value);
            }
            None if cleared => {
                body.insert(f.name.to_owned(), Value::Null);
            }
            None => {}
        }
    }
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[Field] = &[
        Field::new("name", "Name", Kind::Text).required(),
        Field::new("password", "Password", Kind::Password),
        Field::new("port", "Port", Kind::Number),
        Field::new("trunks", "Trunks", Kind::Choices),
        Field::new("from", "From", Kind::List),
        Field::new("enabled", "Enabled", Kind::Flag),
    ];

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fields_become_the_rest_body() {
        let b = body(
            FIELDS,
            &pairs(&[
                ("name", " Carrier "),
                ("password", ""),
                ("port", "5080"),
                ("trunks", "2"),
                ("trunks", "1"),
                ("from", "101, 102,,"),
            ]),
            Mode::Create,
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"name": "Carrier", "port": 5080, "trunks": ["2", "1"],
                   "from": ["101", "102"], "enabled": false})
        );
        let b = body(FIELDS, &pairs(&[("enabled", "true")]), Mode::Create).unwrap();
        assert_eq!(b, json!({"trunks": [], "enabled": true}));
        // Editing: empty text and numbers clear, an empty password keeps.
        let b = body(
            FIELDS,
            &pairs(&[("name", ""), ("password", "")]),
            Mode::Edit,
        )
        .unwrap();
        assert_eq!(
            b,
            json!({"name": null, "port": null, "trunks": [], "from": null, "enabled": false})
        );
    }

    #[test]
    fn a_bad_number_names_its_field() {
        let e = body(FIELDS, &pairs(&[("port", "50x")]), Mode::Create).unwrap_err();
        assert!(e.message().starts_with("port"), "{}", e.message());
    }
}
