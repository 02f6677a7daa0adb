//! CDR queries: SPEC §7's query options, parsed into typed values and
//! compiled to parameterised SQL that runs unchanged on SQLite and
//! PostgreSQL.
//!
//! # Options
//!
//! | option | meaning |
//! |---|---|
//! | `filter` | the OData subset of [`filter`]: `eq ne gt ge lt le`, `and or not`, parentheses, `startswith endswith contains`; fields `caller callee started_at ended_at direction status_code did_cid trunk session_id call_status` |
//! | `orderby` | up to 4 keys `field [asc\|desc]`, comma-separated; default `started_at desc`; the CDR id (same direction as the last key) always breaks ties, so the order is total |
//! | `top` | page size 1–100, default 100 |
//! | `skip` | rows to skip (0-based, as PortSIP's OpenAPI; its prose says 1-based) |
//! | `search` | free text: up to 8 whitespace-separated terms (the word `or` is ignored, so PortSIP's `101 or 102` works); a row matches when any term is contained in `caller`, `callee` or `did_cid`, or equals the `session_id`; ANDed with `filter` |
//! | `count` | `true` (default, as PortSIP's responses always carry it): the total of matching rows; `false` skips the `COUNT` |
//! | `after` | keyset cursor: the rows strictly after that CDR in this order; the cursor's own values are read from its row, so inserts between pages neither skip nor repeat a row |
//!
//! # Safety
//!
//! SQL text is only ever assembled from `&'static str` fragments
//! ([`compile::Sql::push`]); every value goes through a `$n` placeholder
//! ([`compile::Sql::bind`]). A field reaches SQL only as the constant column
//! name of its [`Field`] variant.
//!
//! # One meaning on both backends
//!
//! Text compares byte-wise on both: SQLite's default `BINARY` collation,
//! and `COLLATE "C"` on PostgreSQL's text columns (migration 0005), so `gt`
//! and `orderby caller` agree, and the string functions are
//! case-sensitive (OData's meaning). `startswith` compiles to a range
//! `col >= 'p' AND col < succ('p')` (exact under byte order, and an index
//! range scan on both backends even with a generic plan); `endswith` and
//! `contains` to `LIKE` with `\`, `%` and `_` escaped on PostgreSQL and to
//! `GLOB` with `*`, `?` and `[` escaped on SQLite (whose `LIKE` ignores
//! ASCII case).

pub mod compile;
pub(crate) mod deadline;
pub mod filter;

use std::fmt;

use cdr::CdrId;

pub use filter::{Cmp, Expr, Field, TextFn, Value};

/// Page size when `top` is absent, and its maximum.
pub const MAX_TOP: u32 = 100;
pub const MAX_ORDER_KEYS: usize = 4;
pub const MAX_SEARCH_TERMS: usize = 8;
pub const MAX_SEARCH_TERM_CHARS: usize = 64;

/// A query option the store refused; `param` names it (the API's
/// `detail.field`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryError {
    pub param: &'static str,
    pub message: String,
}

impl QueryError {
    pub(crate) fn new(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param,
            message: message.into(),
        }
    }

    /// A filter error about one field: the message starts with its name.
    pub(crate) fn field(field: Field, message: impl fmt::Display) -> Self {
        Self::new("filter", format!("{} {message}", field.name()))
    }
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.param, self.message)
    }
}

impl std::error::Error for QueryError {}

/// A parsed `filter`.
#[derive(Clone, Debug, PartialEq)]
pub struct Filter(pub Expr);

impl Filter {
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        filter::parse(text).map(Filter)
    }
}

/// One `orderby` key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderKey {
    pub field: Field,
    pub descending: bool,
}

/// A parsed `orderby`: 1 to [`MAX_ORDER_KEYS`] distinct fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderBy(Vec<OrderKey>);

impl Default for OrderBy {
    /// Newest first.
    fn default() -> Self {
        OrderBy(vec![OrderKey {
            field: Field::StartedAt,
            descending: true,
        }])
    }
}

impl OrderBy {
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let err = |m: String| QueryError::new("orderby", m);
        let mut keys: Vec<OrderKey> = Vec::new();
        for part in text.split(',') {
            let words: Vec<&str> = part.split_whitespace().collect();
            let (name, descending) = match words.as_slice() {
                [name] => (*name, false),
                [name, dir] if dir.eq_ignore_ascii_case("asc") => (*name, false),
                [name, dir] if dir.eq_ignore_ascii_case("desc") => (*name, true),
                [] => return Err(err("has an empty key".into())),
                _ => {
                    return Err(err(format!(
                        "'{}' is not 'field', 'field asc' or 'field desc'",
                        part.trim().chars().take(64).collect::<String>()
                    )));
                }
            };
            let field = Field::parse(name).ok_or_else(|| {
                err(format!(
                    "unknown field '{}' (fields: {})",
                    name.chars().take(32).collect::<String>(),
                    Field::ALL.map(Field::name).join(", ")
                ))
            })?;
            if keys.iter().any(|k| k.field == field) {
                return Err(err(format!("names {} twice", field.name())));
            }
            keys.push(OrderKey { field, descending });
            if keys.len() > MAX_ORDER_KEYS {
                return Err(err(format!("has more than {MAX_ORDER_KEYS} keys")));
            }
        }
        Ok(OrderBy(keys))
    }

    pub fn keys(&self) -> &[OrderKey] {
        &self.0
    }

    /// The direction of the CDR-id tiebreaker: that of the last key.
    pub fn tiebreak_descending(&self) -> bool {
        self.0.last().is_some_and(|k| k.descending)
    }
}

/// A parsed `search`: the terms, any of which may match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Search(Vec<String>);

impl Search {
    /// `None` for a search with no terms (blank, or only `or`).
    pub fn parse(text: &str) -> Result<Option<Self>, QueryError> {
        let terms: Vec<String> = text
            .split_whitespace()
            .filter(|t| !t.eq_ignore_ascii_case("or"))
            .map(str::to_owned)
            .collect();
        if terms.len() > MAX_SEARCH_TERMS {
            return Err(QueryError::new(
                "search",
                format!("has more than {MAX_SEARCH_TERMS} terms"),
            ));
        }
        if terms
            .iter()
            .any(|t| t.chars().count() > MAX_SEARCH_TERM_CHARS)
        {
            return Err(QueryError::new(
                "search",
                format!("has a term longer than {MAX_SEARCH_TERM_CHARS} characters"),
            ));
        }
        Ok((!terms.is_empty()).then_some(Search(terms)))
    }

    pub fn terms(&self) -> &[String] {
        &self.0
    }
}

/// Everything a CDR listing was asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct CdrQuery {
    pub filter: Option<Filter>,
    pub order: OrderBy,
    pub top: u32,
    pub skip: u64,
    pub search: Option<Search>,
    pub count: bool,
    pub after: Option<CdrId>,
}

impl Default for CdrQuery {
    fn default() -> Self {
        Self {
            filter: None,
            order: OrderBy::default(),
            top: MAX_TOP,
            skip: 0,
            search: None,
            count: true,
            after: None,
        }
    }
}

impl CdrQuery {
    /// Reads the query options from request parameters (`get` answers one
    /// by name). Unknown parameters are the caller's business.
    pub fn from_params<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, QueryError> {
        let mut query = CdrQuery::default();
        if let Some(text) = get("filter").filter(|t| !t.trim().is_empty()) {
            query.filter = Some(Filter::parse(text)?);
        }
        if let Some(text) = get("orderby").filter(|t| !t.trim().is_empty()) {
            query.order = OrderBy::parse(text)?;
        }
        if let Some(text) = get("top") {
            query.top = text
                .trim()
                .parse()
                .ok()
                .filter(|top| (1..=MAX_TOP).contains(top))
                .ok_or_else(|| {
                    QueryError::new("top", format!("must be a whole number from 1 to {MAX_TOP}"))
                })?;
        }
        if let Some(text) = get("skip") {
            query.skip = text
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|skip| i64::try_from(*skip).is_ok())
                .ok_or_else(|| QueryError::new("skip", "must be a whole number, 0 or more"))?;
        }
        if let Some(text) = get("search") {
            query.search = Search::parse(text)?;
        }
        if let Some(text) = get("count") {
            query.count = match text.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(QueryError::new("count", "must be true or false")),
            };
        }
        if let Some(text) = get("after") {
            query.after = Some(
                text.trim()
                    .parse()
                    .map_err(|_| QueryError::new("after", "must be a CDR id"))?,
            );
        }
        Ok(query)
    }
}

/// Whose CDRs a query reads, inside one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CdrScope {
    /// All of the tenant's CDRs (`/api/cdrs`).
    Tenant,
    /// The CDRs of one user (`/api/user/cdrs`), by the user's id the PBX
    /// recorded on them (issue 17 finding 11), never by its extension
    /// number, which a later user may get: the calls it placed
    /// (`caller_user_id`), the calls placed to it (`callee_user_id`, the
    /// first destination) and the calls that rang it (a target with its
    /// `user_id`: a forward, ring group or queue leg). Outside numbers have
    /// no user id, so a caller `101` coming in over a trunk is not user
    /// `101`.
    User(cdr::Id),
}
