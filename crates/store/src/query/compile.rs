//! From a [`CdrQuery`] to SQL text plus bound values.
//!
//! [`Sql`] is the only way statements are built here: [`Sql::push`] takes
//! `&'static str` (constant fragments: keywords, column names), and
//! [`Sql::bind`] appends a `$n` placeholder and keeps the value aside.
//! Nothing a client sent can end up in the text.

use std::fmt::Write as _;
use std::future::Future;

use cdr::DirectionVocabulary;
use sqlx::postgres::PgConnection;
use sqlx::sqlite::SqliteConnection;

use super::{CdrQuery, CdrScope, Cmp, Expr, Field, OrderBy, Search, TextFn, Value};
use crate::db::{Backend, Conn};

/// A value bound to a placeholder.
#[derive(Clone, Debug, PartialEq)]
pub enum Bound {
    Int(i64),
    Text(String),
}

/// SQL text made of constant fragments, and the values of its `$n`s.
#[derive(Clone, Debug, Default)]
pub struct Sql {
    text: String,
    args: Vec<Bound>,
}

impl Sql {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, fragment: &'static str) -> &mut Self {
        self.text.push_str(fragment);
        self
    }

    pub fn bind(&mut self, value: Bound) -> &mut Self {
        self.args.push(value);
        let _ = write!(self.text, "${}", self.args.len());
        self
    }

    pub fn bind_int(&mut self, value: i64) -> &mut Self {
        self.bind(Bound::Int(value))
    }

    pub fn bind_text(&mut self, value: impl Into<String>) -> &mut Self {
        self.bind(Bound::Text(value.into()))
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn args(&self) -> &[Bound] {
        &self.args
    }

    pub(crate) fn query<'q, DB>(&'q self) -> sqlx::query::Query<'q, DB, DB::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        self.args
            .iter()
            .fold(sqlx::query(&self.text), |query, arg| match arg {
                Bound::Int(value) => query.bind(*value),
                Bound::Text(value) => query.bind(value.as_str()),
            })
    }
}

/// A connection that also runs [`Sql`] (built at run time, so not a
/// `&'static str`).
pub(crate) trait DynConn: Conn {
    fn fetch_all_sql<'a>(
        &'a mut self,
        sql: &'a Sql,
    ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a;

    fn fetch_optional_sql<'a>(
        &'a mut self,
        sql: &'a Sql,
    ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a;
}

macro_rules! impl_dyn {
    ($conn:ty, $db:ty) => {
        impl DynConn for $conn {
            fn fetch_all_sql<'a>(
                &'a mut self,
                sql: &'a Sql,
            ) -> impl Future<Output = Result<Vec<Self::Row>, sqlx::Error>> + Send + 'a {
                async move { sql.query::<$db>().fetch_all(&mut *self).await }
            }

            fn fetch_optional_sql<'a>(
                &'a mut self,
                sql: &'a Sql,
            ) -> impl Future<Output = Result<Option<Self::Row>, sqlx::Error>> + Send + 'a {
                async move { sql.query::<$db>().fetch_optional(&mut *self).await }
            }
        }
    };
}

impl_dyn!(SqliteConnection, sqlx::Sqlite);
impl_dyn!(PgConnection, sqlx::Postgres);

/// The values of the order keys of the `after` row, in key order, then
/// its id.
pub(crate) type Cursor = Vec<Bound>;

/// `c.tenant_id = $t AND <scope> AND (<filter>) AND (<search>)`: which rows
/// match, whatever the page.
pub(crate) fn push_where(
    sql: &mut Sql,
    backend: Backend,
    tenant: i64,
    scope: &CdrScope,
    query: &CdrQuery,
) {
    sql.push("c.tenant_id = ").bind_int(tenant);
    if let CdrScope::User(user) = scope {
        push_own(sql, tenant, db_user(*user));
    }
    if let Some(filter) = &query.filter {
        sql.push(" AND (");
        push_expr(sql, backend, &filter.0);
        sql.push(")");
    }
    if let Some(search) = &query.search {
        sql.push(" AND (");
        push_search(sql, backend, search);
        sql.push(")");
    }
}

/// A user id as stored; one beyond `i64` was never stored, and -1 matches
/// no row.
fn db_user(user: cdr::Id) -> i64 {
    i64::try_from(user.as_u64()).unwrap_or(-1)
}

/// The user's calls (see [`CdrScope::User`]): a union of three index
/// lookups rather than an OR the planners would scan for.
fn push_own(sql: &mut Sql, tenant: i64, user: i64) {
    sql.push(" AND c.cdr_id IN (SELECT o.cdr_id FROM cdrs o WHERE o.tenant_id = ")
        .bind_int(tenant)
        .push(" AND o.caller_user_id = ")
        .bind_int(user)
        .push(" UNION ALL SELECT o.cdr_id FROM cdrs o WHERE o.tenant_id = ")
        .bind_int(tenant)
        .push(" AND o.callee_user_id = ")
        .bind_int(user)
        .push(" UNION ALL SELECT t.cdr_id FROM cdr_targets t WHERE t.user_id = ")
        .bind_int(user)
        .push(")");
}

/// The same set as [`push_own`], tested on the row at hand: cheaper when
/// the candidate rows are few (a sync diff's window).
pub(crate) fn push_own_row(sql: &mut Sql, user: cdr::Id) {
    let user = db_user(user);
    sql.push(" AND (c.caller_user_id = ")
        .bind_int(user)
        .push(" OR c.callee_user_id = ")
        .bind_int(user)
        .push(
            " OR EXISTS (SELECT 1 FROM cdr_targets ot \
               WHERE ot.cdr_id = c.cdr_id AND ot.user_id = ",
        )
        .bind_int(user)
        .push("))");
}

fn push_expr(sql: &mut Sql, backend: Backend, expr: &Expr) {
    match expr {
        Expr::And(terms) | Expr::Or(terms) => {
            let joiner = if matches!(expr, Expr::And(_)) {
                " AND "
            } else {
                " OR "
            };
            for (i, term) in terms.iter().enumerate() {
                if i > 0 {
                    sql.push(joiner);
                }
                sql.push("(");
                push_expr(sql, backend, term);
                sql.push(")");
            }
        }
        Expr::Not(inner) => {
            sql.push("NOT (");
            push_expr(sql, backend, inner);
            sql.push(")");
        }
        Expr::Compare { field, op, value } => {
            sql.push(field.column()).push(operator(*op));
            sql.bind(bound(value));
        }
        Expr::Text {
            func,
            field,
            pattern,
        } => push_text(sql, backend, *func, *field, pattern),
    }
}

fn operator(op: Cmp) -> &'static str {
    match op {
        Cmp::Eq => " = ",
        Cmp::Ne => " <> ",
        Cmp::Gt => " > ",
        Cmp::Ge => " >= ",
        Cmp::Lt => " < ",
        Cmp::Le => " <= ",
    }
}

fn bound(value: &Value) -> Bound {
    match value {
        Value::Text(s) => Bound::Text(s.clone()),
        Value::Time(ms) | Value::Int(ms) | Value::Id(ms) => Bound::Int(*ms),
        Value::Direction(d) => {
            Bound::Text(d.event_spelling(DirectionVocabulary::Classic).to_owned())
        }
        Value::CallStatus(s) => Bound::Text(s.as_str().to_owned()),
    }
}

fn push_text(sql: &mut Sql, backend: Backend, func: TextFn, field: Field, pattern: &str) {
    let column = field.column();
    match func {
        TextFn::StartsWith => {
            sql.push("(").push(column).push(" >= ").bind_text(pattern);
            if let Some(upper) = prefix_successor(pattern) {
                sql.push(" AND ").push(column).push(" < ").bind_text(upper);
            }
            sql.push(")");
        }
        TextFn::EndsWith => push_match(sql, backend, column, pattern, false),
        TextFn::Contains => push_match(sql, backend, column, pattern, true),
    }
}

/// `column` ends with (or contains) `text`, case-sensitively.
fn push_match(sql: &mut Sql, backend: Backend, column: &'static str, text: &str, contains: bool) {
    match backend {
        Backend::Postgres => {
            let mut pattern = String::with_capacity(text.len() + 2);
            pattern.push('%');
            pattern.push_str(&like_escape(text));
            if contains {
                pattern.push('%');
            }
            sql.push(column)
                .push(" LIKE ")
                .bind_text(pattern)
                .push(" ESCAPE '\\'");
        }
        Backend::Sqlite => {
            let mut pattern = String::with_capacity(text.len() + 2);
            pattern.push('*');
            pattern.push_str(&glob_escape(text));
            if contains {
                pattern.push('*');
            }
            sql.push(column).push(" GLOB ").bind_text(pattern);
        }
    }
}

/// `text` as a literal inside a `LIKE … ESCAPE '\'` pattern.
pub fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `text` as a literal inside a SQLite `GLOB` pattern: each metacharacter
/// in a one-character class (`]` needs nothing outside a class).
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '*' => out.push_str("[*]"),
            '?' => out.push_str("[?]"),
            '[' => out.push_str("[[]"),
            c => out.push(c),
        }
    }
    out
}

/// The least string greater than every string that starts with `prefix`,
/// in byte (= code point) order; `None` when there is none (every
/// character is U+10FFFF, or the prefix is empty).
pub fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn push_search(sql: &mut Sql, backend: Backend, search: &Search) {
    for (i, term) in search.terms().iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push("(");
        push_match(sql, backend, Field::Caller.column(), term, true);
        sql.push(" OR ");
        push_match(sql, backend, Field::Callee.column(), term, true);
        sql.push(" OR ");
        push_match(sql, backend, Field::DidCid.column(), term, true);
        match term.parse::<i64>() {
            Ok(id) if id >= 0 && term.bytes().all(|b| b.is_ascii_digit()) => {
                sql.push(" OR c.session_id = ").bind_int(id);
            }
            _ => {}
        }
        sql.push(")");
    }
}

/// ` ORDER BY <keys>, c.cdr_id <dir>`.
pub(crate) fn push_order(sql: &mut Sql, order: &OrderBy) {
    sql.push(" ORDER BY ");
    for key in order.keys() {
        sql.push(key.field.column())
            .push(if key.descending { " DESC, " } else { " ASC, " });
    }
    sql.push("c.cdr_id").push(if order.tiebreak_descending() {
        " DESC"
    } else {
        " ASC"
    });
}

/// `SELECT <key columns>, c.cdr_id FROM cdrs c WHERE c.tenant_id = $1 AND
/// c.cdr_id = $2`: the cursor row's values.
pub(crate) fn cursor_statement(order: &OrderBy, tenant: i64, cdr_id: i64) -> Sql {
    let mut sql = Sql::new();
    sql.push("SELECT ");
    for key in order.keys() {
        sql.push(key.field.column()).push(", ");
    }
    sql.push("c.cdr_id FROM cdrs c WHERE c.tenant_id = ")
        .bind_int(tenant)
        .push(" AND c.cdr_id = ")
        .bind_int(cdr_id);
    sql
}

/// Reads [`cursor_statement`]'s row.
pub(crate) fn read_cursor(
    order: &OrderBy,
    row: &impl crate::db::Row,
) -> Result<Cursor, sqlx::Error> {
    let mut values = Vec::with_capacity(order.keys().len() + 1);
    for key in order.keys() {
        let column = key.field.bare_column();
        values.push(match key.field.kind() {
            super::filter::Kind::Time | super::filter::Kind::Int | super::filter::Kind::Id => {
                Bound::Int(row.int(column)?)
            }
            _ => Bound::Text(row.text(column)?),
        });
    }
    values.push(Bound::Int(row.int("cdr_id")?));
    Ok(values)
}

/// ` AND <rows strictly after the cursor in this order>`.
///
/// When every key runs the same way this is one row-value comparison
/// `(k1, …, id) < ($a, …, $n)`, which both planners turn into an index
/// range starting at the cursor (a redundant `k1 <= $a` beside it made
/// SQLite 3.46 pick a skip-scan and sort instead: see the benchmark's
/// README); otherwise the expanded `k1 < a OR (k1 = a AND k2 > b) OR …`.
pub(crate) fn push_after(sql: &mut Sql, order: &OrderBy, cursor: &Cursor) {
    let mut columns: Vec<(&'static str, bool)> = order
        .keys()
        .iter()
        .map(|k| (k.field.column(), k.descending))
        .collect();
    columns.push(("c.cdr_id", order.tiebreak_descending()));
    let uniform = columns.iter().all(|(_, d)| *d == columns[0].1);
    if uniform {
        let descending = columns[0].1;
        sql.push(" AND (");
        for (i, (column, _)) in columns.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.push(column);
        }
        sql.push(if descending { ") < (" } else { ") > (" });
        for (i, value) in cursor.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(value.clone());
        }
        sql.push(")");
    } else {
        sql.push(" AND (");
        for i in 0..columns.len() {
            if i > 0 {
                sql.push(" OR ");
            }
            sql.push("(");
            for (j, (column, _)) in columns.iter().enumerate().take(i) {
                sql.push(column).push(" = ").bind(cursor[j].clone());
                sql.push(" AND ");
            }
            let (column, descending) = columns[i];
            sql.push(column)
                .push(if descending { " < " } else { " > " })
                .bind(cursor[i].clone());
            sql.push(")");
        }
        sql.push(")");
    }
}

/// The statement selecting the ids of one page (no cursor): what the
/// tests inspect.
pub fn page_statement(backend: Backend, tenant: i64, scope: &CdrScope, query: &CdrQuery) -> Sql {
    let mut sql = Sql::new();
    push_page_ids(&mut sql, backend, tenant, scope, query, None);
    sql
}

/// Appends the statement selecting the ids of one page, in order.
pub(crate) fn push_page_ids(
    sql: &mut Sql,
    backend: Backend,
    tenant: i64,
    scope: &CdrScope,
    query: &CdrQuery,
    cursor: Option<&Cursor>,
) {
    sql.push("SELECT c.cdr_id FROM cdrs c WHERE ");
    push_where(sql, backend, tenant, scope, query);
    if let Some(cursor) = cursor {
        push_after(sql, &query.order, cursor);
    }
    push_order(sql, &query.order);
    sql.push(" LIMIT ")
        .bind_int(i64::from(query.top))
        .push(" OFFSET ")
        .bind_int(i64::try_from(query.skip).unwrap_or(i64::MAX));
}

/// `SELECT COUNT(*) AS n …` of the matching rows.
pub(crate) fn count(backend: Backend, tenant: i64, scope: &CdrScope, query: &CdrQuery) -> Sql {
    let mut sql = Sql::new();
    sql.push("SELECT COUNT(*) AS n FROM cdrs c WHERE ");
    push_where(&mut sql, backend, tenant, scope, query);
    sql
}
