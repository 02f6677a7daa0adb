//! The OpenAPI 3.1 document of the REST API (`GET /api/openapi.json`),
//! built from the same table that builds the router, so the two cannot
//! drift: a route is added with [`Api::get`], [`Api::post`], [`Api::put`],
//! [`Api::patch`] or [`Api::delete`], which registers the handler with axum
//! **and** records its [`Doc`] under the same method and path. There is no
//! other way to add a route to the API router.
//!
//! Path parameters come from the path itself (`{id}`); query parameters,
//! bodies and responses are declared on the [`Doc`] with the small schema
//! builders of [`schema`]. What the builders cannot prove (that a handler's
//! JSON matches its declared schema) the schemathesis run in
//! `crates/tally/tests/openapi.rs` checks against a live server: every
//! response must match its documented status, content type and schema, and
//! nothing may answer 5xx.
//!
//! Every operation also documents the error shape of SPEC §7 as its
//! `default` response, so any 4xx with that body is conforming.

use std::collections::BTreeMap;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodRouter, on};
use serde_json::{Map, Value, json};

use super::ApiState;

/// Who may call an operation (documentation; the handlers enforce it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No token (login, this document).
    Public,
    /// A bearer token (access token or API key); the description says
    /// which roles.
    Bearer,
}

/// One operation's documentation.
#[derive(Clone, Debug)]
pub struct Doc {
    summary: &'static str,
    description: Option<&'static str>,
    tag: &'static str,
    access: Access,
    /// `(name, required, schema, description)`.
    query: Vec<(&'static str, bool, Value, &'static str)>,
    /// `(name, required, schema, description)`.
    headers: Vec<(&'static str, bool, Value, &'static str)>,
    /// `(media type, schema)`.
    body: Option<(&'static str, Value)>,
    /// `(status, media type, schema)`; `None` media type = no body.
    responses: Vec<(u16, Option<&'static str>, Value)>,
}

impl Doc {
    /// A bearer-authenticated operation.
    pub fn new(tag: &'static str, summary: &'static str) -> Self {
        Doc {
            summary,
            description: None,
            tag,
            access: Access::Bearer,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            responses: Vec::new(),
        }
    }

    pub fn public(mut self) -> Self {
        self.access = Access::Public;
        self
    }

    pub fn describe(mut self, text: &'static str) -> Self {
        self.description = Some(text);
        self
    }

    pub fn query(mut self, name: &'static str, schema: Value, text: &'static str) -> Self {
        self.query.push((name, false, schema, text));
        self
    }

    pub fn query_required(mut self, name: &'static str, schema: Value, text: &'static str) -> Self {
        self.query.push((name, true, schema, text));
        self
    }

    pub fn header(mut self, name: &'static str, schema: Value, text: &'static str) -> Self {
        self.headers.push((name, false, schema, text));
        self
    }

    /// `X-Tenant-Id`: how the system admin names the tenant it acts in.
    pub fn tenant_scoped(self) -> Self {
        self.header(
            "X-Tenant-Id",
            schema::id(),
            "The tenant a system admin acts in (required for the system admin, ignored for tenant users).",
        )
    }

    pub fn json_body(mut self, schema: Value) -> Self {
        self.body = Some(("application/json", schema));
        self
    }

    /// A request body of another media type (an upload: `audio/wav`).
    pub fn raw_body(mut self, media: &'static str, schema: Value) -> Self {
        self.body = Some((media, schema));
        self
    }

    pub fn form_body(mut self, schema: Value) -> Self {
        self.body = Some(("application/x-www-form-urlencoded", schema));
        self
    }

    pub fn json(mut self, status: u16, schema: Value) -> Self {
        self.responses
            .push((status, Some("application/json"), schema));
        self
    }

    pub fn content(mut self, status: u16, media: &'static str, schema: Value) -> Self {
        self.responses.push((status, Some(media), schema));
        self
    }

    pub fn empty(mut self, status: u16) -> Self {
        self.responses.push((status, None, Value::Null));
        self
    }

    fn operation(&self, method: &Method, path: &str) -> Value {
        let mut op = Map::new();
        op.insert("operationId".into(), operation_id(method, path).into());
        op.insert("summary".into(), self.summary.into());
        if let Some(d) = self.description {
            op.insert("description".into(), d.into());
        }
        op.insert("tags".into(), json!([self.tag]));
        let mut parameters = Vec::new();
        for name in path_params(path) {
            parameters.push(json!({
                "name": name, "in": "path", "required": true, "schema": {"type": "string"}
            }));
        }
        for (name, required, schema, text) in &self.query {
            parameters.push(json!({
                "name": name, "in": "query", "required": required,
                "schema": schema, "description": text
            }));
        }
        for (name, required, schema, text) in &self.headers {
            parameters.push(json!({
                "name": name, "in": "header", "required": required,
                "schema": schema, "description": text
            }));
        }
        if !parameters.is_empty() {
            op.insert("parameters".into(), parameters.into());
        }
        if let Some((media, schema)) = &self.body {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {*media: {"schema": schema}}}),
            );
        }
        let mut responses = Map::new();
        for (status, media, schema) in &self.responses {
            // Several media types of one status share its entry.
            let r = responses
                .entry(status.to_string())
                .or_insert_with(|| json!({"description": status_text(*status)}));
            if let Some(media) = media {
                r["content"][*media] = json!({"schema": schema});
            }
        }
        responses.insert(
            "default".into(),
            json!({
                "description": "An error (SPEC §7 shape).",
                "content": {"application/json": {"schema": schema::reference("Error")}}
            }),
        );
        op.insert("responses".into(), responses.into());
        if self.access == Access::Bearer {
            op.insert("security".into(), json!([{"bearer": []}]));
        } else {
            op.insert("security".into(), json!([]));
        }
        op.into()
    }
}

fn status_text(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        _ => "Response",
    }
}

fn path_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
}

/// `get_api_cdrs_id` from `GET /api/cdrs/{id}`: unique per method and path.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for seg in path.split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.chars()
                .filter(|c| !matches!(c, '{' | '}'))
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    id
}

/// The router and its document, built together.
pub struct Api {
    router: Router<ApiState>,
    /// path → method → operation.
    paths: BTreeMap<&'static str, Map<String, Value>>,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! verbs {
    ($($name:ident => $method:ident),*) => {$(
        pub fn $name<H, T>(self, path: &'static str, handler: H, doc: Doc) -> Self
        where
            H: Handler<T, ApiState>,
            T: 'static,
        {
            self.add(Method::$method, path, on(axum::routing::MethodFilter::$method, handler), doc)
        }
    )*};
}

impl Api {
    pub fn new() -> Self {
        Api {
            router: Router::new(),
            paths: BTreeMap::new(),
        }
    }

    verbs!(get => GET, post => POST, put => PUT, patch => PATCH, delete => DELETE);

    fn add(
        mut self,
        method: Method,
        path: &'static str,
        route: MethodRouter<ApiState>,
        doc: Doc,
    ) -> Self {
        let ops = self.paths.entry(path).or_default();
        let key = method.as_str().to_ascii_lowercase();
        assert!(
            !ops.contains_key(&key),
            "route {method} {path} registered twice"
        );
        ops.insert(key, doc.operation(&method, path));
        self.router = self.router.route(path, route);
        self
    }

    /// Routes that are not REST operations (the WebSocket upgrade):
    /// registered with axum, left out of the document on purpose.
    pub fn undocumented(mut self, path: &'static str, route: MethodRouter<ApiState>) -> Self {
        self.router = self.router.route(path, route);
        self
    }

    /// The OpenAPI 3.1 document.
    pub fn document(&self) -> Value {
        let paths: Map<String, Value> = self
            .paths
            .iter()
            .map(|(path, ops)| ((*path).to_owned(), Value::Object(ops.clone())))
            .collect();
        json!({
            "openapi": "3.1.0",
            "info": {
                "title": "Tally REST API",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "Tally PBX: provisioning, identity and call detail records (SPEC §7). PortSIP-compatible where it counts.",
            },
            "servers": [{"url": "/"}],
            "paths": paths,
            "components": {
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer",
                               "description": "An access token from POST /api/login/oauth/token, or an API key."}
                },
                "schemas": schema::components(),
            },
        })
    }

    /// The router, with `GET /api/openapi.json` serving [`Api::document`].
    pub fn into_router(mut self) -> Router<ApiState> {
        const PATH: &str = "/api/openapi.json";
        let doc = Doc::new("Meta", "This OpenAPI document")
            .public()
            .json(200, json!({"type": "object"}));
        self.paths
            .entry(PATH)
            .or_default()
            .insert("get".into(), doc.operation(&Method::GET, PATH));
        let document = std::sync::Arc::new(self.document());
        self.router.route(
            PATH,
            axum::routing::get(move || {
                let document = document.clone();
                async move { axum::Json((*document).clone()) }
            }),
        )
    }
}

/// JSON Schema builders for [`Doc`]s, and the shared component schemas.
pub mod schema {
    use serde_json::{Map, Value, json};

    pub fn string() -> Value {
        json!({"type": "string"})
    }

    pub fn text(description: &str) -> Value {
        json!({"type": "string", "description": description})
    }

    /// A Snowflake id: a decimal string (64-bit ids do not fit a JSON
    /// number's safe range).
    pub fn id() -> Value {
        json!({"type": "string", "pattern": "^[0-9]+$"})
    }

    pub fn date_time() -> Value {
        json!({"type": "string", "format": "date-time"})
    }

    /// An RFC 3339 time or `""` when absent.
    pub fn optional_time() -> Value {
        json!({"anyOf": [{"type": "string", "format": "date-time"}, {"const": ""}]})
    }

    pub fn int_range(min: i64, max: i64) -> Value {
        json!({"type": "integer", "minimum": min, "maximum": max})
    }

    pub fn non_negative() -> Value {
        json!({"type": "integer", "minimum": 0})
    }

    pub fn boolean() -> Value {
        json!({"type": "boolean"})
    }

    pub fn one_of_strings(values: &[&str]) -> Value {
        json!({"type": "string", "enum": values})
    }

    pub fn array(items: Value) -> Value {
        json!({"type": "array", "items": items})
    }

    pub fn any() -> Value {
        json!({})
    }

    pub fn reference(name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }

    /// An object with these properties; `required` lists those always
    /// present. Other properties are allowed (clients must ignore what
    /// they do not know, so adding a field is not a breaking change).
    pub fn object(properties: &[(&str, Value)], required: &[&str]) -> Value {
        let props: Map<String, Value> = properties
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        json!({"type": "object", "properties": props, "required": required})
    }

    /// Like [`object`], but no other property is accepted (request bodies:
    /// the API refuses unknown fields).
    pub fn closed_object(properties: &[(&str, Value)], required: &[&str]) -> Value {
        let mut o = object(properties, required);
        o["additionalProperties"] = Value::Bool(false);
        o
    }

    /// `{count, items}` of a list endpoint.
    pub fn page(item: Value) -> Value {
        object(
            &[("count", non_negative()), ("items", array(item))],
            &["count", "items"],
        )
    }

    /// `{items: [item]}`, PortSIP's single-resource shape for CDRs.
    pub fn items(item: Value) -> Value {
        object(&[("items", array(item))], &["items"])
    }

    pub(super) fn components() -> Value {
        json!({
            "Error": object(&[("errors", array(object(
                &[("code", string()), ("message", string()), ("detail", any())],
                &["code", "message"],
            )))], &["errors"]),
            "Token": object(&[
                ("access_token", string()),
                ("refresh_token", string()),
                ("expires_in", non_negative()),
                ("token_type", json!({"const": "Bearer"})),
            ], &["access_token", "refresh_token", "expires_in", "token_type"]),
            "Cdr": cdr(),
            "CdrDetail": cdr_detail(),
            "CallTarget": call_target(),
        })
    }

    fn cdr_properties() -> Vec<(&'static str, Value)> {
        vec![
            ("id", id()),
            ("caller", string()),
            ("caller_domain", string()),
            ("caller_display_name", string()),
            ("callee", string()),
            ("callee_domain", string()),
            ("callee_display_name", string()),
            ("started_at", date_time()),
            ("rang_at", optional_time()),
            ("answered_at", optional_time()),
            ("ended_at", date_time()),
            ("call_id", string()),
            (
                "direction",
                one_of_strings(&[
                    "EXTENSION_CALL",
                    "INBOUND_CALL",
                    "OUTBOUND_CALL",
                    "INBOUND_OUTBOUND_CALL",
                ]),
            ),
            ("call_status", string()),
            ("end_reason", string()),
            ("reroute_reason", string()),
            ("status_code", int_range(0, 699)),
            ("outbound_caller_id", string()),
            ("did_cid", string()),
            ("trunk", string()),
            ("duration", non_negative()),
            ("session_id", id()),
            ("user_data", string()),
            ("recovered", boolean()),
        ]
    }

    const CDR_REQUIRED: &[&str] = &[
        "id",
        "caller",
        "callee",
        "started_at",
        "ended_at",
        "direction",
        "call_status",
        "end_reason",
        "status_code",
        "duration",
        "session_id",
    ];

    fn cdr() -> Value {
        object(&cdr_properties(), CDR_REQUIRED)
    }

    fn cdr_detail() -> Value {
        let mut props = cdr_properties();
        props.push(("call_targets", array(reference("CallTarget"))));
        props.push(("recording", object(&[], &[])));
        props.push((
            "recording_error",
            object(
                &[
                    (
                        "reason",
                        one_of_strings(
                            &cdr::RecordingFailure::ALL.map(cdr::RecordingFailure::as_str),
                        ),
                    ),
                    ("detail", string()),
                ],
                &["reason", "detail"],
            ),
        ));
        let mut required = CDR_REQUIRED.to_vec();
        required.push("call_targets");
        object(&props, &required)
    }

    fn call_target() -> Value {
        object(
            &[
                ("id", id()),
                ("call_type", string()),
                ("caller", string()),
                ("callee", string()),
                ("destination", string()),
                ("start_time", string()),
                ("ring_time", string()),
                ("answered_time", string()),
                ("ended_time", string()),
                ("ring_duration", string()),
                ("talk_duration", string()),
                ("status", string()),
                ("status_code", int_range(0, 699)),
                ("end_reason", string()),
            ],
            &["id", "call_type", "start_time", "status", "status_code"],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_and_path_parameters() {
        assert_eq!(
            operation_id(&Method::GET, "/api/cdrs/{id}"),
            "get_api_cdrs_id"
        );
        assert_eq!(
            operation_id(&Method::POST, "/api/login/oauth/token"),
            "post_api_login_oauth_token"
        );
        assert_eq!(
            path_params("/api/tenants/{id}/users/{user_id}").collect::<Vec<_>>(),
            ["id", "user_id"]
        );
        assert_eq!(path_params("/api/cdrs").count(), 0);
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_route_cannot_be_registered_twice() {
        let doc = || Doc::new("T", "x").empty(204);
        let _ = Api::new()
            .get("/api/x", || async {}, doc())
            .get("/api/x", || async {}, doc());
    }

    #[test]
    fn document_lists_every_registered_operation_once() {
        let doc = || Doc::new("T", "x").empty(204);
        let api = Api::new()
            .get("/api/x/{id}", || async {}, doc())
            .delete("/api/x/{id}", || async {}, doc())
            .post("/api/y", || async {}, doc().public());
        let d = api.document();
        assert_eq!(d["openapi"], "3.1.0");
        let x = &d["paths"]["/api/x/{id}"];
        assert_eq!(x.as_object().unwrap().len(), 2);
        assert_eq!(x["get"]["parameters"][0]["name"], "id");
        assert_eq!(x["get"]["security"], json!([{"bearer": []}]));
        assert_eq!(d["paths"]["/api/y"]["post"]["security"], json!([]));
        assert!(
            d["paths"]["/api/y"]["post"]["responses"]["default"].is_object(),
            "every operation documents the error shape"
        );
    }
}
