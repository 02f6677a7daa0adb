//! The CDR pages (SPEC §8): the list with its filters, keyset paging, CSV
//! export and live rows, and one call's detail.
//!
//! The filters become the REST query options (`filter` in the OData
//! subset, `search`, `after`) and run through the same
//! [`crate::api::cdrs::records`] as `GET /api/cdrs`, so the page lists
//! exactly what the API would; the CSV link is the REST export with the
//! same options. Live rows come from the hub that feeds `/wsi`: for each
//! `call_cdr` event the page's own query runs again, narrowed to that
//! session, so a live row appears only if a reload would show it.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use cdr::{CallStatus, CdrId, CdrRecord, Direction, EventType, TenantId, UnixMillis};
use futures_util::Stream;
use maud::{Markup, html};
use store::{CdrQuery, CdrScope};

use crate::api::cdrs::{READERS, export_options, export_response, parse_query, records};
use crate::api::user_cdrs::{is_own, own_scope};
use crate::api::{ApiError, ApiState, Principal, Role};
use crate::console::Console;
use crate::console::layout::{PageError, Shell, facts};

/// Rows per page: enough to scan, small enough to render in a few ms.
const PAGE: &str = "50";
/// The filter form's fields, as the page's query string names them.
const FIELDS: [&str; 7] = [
    "from",
    "to",
    "number",
    "direction",
    "status",
    "session",
    "q",
];

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/console/cdrs", get(list))
        .route("/console/cdrs/export.csv", get(export))
        .route("/console/cdrs/live", get(live))
        .route("/console/cdrs/{id}", get(detail))
}

/// The page's filters, as typed into its form.
#[derive(Clone, Debug, Default)]
pub struct Filters(HashMap<String, String>);

impl Filters {
    fn of(params: &HashMap<String, String>) -> Filters {
        Filters(
            FIELDS
                .iter()
                .filter_map(|f| {
                    let v = params.get(*f)?.trim();
                    (!v.is_empty()).then(|| (f.to_string(), v.to_owned()))
                })
                .collect(),
        )
    }

    fn get(&self, field: &str) -> &str {
        self.0.get(field).map(String::as_str).unwrap_or("")
    }

    /// The filters as a query string (links: next page, CSV, live).
    fn query_string(&self, extra: &[(&str, &str)]) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        for field in FIELDS {
            if let Some(v) = self.0.get(field) {
                out.append_pair(field, v);
            }
        }
        for (k, v) in extra {
            out.append_pair(k, v);
        }
        out.finish()
    }

    /// The REST query options these filters stand for: `filter` (OData),
    /// `search`. `zone` reads the form's local times.
    fn rest_params(&self, zone: &jiff::tz::TimeZone) -> Result<HashMap<String, String>, ApiError> {
        let mut clauses = Vec::new();
        for (field, op) in [("from", "ge"), ("to", "lt")] {
            let text = self.get(field);
            if text.is_empty() {
                continue;
            }
            let local: jiff::civil::DateTime = text.parse().map_err(|_| {
                ApiError::validate(field, "must be a date and time, e.g. 2026-12-07T09:30")
            })?;
            // A time a DST change skips or repeats reads as the clocks
            // before the change did (RFC 5545's rule, jiff's "compatible").
            let at = zone
                .to_ambiguous_timestamp(local)
                .compatible()
                .map_err(|_| ApiError::validate(field, "is not a time in the tenant's zone"))?;
            clauses.push(format!("started_at {op} '{at}'"));
        }
        let number = self.get("number");
        if !number.is_empty() {
            let quoted = number.replace('\'', "''");
            clauses.push(format!("(caller eq '{quoted}' or callee eq '{quoted}')"));
        }
        let direction = self.get("direction");
        if !direction.is_empty() {
            let d = Direction::parse_rest(direction)
                .map_err(|_| ApiError::validate("direction", "is not a direction"))?;
            clauses.push(format!("direction eq '{}'", d.rest_spelling()));
        }
        let status = self.get("status");
        if !status.is_empty() {
            let s = CallStatus::parse(status)
                .map_err(|_| ApiError::validate("status", "is not a call status"))?;
            clauses.push(format!("call_status eq '{}'", s.as_str()));
        }
        let session = self.get("session");
        if !session.is_empty() {
            if !session.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::validate(
                    "session",
                    "must be a session id (digits)",
                ));
            }
            clauses.push(format!("session_id eq '{session}'"));
        }
        let mut params = HashMap::new();
        if !clauses.is_empty() {
            params.insert("filter".to_owned(), clauses.join(" and "));
        }
        if !self.get("q").is_empty() {
            params.insert("search".to_owned(), self.get("q").to_owned());
        }
        Ok(params)
    }
}

/// What a call page reads: its shell, the tenant, and whose calls.
struct Reader {
    shell: Shell,
    tenant: TenantId,
    /// `CdrScope::Tenant` for the tenant's readers (REST `/api/cdrs`);
    /// a user's own calls for a `StandardUser` (REST `/api/user/cdrs`).
    scope: CdrScope,
}

impl Reader {
    /// A standard user's own view: no export, no other users' contacts.
    fn own(&self) -> bool {
        !matches!(self.scope, CdrScope::Tenant)
    }
}

/// The page's shell and the CDRs it may read, by REST's rules: the
/// tenant's (`/api/cdrs`) for Admins and QueueManagers, the user's own
/// (`/api/user/cdrs`) for a StandardUser.
async fn reader(state: &ApiState, console: Console) -> Result<Reader, PageError> {
    let principal = console.principal;
    let shell = Shell::load(state, console).await?;
    if let Principal::Tenant {
        role: Role::StandardUser,
        ..
    } = principal
    {
        let (tenant, scope) = own_scope(state, principal).await?;
        return Ok(Reader {
            shell,
            tenant,
            scope,
        });
    }
    let tenant = shell.tenant_for(state, &READERS).await?;
    Ok(Reader {
        shell,
        tenant,
        scope: CdrScope::Tenant,
    })
}

fn zone_of(shell: &Shell) -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get(&shell.zone_name).unwrap_or(jiff::tz::TimeZone::UTC)
}

/// `1:02:03` / `2:03`.
pub(super) fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

fn direction_label(d: Direction) -> &'static str {
    match d {
        Direction::Extension => "Extension",
        Direction::Inbound => "Inbound",
        Direction::Outbound => "Outbound",
        Direction::InboundOutbound => "Inbound to outbound",
    }
}

fn status_label(s: CallStatus) -> &'static str {
    match s {
        CallStatus::Answered => "answered",
        CallStatus::NoAnswer => "no answer",
        CallStatus::Fail => "failed",
    }
}

/// One row of the list; the live stream sends the same markup.
pub fn row(shell: &Shell, r: &CdrRecord) -> Markup {
    let time = |t: Option<UnixMillis>| shell.time(t);
    html! {
        tr id=(format!("cdr-{}", r.cdr_id)) data-caller=(r.caller.user) data-callee=(r.callee.user) {
            td { a href=(format!("/console/cdrs/{}", r.cdr_id)) { (r.caller.user) } }
            td { (r.callee.user) }
            td { (time(Some(r.start_time))) }
            td { (time(r.ring_time)) }
            td { (time(r.answered_time)) }
            td { (time(Some(r.ended_time))) }
            td.num { (duration(r.talk_duration())) }
            td.num class=(format!("status-{}", r.call_status.as_str())) title=(status_label(r.call_status)) {
                (r.status_code) " " span.help { "(" (status_label(r.call_status)) ")" }
            }
            td { (direction_label(r.direction)) }
        }
    }
}

fn table(shell: &Shell, rows: &[CdrRecord], live: Option<String>) -> Markup {
    html! {
        div.scroll {
            table #cdrs data-live=[live] data-live-status="live-status" {
                caption { "Calls, newest first. Times in " (shell.zone_name) "." }
                thead {
                    tr {
                        th scope="col" { "Caller" }
                        th scope="col" { "Callee" }
                        th scope="col" { "Start" }
                        th scope="col" { "Ring" }
                        th scope="col" { "Answer" }
                        th scope="col" { "End" }
                        th.num scope="col" { "Talking time" }
                        th.num scope="col" { "Status code" }
                        th scope="col" { "Direction" }
                    }
                }
                tbody {
                    @for r in rows { (row(shell, r)) }
                    @if rows.is_empty() {
                        tr.empty { td colspan="9" { "No calls match." } }
                    }
                }
            }
        }
    }
}

fn filter_form(f: &Filters) -> Markup {
    html! {
        form.filters method="get" action="/console/cdrs" role="search" aria-label="Filter calls" {
            div { label for="f-from" { "From" } input #f-from type="datetime-local" name="from" value=(f.get("from")); }
            div { label for="f-to" { "To" } input #f-to type="datetime-local" name="to" value=(f.get("to")); }
            div { label for="f-number" { "Number" } input #f-number type="text" name="number" value=(f.get("number")) size="10"; }
            div {
                label for="f-direction" { "Direction" }
                select #f-direction name="direction" {
                    option value="" { "Any" }
                    @for d in Direction::ALL {
                        option value=(d.rest_spelling()) selected[f.get("direction") == d.rest_spelling()] { (direction_label(d)) }
                    }
                }
            }
            div {
                label for="f-status" { "Status" }
                select #f-status name="status" {
                    option value="" { "Any" }
                    @for s in CallStatus::ALL {
                        option value=(s.as_str()) selected[f.get("status") == s.as_str()] { (status_label(s)) }
                    }
                }
            }
            div { label for="f-session" { "Session id" } input #f-session type="text" name="session" value=(f.get("session")) inputmode="numeric" size="20"; }
            div { label for="f-q" { "Search" } input #f-q type="search" name="q" value=(f.get("q")); }
            div.actions {
                button type="submit" { "Filter" }
                a href="/console/cdrs" { "Clear" }
            }
        }
    }
}

/// The list's query: the filters, a page, no count (a count over a
/// million rows costs more than the page; the page shows "next" instead).
fn page_query(
    filters: &Filters,
    zone: &jiff::tz::TimeZone,
    after: Option<&str>,
) -> Result<CdrQuery, ApiError> {
    let mut params = filters.rest_params(zone)?;
    params.insert("top".to_owned(), PAGE.to_owned());
    params.insert("count".to_owned(), "false".to_owned());
    if let Some(after) = after.filter(|a| !a.is_empty()) {
        params.insert("after".to_owned(), after.to_owned());
    }
    parse_query(&params)
}

async fn list(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let reader = reader(&state, console).await?;
    let shell = &reader.shell;
    let filters = Filters::of(&params);
    let query = page_query(
        &filters,
        &zone_of(shell),
        params.get("after").map(String::as_str),
    );
    let (rows, error) = match query {
        Ok(q) => (
            records(&state, reader.tenant, &reader.scope, &q)
                .await?
                .records,
            None,
        ),
        Err(e) => (Vec::new(), Some(e.message().to_owned())),
    };
    let next = (rows.len().to_string() == PAGE)
        .then(|| {
            rows.last()
                .map(|r| filters.query_string(&[("after", &r.cdr_id.to_string())]))
        })
        .flatten();
    let first_page = params.contains_key("after");
    let live = format!("/console/cdrs/live?{}", filters.query_string(&[]));
    let title = if reader.own() { "My calls" } else { "Calls" };
    let body = html! {
        h1 { (title) }
        (filter_form(&filters))
        @if let Some(error) = &error { p.error role="alert" { (error) } }
        div.actions {
            @if !reader.own() {
                a href=(format!("/console/cdrs/export.csv?{}", filters.query_string(&[]))) download { "Export CSV" }
            }
            p #live-status.help aria-live="polite" {}
        }
        (table(shell, &rows, (!first_page).then_some(live)))
        nav.actions aria-label="Pages" {
            @if first_page { a href=(format!("/console/cdrs?{}", filters.query_string(&[]))) { "First page" } }
            @if let Some(next) = next { a href=(format!("/console/cdrs?{next}")) rel="next" { "Older calls" } }
        }
    };
    Ok(shell.page(title, "/console/cdrs", body).into_response())
}

async fn export(
    State(state): State<ApiState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, PageError> {
    let Reader {
        shell,
        tenant,
        scope,
    } = reader(&state, console).await?;
    // The export is the tenant's (`/api/cdrs/export`); REST has no
    // per-user export, so neither has the console.
    if !matches!(scope, CdrScope::Tenant) {
        return Err(ApiError::forbidden().into());
    }
    let mut rest = Filters::of(&params).rest_params(&zone_of(&shell))?;
    rest.insert("format".to_owned(), "csv".to_owned());
    let (format, query) = export_options(&rest)?;
    Ok(export_response(&state, tenant, format, query).await?)
}

/// What one event of the live stream needs to render its row.
struct Live {
    state: ApiState,
    shell: Shell,
    tenant: TenantId,
    scope: CdrScope,
    filters: Filters,
    subscription: ::delivery::Subscription,
}

impl Live {
    /// The next `call_cdr` event's row, if the page's query lists it.
    async fn next(&mut self) -> Option<Event> {
        loop {
            let event = tokio::select! {
                next = self.subscription.next() => next.ok()?,
                () = self.state.wsi.hub.closing() => return None,
            };
            if event.event_type != EventType::CallCdr {
                continue;
            }
            let mut filters = self.filters.clone();
            filters
                .0
                .insert("session".to_owned(), event.session_id.to_string());
            let query = page_query(&filters, &zone_of(&self.shell), None).ok()?;
            let rows = records(&self.state, self.tenant, &self.scope, &query)
                .await
                .ok()?
                .records;
            if let Some(r) = rows.first() {
                return Some(
                    Event::default()
                        .event("cdr")
                        .id(event.sequence.to_string())
                        .data(row(&self.shell, r).into_string()),
                );
            }
        }
    }
}

/// Server-sent events: one `cdr` event per call that ends and matches the
/// page's filters, its data the row's HTML. The event id is the tenant
/// `sequence`, so a reconnecting browser (`Last-Event-ID`) resumes from
/// the store without a gap, as a `/wsi` client does.
async fn live(
    State(state): State<ApiState>,
    console: Console,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let Reader {
        shell,
        tenant,
        scope,
    } = reader(&state, console).await?;
    let filters = Filters::of(&params);
    // Refuse filters that do not parse now rather than in the stream.
    page_query(&filters, &zone_of(&shell), None)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let subscription = state
        .wsi
        .hub
        .subscribe(::delivery::Request::new([tenant], resume))
        .await?;
    let live = Live {
        state,
        shell,
        tenant,
        scope,
        filters,
        subscription,
    };
    let stream = futures_util::stream::unfold(live, |mut live| async move {
        let event = live.next().await?;
        Some((Ok(event), live))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(20))))
}

async fn detail(
    State(state): State<ApiState>,
    console: Console,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let reader = reader(&state, console).await?;
    let (shell, tenant, own) = (&reader.shell, reader.tenant, reader.own());
    let id: CdrId = id.parse().map_err(|_| ApiError::not_found("CDR"))?;
    let r = state
        .store
        .get_cdr(tenant, id)
        .await?
        .ok_or_else(|| ApiError::not_found("CDR"))?;
    // A standard user sees its own calls only (another's is "not found",
    // as over REST), and not their targets or events: they name the
    // contacts of other users' phones (`/api/user/cdrs/{id}` leaves them
    // out too).
    if own && !is_own(&state, tenant, &reader.scope, r.session_id).await? {
        return Err(ApiError::not_found("CDR").into());
    }
    let events = if own {
        Vec::new()
    } else {
        state.store.session_events(tenant, r.session_id).await?
    };
    let t = |at| shell.time(at);
    let party = |p: &cdr::Party| {
        if p.display_name.is_empty() {
            format!("{}@{}", p.user, p.domain)
        } else {
            format!("\"{}\" {}@{}", p.display_name, p.user, p.domain)
        }
    };
    let title = format!("Call {} → {}", r.caller.user, r.callee.user);
    let body = html! {
        p { a href="/console/cdrs" { "← Calls" } }
        h1 { (title) }
        p.help { "Times in " (shell.zone_name) "." }
        (facts(&[
            ("CDR id", r.cdr_id.to_string()),
            ("Session id", r.session_id.to_string()),
            ("Tenant", format!("{} ({})", r.tenant_name, r.tenant_id)),
            ("Call-ID", r.call_id.clone()),
            ("Direction", format!("{} ({})", direction_label(r.direction), r.direction.rest_spelling())),
            ("Caller", party(&r.caller)),
            ("Callee", party(&r.callee)),
            ("DID", r.did.clone()),
            ("Trunk", r.trunk_name.clone()),
            ("Outbound caller ID", r.outbound_caller_id.clone()),
            ("Start", t(Some(r.start_time))),
            ("Ring", t(r.ring_time)),
            ("Answer", t(r.answered_time)),
            ("End", t(Some(r.ended_time))),
            ("Ring duration", duration(r.ring_duration())),
            ("Talking time", duration(r.talk_duration())),
            ("Call status", r.call_status.as_str().to_owned()),
            ("Status code", r.status_code.to_string()),
            ("Ended reason", r.ended_reason.event_spelling().to_owned()),
            ("Reroute reason", r.reroute_reason().map(|x| x.rest_spelling()).unwrap_or("").to_owned()),
            ("User data", r.user_data.clone()),
            ("Recovered after a crash", if r.recovered { "yes" } else { "no" }.to_owned()),
        ]))
        h2 { "Recording" }
        @if let Some(rec) = &r.recording {
            (super::recordings::player(&rec.id.to_string(), rec.duration))
        } @else if let Some(e) = &r.recording_error {
            p.recording-error {
                "This call was to be recorded, but no recording was made: "
                strong { (e.reason.as_str()) } " (" (e.detail) ")."
            }
        } @else {
            p { "This call was not recorded." }
        }
        @if own {
            p.help { "The call's targets and events are shown to the tenant's administrators." }
        } @else {
        h2 #targets { "Targets" }
        div.scroll {
            table aria-labelledby="targets" {
                thead { tr {
                    @for h in ["Target id", "Call type", "Caller", "Callee", "Destination", "Start", "Ring", "Answer", "End",
                               "Ring duration", "Talking time", "Status", "Status code", "End reason", "Reroute reason",
                               "Trunk", "Outbound caller ID", "DID", "Cost", "Quality"] {
                        th scope="col" { (h) }
                    }
                } }
                tbody {
                    @for x in &r.targets {
                        tr {
                            td { (x.id) }
                            td { (x.call_type.as_str()) }
                            td { (x.caller) }
                            td { (x.callee) }
                            td { code { (x.destination) } }
                            td { (t(Some(x.start_time))) }
                            td { (t(x.ring_time)) }
                            td { (t(x.answered_time)) }
                            td { (t(Some(x.ended_time))) }
                            td.num { (x.ring_duration()) " s" }
                            td.num { (x.talk_duration()) " s" }
                            td { (x.status().as_str()) }
                            td.num { (x.status_code) }
                            td { (x.end_reason.event_spelling()) }
                            td { (x.reroute_reason.map(|x| x.rest_spelling()).unwrap_or("")) }
                            td { (x.trunk_name) }
                            td { (x.outbound_caller_id) }
                            td { (x.did) }
                            td.num { @if let Some(c) = x.cost { (c) } }
                            td { @if let Some(q) = &x.quality {
                                (q.codec) ", " (q.packets) " packets, " (q.lost) " lost, jitter " (q.jitter_ms) " ms, MOS " (q.mos)
                            } }
                        }
                    }
                    @if r.targets.is_empty() { tr { td colspan="20" { "No target was rung." } } }
                }
            }
        }
        h2 #events { "Events" }
        @if events.is_empty() {
            p { "The call's events are no longer kept (event retention)." }
        } @else {
            table aria-labelledby="events" {
                thead { tr { th.num scope="col" { "Sequence" } th scope="col" { "Event" } th scope="col" { "Time" } th scope="col" { "Payload" } } }
                tbody {
                    @for e in &events {
                        tr {
                            td.num { (e.sequence) }
                            td { (e.event_type.as_str()) }
                            td { (event_time(shell, &e.payload)) }
                            td { details { summary { "JSON" } pre { (e.payload) } } }
                        }
                    }
                }
            }
        }
        }
    };
    Ok(shell.page(&title, "/console/cdrs", body).into_response())
}

/// The payload's `time` (Unix seconds as a string) in the tenant's zone.
fn event_time(shell: &Shell, payload: &str) -> String {
    serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| v.get("time")?.as_str()?.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map(|s| shell.time(Some(UnixMillis(s * 1000))))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        Filters::of(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn the_form_becomes_the_rest_query() {
        let zone = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let p = filters(&[
            ("from", "2026-12-07T10:00"),
            ("number", "10'1"),
            ("direction", "EXTENSION_CALL"),
            ("status", "answered"),
            ("session", "42"),
            ("q", "abc"),
            ("ignored", "x"),
        ])
        .rest_params(&zone)
        .unwrap();
        assert_eq!(
            p["filter"],
            "started_at ge '2026-12-07T09:00:00Z' and (caller eq '10''1' or callee eq '10''1') \
             and direction eq 'EXTENSION_CALL' and call_status eq 'answered' and session_id eq '42'"
        );
        assert_eq!(p["search"], "abc");
        parse_query(&p).expect("the store parses what the page builds");
    }

    #[test]
    fn bad_filters_name_their_field() {
        let zone = jiff::tz::TimeZone::UTC;
        for (field, value) in [
            ("from", "yesterday"),
            ("direction", "sideways"),
            ("status", "maybe"),
            ("session", "12a"),
        ] {
            let e = filters(&[(field, value)]).rest_params(&zone).unwrap_err();
            assert!(e.message().starts_with(field), "{field}: {}", e.message());
        }
    }

    #[test]
    fn durations_read_as_clock_times() {
        assert_eq!(duration(0), "0:00");
        assert_eq!(duration(75), "1:15");
        assert_eq!(duration(3725), "1:02:05");
    }
}
