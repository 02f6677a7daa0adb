//! CDR queries (store::query): the filter parser on good and hostile
//! input, and on both databases the compiled SQL checked against an
//! in-memory evaluation of the same expression, ordering, keyset paging
//! under concurrent inserts, the user scope, the streaming export of 100k
//! rows and the personal sync tokens.

mod common;

use std::cmp::Ordering;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use cdr::{
    CallEventKind, CdrRecord, Direction, EndReason, NoAnswerCause, RerouteReason, SessionEnd,
    TargetAdded, TargetEnd, UnixMillis,
};
use common::*;
use futures_util::StreamExt as _;
use store::query::compile::{glob_escape, like_escape, prefix_successor};
use store::query::filter::{MAX_DEPTH, MAX_FILTER_BYTES, MAX_LITERAL_CHARS, MAX_TERMS};
use store::query::{Cmp, Expr, Field, Filter, OrderBy, Search, TextFn, Value};
use store::{
    Backend, CdrQuery, CdrScope, ExportFormat, ExportLimits, ExportSlot, ExportSlots, ExportZone,
    SessionEvents, Store, StoreError, StoreOptions, WriterConfig,
};

/// A slot of its own for an export the test runs.
fn slot(tenant: u64) -> ExportSlot {
    ExportSlots::new(1, 1, ExportLimits::default())
        .try_acquire(tenant_id(tenant))
        .unwrap()
}

on_both!(
    filters_select_what_the_expression_means,
    orderby_is_total_and_paging_adds_up,
    keyset_paging_neither_skips_nor_repeats_under_concurrent_inserts,
    user_scope_is_the_users_own_calls,
    export_streams_100k_rows_in_bounded_chunks,
    sync_tokens_give_each_commit_once,
);

// Parser -----------------------------------------------------------------------

fn parse_err(text: &str) -> String {
    match Filter::parse(text) {
        Ok(f) => panic!("{text:?} parsed as {f:?}"),
        Err(e) => {
            assert_eq!(e.param, "filter");
            e.message
        }
    }
}

fn cmp(field: Field, op: Cmp, value: Value) -> Expr {
    Expr::Compare { field, op, value }
}

#[test]
fn parser_accepts_the_grammar_with_typed_literals() {
    let f = Filter::parse(
        "caller eq '101' AND (callee ne 'x' or not startswith(did_cid,'+49')) \
         and started_at ge 2026-11-28T14:03:07Z and ended_at lt '2026-11-28T15:03:07.5+01:00' \
         and direction eq 'INBOUND_CALL' and call_status ne noanswer and status_code le 486 \
         and session_id eq '1179280944981344256' and trunk gt '' and contains(callee,'a''b')",
    )
    .unwrap();
    let Expr::And(terms) = f.0 else {
        panic!("not an and")
    };
    assert_eq!(terms.len(), 10);
    assert_eq!(
        terms[0],
        cmp(Field::Caller, Cmp::Eq, Value::Text("101".into()))
    );
    assert_eq!(
        terms[1],
        Expr::Or(vec![
            cmp(Field::Callee, Cmp::Ne, Value::Text("x".into())),
            Expr::Not(Box::new(Expr::Text {
                func: TextFn::StartsWith,
                field: Field::DidCid,
                pattern: "+49".into()
            })),
        ])
    );
    assert_eq!(
        terms[2],
        cmp(Field::StartedAt, Cmp::Ge, Value::Time(1_795_874_587_000))
    );
    assert_eq!(
        terms[3],
        cmp(Field::EndedAt, Cmp::Lt, Value::Time(1_795_874_587_500))
    );
    assert_eq!(
        terms[4],
        cmp(
            Field::Direction,
            Cmp::Eq,
            Value::Direction(Direction::Inbound)
        )
    );
    assert_eq!(
        terms[5],
        cmp(
            Field::CallStatus,
            Cmp::Ne,
            Value::CallStatus(cdr::CallStatus::NoAnswer)
        )
    );
    assert_eq!(terms[6], cmp(Field::StatusCode, Cmp::Le, Value::Int(486)));
    assert_eq!(
        terms[7],
        cmp(
            Field::SessionId,
            Cmp::Eq,
            Value::Id(1_179_280_944_981_344_256)
        )
    );
    assert_eq!(
        terms[9],
        Expr::Text {
            func: TextFn::Contains,
            field: Field::Callee,
            pattern: "a'b".into()
        }
    );
    // `and` binds tighter than `or`; `not` tighter than both.
    assert_eq!(
        Filter::parse("caller eq 'a' or caller eq 'b' and not caller eq 'c'")
            .unwrap()
            .0,
        Expr::Or(vec![
            cmp(Field::Caller, Cmp::Eq, Value::Text("a".into())),
            Expr::And(vec![
                cmp(Field::Caller, Cmp::Eq, Value::Text("b".into())),
                Expr::Not(Box::new(cmp(
                    Field::Caller,
                    Cmp::Eq,
                    Value::Text("c".into())
                ))),
            ]),
        ])
    );
}

#[test]
fn parser_refuses_injection_attempts_as_values_or_syntax() {
    // A quote closes the string; what follows must be grammar.
    assert!(parse_err("caller eq '1' OR 1=1 --'").contains("unexpected character '='"));
    assert!(parse_err("caller eq '1'; DROP TABLE cdrs").contains("';'"));
    assert!(parse_err("caller eq '1' -- comment").contains("expected 'and', 'or'"));
    assert!(parse_err("caller eq \"101\"").contains("unexpected character '\"'"));
    assert!(parse_err("caller eq '1' /* x */").contains("'/'"));
    // A doubled quote stays inside the literal, which is then bound.
    let f = Filter::parse("caller eq '1'' OR ''1''=''1'").unwrap();
    assert_eq!(
        f.0,
        cmp(Field::Caller, Cmp::Eq, Value::Text("1' OR '1'='1".into()))
    );
    let query = CdrQuery {
        filter: Some(f),
        ..CdrQuery::default()
    };
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let sql = store::query::compile::page_statement(backend, 1, &CdrScope::Tenant, &query);
        assert!(!sql.text().contains("OR '1'"), "{}", sql.text());
        assert!(sql.text().contains("c.caller = $2"), "{}", sql.text());
        assert!(
            sql.args()
                .contains(&store::query::compile::Bound::Text("1' OR '1'='1".into()))
        );
    }
    // Column names never come from the text.
    assert!(parse_err("cdr_id eq 1").contains("unknown field 'cdr_id'"));
    assert!(parse_err("tenant_id eq 1").contains("unknown field"));
    assert!(parse_err("(SELECT 1) eq 1").contains("unknown field 'SELECT'"));
    assert!(parse_err("caller eq caller").contains("caller takes a string"));
}

#[test]
fn parser_limits_depth_size_terms_and_literals() {
    let nested = |n: usize| format!("{}caller eq '1'{}", "(".repeat(n), ")".repeat(n));
    assert!(Filter::parse(&nested(MAX_DEPTH)).is_ok());
    assert!(parse_err(&nested(MAX_DEPTH + 1)).contains("nests deeper"));
    assert!(parse_err(&nested(100_000)).contains("longer than"));
    let nots = |n: usize| format!("{}caller eq '1'", "not ".repeat(n));
    assert!(Filter::parse(&nots(MAX_DEPTH)).is_ok());
    assert!(parse_err(&nots(MAX_DEPTH + 1)).contains("nests deeper"));
    let terms = |n: usize| vec!["status_code eq 1"; n].join(" or ");
    assert!(Filter::parse(&terms(MAX_TERMS)).is_ok());
    assert!(parse_err(&terms(MAX_TERMS + 1)).contains("more than 64 comparisons"));
    let literal = |n: usize| format!("caller eq '{}'", "x".repeat(n));
    assert!(Filter::parse(&literal(MAX_LITERAL_CHARS)).is_ok());
    assert!(parse_err(&literal(MAX_LITERAL_CHARS + 1)).contains("longer than 256"));
    assert!(parse_err(&format!("caller eq '{}'", "é".repeat(MAX_FILTER_BYTES))).contains("bytes"));
    assert!(parse_err(&format!("status_code eq {}", "9".repeat(80))).contains("64 characters"));
    assert!(parse_err("status_code eq 99999999999999999999").contains("integer"));
}

#[test]
fn parser_names_the_problem() {
    for (text, needle) in [
        ("", "is empty"),
        ("   ", "is empty"),
        ("caller", "expected an operator"),
        ("caller eq", "expected a value for caller"),
        (
            "caller like '1'",
            "expected an operator (eq ne gt ge lt le) after caller",
        ),
        ("caller eq '1' and", "found the end"),
        (
            "caller eq '1' caller eq '2'",
            "expected 'and', 'or' or the end at position 14",
        ),
        ("(caller eq '1'", "expected ')'"),
        ("caller eq '1')", "found ')'"),
        ("caller eq 'open", "no closing quote"),
        ("caler eq '1'", "unknown field 'caler' at position 0"),
        ("Caller eq '1'", "unknown field 'Caller'"),
        (
            "caller eq 101",
            "caller takes a string in single quotes, not '101'",
        ),
        (
            "started_at gt 'yesterday'",
            "started_at takes an ISO 8601 date-time",
        ),
        (
            "started_at gt 2026-11-28T14:03:07",
            "started_at takes an ISO 8601",
        ),
        ("started_at gt 2026-13-28T14:03:07Z", "started_at takes"),
        ("status_code eq '486'", "status_code takes an integer"),
        (
            "status_code eq 1000",
            "status_code takes an integer from 0 to 999",
        ),
        ("status_code eq -1", "status_code takes"),
        ("session_id eq 'abc'", "session_id takes a session id"),
        ("session_id eq -5", "session_id takes"),
        ("session_id eq 99999999999999999999", "session_id takes"),
        (
            "direction eq 'ext'",
            "direction takes one of EXTENSION_CALL",
        ),
        (
            "direction gt 'INBOUND_CALL'",
            "direction compares with eq and ne only",
        ),
        (
            "call_status eq 'ANSWERED'",
            "call_status takes one of answered",
        ),
        ("call_status lt answered", "eq and ne only"),
        (
            "startswith(started_at,'2')",
            "started_at string functions apply to",
        ),
        ("startswith(caller,1)", "expected a string in single quotes"),
        ("startswith(caller '1')", "expected ','"),
        ("startswith caller", "expected '('"),
        ("substringof('1',caller)", "unknown field 'substringof'"),
        ("caller eq '1' and 5", "expected a field, a function or '('"),
    ] {
        let message = parse_err(text);
        assert!(
            message.contains(needle),
            "{text:?}: {message:?} lacks {needle:?}"
        );
    }
}

#[test]
fn other_options_are_checked() {
    let params = |pairs: &[(&'static str, &'static str)]| {
        let pairs = pairs.to_vec();
        CdrQuery::from_params(move |name| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v))
    };
    let q = params(&[]).unwrap();
    assert_eq!(q, CdrQuery::default());
    assert_eq!((q.top, q.skip, q.count), (100, 0, true));
    let q = params(&[
        ("top", "5"),
        ("skip", "10"),
        ("count", "false"),
        ("orderby", "caller asc, started_at DESC"),
        ("search", "101 or 102"),
        ("after", "1179280944981344257"),
        ("filter", " "),
    ])
    .unwrap();
    assert_eq!((q.top, q.skip, q.count), (5, 10, false));
    assert_eq!(q.filter, None);
    assert_eq!(q.search, Search::parse("101 102").unwrap());
    assert_eq!(
        q.order
            .keys()
            .iter()
            .map(|k| (k.field, k.descending))
            .collect::<Vec<_>>(),
        [(Field::Caller, false), (Field::StartedAt, true)]
    );
    assert!(q.order.tiebreak_descending());
    for (pairs, param) in [
        (vec![("top", "0")], "top"),
        (vec![("top", "101")], "top"),
        (vec![("top", "-1")], "top"),
        (vec![("skip", "-1")], "skip"),
        (vec![("skip", "9223372036854775808")], "skip"),
        (vec![("count", "yes")], "count"),
        (vec![("after", "x")], "after"),
        (vec![("orderby", "caller sideways")], "orderby"),
        (vec![("orderby", "nope")], "orderby"),
        (vec![("orderby", "caller,caller desc")], "orderby"),
        (vec![("orderby", "caller,")], "orderby"),
        (
            vec![("orderby", "caller,callee,started_at,ended_at,status_code")],
            "orderby",
        ),
        (vec![("search", "1 2 3 4 5 6 7 8 9")], "search"),
        (vec![("filter", "nope eq 1")], "filter"),
    ] {
        let error = params(&pairs).unwrap_err();
        assert_eq!(error.param, param, "{pairs:?}: {error}");
    }
    assert_eq!(Search::parse("or OR  ").unwrap(), None);
    assert!(
        Search::parse(&"9".repeat(65))
            .unwrap_err()
            .message
            .contains("64")
    );
}

#[test]
fn pattern_escapes() {
    assert_eq!(like_escape(r"50%_off\now"), r"50\%\_off\\now");
    assert_eq!(glob_escape("a*b?c[d]e"), "a[*]b[?]c[[]d]e");
    assert_eq!(prefix_successor("101").as_deref(), Some("102"));
    assert_eq!(prefix_successor("1z").as_deref(), Some("1{"));
    assert_eq!(prefix_successor(""), None);
    assert_eq!(prefix_successor("a\u{10FFFF}").as_deref(), Some("b"));
    assert_eq!(prefix_successor("\u{D7FF}").as_deref(), Some("\u{E000}"));
    assert_eq!(prefix_successor("\u{10FFFF}"), None);
}

// Fixtures -------------------------------------------------------------------------

/// One call to commit: who, how, and whether it was answered.
#[derive(Clone)]
struct Call {
    offset: u64,
    direction: Direction,
    caller: &'static str,
    callee: &'static str,
    did: &'static str,
    trunk: &'static str,
    /// None: answered; Some(code): the final failure.
    failure: Option<u16>,
    /// The target rung (its callee); its trunk is the call's for out calls.
    target: &'static str,
    duration_ms: u64,
    /// Why the PBX moved the call to its target.
    reroute: Option<RerouteReason>,
    /// Which holder of the extensions placed it: 0 the current users, 1
    /// the users who had the numbers before (deleted since).
    owners: u64,
}

/// The id the PBX records for extension `number` of `tenant` (a 3-digit
/// number starting with 1), held by its `owners`-th user; `None` for an
/// outside number.
fn ext_user(tenant: u64, number: &str, owners: u64) -> Option<cdr::Id> {
    let n: u64 = number.parse().ok()?;
    (number.len() == 3 && number.starts_with('1'))
        .then(|| cdr::Id::from_u64(800_000_000 + owners * 1_000_000 + tenant * 1_000 + n))
}

fn call(offset: u64, caller: &'static str, callee: &'static str) -> Call {
    Call {
        offset,
        direction: Direction::Extension,
        caller,
        callee,
        did: "",
        trunk: "",
        failure: None,
        target: callee,
        duration_ms: 10_000,
        reroute: None,
        owners: 0,
    }
}

fn command(ids: &mut Ids, tenant: u64, c: &Call) -> SessionEvents {
    let session = ids.session(c.offset);
    let target = ids.target(c.offset);
    let mut start = session_start(session, tenant, c.caller, c.callee);
    start.direction = c.direction;
    start.did = c.did.into();
    start.trunk_name = c.trunk.into();
    // The PBX's rules: the caller is a user on ext and out calls, the first
    // destination on ext and in calls, a target on legs without a trunk.
    if matches!(c.direction, Direction::Extension | Direction::Outbound) {
        start.caller_user = ext_user(tenant, c.caller, c.owners);
    }
    if matches!(c.direction, Direction::Extension | Direction::Inbound) {
        start.callee_user = ext_user(tenant, c.callee, c.owners);
    }
    let target_trunk = if matches!(
        c.direction,
        Direction::Outbound | Direction::InboundOutbound
    ) {
        c.trunk
    } else {
        ""
    };
    let mut script = Script::new(session, tenant);
    let mut events = vec![
        (c.offset, CallEventKind::SessionStarted(Box::new(start))),
        (
            c.offset + 5,
            CallEventKind::TargetAdded(Box::new(TargetAdded {
                trunk_name: target_trunk.into(),
                reroute_reason: c.reroute,
                user: if target_trunk.is_empty() {
                    ext_user(tenant, c.target, c.owners)
                } else {
                    None
                },
                ..target_added(target, c.target)
            })),
        ),
        (c.offset + 50, CallEventKind::TargetRinging { target }),
    ];
    let end = c.offset + c.duration_ms;
    match c.failure {
        None => {
            events.push((c.offset + 1_000, CallEventKind::TargetAnswered { target }));
            events.push((
                end,
                CallEventKind::TargetEnded(TargetEnd {
                    target,
                    reason: EndReason::CallerDisconnect,
                    cost: None,
                    quality: None,
                }),
            ));
            events.push((
                end + 1,
                CallEventKind::SessionEnded(SessionEnd {
                    status_code: 200,
                    reason: EndReason::CallerDisconnect,
                    recording: None,
                    recording_error: None,
                }),
            ));
        }
        Some(408) => {
            events.push((
                end,
                CallEventKind::TargetNoAnswer {
                    target,
                    cause: NoAnswerCause::RingTimeout,
                },
            ));
            events.push((
                end + 1,
                CallEventKind::SessionEnded(SessionEnd {
                    status_code: 408,
                    reason: EndReason::NotApplicable,
                    recording: None,
                    recording_error: None,
                }),
            ));
        }
        Some(code) => {
            events.push((
                end,
                CallEventKind::TargetFailed {
                    target,
                    status_code: code,
                },
            ));
            events.push((
                end + 1,
                CallEventKind::SessionEnded(SessionEnd {
                    status_code: code,
                    reason: EndReason::NotApplicable,
                    recording: None,
                    recording_error: None,
                }),
            ));
        }
    }
    script.step(events)
}

/// A varied set: special characters, both cases, every direction, DIDs,
/// trunks, failures, shared start times.
fn calls() -> Vec<Call> {
    let special = [
        "101",
        "102",
        "103",
        "1%1",
        "1_2",
        "a*b",
        "x?y",
        "[z]",
        "O'Brien",
        "Ünïcode",
        "ABC",
        "abc",
        "abc_def",
        "ab%",
        "10",
        "1010",
        "z\u{10FFFF}",
    ];
    let mut out = Vec::new();
    for (i, caller) in special.iter().enumerate() {
        let i = i as u64;
        let mut c = call(
            i * 1_000,
            caller,
            special[(i as usize * 5 + 1) % special.len()],
        );
        c.failure = match i % 4 {
            0 => None,
            1 => Some(408),
            2 => Some(486),
            _ => None,
        };
        c.duration_ms = 5_000 + i * 700;
        out.push(c);
    }
    // Two calls at the same moment: the id breaks the tie.
    out.push(call(3_000, "102", "101"));
    let mut forwarded = call(19_000, "102", "104");
    forwarded.reroute = Some(RerouteReason::ForwardingBusy);
    out.push(forwarded);
    let mut inbound = call(20_000, "+4930123", "101");
    inbound.direction = Direction::Inbound;
    inbound.did = "+4930555";
    inbound.trunk = "trunk1";
    out.push(inbound);
    let mut outbound = call(21_000, "101", "+4989777");
    outbound.direction = Direction::Outbound;
    outbound.trunk = "trunk2";
    outbound.failure = Some(486);
    out.push(outbound);
    let mut through = call(22_000, "+4930999", "+4989111");
    through.direction = Direction::InboundOutbound;
    through.did = "+4930556";
    through.trunk = "trunk1";
    out.push(through);
    // An outside number equal to an extension, coming in over a trunk.
    let mut spoof = call(23_000, "101", "102");
    spoof.direction = Direction::Inbound;
    spoof.did = "+4930555";
    spoof.trunk = "trunk1";
    spoof.target = "103";
    out.push(spoof);
    out
}

async fn seed(store: &Store, tenant: u64, calls: &[Call], node: u16) -> Vec<CdrRecord> {
    let writer = store.spawn_writer(WriterConfig::default());
    let mut ids = Ids::node(node);
    let mut records = Vec::new();
    for c in calls {
        let command = command(&mut ids, tenant, c);
        records.push(command.record().cloned().expect("a closing command"));
        writer.commit(command).await.expect("commit");
    }
    records
}

// The oracle ------------------------------------------------------------------------

#[derive(PartialEq, PartialOrd)]
enum Key {
    Text(String),
    Int(i64),
}

fn key(r: &CdrRecord, field: Field) -> Key {
    match field {
        Field::Caller => Key::Text(r.caller.user.clone()),
        Field::Callee => Key::Text(r.callee.user.clone()),
        Field::DidCid => Key::Text(r.did.clone()),
        Field::Trunk => Key::Text(r.trunk_name.clone()),
        Field::Direction => Key::Text(
            r.direction
                .event_spelling(cdr::DirectionVocabulary::Classic)
                .into(),
        ),
        Field::CallStatus => Key::Text(r.call_status.as_str().into()),
        Field::StartedAt => Key::Int(r.start_time.as_millis() as i64),
        Field::EndedAt => Key::Int(r.ended_time.as_millis() as i64),
        Field::StatusCode => Key::Int(i64::from(r.status_code)),
        Field::SessionId => Key::Int(r.session_id.id().as_u64() as i64),
    }
}

fn literal(value: &Value) -> Key {
    match value {
        Value::Text(s) => Key::Text(s.clone()),
        Value::Time(n) | Value::Int(n) | Value::Id(n) => Key::Int(*n),
        Value::Direction(d) => {
            Key::Text(d.event_spelling(cdr::DirectionVocabulary::Classic).into())
        }
        Value::CallStatus(s) => Key::Text(s.as_str().into()),
    }
}

fn eval(expr: &Expr, r: &CdrRecord) -> bool {
    match expr {
        Expr::And(terms) => terms.iter().all(|t| eval(t, r)),
        Expr::Or(terms) => terms.iter().any(|t| eval(t, r)),
        Expr::Not(inner) => !eval(inner, r),
        Expr::Compare { field, op, value } => {
            let (a, b) = (key(r, *field), literal(value));
            match op {
                Cmp::Eq => a == b,
                Cmp::Ne => a != b,
                Cmp::Gt => a > b,
                Cmp::Ge => a >= b,
                Cmp::Lt => a < b,
                Cmp::Le => a <= b,
            }
        }
        Expr::Text {
            func,
            field,
            pattern,
        } => {
            let Key::Text(text) = key(r, *field) else {
                unreachable!()
            };
            match func {
                TextFn::StartsWith => text.starts_with(pattern.as_str()),
                TextFn::EndsWith => text.ends_with(pattern.as_str()),
                TextFn::Contains => text.contains(pattern.as_str()),
            }
        }
    }
}

fn searched(search: &Search, r: &CdrRecord) -> bool {
    search.terms().iter().any(|t| {
        r.caller.user.contains(t.as_str())
            || r.callee.user.contains(t.as_str())
            || r.did.contains(t.as_str())
            || r.session_id.to_string() == *t
    })
}

fn order(order: &OrderBy, a: &CdrRecord, b: &CdrRecord) -> Ordering {
    for k in order.keys() {
        let o = key(a, k.field)
            .partial_cmp(&key(b, k.field))
            .expect("comparable");
        let o = if k.descending { o.reverse() } else { o };
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = a.cdr_id.cmp(&b.cdr_id);
    if order.tiebreak_descending() {
        o.reverse()
    } else {
        o
    }
}

/// What the query should return, computed in memory.
fn expected(all: &[CdrRecord], query: &CdrQuery) -> Vec<CdrRecord> {
    let mut rows: Vec<CdrRecord> = all
        .iter()
        .filter(|r| query.filter.as_ref().is_none_or(|f| eval(&f.0, r)))
        .filter(|r| query.search.as_ref().is_none_or(|s| searched(s, r)))
        .cloned()
        .collect();
    rows.sort_by(|a, b| order(&query.order, a, b));
    rows
}

fn rfc(offset_ms: u64) -> String {
    at(offset_ms).to_rfc3339()
}

// On both databases ------------------------------------------------------------------

async fn filters_select_what_the_expression_means(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let all = seed(&store, 1, &calls(), 1).await;
    // The other tenant has the same numbers: never seen from tenant 1.
    seed(&store, 2, &calls(), 2).await;
    let session = all[3].session_id;
    let filters = [
        "caller eq '101'".to_owned(),
        "caller ne '101'".into(),
        "caller gt '1' and caller lt '2'".into(),
        "caller ge 'ab%' and caller le 'abc_def'".into(),
        "startswith(caller,'1')".into(),
        "startswith(caller,'1%')".into(),
        "startswith(caller,'ab')".into(),
        "startswith(caller,'z')".into(),
        "startswith(caller,'')".into(),
        "startswith(caller,'Ü')".into(),
        "contains(caller,'%')".into(),
        "contains(caller,'_')".into(),
        "contains(caller,'*')".into(),
        "contains(caller,'?')".into(),
        "contains(caller,'[')".into(),
        "endswith(caller,']')".into(),
        "endswith(caller,'c')".into(),
        "contains(caller,'b')".into(),
        "contains(caller,'B')".into(),
        "endswith(caller,'')".into(),
        "caller eq 'O''Brien'".into(),
        "caller eq '1'' or ''1''=''1'".into(),
        "contains(caller,'\\')".into(),
        "direction eq 'INBOUND_CALL' or direction eq OUTBOUND_CALL".into(),
        "direction ne 'EXTENSION_CALL'".into(),
        "not (call_status eq 'answered')".into(),
        "call_status eq fail".into(),
        "status_code eq 408".into(),
        "status_code ge 400 and status_code lt 487".into(),
        format!(
            "started_at ge {} and started_at lt '{}'",
            rfc(3_000),
            rfc(10_000)
        ),
        format!("started_at gt {}", rfc(3_000)),
        format!("ended_at le {}", rfc(12_000)),
        "started_at lt 1970-01-01T00:00:00Z".into(),
        "did_cid eq '+4930555'".into(),
        "startswith(did_cid,'+4930')".into(),
        "trunk eq 'trunk1' or trunk eq 'trunk2'".into(),
        "trunk eq ''".into(),
        format!("session_id eq {session}"),
        format!("session_id eq '{session}'"),
        format!("session_id lt {session}"),
        "(caller eq '101' or callee eq '101') and not (direction eq 'EXTENSION_CALL')".into(),
        "not not not caller eq '102'".into(),
        "((caller eq '101')) or ((((callee eq '101'))))".into(),
    ];
    for text in &filters {
        let query = CdrQuery {
            filter: Some(Filter::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))),
            ..CdrQuery::default()
        };
        let want = expected(&all, &query);
        let got = store
            .query_cdrs(tenant_id(1), &CdrScope::Tenant, &query)
            .await
            .unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(got.count, Some(want.len() as u64), "count of {text}");
        assert_eq!(got.records, want, "{text}");
    }
    // Sanity: the set above is not trivially empty or full.
    let count = |text: &str| {
        let query = CdrQuery {
            filter: Some(Filter::parse(text).unwrap()),
            ..CdrQuery::default()
        };
        expected(&all, &query).len()
    };
    assert_eq!(count("startswith(caller,'1%')"), 1);
    assert_eq!(count("contains(caller,'B')"), 2, "case-sensitive");
    assert_eq!(count("contains(caller,'_')"), 2);
    assert_eq!(count("caller eq '1'' or ''1''=''1'"), 0);
    assert!(count("startswith(caller,'1')") > 5);

    for text in ["101", "101 or +4930555", "ab%", "*", &session.to_string()] {
        let query = CdrQuery {
            search: Search::parse(text).unwrap(),
            ..CdrQuery::default()
        };
        let want = expected(&all, &query);
        assert!(!want.is_empty(), "{text}");
        let got = store
            .query_cdrs(tenant_id(1), &CdrScope::Tenant, &query)
            .await
            .unwrap();
        assert_eq!(got.records, want, "search {text}");
    }
    // The export's lines are the list items, reroute reason included.
    let listed = store
        .query_cdrs(tenant_id(1), &CdrScope::Tenant, &CdrQuery::default())
        .await
        .unwrap();
    let mut stream = store
        .export_cdrs(
            tenant_id(1),
            CdrScope::Tenant,
            CdrQuery::default(),
            ExportFormat::Jsonl,
            ExportZone::utc(),
            slot(1),
        )
        .unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    let lines: Vec<serde_json::Value> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let items: Vec<serde_json::Value> = listed
        .records
        .iter()
        .map(|r| serde_json::to_value(r.rest_item()).unwrap())
        .collect();
    assert_eq!(lines, items);
    assert!(
        lines
            .iter()
            .any(|l| l["reroute_reason"] == "FORWARDING_BUSY")
    );

    // Search and filter together.
    let query = CdrQuery {
        search: Search::parse("101").unwrap(),
        filter: Some(Filter::parse("direction eq 'EXTENSION_CALL'").unwrap()),
        ..CdrQuery::default()
    };
    let got = store
        .query_cdrs(tenant_id(1), &CdrScope::Tenant, &query)
        .await
        .unwrap();
    assert_eq!(got.records, expected(&all, &query));
}

async fn orderby_is_total_and_paging_adds_up(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let all = seed(&store, 1, &calls(), 3).await;
    for text in [
        "started_at desc",
        "started_at",
        "caller asc",
        "caller desc, started_at asc",
        "status_code desc",
        "call_status, direction desc, trunk",
        "did_cid, ended_at desc",
        "session_id desc",
        "callee",
    ] {
        let order = OrderBy::parse(text).unwrap();
        let query = CdrQuery {
            order: order.clone(),
            ..CdrQuery::default()
        };
        let want = expected(&all, &query);
        let got = store
            .query_cdrs(tenant_id(1), &CdrScope::Tenant, &query)
            .await
            .unwrap();
        assert_eq!(got.records, want, "orderby {text}");
        // top/skip pages and after pages both add up to the whole.
        let mut by_skip = Vec::new();
        let mut by_after = Vec::new();
        let mut cursor = None;
        for page in 0..30u64 {
            let skipped = store
                .query_cdrs(
                    tenant_id(1),
                    &CdrScope::Tenant,
                    &CdrQuery {
                        top: 4,
                        skip: page * 4,
                        count: false,
                        ..query.clone()
                    },
                )
                .await
                .unwrap();
            assert_eq!(skipped.count, None);
            by_skip.extend(skipped.records);
            let after = store
                .query_cdrs(
                    tenant_id(1),
                    &CdrScope::Tenant,
                    &CdrQuery {
                        top: 4,
                        after: cursor,
                        ..query.clone()
                    },
                )
                .await
                .unwrap();
            assert_eq!(after.count, Some(all.len() as u64), "count ignores after");
            cursor = after.records.last().map(|r| r.cdr_id).or(cursor);
            by_after.extend(after.records);
        }
        assert_eq!(by_skip, want, "skip pages of {text}");
        assert_eq!(by_after, want, "after pages of {text}");
    }
    // A cursor of another tenant, or of nothing, is refused.
    create_tenants(&store, [2]).await;
    let foreign = seed(&store, 2, &calls()[..1], 4).await;
    for cursor in [foreign[0].cdr_id, cdr::CdrId::from(cdr::Id::from_u64(5))] {
        let error = store
            .query_cdrs(
                tenant_id(1),
                &CdrScope::Tenant,
                &CdrQuery {
                    after: Some(cursor),
                    ..CdrQuery::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(error, StoreError::UnknownCursor(c) if c == cursor));
    }
}

async fn keyset_paging_neither_skips_nor_repeats_under_concurrent_inserts(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let initial = seed(&store, 1, &calls(), 5).await;
    for text in ["started_at desc", "caller asc, started_at desc"] {
        let order = OrderBy::parse(text).unwrap();
        let writer = store.spawn_writer(WriterConfig::default());
        let inserter = {
            let writer = writer.clone();
            let node = if text.starts_with("caller") { 6 } else { 7 };
            tokio::spawn(async move {
                let mut ids = Ids::node(node);
                let numbers = ["100", "1015", "abd", "0", "zzz", "102"];
                for i in 0..24u64 {
                    // Newer, older and in-between calls.
                    let offset = match i % 3 {
                        0 => 100_000 + i * 1_000,
                        1 => i * 100,
                        _ => 5_000 + i * 10,
                    };
                    let c = call(offset, numbers[i as usize % numbers.len()], "103");
                    writer.commit(command(&mut ids, 1, &c)).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        let mut walked: Vec<CdrRecord> = Vec::new();
        let mut cursor = None;
        for _ in 0..1_000 {
            let page = store
                .query_cdrs(
                    tenant_id(1),
                    &CdrScope::Tenant,
                    &CdrQuery {
                        order: order.clone(),
                        top: 3,
                        count: false,
                        after: cursor,
                        ..CdrQuery::default()
                    },
                )
                .await
                .unwrap();
            let Some(last) = page.records.last() else {
                break;
            };
            cursor = Some(last.cdr_id);
            walked.extend(page.records);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        inserter.await.unwrap();
        let unique: HashSet<_> = walked.iter().map(|r| r.cdr_id).collect();
        assert_eq!(unique.len(), walked.len(), "{text}: no CDR twice");
        assert!(
            walked
                .windows(2)
                .all(|w| order_of(&order, &w[0], &w[1]) == Ordering::Less),
            "{text}: strictly in order across pages"
        );
        assert!(
            initial.iter().all(|r| unique.contains(&r.cdr_id)),
            "{text}: every CDR that existed when the walk began was seen"
        );
    }
}

fn order_of(o: &OrderBy, a: &CdrRecord, b: &CdrRecord) -> Ordering {
    order(o, a, b)
}

async fn user_scope_is_the_users_own_calls(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    let mut list = vec![
        call(0, "101", "102"),     // 101 placed it
        call(1_000, "102", "101"), // placed to 101
        call(2_000, "102", "103"), // neither
    ];
    let mut forwarded = call(3_000, "102", "103");
    forwarded.target = "101"; // rang 101 as a target
    list.push(forwarded);
    let mut outbound = call(4_000, "101", "+4989777");
    outbound.direction = Direction::Outbound;
    outbound.trunk = "trunk2";
    list.push(outbound);
    let mut inbound = call(5_000, "+4930123", "101");
    inbound.direction = Direction::Inbound;
    inbound.trunk = "trunk1";
    inbound.did = "+4930555";
    list.push(inbound);
    // An outside "101" calling in, to 102: not the extension's.
    let mut spoof = call(6_000, "101", "102");
    spoof.direction = Direction::Inbound;
    spoof.trunk = "trunk1";
    spoof.target = "102";
    list.push(spoof);
    // An outbound call to the number "101" on a trunk: not the extension's.
    let mut out_to_101 = call(7_000, "102", "101");
    out_to_101.direction = Direction::Outbound;
    out_to_101.trunk = "trunk2";
    list.push(out_to_101);
    // The previous holder of 101 (deleted, the number given to the current
    // user) placed, got and was rung by calls: not the current user's
    // (issue 17 finding 11).
    for (offset, caller, callee, target) in [
        (8_000, "101", "102", "102"),
        (9_000, "102", "101", "101"),
        (10_000, "102", "103", "101"),
    ] {
        let mut old = call(offset, caller, callee);
        old.target = target;
        old.owners = 1;
        list.push(old);
    }
    let all = seed(&store, 1, &list, 8).await;
    seed(&store, 2, &list, 9).await;
    let mine: Vec<CdrRecord> = [5, 4, 3, 1, 0].iter().map(|&i| all[i].clone()).collect();
    let scope = CdrScope::User(ext_user(1, "101", 0).unwrap());
    let page = store
        .query_cdrs(tenant_id(1), &scope, &CdrQuery::default())
        .await
        .unwrap();
    assert_eq!(page.records, mine);
    assert_eq!(page.count, Some(5));
    // With a filter and paging.
    let page = store
        .query_cdrs(
            tenant_id(1),
            &scope,
            &CdrQuery {
                filter: Some(Filter::parse("caller eq '102'").unwrap()),
                top: 1,
                ..CdrQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.records, vec![all[3].clone()]);
    assert_eq!(page.count, Some(2));
    let none = store
        .query_cdrs(
            tenant_id(1),
            &CdrScope::User(ext_user(1, "199", 0).unwrap()),
            &CdrQuery::default(),
        )
        .await
        .unwrap();
    assert_eq!((none.count, none.records.len()), (Some(0), 0));
    // The previous holder's view is its own three calls; the user ids are
    // read back as they were recorded.
    let old = store
        .query_cdrs(
            tenant_id(1),
            &CdrScope::User(ext_user(1, "101", 1).unwrap()),
            &CdrQuery::default(),
        )
        .await
        .unwrap();
    let expected: Vec<CdrRecord> = [10, 9, 8].iter().map(|&i| all[i].clone()).collect();
    assert_eq!(old.records, expected);
    assert_eq!(old.records[2].caller_user, ext_user(1, "101", 1));
    assert_eq!(old.records[1].callee_user, ext_user(1, "101", 1));
    assert_eq!(old.records[0].targets[0].user, ext_user(1, "101", 1));
    // Tenant 2's view of its own 101 is not tenant 1's.
    let other = store
        .query_cdrs(tenant_id(2), &scope, &CdrQuery::default())
        .await
        .unwrap();
    assert_eq!(other.count, Some(0));
}

/// Inserts `n` CDRs of tenant 1 in one statement (a bulk load: the writer
/// would take minutes), newest at the highest index, one every second.
async fn bulk_insert(db: &TestDb, backend: Backend, n: i64) {
    let tenant = tenant_id(1).id().as_u64() as i64;
    let source = match backend {
        Backend::Sqlite => format!(
            "(WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {}) \
             SELECT i FROM s) AS series",
            n - 1
        ),
        Backend::Postgres => format!("generate_series(0::BIGINT, {}::BIGINT) AS series(i)", n - 1),
    };
    let started = format!("({} + i * 1000)", T0);
    let sql = format!(
        "INSERT INTO cdrs (cdr_id, session_id, tenant_id, tenant_name, call_id, direction, \
         caller, caller_display_name, caller_domain, callee, callee_display_name, callee_domain, \
         did, trunk_name, outbound_caller_id, started_at, rang_at, answered_at, ended_at, \
         call_status, status_code, ended_reason, user_data, recording_id, recording_url, \
         recording_duration, recovered) \
         SELECT ({started} - 1514764800000) * 4194304 + 1, ({started} - 1514764800000) * 4194304, \
         {tenant}, 'tenant1', 'c' || CAST(i AS TEXT), 'ext', CAST(100 + i % 50 AS TEXT), \
         'Name, \"quoted\"', 't1.example', '200', '=cmd', 't1.example', '', '', '', {started}, \
         NULL, CASE WHEN i % 2 = 0 THEN {started} + 1000 ELSE NULL END, {started} + 61000, \
         CASE WHEN i % 2 = 0 THEN 'answered' ELSE 'noanswer' END, \
         CASE WHEN i % 2 = 0 THEN 0 ELSE 408 END, 'None', '', NULL, NULL, NULL, (1 = 0) \
         FROM {source}"
    );
    match backend {
        Backend::Sqlite => {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect(db.url()).await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(db.url()).await.unwrap();
            sqlx::raw_sql(&sql).execute(&mut conn).await.unwrap();
        }
    }
}

async fn export_streams_100k_rows_in_bounded_chunks(db: &TestDb) {
    const ROWS: i64 = 100_000;
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    bulk_insert(db, store.backend(), ROWS).await;
    seed(&store, 2, &calls()[..3], 10).await;

    // JSON Lines, everything, newest first.
    let mut stream = store
        .export_cdrs(
            tenant_id(1),
            CdrScope::Tenant,
            CdrQuery::default(),
            ExportFormat::Jsonl,
            ExportZone::utc(),
            slot(1),
        )
        .unwrap();
    let (mut lines, mut chunks, mut largest) = (0i64, 0usize, 0usize);
    let mut previous: Option<u64> = None;
    let mut partial = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        chunks += 1;
        largest = largest.max(chunk.len());
        partial.extend_from_slice(&chunk);
        let complete = partial
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        for line in partial[..complete]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
        {
            let item: serde_json::Value = serde_json::from_slice(line).unwrap();
            let id: u64 = item["id"].as_str().unwrap().parse().unwrap();
            assert!(previous.is_none_or(|p| p > id), "newest first");
            previous = Some(id);
            if lines == 0 {
                assert_eq!(item["started_at"], at(99_999_000).to_rfc3339());
                assert_eq!(item["direction"], "EXTENSION_CALL");
                assert_eq!(item["reroute_reason"], "");
            }
            lines += 1;
        }
        partial.drain(..complete);
    }
    assert!(partial.is_empty());
    assert_eq!(lines, ROWS);
    // Constant memory: many bounded chunks, never the whole export at once.
    assert!(chunks > 100, "{chunks} chunks");
    assert!(largest < 64 * 1024 + 4096, "largest chunk {largest}");

    // CSV with a filter, in Berlin time.
    let query = CdrQuery {
        filter: Some(Filter::parse("call_status eq answered and caller eq '100'").unwrap()),
        ..CdrQuery::default()
    };
    let counted = store
        .query_cdrs(tenant_id(1), &CdrScope::Tenant, &query)
        .await
        .unwrap()
        .count
        .unwrap();
    assert_eq!(counted, (ROWS / 50) as u64);
    let mut stream = store
        .export_cdrs(
            tenant_id(1),
            CdrScope::Tenant,
            query,
            ExportFormat::Csv,
            ExportZone::named("Europe/Berlin").unwrap(),
            slot(1),
        )
        .unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk.unwrap());
    }
    let text = String::from_utf8(body).unwrap();
    let rows: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(rows.len() as u64, counted + 1);
    assert!(rows[0].starts_with("id,session_id,call_id,direction,caller,caller_display_name,"));
    // The newest answered call of 100: i = 99_950.
    let first = rows[1];
    let started = UnixMillis(T0 + 99_950_000);
    assert!(
        first.contains(",EXTENSION_CALL,100,\"Name, \"\"quoted\"\"\",t1.example,200,\"'=cmd\",")
    );
    let berlin = {
        // T0 is 2026-11-28T14:03:07.123Z; + 99_950 s is 2026-11-29T17:48:57.123Z, CET.
        assert_eq!(started.to_rfc3339(), "2026-11-29T17:48:57.123Z");
        "2026-11-29T18:48:57.123+01:00"
    };
    assert!(first.contains(&format!(",{berlin},,")), "{first}");
    assert!(first.contains(",60,answered,0,,,,,,"), "{first}");

    // A client that stops reading ends the export: dropping the stream
    // lets the task go; the store is still usable.
    let mut stream = store
        .export_cdrs(
            tenant_id(1),
            CdrScope::Tenant,
            CdrQuery::default(),
            ExportFormat::Csv,
            ExportZone::utc(),
            slot(1),
        )
        .unwrap();
    assert!(stream.next().await.unwrap().is_ok());
    drop(stream);
    assert_eq!(
        store
            .query_cdrs(tenant_id(2), &CdrScope::Tenant, &CdrQuery::default())
            .await
            .unwrap()
            .count,
        Some(3)
    );

    // Security review, finding 1: exports nobody reads give their pooled
    // connection back after `stall`, and the slots cap them per tenant and
    // in all. A pool of 2 that two stalled exports would hold for ever
    // serves other reads again once they have stalled.
    let small = db
        .open_with(&StoreOptions {
            max_connections: 2,
            acquire_timeout: Duration::from_millis(500),
            ..StoreOptions::default()
        })
        .await;
    let limits = ExportLimits {
        stall: Duration::from_millis(300),
        total: Duration::from_secs(120),
    };
    let slots = ExportSlots::new(2, 2, limits);
    let stalled: Vec<_> = (0..2)
        .map(|_| {
            let slot = slots.try_acquire(tenant_id(1)).expect("a slot");
            let mut stream = small
                .export_cdrs(
                    tenant_id(1),
                    CdrScope::Tenant,
                    CdrQuery::default(),
                    ExportFormat::Csv,
                    ExportZone::utc(),
                    slot,
                )
                .unwrap();
            // Started, then never read again.
            futures_util::FutureExt::now_or_never(stream.next());
            stream
        })
        .collect();
    assert!(slots.try_acquire(tenant_id(1)).is_none(), "per tenant");
    assert!(slots.try_acquire(tenant_id(2)).is_none(), "in all");
    let started = Instant::now();
    let freed = loop {
        if let Some(slot) = slots.try_acquire(tenant_id(2)) {
            break slot;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "stalled exports still hold their slots"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop(freed);
    let asked = Instant::now();
    let page = small
        .query_cdrs(tenant_id(2), &CdrScope::Tenant, &CdrQuery::default())
        .await
        .expect("a connection is free again while the stalled streams live");
    assert_eq!(page.count, Some(3));
    assert!(asked.elapsed() < Duration::from_secs(2));
    drop(stalled);

    // Reads have a deadline: a full scan cut short is "unavailable" (the
    // API's 503), not a wrong request.
    let hurried = db
        .open_with(&StoreOptions {
            read_timeout: Duration::from_millis(1),
            ..StoreOptions::default()
        })
        .await;
    let query = CdrQuery {
        filter: Some(Filter::parse("contains(caller,'no such caller')").unwrap()),
        ..CdrQuery::default()
    };
    let mut timed_out = false;
    for _ in 0..5 {
        match hurried
            .query_cdrs(tenant_id(1), &CdrScope::Tenant, &query)
            .await
        {
            Err(e) => {
                assert!(e.is_unavailable(), "{e}");
                timed_out = true;
                break;
            }
            Ok(_) => continue,
        }
    }
    assert!(timed_out, "a 1 ms read deadline never cut a 100k-row scan");
    // The connection is sound afterwards, and its deadline disarmed.
    store
        .query_cdrs(tenant_id(2), &CdrScope::Tenant, &CdrQuery::default())
        .await
        .unwrap();
}

async fn sync_tokens_give_each_commit_once(db: &TestDb) {
    let store = db.open().await;
    create_tenants(&store, [1, 2]).await;
    // The ids the seeded calls record for 101 and 102.
    let mut u101 = user(1, "101");
    u101.id = ext_user(1, "101", 0).unwrap();
    let mut u102 = user(1, "102");
    u102.id = ext_user(1, "102", 0).unwrap();
    store.create_user(&u101).await.unwrap();
    store.create_user(&u102).await.unwrap();
    assert_eq!(
        store.user_extension(tenant_id(1), u101.id).await.unwrap(),
        Some("101".into())
    );
    assert_eq!(
        store.user_extension(tenant_id(2), u101.id).await.unwrap(),
        None
    );
    let now = at(0);
    let before = seed(&store, 1, &[call(0, "101", "102")], 11).await;

    store
        .create_cdr_sync_token(tenant_id(1), u101.id, "t0", None, now)
        .await
        .unwrap();
    // Nothing since the token.
    let d = store
        .cdr_sync_diff(tenant_id(1), u101.id, "t0", "t1", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.token.as_str(), d.created.len(), d.has_more),
        ("t1", 0, false)
    );

    // A long call that started before the token was made and ended after
    // it, a call of someone else, and a new call of 101.
    let mut long = call(0, "102", "101");
    long.duration_ms = 3_600_000;
    let after = seed(
        &store,
        1,
        &[long, call(10_000, "102", "103"), call(20_000, "103", "101")],
        12,
    )
    .await;
    let d = store
        .cdr_sync_diff(tenant_id(1), u101.id, "t1", "t2", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.created,
        vec![after[0].clone(), after[2].clone()],
        "commit order, own only"
    );
    // The old token answers the same again (a lost response can be retried).
    let again = store
        .cdr_sync_diff(tenant_id(1), u101.id, "t1", "t2b", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.created, d.created);
    let d = store
        .cdr_sync_diff(tenant_id(1), u101.id, "t2", "t3", now)
        .await
        .unwrap()
        .unwrap();
    assert!(d.created.is_empty());

    // Forgotten: unknown, another user's, another tenant's, expired.
    for (tenant, user_id, token, when) in [
        (1, u101.id, "nope", now),
        (1, u102.id, "t2", now),
        (2, u101.id, "t2", now),
        (
            1,
            u101.id,
            "t2",
            UnixMillis(now.as_millis() + store_ttl() + 1),
        ),
    ] {
        assert_eq!(
            store
                .cdr_sync_diff(tenant_id(tenant), user_id, token, "x", when)
                .await
                .unwrap(),
            None,
            "{token}"
        );
    }

    // date_from: the user's calls since then, whenever committed.
    store
        .create_cdr_sync_token(tenant_id(1), u101.id, "since", Some(at(5_000)), now)
        .await
        .unwrap();
    let d = store
        .cdr_sync_diff(tenant_id(1), u101.id, "since", "since2", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.created, vec![after[2].clone()]);
    store
        .create_cdr_sync_token(tenant_id(1), u101.id, "all", Some(at(0)), now)
        .await
        .unwrap();
    let d = store
        .cdr_sync_diff(tenant_id(1), u101.id, "all", "all2", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        d.created,
        vec![before[0].clone(), after[0].clone(), after[2].clone()]
    );
    // A token of a user that does not exist cannot be stored.
    assert!(
        store
            .create_cdr_sync_token(tenant_id(1), cdr::Id::from_u64(42), "ghost", None, now)
            .await
            .is_err()
    );
    // A second token with the same value is refused, not merged.
    assert!(matches!(
        store
            .create_cdr_sync_token(tenant_id(1), u101.id, "t0", None, now)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Deleting the user, then the tenant, takes their tokens along.
    assert!(store.delete_user(tenant_id(1), u101.id).await.unwrap());
    assert_eq!(
        store
            .cdr_sync_diff(tenant_id(1), u101.id, "t3", "t4", now)
            .await
            .unwrap(),
        None
    );
    store
        .create_cdr_sync_token(tenant_id(1), u102.id, "t102", None, now)
        .await
        .unwrap();
    assert!(store.delete_tenant(tenant_id(1)).await.unwrap());
}

fn store_ttl() -> u64 {
    30 * 24 * 60 * 60 * 1000
}

// SQLite plans: the indexes are used (PostgreSQL's are in the benchmark's
// README: a test table is too small for its planner to prefer them).
#[tokio::test]
async fn sqlite_plans_use_the_indexes() {
    let db = TestDb::sqlite("plans");
    let store = db.open().await;
    create_tenants(&store, [1]).await;
    let all = seed(&store, 1, &calls()[..4], 13).await;
    let plan = |query: CdrQuery| {
        let store = store.clone();
        async move {
            store
                .explain_cdr_page(tenant_id(1), &CdrScope::Tenant, &query)
                .await
                .unwrap()
                .join(" | ")
        }
    };
    let p = plan(CdrQuery {
        filter: Some(
            Filter::parse(&format!(
                "started_at ge {} and started_at lt {} and caller eq '101'",
                rfc(0),
                rfc(1_000_000)
            ))
            .unwrap(),
        ),
        ..CdrQuery::default()
    })
    .await;
    assert!(p.contains("cdrs_tenant_caller"), "{p}");
    assert!(!p.contains("TEMP B-TREE"), "{p}");
    let p = plan(CdrQuery {
        after: Some(all[1].cdr_id),
        ..CdrQuery::default()
    })
    .await;
    assert!(p.contains("cdrs_tenant_started"), "{p}");
    assert!(!p.contains("TEMP B-TREE"), "{p}");
    let p = plan(CdrQuery {
        filter: Some(Filter::parse("startswith(callee,'10')").unwrap()),
        order: OrderBy::parse("callee desc").unwrap(),
        ..CdrQuery::default()
    })
    .await;
    assert!(p.contains("cdrs_tenant_callee"), "{p}");
}
