//! The delivery dashboard (docs/dashboard.md): pages served at `/ui/` by `cartero serve`, with
//! their assets compiled into the binary.
//!
//! The server side is small on purpose: login and logout, sessions, the CSRF token, and one
//! HTML shell per page. The figures on a page come from the same JSON API the CLI and scripts
//! use (`/api/v1/...`), fetched by `assets/app.js` with the session cookie and, for every
//! state-changing request, the session's CSRF token in `X-CSRF-Token`; so a dashboard number is
//! the API's number by construction. [`Dashboard::authorizes`] is what lets such a request
//! through the API's token check; the embedding program plugs it in.
//!
//! This crate knows neither the MTA nor the campaign layer: it serves pages and checks
//! sessions, and [`Credentials`] (given by the binary) says who may log in.

mod config;
mod html;
mod pages;
mod session;

pub use config::{DashboardConfig, Operator};
pub use session::{Locked, RandomError, Session, Sessions, random_token, same_secret};

use axum::Router;
use axum::http::{HeaderMap, Method, header};
use cartero_clock::SharedClock;
use std::sync::Arc;

/// The operator name of a login with the API token.
pub const TOKEN_OPERATOR: &str = "api-token";
/// The session cookie.
pub const SESSION_COOKIE: &str = "cartero_session";
/// The header carrying the session's CSRF token on state-changing API requests.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Marks a page's background refresh: it does not restart the session's idle time.
pub const POLL_HEADER: &str = "x-cartero-poll";

/// Password checks at once (see `Inner::checks`).
const MAX_PARALLEL_CHECKS: usize = 4;

/// Who may log in.
pub trait Credentials: Send + Sync {
    /// The operator `user` logs in as with `password`, if they are valid (an empty `user`: the
    /// password is the API token). Called on a blocking thread: password hashing is slow on
    /// purpose.
    fn check(&self, user: &str, password: &str) -> Option<String>;

    /// Whether `user` names an account (an empty `user`: the token, which always exists).
    /// Failed logins are counted per known name; all unknown names share one count, so
    /// made-up names cannot grow memory nor push a real name's count out.
    fn knows(&self, user: &str) -> bool;
}

/// The dashboard: its routes and its session check. Cheap to clone.
#[derive(Clone)]
pub struct Dashboard {
    inner: Arc<Inner>,
}

struct Inner {
    sessions: Sessions,
    /// Password checks running at once (each is a deliberately slow hash on a blocking
    /// thread): more are answered 429 rather than queued.
    checks: tokio::sync::Semaphore,
    credentials: Arc<dyn Credentials>,
    /// `Secure` on the cookies.
    secure: bool,
    /// The session cookie's `Max-Age`, in seconds.
    max_age_s: u64,
}

impl Dashboard {
    pub fn new(
        cfg: &DashboardConfig,
        clock: SharedClock,
        credentials: Arc<dyn Credentials>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                sessions: Sessions::new(clock, cfg),
                checks: tokio::sync::Semaphore::new(MAX_PARALLEL_CHECKS),
                credentials,
                secure: cfg.secure_cookie,
                max_age_s: cfg.session_max.as_secs(),
            }),
        }
    }

    /// The `/ui/` routes. They check sessions themselves: serve them outside the API's token
    /// check.
    pub fn router(&self) -> Router {
        pages::router(self.clone())
    }

    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    /// The operator of a request to the API authorized by a dashboard session: a live session
    /// cookie, and for anything but GET and HEAD the session's CSRF token in
    /// [`CSRF_HEADER`]. A cross-site page can make the browser send the cookie, but it can
    /// neither read the token nor set that header.
    pub fn operator(&self, method: &Method, headers: &HeaderMap) -> Option<String> {
        let (session, _) = self.session_used(headers, !headers.contains_key(POLL_HEADER))?;
        if matches!(*method, Method::GET | Method::HEAD) {
            return Some(session.operator);
        }
        headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| same_secret(&session.csrf, t))
            .then_some(session.operator)
    }

    /// The request's live session.
    fn session(&self, headers: &HeaderMap) -> Option<(Session, String)> {
        self.session_used(headers, true)
    }

    /// The request's live session and its id; `used` restarts its idle time.
    fn session_used(&self, headers: &HeaderMap, used: bool) -> Option<(Session, String)> {
        let id = cookie(headers, SESSION_COOKIE)?;
        let s = match used {
            true => self.inner.sessions.get(id)?,
            false => self.inner.sessions.peek(id)?,
        };
        Some((s, id.to_string()))
    }
}

/// A cookie's value from the request's `Cookie` headers (RFC 6265 §5.4: `name=value; …`).
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests;
