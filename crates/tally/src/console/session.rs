//! Console sessions: sign-in, sign-out, the session cookies and CSRF.
//!
//! # Decisions
//!
//! - **A session is a REST sign-in.** The sign-in form calls the REST
//!   login handler itself, so the console has the same throttling,
//!   lock-out (429 with the wait shown), audit entries and identical
//!   failure for every wrong credential. The access token goes into the
//!   `tally_session` cookie and the refresh token into `tally_refresh`;
//!   when the 30-minute access token has expired the middleware redeems
//!   the refresh token through the same handler (single use, reuse revokes
//!   the sign-in) and sets the new pair. So a console session is revoked,
//!   expires and follows role changes exactly as a REST token does, and
//!   no session table is needed. Sign-out revokes the token family.
//! - **Cookies** are `HttpOnly`, `SameSite=Lax`, `Path=/console`, and
//!   `Secure` when the connection is TLS (the TLS acceptor marks the
//!   request with [`TlsConnection`]).
//! - **CSRF: a double-submit token checked in one place.** Every console
//!   response carries a random `tally_csrf` cookie (made once, renewed at
//!   sign-in) and every form a hidden `csrf` field with the same value;
//!   the middleware refuses any `POST` whose field does not match the
//!   cookie (403) before a handler runs, so no form can forget it. An
//!   attacker's page can neither read the cookie nor set it (SameSite, and
//!   it is `HttpOnly`), and `SameSite=Lax` already keeps the session cookie
//!   off cross-site posts: two independent locks.

use std::collections::HashMap;

use axum::Form;
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use cdr::TenantId;
use maud::html;

use super::layout::{self, PageError};
use crate::api::auth::{self, ClientAddr};
use crate::api::{ApiState, Principal};
use crate::random;

const SESSION: &str = "tally_session";
const REFRESH: &str = "tally_refresh";
const CSRF: &str = "tally_csrf";
/// The tenant the system admin is looking at (the tenant switcher).
const TENANT: &str = "tally_tenant";
/// Largest form body the console accepts.
const MAX_FORM: usize = 64 * 1024;

/// Put into a request's extensions by a TLS acceptor: the console's
/// cookies are then `Secure`.
#[derive(Clone, Copy, Debug)]
pub struct TlsConnection;

/// The CSRF token of this browser, for the forms a page renders.
#[derive(Clone, Debug)]
pub struct Csrf(pub String);

/// A signed-in console request: who, in which tenant (the system admin's
/// choice in the tenant switcher), and the CSRF token its forms carry.
#[derive(Clone, Debug)]
pub struct Console {
    pub principal: Principal,
    /// The system admin's chosen tenant (unchecked: pages check it with
    /// the REST scope rule); a tenant principal's own.
    pub tenant: Option<TenantId>,
    pub csrf: String,
}

impl<S: Send + Sync> FromRequestParts<S> for Console {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Console>()
            .cloned()
            .ok_or_else(|| Redirect::to("/console/sign-in").into_response())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Csrf {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Csrf>()
            .cloned()
            .unwrap_or(Csrf(String::new())))
    }
}

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/console/sign-in", get(sign_in_page).post(sign_in))
        .route("/console/sign-out", axum::routing::post(sign_out))
        .route("/console/tenant", axum::routing::post(switch_tenant))
}

/// The cookies of a request, by name (the first of a repeated name).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value; `max_age` 0 deletes the cookie.
fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        text.push_str("; Secure");
    }
    // Names are constants and values hex or decimal: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Equal without an early exit, so the time taken tells nothing about
/// where a guessed token first differs.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The `csrf` field of a form body (the token is hex: no decoding).
fn form_csrf(body: &[u8]) -> Option<&str> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("csrf="))
}

/// Authenticates the session cookie (rotating an expired one with the
/// refresh cookie), checks the CSRF token of every `POST`, and adds the
/// security headers every console answer carries.
pub async fn middleware(
    State(state): State<ApiState>,
    ClientAddr(source): ClientAddr,
    request: Request,
    next: Next,
) -> Response {
    let secure = request.extensions().get::<TlsConnection>().is_some();
    let mut set = Vec::new();
    let csrf = match cookie(request.headers(), CSRF) {
        Some(token) => token.to_owned(),
        None => match random::token() {
            Ok(token) => {
                set.push(set_cookie(CSRF, &token, None, secure));
                token
            }
            Err(e) => return PageError::internal(e).into_response(),
        },
    };
    let (mut parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM).await else {
            return PageError::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.")
                .into_response();
        };
        // The cookie must have come with the request: a token made just
        // now for a browser without one matches nothing it could send.
        let sent = cookie(&parts.headers, CSRF);
        if !matches!((sent, form_csrf(&bytes)), (Some(c), Some(f)) if same(c, f)) {
            return PageError::new(
                StatusCode::FORBIDDEN,
                "The form was refused: its security token is missing or out of date. \
                 Reload the page and send it again.",
            )
            .into_response();
        }
        Body::from(bytes)
    } else {
        body
    };
    let mut principal = match cookie(&parts.headers, SESSION) {
        // A store that cannot answer is a 503, never a signed-out page.
        Some(token) => match state.authenticate_token(token).await {
            Ok(principal) => principal,
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    if principal.is_none()
        && let Some(refresh) = cookie(&parts.headers, REFRESH)
    {
        let form = HashMap::from([
            ("grant_type".to_owned(), "refresh_token".to_owned()),
            ("refresh_token".to_owned(), refresh.to_owned()),
        ]);
        match auth::login(State(state.clone()), ClientAddr(source), Ok(Form(form))).await {
            Ok(issued) => {
                principal = match state.authenticate_token(issued.access()).await {
                    Ok(principal) => principal,
                    Err(e) => return e.into_response(),
                };
                set.extend(session_cookies(issued.access(), issued.refresh(), secure));
            }
            Err(_) => set.extend(cleared(secure)),
        }
    }
    if let Some(principal) = principal {
        let tenant = match principal {
            Principal::Tenant { tenant_id, .. } => Some(tenant_id),
            Principal::SystemAdmin => cookie(&parts.headers, TENANT).and_then(|t| t.parse().ok()),
        };
        parts.extensions.insert(Console {
            principal,
            tenant,
            csrf: csrf.clone(),
        });
    }
    parts.extensions.insert(Csrf(csrf));
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let headers = response.headers_mut();
    for value in set {
        headers.append(SET_COOKIE, value);
    }
    layout::security_headers(headers);
    response
}

fn session_cookies(access: &str, refresh: &str, secure: bool) -> [HeaderValue; 2] {
    let refresh_age = auth::REFRESH_TTL.as_secs();
    [
        set_cookie(SESSION, access, None, secure),
        set_cookie(REFRESH, refresh, Some(refresh_age), secure),
    ]
}

fn cleared(secure: bool) -> [HeaderValue; 2] {
    [
        set_cookie(SESSION, "", Some(0), secure),
        set_cookie(REFRESH, "", Some(0), secure),
    ]
}

async fn sign_in_page(Csrf(csrf): Csrf, console: Option<Extension<Console>>) -> Response {
    if console.is_some() {
        return Redirect::to("/console").into_response();
    }
    sign_in_form(&csrf, "", "", None, StatusCode::OK)
}

fn sign_in_form(
    csrf: &str,
    domain: &str,
    username: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let body = html! {
        main.narrow {
            h1 { "Sign in to Tally" }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(csrf);
                label for="domain" { "Domain" }
                input #domain name="domain" type="text" value=(domain) autocomplete="organization"
                    aria-describedby="domain-help";
                p.help #domain-help { "Your tenant's SIP domain. Leave empty to sign in as the system admin." }
                label for="username" { "User" }
                input #username name="username" type="text" value=(username) required autocomplete="username";
                label for="password" { "Password" }
                input #password name="password" type="password" required autocomplete="current-password";
                button type="submit" { "Sign in" }
            }
        }
    };
    (status, layout::bare("Sign in", body)).into_response()
}

#[derive(serde::Deserialize)]
struct SignIn {
    #[serde(default)]
    domain: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

async fn sign_in(
    State(state): State<ApiState>,
    ClientAddr(source): ClientAddr,
    Csrf(csrf): Csrf,
    tls: Option<Extension<TlsConnection>>,
    form: Form<SignIn>,
) -> Response {
    let secure = tls.is_some();
    let Form(SignIn {
        domain,
        username,
        password,
    }) = form;
    let mut fields = HashMap::from([
        ("grant_type".to_owned(), "password".to_owned()),
        ("username".to_owned(), username.clone()),
        ("password".to_owned(), password),
    ]);
    if !domain.trim().is_empty() {
        fields.insert("domain".to_owned(), domain.trim().to_owned());
    }
    match auth::login(State(state), ClientAddr(source), Ok(Form(fields))).await {
        Ok(issued) => {
            let Ok(fresh) = random::token() else {
                return PageError::internal("no randomness").into_response();
            };
            let mut response = Redirect::to("/console").into_response();
            let headers = response.headers_mut();
            for value in session_cookies(issued.access(), issued.refresh(), secure) {
                headers.append(SET_COOKIE, value);
            }
            // A new token at sign-in: one planted before it is worthless.
            headers.append(SET_COOKIE, set_cookie(CSRF, &fresh, None, secure));
            headers.append(SET_COOKIE, set_cookie(TENANT, "", Some(0), secure));
            response
        }
        Err(e) => {
            // The form is shown again with the token it already has.
            let status = e.status();
            let message = if e.is_login_failure() {
                "Sign-in failed: the domain, user or password is wrong.".to_owned()
            } else {
                e.message().to_owned()
            };
            let mut response = sign_in_form(&csrf, &domain, &username, Some(&message), status);
            if let Some(retry) = status
                .eq(&StatusCode::TOO_MANY_REQUESTS)
                .then(|| {
                    e.into_response()
                        .headers()
                        .get(header::RETRY_AFTER)
                        .cloned()
                })
                .flatten()
            {
                response.headers_mut().insert(header::RETRY_AFTER, retry);
            }
            response
        }
    }
}

async fn sign_out(
    State(state): State<ApiState>,
    tls: Option<Extension<TlsConnection>>,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = cookie(&headers, SESSION).or_else(|| cookie(&headers, REFRESH)) {
        let form = HashMap::from([("token".to_owned(), token.to_owned())]);
        if let Err(e) = auth::revoke(State(state), Ok(Form(form))).await {
            return PageError::from(e).into_response();
        }
    }
    let secure = tls.is_some();
    let mut response = Redirect::to("/console/sign-in").into_response();
    for value in cleared(secure) {
        response.headers_mut().append(SET_COOKIE, value);
    }
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(TENANT, "", Some(0), secure));
    response
}

#[derive(serde::Deserialize)]
struct SwitchTenant {
    tenant: String,
    #[serde(default)]
    back: String,
}

/// The system admin's tenant switcher: remembers the choice in a cookie;
/// every page checks it again with the REST scope rule.
async fn switch_tenant(
    console: Console,
    tls: Option<Extension<TlsConnection>>,
    Form(form): Form<SwitchTenant>,
) -> Response {
    if !super::is_system_admin(console.principal) {
        return PageError::from(crate::api::ApiError::forbidden()).into_response();
    }
    let Ok(tenant) = form.tenant.parse::<TenantId>() else {
        return PageError::new(StatusCode::BAD_REQUEST, "Choose a tenant.").into_response();
    };
    // Only same-site paths: the switcher must not become an open redirect.
    let back = if form.back.starts_with("/console") && !form.back.starts_with("//") {
        form.back
    } else {
        "/console".to_owned()
    };
    let mut response = Redirect::to(&back).into_response();
    response.headers_mut().append(
        SET_COOKIE,
        set_cookie(TENANT, &tenant.to_string(), None, tls.is_some()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("x_tally_session=no; tally_session=yes; tally_csrf="),
        );
        assert_eq!(cookie(&headers, SESSION), Some("yes"));
        assert_eq!(cookie(&headers, CSRF), None);
    }

    #[test]
    fn the_csrf_field_is_read_from_anywhere_in_the_form() {
        assert_eq!(form_csrf(b"a=1&csrf=abc&b=2"), Some("abc"));
        assert_eq!(form_csrf(b"xcsrf=abc"), None);
        assert_eq!(form_csrf(b""), None);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }

    #[test]
    fn cookies_are_http_only_lax_and_secure_over_tls() {
        let plain = set_cookie(SESSION, "t", None, false);
        assert_eq!(
            plain.to_str().unwrap(),
            "tally_session=t; Path=/console; HttpOnly; SameSite=Lax"
        );
        let tls = set_cookie(REFRESH, "t", Some(5), true);
        assert!(tls.to_str().unwrap().ends_with("; Max-Age=5; Secure"));
    }
}
