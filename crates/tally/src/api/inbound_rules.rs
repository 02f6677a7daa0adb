//! Inbound rules (issue 10): the DIDs each trunk delivers and where their
//! calls go. Same access as [`super::trunks`].
//!
//! ```text
//! GET    /api/inbound_rules?trunk_id=&top=&skip=   {count, items: [rule]}, by DID
//! POST   /api/inbound_rules                        {"trunk_id", "did", "destination", …} → 201
//! GET    /api/inbound_rules/{rule_id}
//! PUT    /api/inbound_rules/{rule_id}              every field
//! PATCH  /api/inbound_rules/{rule_id}              the fields given
//! DELETE /api/inbound_rules/{rule_id}              204
//! ```
//!
//! Fields: `trunk_id` (a trunk of the tenant), `did` (digits, optional
//! leading `+`; compared after the trunk's normalisation: `+` and its
//! `country_code` stripped), `match` (`exact`, default, or `prefix` for a
//! block of numbers), `destination_type` (`extension`, default,
//! `ring_group`, `ivr`, `queue`, or `external`), `destination` (an
//! extension, or a ring group's, IVR's or queue's number, of the tenant; for `external` an outside number as an
//! extension would dial it, which leaves by the outbound rules:
//! `in2out`). A trunk or extension the tenant does not have is
//! `VALIDATE_FAILED` naming the field, and nothing is written. An outside
//! number no outbound rule takes is not refused here (rules may come
//! later): its calls get `404`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::auth::ClientAddr;
use super::openapi::schema::*;
use super::resource::{Body, Paging, Scope, path_id, rfc3339};
use super::trunks::{MANAGERS, number};
use super::{Api, ApiError, ApiState, Doc};
use crate::clock;

pub const FIELDS: [&str; 5] = [
    "trunk_id",
    "did",
    "match",
    "destination_type",
    "destination",
];

#[derive(Serialize)]
pub struct InboundRuleJson {
    id: cdr::Id,
    tenant_id: cdr::TenantId,
    trunk_id: cdr::Id,
    did: String,
    #[serde(rename = "match")]
    match_kind: String,
    destination_type: String,
    destination: String,
    created_at: String,
    updated_at: String,
}

fn rule_json(r: store::InboundRule) -> InboundRuleJson {
    InboundRuleJson {
        id: r.id,
        tenant_id: r.tenant_id,
        trunk_id: r.trunk_id,
        did: r.did,
        match_kind: r.match_kind,
        destination_type: r.destination_kind,
        destination: r.destination,
        created_at: rfc3339(r.created_at),
        updated_at: rfc3339(r.updated_at),
    }
}

/// An id given in a body (a decimal string, as ids are on the wire).
pub(super) fn body_id(body: &Body, field: &str) -> Result<cdr::Id, ApiError> {
    body.required(field)?
        .parse()
        .map_err(|_| ApiError::validate(field, "must be an id (a decimal string)"))
}

fn apply(r: &mut store::InboundRule, body: &Body, full: bool) -> Result<(), ApiError> {
    let given = |f: &str| full || body.has(f);
    if given("trunk_id") {
        r.trunk_id = body_id(body, "trunk_id")?;
    }
    if given("did") {
        let did = number("did", body.required("did")?, 32)?;
        if did.is_empty() {
            return Err(ApiError::validate("did", "must not be empty"));
        }
        r.did = did;
    }
    if given("match") {
        r.match_kind = match body.string("match")? {
            None => "exact".to_owned(),
            Some(m) => pbx::trunk::DidMatch::parse(m)
                .ok_or_else(|| ApiError::validate("match", "must be exact or prefix"))?
                .as_str()
                .to_owned(),
        };
    }
    if given("destination_type") {
        r.destination_kind = match body.string("destination_type")? {
            None | Some("extension") => "extension".to_owned(),
            Some(kind @ ("ring_group" | "ivr" | "queue" | "external")) => kind.to_owned(),
            Some(_) => {
                return Err(ApiError::validate(
                    "destination_type",
                    "must be extension, ring_group, ivr, queue or external",
                ));
            }
        };
    }
    if given("destination") || given("destination_type") {
        let destination = match given("destination") {
            true => body.required("destination")?.to_owned(),
            false => r.destination.clone(),
        };
        r.destination = match r.destination_kind.as_str() {
            // As an extension would dial it: the outbound rules take it.
            "external" => {
                let number = number("destination", &destination, 32)?;
                if number.is_empty() {
                    return Err(ApiError::validate("destination", "must not be empty"));
                }
                number
            }
            _ => crate::provision::extension(&destination)
                .map_err(|e| ApiError::validate("destination", e.message))?,
        };
    }
    Ok(())
}

/// The store's answer to a rule write: its refusals as `VALIDATE_FAILED`
/// naming the body field that holds the missing trunk or extension.
pub(super) fn refused(
    outcome: store::RuleWrite,
    what: &str,
    trunk_field: &str,
    extension_field: &str,
) -> Result<(), ApiError> {
    match outcome {
        store::RuleWrite::Written => Ok(()),
        store::RuleWrite::NotFound => Err(ApiError::not_found(what)),
        store::RuleWrite::UnknownTrunk(id) => Err(ApiError::validate(
            trunk_field,
            format!("the tenant has no trunk {id}"),
        )),
        store::RuleWrite::UnknownExtension(ext) => Err(ApiError::validate(
            extension_field,
            format!("the tenant has no extension {ext}"),
        )),
    }
}

fn did_taken(r: &store::InboundRule) -> ApiError {
    ApiError::already_exists(
        "did",
        format!(
            "the trunk already has a {} rule for {}",
            r.match_kind, r.did
        ),
    )
}

async fn find(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<store::InboundRule, ApiError> {
    let id: cdr::Id = path_id(params, "rule_id", "inbound rule")?;
    state
        .store
        .inbound_rule(scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found("inbound rule"))
}

pub async fn list(
    State(state): State<ApiState>,
    scope: Scope,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let page = Paging::of(&query)?;
    let trunk = query
        .get("trunk_id")
        .map(|t| {
            t.parse::<cdr::Id>()
                .map_err(|_| ApiError::validate("trunk_id", "must be an id"))
        })
        .transpose()?;
    let (count, rules) = state
        .store
        .inbound_rule_page(scope.tenant_id, trunk, page.top, page.skip)
        .await?;
    let items: Vec<InboundRuleJson> = rules.into_iter().map(rule_json).collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn create(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<InboundRuleJson>), ApiError> {
    scope.require(MANAGERS)?;
    let body = Body::parse(&body, &FIELDS)?;
    let now = clock::unix_millis();
    let mut rule = store::InboundRule {
        id: state.provisioner.next_id(),
        tenant_id: scope.tenant_id,
        trunk_id: cdr::Id::from_u64(0),
        did: String::new(),
        match_kind: "exact".into(),
        destination_kind: "extension".into(),
        destination: String::new(),
        created_at: now,
        updated_at: now,
    };
    apply(&mut rule, &body, true)?;
    match state.store.create_inbound_rule(&rule).await {
        Ok(outcome) => refused(outcome, "inbound rule", "trunk_id", "destination")?,
        Err(store::StoreError::Conflict(_)) => return Err(did_taken(&rule)),
        Err(e) => return Err(e.into()),
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "inbound_rule.create",
            &format!("inbound_rule:{}", rule.id),
            source,
            json!({ "did": rule.did, "trunk_id": rule.trunk_id, "destination": rule.destination }),
        )
        .await;
    state.trunks_changed().await;
    Ok((StatusCode::CREATED, Json(rule_json(rule))))
}

pub async fn get(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<InboundRuleJson>, ApiError> {
    scope.require(MANAGERS)?;
    Ok(Json(rule_json(find(&state, &scope, &params).await?)))
}

async fn update(
    state: ApiState,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    params: HashMap<String, String>,
    body: Bytes,
    full: bool,
) -> Result<Json<InboundRuleJson>, ApiError> {
    scope.require(MANAGERS)?;
    let mut rule = find(&state, &scope, &params).await?;
    let body = Body::parse(&body, &FIELDS)?;
    apply(&mut rule, &body, full)?;
    rule.updated_at = clock::unix_millis();
    match state.store.update_inbound_rule(&rule).await {
        Ok(outcome) => refused(outcome, "inbound rule", "trunk_id", "destination")?,
        Err(store::StoreError::Conflict(_)) => return Err(did_taken(&rule)),
        Err(e) => return Err(e.into()),
    }
    let changed: Vec<&str> = FIELDS.iter().copied().filter(|f| body.has(f)).collect();
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "inbound_rule.update",
            &format!("inbound_rule:{}", rule.id),
            source,
            json!({ "did": rule.did, "fields": changed }),
        )
        .await;
    state.trunks_changed().await;
    Ok(Json(rule_json(rule)))
}

pub async fn put(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<InboundRuleJson>, ApiError> {
    update(state, scope, source, params, body, true).await
}

pub async fn patch(
    State(state): State<ApiState>,
    scope: Scope,
    source: ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<InboundRuleJson>, ApiError> {
    update(state, scope, source, params, body, false).await
}

pub async fn delete(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(MANAGERS)?;
    let rule = find(&state, &scope, &params).await?;
    if !state
        .store
        .delete_inbound_rule(scope.tenant_id, rule.id)
        .await?
    {
        return Err(ApiError::not_found("inbound rule"));
    }
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            "inbound_rule.delete",
            &format!("inbound_rule:{}", rule.id),
            source,
            json!({ "did": rule.did }),
        )
        .await;
    state.trunks_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

impl Api {
    /// The inbound rule routes with their documentation.
    pub fn inbound_rules(self) -> Self {
        let rule = object(
            &[
                ("id", id()),
                ("tenant_id", id()),
                ("trunk_id", id()),
                ("did", string()),
                ("match", one_of_strings(&["exact", "prefix"])),
                (
                    "destination_type",
                    one_of_strings(&["extension", "ring_group", "ivr", "queue", "external"]),
                ),
                ("destination", string()),
                ("created_at", date_time()),
                ("updated_at", date_time()),
            ],
            &[
                "id",
                "tenant_id",
                "trunk_id",
                "did",
                "match",
                "destination_type",
                "destination",
                "created_at",
                "updated_at",
            ],
        );
        let body = |required: &[&str]| {
            closed_object(
                &[
                    ("trunk_id", id()),
                    ("did", text("Digits, optionally after a +")),
                    ("match", one_of_strings(&["exact", "prefix"])),
                    (
                        "destination_type",
                        one_of_strings(&["extension", "ring_group", "ivr", "queue", "external"]),
                    ),
                    (
                        "destination",
                        text(
                            "An extension or a ring group number of the tenant, or \
                             (external) an outside number as an extension dials it",
                        ),
                    ),
                ],
                required,
            )
        };
        let (base, one) = ("/api/inbound_rules", "/api/inbound_rules/{rule_id}");
        self.get(
            base,
            list,
            Doc::new("Inbound rules", "List the tenant's DID rules (Admin)")
                .query("trunk_id", id(), "Only this trunk's rules.")
                .query("top", int_range(1, 100), "Page size (1–100, default 100).")
                .query("skip", non_negative(), "Rows to skip.")
                .tenant_scoped()
                .json(200, page(rule.clone())),
        )
        .post(
            base,
            create,
            Doc::new("Inbound rules", "Create a DID rule (Admin)")
                .tenant_scoped()
                .json_body(body(&["trunk_id", "did", "destination"]))
                .json(201, rule.clone()),
        )
        .get(
            one,
            get,
            Doc::new("Inbound rules", "Read a DID rule (Admin)")
                .tenant_scoped()
                .json(200, rule.clone()),
        )
        .put(
            one,
            put,
            Doc::new("Inbound rules", "Replace a DID rule (Admin)")
                .tenant_scoped()
                .json_body(body(&["trunk_id", "did", "destination"]))
                .json(200, rule.clone()),
        )
        .patch(
            one,
            patch,
            Doc::new("Inbound rules", "Change some fields of a DID rule (Admin)")
                .tenant_scoped()
                .json_body(body(&[]))
                .json(200, rule),
        )
        .delete(
            one,
            delete,
            Doc::new("Inbound rules", "Delete a DID rule (Admin)")
                .tenant_scoped()
                .empty(204),
        )
    }
}
