//! The login, session and CSRF rules, through the router (no browser: that is
//! tests/dashboard_browser.rs).

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::response::Response;
use cartero_clock::ManualClock;
use std::time::Duration;
use tower::ServiceExt;

struct Fixed;

impl Credentials for Fixed {
    fn check(&self, user: &str, password: &str) -> Option<String> {
        match (user, password) {
            ("", "the-token") => Some(TOKEN_OPERATOR.into()),
            ("ana", "s3cret") => Some("ana".into()),
            _ => None,
        }
    }

    fn knows(&self, user: &str) -> bool {
        matches!(user, "" | "ana")
    }
}

fn dashboard() -> (Arc<ManualClock>, Dashboard) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let cfg = DashboardConfig {
        max_failed_logins: 3,
        ..DashboardConfig::default()
    };
    (clock.clone(), Dashboard::new(&cfg, clock, Arc::new(Fixed)))
}

async fn send(d: &Dashboard, req: Request<Body>) -> Response {
    d.router().oneshot(req).await.unwrap()
}

fn get(path: &str, cookies: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookies)
        .body(Body::empty())
        .unwrap()
}

fn post(path: &str, cookies: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header(header::COOKIE, cookies)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

fn location(r: &Response) -> &str {
    r.headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// `name=value` of the response's cookie `name`.
fn set_cookie(r: &Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_string())
}

async fn body(r: Response) -> String {
    let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8_lossy(&b).into_owned()
}

/// The hidden `csrf` field of a form.
fn hidden_csrf(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_string()
}

/// Logs in; answers the session cookie and the page's CSRF token.
async fn logged_in(d: &Dashboard, user: &str, password: &str) -> (String, String) {
    let r = send(d, get("/ui/login", "")).await;
    let login_cookie = set_cookie(&r, "cartero_login").unwrap();
    let csrf = hidden_csrf(&body(r).await);
    let form = format!("user={user}&password={password}&csrf={csrf}&next=/ui/mta");
    let r = send(d, post("/ui/login", &login_cookie, &form)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/mta");
    let session = set_cookie(&r, SESSION_COOKIE).unwrap();
    let page = body(send(d, get("/ui/mta", &session)).await).await;
    (session, hidden_csrf(&page))
}

#[tokio::test]
async fn a_page_without_a_session_redirects_to_login_with_next() {
    let (_, d) = dashboard();
    let r = send(&d, get("/ui/deliveries/5/logs", "")).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/ui/login?next=/ui/deliveries/5/logs");
    let r = send(&d, get("/ui/deliveries/5/logs?status=failed", "")).await;
    assert_eq!(
        location(&r),
        "/ui/login?next=/ui/deliveries/5/logs%3Fstatus%3Dfailed"
    );
    let r = send(&d, get("/ui/mta", "cartero_session=forged")).await;
    assert_eq!(location(&r), "/ui/login?next=/ui/mta");
    let r = send(&d, get("/ui/assets/app.js", "")).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the script needs a session"
    );
    let r = send(&d, get("/ui/assets/app.css", "")).await;
    assert_eq!(r.status(), StatusCode::OK, "the login page's styles do not");
    let r = send(&d, get("/ui/login", "")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
}

#[tokio::test]
async fn login_sets_a_strict_httponly_cookie_and_the_page_carries_the_csrf_token() {
    let (_, d) = dashboard();
    let r = send(&d, get("/ui/login", "")).await;
    let login_cookie = set_cookie(&r, "cartero_login").unwrap();
    let csrf = hidden_csrf(&body(r).await);
    let form = format!("user=ana&password=s3cret&csrf={csrf}&next=/ui/quarantine");
    let r = send(&d, post("/ui/login", &login_cookie, &form)).await;
    let raw = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with("cartero_session="))
        .unwrap();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Strict"),
        "{raw}"
    );
    assert!(!raw.contains("Secure"), "no TLS configured: {raw}");
    let session = set_cookie(&r, SESSION_COOKIE).unwrap();
    let page = body(send(&d, get("/ui/quarantine", &session)).await).await;
    assert!(page.contains("data-page=\"quarantine\"") && page.contains(">ana<"));
    let token = hidden_csrf(&page);
    assert!(page.contains(&format!("<meta name=\"csrf-token\" content=\"{token}\">")));
}

#[tokio::test]
async fn a_login_without_the_form_token_is_refused() {
    let (_, d) = dashboard();
    let r = send(&d, get("/ui/login", "")).await;
    let login_cookie = set_cookie(&r, "cartero_login").unwrap();
    let r = send(
        &d,
        post(
            "/ui/login",
            &login_cookie,
            "user=ana&password=s3cret&csrf=guess",
        ),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&r, SESSION_COOKIE).is_none());
    assert!(d.sessions().is_empty());
}

#[tokio::test]
async fn wrong_passwords_lock_the_name_and_the_right_one_is_refused_meanwhile() {
    let (clock, d) = dashboard();
    for _ in 0..3 {
        let r = send(&d, get("/ui/login", "")).await;
        let c = set_cookie(&r, "cartero_login").unwrap();
        let csrf = hidden_csrf(&body(r).await);
        let r = send(
            &d,
            post(
                "/ui/login",
                &c,
                &format!("user=ana&password=no&csrf={csrf}"),
            ),
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = send(&d, get("/ui/login", "")).await;
    let c = set_cookie(&r, "cartero_login").unwrap();
    let csrf = hidden_csrf(&body(r).await);
    let form = format!("user=ana&password=s3cret&csrf={csrf}");
    let r = send(&d, post("/ui/login", &c, &form)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    clock.advance(Duration::from_secs(15 * 60));
    let r = send(&d, post("/ui/login", &c, &form)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "the lockout ended");
}

#[tokio::test]
async fn the_api_check_wants_the_csrf_header_for_state_changes() {
    let (_, d) = dashboard();
    let (session, csrf) = logged_in(&d, "", "the-token").await;
    let mut h = HeaderMap::new();
    h.insert(header::COOKIE, session.parse().unwrap());
    assert_eq!(
        d.operator(&Method::GET, &h).as_deref(),
        Some(TOKEN_OPERATOR)
    );
    assert_eq!(d.operator(&Method::POST, &h), None, "no CSRF header");
    h.insert(CSRF_HEADER, "0".repeat(64).parse().unwrap());
    assert_eq!(d.operator(&Method::POST, &h), None, "a wrong CSRF header");
    h.insert(CSRF_HEADER, csrf.parse().unwrap());
    assert_eq!(
        d.operator(&Method::POST, &h).as_deref(),
        Some(TOKEN_OPERATOR)
    );
    assert_eq!(
        d.operator(&Method::GET, &HeaderMap::new()),
        None,
        "no cookie"
    );
}

#[tokio::test]
async fn logout_needs_the_token_and_ends_the_session() {
    let (_, d) = dashboard();
    let (session, csrf) = logged_in(&d, "ana", "s3cret").await;
    let r = send(&d, post("/ui/logout", &session, "csrf=wrong")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(d.sessions().len(), 1);
    let r = send(&d, post("/ui/logout", &session, &format!("csrf={csrf}"))).await;
    assert_eq!(location(&r), "/ui/login");
    assert_eq!(d.sessions().len(), 0);
    let r = send(&d, get("/ui/mta", &session)).await;
    assert_eq!(location(&r), "/ui/login?next=/ui/mta");
}

#[tokio::test]
async fn an_oversized_or_malformed_form_is_a_clear_4xx() {
    let (_, d) = dashboard();
    let big = format!("user=ana&password={}&csrf=x", "a".repeat(20_000));
    let r = send(&d, post("/ui/login", "", &big)).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = send(&d, post("/ui/login", "", "user=ana")).await;
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn background_refreshes_do_not_keep_an_idle_session_alive() {
    let (clock, d) = dashboard();
    let (session, _) = logged_in(&d, "ana", "s3cret").await;
    let mut poll = HeaderMap::new();
    poll.insert(header::COOKIE, session.parse().unwrap());
    poll.insert(POLL_HEADER, "1".parse().unwrap());
    for _ in 0..3 {
        clock.advance(Duration::from_secs(15 * 60));
        assert_eq!(d.operator(&Method::GET, &poll).as_deref(), Some("ana"));
    }
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        d.operator(&Method::GET, &poll),
        None,
        "an hour of polls only: idle"
    );
    // The operator's own requests do count.
    let (session, _) = logged_in(&d, "ana", "s3cret").await;
    let mut used = HeaderMap::new();
    used.insert(header::COOKIE, session.parse().unwrap());
    for _ in 0..4 {
        clock.advance(Duration::from_secs(40 * 60));
        assert!(d.operator(&Method::GET, &used).is_some());
    }
}
