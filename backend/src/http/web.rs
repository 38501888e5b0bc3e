//! What every web page shares: cookies, CSRF (double-submit cookie, SameSite
//! Strict), and the logged-in user or staff member.

use crate::accounts;
use crate::error::AppError;
use crate::store;
use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::http::StatusCode;

pub const USER_COOKIE: &str = "shomei_session";
pub const STAFF_COOKIE: &str = "shomei_staff";
pub const CSRF_COOKIE: &str = "shomei_csrf";

/// On an https origin every cookie is `__Host-` prefixed (Secure, Path=/, no
/// Domain), so no other host or plain-http page can set or shadow it.
pub fn cookie_name(state: &AppState, base: &str) -> String {
    if state.secure_cookies {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn set_cookie(state: &AppState, base: &str, value: &str, max_age_s: i64, same_site: &str) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let name = cookie_name(state, base);
    let v = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The display language a browser shows the portal in: "both" (the
/// default), "ja" or "en". Read by the pages' own script (/static/lang.js),
/// so not HttpOnly; it holds nothing but the choice.
pub const LANG_COOKIE: &str = "shomei_lang";

/// The language cookie for `lang`, kept a year.
pub fn lang_cookie(state: &AppState, lang: &str) -> HeaderValue {
    let secure = if state.secure_cookies { "; Secure" } else { "" };
    let v = format!("{}={lang}; Path=/; SameSite=Lax; Max-Age=31536000{secure}", cookie_name(state, LANG_COOKIE));
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// One of the display languages, or None.
pub fn display_language(s: &str) -> Option<&'static str> {
    ["both", "ja", "en"].into_iter().find(|l| *l == s)
}

/// The CSRF token for a form: the existing cookie's, or a new one to set.
pub struct Csrf {
    pub token: String,
    pub new_cookie: Option<HeaderValue>,
}

impl Csrf {
    pub fn get(state: &AppState, headers: &HeaderMap) -> Csrf {
        match cookie(headers, &cookie_name(state, CSRF_COOKIE)).filter(|t| t.len() == 64) {
            Some(token) => Csrf { token, new_cookie: None },
            None => {
                let token = accounts::random_token();
                let c = set_cookie(state, CSRF_COOKIE, &token, 86400, "Strict");
                Csrf { token, new_cookie: Some(c) }
            }
        }
    }

    /// Attaches the cookie (if new) to a page.
    pub fn respond(self, page: impl IntoResponse) -> Response {
        let mut r = page.into_response();
        if let Some(c) = self.new_cookie {
            r.headers_mut().append(SET_COOKIE, c);
        }
        r
    }
}

/// Refuses a form POST whose token does not match its cookie.
pub fn check_csrf(state: &AppState, headers: &HeaderMap, form_token: &str) -> Result<(), AppError> {
    match cookie(headers, &cookie_name(state, CSRF_COOKIE)) {
        Some(c) if !form_token.is_empty() && c.len() == form_token.len() && constant_eq(c.as_bytes(), form_token.as_bytes()) => Ok(()),
        _ => Err(AppError::Page(crate::messages::FORM_EXPIRED.into())),
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in portal user. Pages without one redirect to the login page.
pub struct CurrentUser {
    pub user: store::User,
    pub token: String,
}

pub struct LoginRedirect(&'static str);
impl IntoResponse for LoginRedirect {
    fn into_response(self) -> Response {
        Redirect::to(self.0).into_response()
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, &cookie_name(state, USER_COOKIE)) else {
            return Err(LoginRedirect("/login").into_response());
        };
        let session = accounts::session(&state.pool, &state.sessions, &token).await.map_err(IntoResponse::into_response)?;
        let Some(user_id) = session.and_then(|s| s.user_id) else {
            return Err(LoginRedirect("/login").into_response());
        };
        let mut c = state.pool.acquire().await.map_err(|e| AppError::from(e).into_response())?;
        let user = store::user(&mut c, user_id).await.map_err(|e| AppError::from(e).into_response())?;
        // G-5: with the initial password, "password setting" is the only page
        let path = parts.uri.path();
        if user.must_set_password && path != "/password/setup" && path != "/logout" {
            return Err(LoginRedirect("/password/setup").into_response());
        }
        Ok(CurrentUser { user, token })
    }
}

/// A logged-in staff member whose role may use the route asked for: the
/// extractor checks the route's rule in [`super::roles::ADMIN_ROUTES`] before
/// the handler runs (or reads a form); `require` checks again in the handler.
pub struct CurrentStaff {
    pub staff: store::Staff,
    pub token: String,
}

impl CurrentStaff {
    /// The university whose data this staff member works on (universities are
    /// tenants: another's orders, applicants, catalogue ... do not exist for them).
    pub fn university(&self) -> i64 {
        self.staff.university_id
    }

    /// Whose stations and audit lines they see: their university's, or every
    /// university's (`None`) for a platform operator.
    pub fn fleet(&self) -> Option<i64> {
        (!self.staff.platform).then_some(self.staff.university_id)
    }

    pub fn require(&self, roles: &[&str]) -> Result<(), AppError> {
        if self.staff.role == "admin" || roles.contains(&self.staff.role.as_str()) {
            Ok(())
        } else {
            Err(AppError::NoRole)
        }
    }
}

impl FromRequestParts<AppState> for CurrentStaff {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = cookie(&parts.headers, &cookie_name(state, STAFF_COOKIE)) else {
            return Err(LoginRedirect("/admin/login").into_response());
        };
        // the fleet page polls by itself: that is no sign of someone at the desk
        // pages that follow something by themselves do not keep a session alive
        let path = parts.uri.path();
        let activity = path != "/admin/stations.json" && !(path.starts_with("/admin/graduation/") && path.ends_with("/progress"));
        let session = accounts::session_seen(&state.pool, &state.sessions, &token, activity).await.map_err(IntoResponse::into_response)?;
        let Some(staff_id) = session.and_then(|s| s.staff_id) else {
            return Err(LoginRedirect("/admin/login").into_response());
        };
        let mut c = state.pool.acquire().await.map_err(|e| AppError::from(e).into_response())?;
        let staff = store::staff(&mut c, staff_id).await.map_err(|e| AppError::from(e).into_response())?;
        if !staff.active {
            return Err(LoginRedirect("/admin/login").into_response());
        }
        let path = parts.uri.path();
        if staff.must_set_password && path != "/admin/password" && path != "/admin/logout" {
            return Err(LoginRedirect("/admin/password").into_response());
        }
        // the route's rule, by the router's pattern; a route missing from the table is refused
        let matched = parts.extensions.get::<axum::extract::MatchedPath>().map(|m| m.as_str());
        match matched.and_then(|m| super::roles::rule(&parts.method, m)) {
            Some(rule) if rule.allows(&staff.role, staff.platform) => {}
            Some(_) => return Err(AppError::NoRole.into_response()),
            None => {
                tracing::error!(method = %parts.method, path = matched.unwrap_or(path), "a staff route missing from the role table: refused");
                return Err(AppError::NoRole.into_response());
            }
        }
        Ok(CurrentStaff { staff, token })
    }
}

/// A form whose only field is its CSRF token (logout, revoke, ...).
#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

/// Where a successful login leads.
pub struct LoginTarget {
    pub cookie: &'static str,
    pub same_site: &'static str,
}

/// Who logged in, and the page they go to.
pub struct LoggedIn {
    pub user_id: Option<i64>,
    pub staff_id: Option<i64>,
    pub redirect: &'static str,
}

/// What both login forms do: refuse a form without its token, run the check,
/// start a fresh session (new token at every login) and redirect; or show the
/// form again with the one message for every failure.
pub async fn login_flow(
    state: &AppState,
    headers: &HeaderMap,
    form_csrf: &str,
    check: impl std::future::Future<Output = Result<LoggedIn, AppError>>,
    target: LoginTarget,
    form: impl Fn(&str, &str) -> Html<String>,
) -> Response {
    let csrf = Csrf::get(state, headers);
    let token = csrf.token.clone();
    if let Err(AppError::Page(msg)) = check_csrf(state, headers, form_csrf) {
        return (StatusCode::BAD_REQUEST, csrf.respond(form(&token, &msg))).into_response();
    }
    let ok = match check.await {
        Ok(ok) => ok,
        Err(AppError::Page(msg)) => return (StatusCode::UNAUTHORIZED, csrf.respond(form(&token, &msg))).into_response(),
        Err(AppError::Throttled(msg)) => return (StatusCode::TOO_MANY_REQUESTS, csrf.respond(form(&token, &msg))).into_response(),
        Err(e) => return e.into_response(),
    };
    // a session cookie left from before is dropped with its session: a new id at every login
    if let Some(old) = cookie(headers, &cookie_name(state, target.cookie)) {
        let _ = accounts::end_session(&state.pool, &old).await;
    }
    match accounts::start_session(&state.pool, &state.sessions, ok.user_id, ok.staff_id).await {
        Ok(session) => {
            let mut r = Redirect::to(ok.redirect).into_response();
            r.headers_mut()
                .append(SET_COOKIE, set_cookie(state, target.cookie, &session, state.sessions.absolute_s, target.same_site));
            // the language the account chose follows the user to this browser
            // (an account that never chose keeps what this browser shows)
            if let Some(user_id) = ok.user_id {
                if let Ok(mut c) = state.pool.acquire().await {
                    match store::user_language(&mut c, user_id).await.ok().as_deref() {
                        Some(lang) if lang != "both" || cookie(headers, &cookie_name(state, LANG_COOKIE)).is_none() => {
                            r.headers_mut().append(SET_COOKIE, lang_cookie(state, lang));
                        }
                        _ => {}
                    }
                }
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Refuses a state-changing request whose `Origin` is another site's. (A
/// request without Origin, as from old browsers, still needs its CSRF token.)
pub async fn same_origin(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.method() != axum::http::Method::GET && req.method() != axum::http::Method::HEAD {
        if let Some(origin) = req.headers().get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok()) {
            let ours = state.config.http.public_url.trim_end_matches('/');
            // "null" comes from pages with Referrer-Policy: no-referrer (and from
            // sandboxed frames): no verdict either way; the CSRF token still decides
            if origin != ours && origin != "null" {
                tracing::warn!(origin, "cross-site POST refused");
                return AppError::CrossSite.into_response();
            }
        }
    }
    next.run(req).await
}

/// The client's address for throttling and the audit log.
pub fn client_ip(addr: &std::net::SocketAddr) -> String {
    addr.ip().to_string()
}

/// The draft key of a registration form being filled in (cookie).
pub const DRAFT_COOKIE: &str = "shomei_reg";

/// Ready to serve: the database answers (503 otherwise). `/healthz` only says
/// the process runs.
pub async fn readyz(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => "ready\n".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: the database does not answer");
            (axum::http::StatusCode::SERVICE_UNAVAILABLE, "database: not answering\n").into_response()
        }
    }
}

/// Prometheus metrics: the configured bearer token, or a loopback peer while
/// no proxy is trusted (through a proxy on the same host everyone is loopback).
pub async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::Extension(crate::http::client::Peer(client)): axum::Extension<crate::http::client::Peer>,
    headers: HeaderMap,
) -> crate::error::AppResult<Response> {
    use axum::http::{header, StatusCode};
    let token = &state.config.http.metrics_token;
    let presented = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let allowed = match presented {
        Some(p) if !token.is_empty() => bool::from(subtle::ConstantTimeEq::ct_eq(p.as_bytes(), token.as_bytes())),
        _ => state.trusted_proxies.is_empty() && client.ip().is_loopback(),
    };
    if !allowed {
        return Ok((StatusCode::FORBIDDEN, "metrics need the metrics token (or a loopback client when no proxy is trusted)\n").into_response());
    }
    let body = crate::metrics::render(&state.pool, state.desk.as_ref(), state.config.stations.offline_after_s, state.started_at).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response())
}

/// The foot of a signed-in user's pages names their own university's office
/// (when they belong to one university and it has set its desk), the
/// configuration's `[contact]` otherwise.
pub async fn university_desk(axum::extract::State(state): axum::extract::State<AppState>, req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let Some(token) = cookie(req.headers(), &cookie_name(&state, USER_COOKIE)) else { return next.run(req).await };
    let office = match state.pool.acquire().await {
        Ok(mut c) => store::session_office(&mut c, &accounts::token_hash(&token)).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "the user's university office could not be read: the service's desk is shown");
            None
        }),
        Err(_) => None,
    };
    match office.and_then(|o| super::pages::desk_of(&o, &state.config.contact)) {
        Some(desk) => super::pages::with_desk(desk, next.run(req)).await,
        None => next.run(req).await,
    }
}
