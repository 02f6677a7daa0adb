//! The REST handlers the tenant's numbered destinations share: ring
//! groups, IVRs and queues (`/api/ring_groups`, `/api/ivrs`,
//! `/api/queues`). Each is a row with a number in the tenant's one
//! extension space, managed by Admins and QueueManagers (`MANAGERS`), and
//! each write reaches the running engine as a directory reload. What
//! differs (fields, validation, refusals, storage) is the resource's
//! [`Numbered`] implementation, next to its schema in its own module;
//! the list / create / read / replace / change / delete handlers are
//! written once here and routed per resource (`list::<store::Ivr>`).

use std::collections::HashMap;
use std::future::Future;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};
use store::{Store, StoreError};

use super::auth::ClientAddr;
use super::openapi::schema::{int_range, non_negative, page};
use super::resource::{Body, ListQuery, Scope, path_id};
use super::trunks::MANAGERS;
use super::{Api, ApiError, ApiState, Doc};
use crate::clock;

/// A numbered, tenant-scoped resource as the shared handlers need it.
pub trait Numbered: Clone + Send + Sync + Sized + 'static {
    /// In errors: "ring group", "IVR", "queue".
    const NOUN: &'static str;
    /// In audit actions and targets: `ring_group.create`, `ring_group:<id>`.
    const KIND: &'static str;
    /// The path parameter naming one.
    const ID_PARAM: &'static str;
    /// The body's fields (unknown ones are refused).
    const FIELDS: &'static [&'static str];
    /// How REST shows one.
    type Json: Serialize + Send;
    /// The summaries of its six routes in the OpenAPI document.
    const DOCS: Docs;

    /// A new one with every field at its default.
    fn blank(scope: &Scope, id: cdr::Id) -> Self;
    /// Applies `body` (all fields when `full`); errors name the field.
    fn apply(&mut self, body: &Body, full: bool) -> Result<(), ApiError>;
    fn json(self) -> Self::Json;
    fn id(&self) -> cdr::Id;
    fn number(&self) -> &str;
    fn name(&self) -> &str;
    /// Sets the creation and change times.
    fn set_times(&mut self, created_at: cdr::UnixMillis, updated_at: cdr::UnixMillis);
    fn created_at(&self) -> cdr::UnixMillis;

    fn fetch(
        store: &Store,
        tenant: cdr::TenantId,
        id: cdr::Id,
    ) -> impl Future<Output = Result<Option<Self>, StoreError>> + Send;
    /// A page of the tenant's, by number, and how many it has.
    fn page(
        store: &Store,
        tenant: cdr::TenantId,
        top: u32,
        skip: u64,
    ) -> impl Future<Output = Result<(u64, Vec<Self>), StoreError>> + Send;
    /// Writes a new one (`create`) or a changed one; the inner error is the
    /// API's answer to a refused write (a number taken, a member unknown).
    fn write(
        store: &Store,
        item: &Self,
        create: bool,
    ) -> impl Future<Output = Result<Result<(), ApiError>, StoreError>> + Send;
    /// Deletes one; the inner error is the API's answer to a refusal (a DID
    /// rule still rings it, or it is gone).
    fn remove(
        store: &Store,
        item: &Self,
    ) -> impl Future<Output = Result<Result<(), ApiError>, StoreError>> + Send;
}

/// A number of the tenant's extension space in field `field`.
pub(super) fn number(field: &str, value: &str) -> Result<String, ApiError> {
    crate::provision::extension(value.trim())
        .map_err(|_| ApiError::validate(field, "must be 1 to 32 digits"))
}

/// The required list of 1 to `max` distinct extensions in field `field`
/// (a ring group's members, a queue's agents), in the order given.
pub(super) fn extensions(body: &Body, field: &str, max: usize) -> Result<Vec<String>, ApiError> {
    let list = body
        .strings(field)?
        .ok_or_else(|| ApiError::validate(field, "is required"))?;
    if list.is_empty() || list.len() > max {
        return Err(ApiError::validate(
            field,
            format!("must list 1 to {max} extensions"),
        ));
    }
    let mut numbers: Vec<String> = Vec::with_capacity(list.len());
    for n in &list {
        let n = number(field, n)?;
        if numbers.contains(&n) {
            return Err(ApiError::validate(field, format!("lists {n} twice")));
        }
        numbers.push(n);
    }
    Ok(numbers)
}

/// The [`Numbered`] methods every stored row implements the same way: its
/// `id`, `number`, `name` and times, and `blank` / `apply` through the
/// resource module's own functions of those names. Used inside each
/// `impl Numbered`.
macro_rules! row_methods {
    () => {
        fn blank(scope: &Scope, id: cdr::Id) -> Self {
            blank(scope, id)
        }
        fn apply(&mut self, body: &Body, full: bool) -> Result<(), ApiError> {
            apply(self, body, full)
        }
        fn id(&self) -> cdr::Id {
            self.id
        }
        fn number(&self) -> &str {
            &self.number
        }
        fn name(&self) -> &str {
            &self.name
        }
        fn set_times(&mut self, created_at: cdr::UnixMillis, updated_at: cdr::UnixMillis) {
            (self.created_at, self.updated_at) = (created_at, updated_at);
        }
        fn created_at(&self) -> cdr::UnixMillis {
            self.created_at
        }
    };
}
pub(super) use row_methods;

/// The one named by the path, in the caller's tenant.
pub(super) async fn find<T: Numbered>(
    state: &ApiState,
    scope: &Scope,
    params: &HashMap<String, String>,
) -> Result<T, ApiError> {
    let id: cdr::Id = path_id(params, T::ID_PARAM, T::NOUN)?;
    T::fetch(&state.store, scope.tenant_id, id)
        .await?
        .ok_or_else(|| ApiError::not_found(T::NOUN))
}

/// Hands the running engine the new directory. The write is committed
/// whatever happens here; an engine that did not take it catches up at
/// its next directory sync.
pub(super) async fn to_engine<T: Numbered>(state: &ApiState) {
    if let Err(e) = state.provisioner.reload_directory().await {
        tracing::warn!(error = %e, "{} saved; the engine takes it at its next sync", T::NOUN);
    }
}

async fn audit<T: Numbered>(
    state: &ApiState,
    scope: &Scope,
    source: Option<std::net::IpAddr>,
    verb: &str,
    item: &T,
    detail: Value,
) {
    state
        .audit(
            Some(scope.tenant_id),
            &scope.principal.actor(),
            &format!("{}.{verb}", T::KIND),
            &format!("{}:{}", T::KIND, item.id()),
            source,
            detail,
        )
        .await;
}

pub async fn list<T: Numbered>(
    State(state): State<ApiState>,
    scope: Scope,
    ListQuery(page): ListQuery,
) -> Result<Json<Value>, ApiError> {
    scope.require(MANAGERS)?;
    let (count, items) = T::page(&state.store, scope.tenant_id, page.top, page.skip).await?;
    let items: Vec<T::Json> = items.into_iter().map(T::json).collect();
    Ok(Json(json!({ "count": count, "items": items })))
}

pub async fn create<T: Numbered>(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    body: Bytes,
) -> Result<(StatusCode, Json<T::Json>), ApiError> {
    scope.require(MANAGERS)?;
    let body = Body::parse(&body, T::FIELDS)?;
    let mut item = T::blank(&scope, state.provisioner.next_id());
    item.apply(&body, true)?;
    T::write(&state.store, &item, true).await??;
    to_engine::<T>(&state).await;
    let detail = json!({ "number": item.number(), "name": item.name() });
    audit(&state, &scope, source, "create", &item, detail).await;
    Ok((StatusCode::CREATED, Json(item.json())))
}

pub async fn get<T: Numbered>(
    State(state): State<ApiState>,
    scope: Scope,
    Path(params): Path<HashMap<String, String>>,
) -> Result<Json<T::Json>, ApiError> {
    scope.require(MANAGERS)?;
    Ok(Json(find::<T>(&state, &scope, &params).await?.json()))
}

async fn update<T: Numbered>(
    state: ApiState,
    scope: Scope,
    source: Option<std::net::IpAddr>,
    params: HashMap<String, String>,
    body: Bytes,
    full: bool,
) -> Result<Json<T::Json>, ApiError> {
    scope.require(MANAGERS)?;
    let old: T = find(&state, &scope, &params).await?;
    let body = Body::parse(&body, T::FIELDS)?;
    let mut item = if full {
        T::blank(&scope, old.id())
    } else {
        old.clone()
    };
    item.apply(&body, full)?;
    item.set_times(old.created_at(), clock::unix_millis());
    T::write(&state.store, &item, false).await??;
    to_engine::<T>(&state).await;
    let changed: Vec<&str> = T::FIELDS.iter().copied().filter(|f| body.has(f)).collect();
    let detail = json!({ "number": item.number(), "fields": changed });
    audit(&state, &scope, source, "update", &item, detail).await;
    Ok(Json(item.json()))
}

/// `PUT`: every field, the absent ones back to their defaults.
pub async fn put<T: Numbered>(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<T::Json>, ApiError> {
    update::<T>(state, scope, source, params, body, true).await
}

/// `PATCH`: the fields given, the others kept.
pub async fn patch<T: Numbered>(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
    body: Bytes,
) -> Result<Json<T::Json>, ApiError> {
    update::<T>(state, scope, source, params, body, false).await
}

pub async fn delete<T: Numbered>(
    State(state): State<ApiState>,
    scope: Scope,
    ClientAddr(source): ClientAddr,
    Path(params): Path<HashMap<String, String>>,
) -> Result<StatusCode, ApiError> {
    scope.require(MANAGERS)?;
    let item: T = find(&state, &scope, &params).await?;
    T::remove(&state.store, &item).await??;
    to_engine::<T>(&state).await;
    let detail = json!({ "number": item.number() });
    audit(&state, &scope, source, "delete", &item, detail).await;
    Ok(StatusCode::NO_CONTENT)
}

/// The OpenAPI tag and route summaries of a [`Numbered`] resource.
pub struct Docs {
    pub tag: &'static str,
    pub list: &'static str,
    pub create: &'static str,
    pub get: &'static str,
    pub put: &'static str,
    pub patch: &'static str,
    pub delete: &'static str,
}

impl Api {
    /// Routes `T`'s six handlers under `base` and `one` (the latter naming
    /// [`Numbered::ID_PARAM`]), documented with `item` (how one reads) and
    /// `body(required)` (what a write takes).
    pub(super) fn numbered<T: Numbered>(
        self,
        (base, one): (&'static str, &'static str),
        item: Value,
        body: impl Fn(&[&str]) -> Value,
        required: &[&str],
    ) -> Self {
        let d = &T::DOCS;
        let paged = Doc::new(d.tag, d.list)
            .query("top", int_range(1, 100), "Page size (1–100, default 100).")
            .query("skip", non_negative(), "Rows to skip.");
        self.get(
            base,
            list::<T>,
            paged.tenant_scoped().json(200, page(item.clone())),
        )
        .post(
            base,
            create::<T>,
            Doc::new(d.tag, d.create)
                .tenant_scoped()
                .json_body(body(required))
                .json(201, item.clone()),
        )
        .get(
            one,
            get::<T>,
            Doc::new(d.tag, d.get)
                .tenant_scoped()
                .json(200, item.clone()),
        )
        .put(
            one,
            put::<T>,
            Doc::new(d.tag, d.put)
                .tenant_scoped()
                .json_body(body(required))
                .json(200, item.clone()),
        )
        .patch(
            one,
            patch::<T>,
            Doc::new(d.tag, d.patch)
                .tenant_scoped()
                .json_body(body(&[]))
                .json(200, item),
        )
        .delete(
            one,
            delete::<T>,
            Doc::new(d.tag, d.delete).tenant_scoped().empty(204),
        )
    }
}
