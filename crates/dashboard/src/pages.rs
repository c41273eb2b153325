//! The `/ui/` routes: login, logout, assets and the page shells.

use crate::html::{self, Page};
use crate::session::same_secret;
use crate::{Dashboard, SESSION_COOKIE, TOKEN_OPERATOR, cookie};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

/// The cookie carrying the login form's CSRF token (double submit: a cross-site form cannot
/// read it to copy it into the form).
const LOGIN_COOKIE: &str = "cartero_login";
/// Forms are a few fields: anything bigger is refused before it is read.
const MAX_FORM_BYTES: usize = 16 << 10;
/// Longer operator names are refused before anything else.
const MAX_NAME: usize = 128;
/// A `next` longer than this is ignored.
const MAX_NEXT: usize = 512;
const HOME: &str = "/ui/deliveries";

const APP_JS: &str = include_str!("../assets/app.js");
const APP_CSS: &str = include_str!("../assets/app.css");

/// Scripts and styles only from our own files (no inline script can run, whatever a value
/// contains), no framing, forms only to ourselves.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

pub fn router(d: Dashboard) -> Router {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/assets/app.js", get(js))
        .route("/ui/assets/app.css", get(css))
        .route("/ui/deliveries", get(deliveries))
        .route("/ui/deliveries/{id}", get(delivery))
        .route("/ui/deliveries/{id}/logs", get(logs))
        .route("/ui/quarantine", get(quarantine))
        .route("/ui/transactional", get(transactional))
        .route("/ui/mta", get(mta))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(middleware::from_fn(security_headers))
        .with_state(d)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    r
}

fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// No token can be made safely: nothing is half-done, the operator is told why.
fn no_randomness() -> Response {
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        crate::RandomError.to_string(),
    )
}

async fn home() -> Response {
    see_other(HOME)
}

/// The script only for a session: without one, nothing of the dashboard but the login page
/// (and its styles) is served.
async fn js(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if d.session(&headers).is_none() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

fn asset(ctype: &'static str, body: &'static str) -> Response {
    // Compiled into the binary: a new binary may change them, so browsers revalidate.
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// Percent-encodes a path for a query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where a login may send the browser: one of our pages, never another site (`//host`,
/// `/\host` and schemes are refused).
fn safe_next(next: &str) -> &str {
    let ok = next.len() <= MAX_NEXT
        && next.starts_with("/ui/")
        && !next.contains("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic());
    if ok { next } else { HOME }
}

/// A cookie's `Set-Cookie` value with our attributes.
fn set_cookie(d: &Dashboard, name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let secure = if d.inner.secure { "; Secure" } else { "" };
    let v = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn with_cookie(mut r: Response, v: HeaderValue) -> Response {
    r.headers_mut().append(header::SET_COOKIE, v);
    r
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_page(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<NextQuery>,
) -> Response {
    let next = safe_next(q.next.as_deref().unwrap_or(HOME)).to_string();
    if d.session(&headers).is_some() {
        return see_other(&next);
    }
    login_form(&d, StatusCode::OK, &next, None)
}

/// The login form with a fresh CSRF token in its cookie and its hidden field.
fn login_form(d: &Dashboard, status: StatusCode, next: &str, error: Option<&str>) -> Response {
    let Ok(token) = crate::random_token() else {
        return no_randomness();
    };
    let cookie = set_cookie(d, LOGIN_COOKIE, &token, "/ui/login", 3600);
    with_cookie(html(status, html::login(&token, next, error)), cookie)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    user: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

async fn login(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(&f.next).to_string();
    if !same_secret(cookie(&headers, LOGIN_COOKIE).unwrap_or(""), &f.csrf) {
        let e = "The login form expired or came from another site: log in again.";
        return login_form(&d, StatusCode::FORBIDDEN, &next, Some(e));
    }
    let user = f.user.trim().to_string();
    if user.len() > MAX_NAME {
        let e = "No operator has a name that long.";
        return login_form(&d, StatusCode::UNAUTHORIZED, &next, Some(e));
    }
    let known = d.inner.credentials.knows(&user);
    // The failures of unknown names share one count under a name no account can have.
    let name = match (user.is_empty(), known) {
        (true, _) => TOKEN_OPERATOR,
        (false, true) => &user,
        (false, false) => "",
    };
    let Ok(_slot) = d.inner.checks.try_acquire() else {
        let e = "Too many logins at once: try again in a moment.";
        return login_form(&d, StatusCode::TOO_MANY_REQUESTS, &next, Some(e));
    };
    let sessions = &d.inner.sessions;
    if sessions.begin_attempt(name).is_err() {
        let e = "Too many failed logins for this name: it is locked for a while.";
        return login_form(&d, StatusCode::TOO_MANY_REQUESTS, &next, Some(e));
    }
    let (credentials, u) = (d.inner.credentials.clone(), user.clone());
    let who = tokio::task::spawn_blocking(move || credentials.check(&u, &f.password))
        .await
        .ok()
        .flatten();
    sessions.end_attempt(name, who.is_some());
    let Some(operator) = who else {
        // An unknown name is not logged: it may be a password typed in the wrong field.
        let logged = if known { name } else { "(unknown operator)" };
        tracing::info!(name = logged, "dashboard: failed login");
        let e = "Wrong operator or password.";
        return login_form(&d, StatusCode::UNAUTHORIZED, &next, Some(e));
    };
    let Ok((id, _)) = sessions.open(&operator) else {
        return no_randomness();
    };
    tracing::info!(operator, "dashboard: login");
    let session = set_cookie(&d, SESSION_COOKIE, &id, "/", d.inner.max_age_s);
    let used = set_cookie(&d, LOGIN_COOKIE, "", "/ui/login", 0);
    with_cookie(with_cookie(see_other(&next), session), used)
}

#[derive(Deserialize)]
struct LogoutForm {
    csrf: String,
}

async fn logout(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Form(f): Form<LogoutForm>,
) -> Response {
    match d.session(&headers) {
        Some((s, id)) if same_secret(&s.csrf, &f.csrf) => {
            d.inner.sessions.close(&id);
            tracing::info!(operator = s.operator, "dashboard: logout");
            let gone = set_cookie(&d, SESSION_COOKIE, "", "/", 0);
            with_cookie(see_other("/ui/login"), gone)
        }
        Some(_) => html(
            StatusCode::FORBIDDEN,
            "CSRF token missing or wrong: log out from the dashboard's own button.".into(),
        ),
        None => see_other("/ui/login"),
    }
}

/// A page for the request's session, or the login page's address with `next` set.
fn shell(d: &Dashboard, headers: &HeaderMap, uri: &Uri, page: Page, id: Option<i64>) -> Response {
    match d.session(headers) {
        Some((s, _)) => html(StatusCode::OK, html::shell(page, id, &s.operator, &s.csrf)),
        None => {
            let back = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
            see_other(&format!("/ui/login?next={}", encode(back)))
        }
    }
}

async fn deliveries(State(d): State<Dashboard>, headers: HeaderMap, uri: Uri) -> Response {
    shell(&d, &headers, &uri, Page::Deliveries, None)
}

async fn delivery(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<i64>,
) -> Response {
    shell(&d, &headers, &uri, Page::Delivery, Some(id))
}

async fn logs(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<i64>,
) -> Response {
    shell(&d, &headers, &uri, Page::Logs, Some(id))
}

async fn quarantine(State(d): State<Dashboard>, headers: HeaderMap, uri: Uri) -> Response {
    shell(&d, &headers, &uri, Page::Quarantine, None)
}

async fn transactional(State(d): State<Dashboard>, headers: HeaderMap, uri: Uri) -> Response {
    shell(&d, &headers, &uri, Page::Transactional, None)
}

async fn mta(State(d): State<Dashboard>, headers: HeaderMap, uri: Uri) -> Response {
    shell(&d, &headers, &uri, Page::Mta, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_dashboard() {
        assert_eq!(safe_next("/ui/deliveries/3/logs"), "/ui/deliveries/3/logs");
        assert_eq!(
            safe_next("/ui/deliveries/3/logs?status=failed&domain=a.test"),
            "/ui/deliveries/3/logs?status=failed&domain=a.test",
            "a filtered view survives the login"
        );
        for bad in [
            "https://evil.test/",
            "//evil.test/ui/",
            "/ui//evil.test",
            "/\\evil.test",
            "/api/v1/deliveries",
            "/ui/\r\nSet-Cookie: x=y",
            "/ui/é",
            "/ui/a b",
        ] {
            assert_eq!(safe_next(bad), HOME, "{bad:?}");
        }
        assert_eq!(safe_next(&format!("/ui/{}", "a".repeat(600))), HOME);
    }

    #[test]
    fn encoded_paths_keep_slashes_and_escape_the_rest() {
        assert_eq!(encode("/ui/deliveries/3"), "/ui/deliveries/3");
        assert_eq!(encode("/ui/a b&c"), "/ui/a%20b%26c");
    }
}
