//! The REST error shape (SPEC §7):
//! `{"errors":[{"code":"UPPER_SNAKE","message":"…","detail":{}}]}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One error answer. Its constructors are the codes Tally uses.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: Value,
    /// Seconds, for `Retry-After` (429, 503).
    retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            detail: json!({}),
            retry_after: None,
        }
    }

    /// 400: a field (body key, query parameter or header) is missing or
    /// wrong; `detail.field` names it.
    pub fn validate(field: &str, message: impl std::fmt::Display) -> Self {
        ApiError {
            detail: json!({ "field": field }),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "VALIDATE_FAILED",
                format!("{field}: {message}"),
            )
        }
    }

    /// 400 with PortSIP's login failure (its documented answer to a wrong
    /// username or password).
    pub fn login_failed() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "UNAUTHORIZED",
            "Login failed, authentication error",
        )
    }

    /// The HTTP status (the console shows errors as pages).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The human-readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is [`ApiError::login_failed`].
    pub fn is_login_failure(&self) -> bool {
        self.status == StatusCode::BAD_REQUEST && self.code == "UNAUTHORIZED"
    }

    /// 401: no bearer token, or one that is unknown or expired.
    pub fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403: authenticated, but the role may not do this (never used to
    /// hide another tenant's data: that is 404).
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "your role does not allow this",
        )
    }

    /// 403: the role may use this resource but not change `field`.
    pub fn forbidden_field(field: &str, message: &str) -> Self {
        ApiError {
            detail: json!({ "field": field }),
            ..Self::new(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                format!("{field}: {message}"),
            )
        }
    }

    /// 404: no such resource, or one of another tenant (SPEC §7: "a wrong
    /// tenant's id answers 404").
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// 409: the resource exists; `detail.field` names the unique field.
    pub fn already_exists(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            detail: json!({ "field": field }),
            ..Self::new(StatusCode::CONFLICT, "ALREADY_EXISTS", message)
        }
    }

    /// 429: sign-ins for this account or from this address are locked
    /// out for `wait` (rounded up to whole seconds in `Retry-After` and
    /// `detail.retry_after`).
    pub fn too_many_attempts(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let secs = secs.max(1);
        ApiError {
            detail: json!({ "retry_after": secs }),
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "TOO_MANY_ATTEMPTS",
                format!("too many failed sign-ins: try again in {secs} s"),
            )
        }
    }

    /// 409: the resource is still referred to (`detail.field` names what).
    pub fn in_use(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            detail: json!({ "field": field }),
            ..Self::new(StatusCode::CONFLICT, "IN_USE", message)
        }
    }

    /// 409: the request is well formed but what it names cannot do it
    /// now (`code` says why, `detail.field` names the field).
    pub fn conflict(code: &'static str, field: &str, message: impl Into<String>) -> Self {
        ApiError {
            detail: json!({ "field": field }),
            ..Self::new(StatusCode::CONFLICT, code, message)
        }
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "method not allowed on this resource",
        )
    }

    /// 503: the store cannot serve the request now (no connection free in
    /// time, a read past its deadline, the database unreachable). Never a
    /// 401 or a 500: the client's request was fine, it should come back.
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %error, "REST request refused: the store is unavailable");
        Self::retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVICE_UNAVAILABLE",
            "the service is busy",
        )
    }

    /// 429: the tenant runs as many exports as it may at once.
    pub fn too_many_exports() -> Self {
        Self::retry_later(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_EXPORTS",
            "as many exports as allowed are running",
        )
    }

    /// 429: as many of these as allowed are running; come back later.
    pub fn busy(message: &str) -> Self {
        Self::retry_later(StatusCode::TOO_MANY_REQUESTS, "BUSY", message)
    }

    /// An answer telling the client to come back in
    /// [`UNAVAILABLE_RETRY_SECS`] (`Retry-After`, `detail.retry_after`).
    fn retry_later(status: StatusCode, code: &'static str, message: &str) -> Self {
        let secs = UNAVAILABLE_RETRY_SECS;
        ApiError {
            detail: json!({ "retry_after": secs }),
            retry_after: Some(secs),
            ..Self::new(status, code, format!("{message}: try again in {secs} s"))
        }
    }

    /// 500: logged here, once, with what the client is not told.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(error = %error, "REST request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            "unknown error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{ "code": self.code, "message": self.message, "detail": self.detail }]
        });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}

/// `Retry-After` of a 503 or a refused export.
pub const UNAVAILABLE_RETRY_SECS: u64 = 5;

impl From<store::StoreError> for ApiError {
    fn from(e: store::StoreError) -> Self {
        if e.is_unavailable() {
            ApiError::unavailable(e)
        } else {
            ApiError::internal(e)
        }
    }
}
