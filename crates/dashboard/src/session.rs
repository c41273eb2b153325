//! Server-side sessions: a random id in an HttpOnly cookie, a CSRF token per session, an idle
//! and an absolute lifetime, and a lock on a login name after repeated failures. Kept in
//! memory: a restart logs operators out, which costs them one login and never leaks a session.

use cartero_clock::{SharedClock, UnixMillis};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Duration;

/// Sessions kept at most; a login beyond it ends the least recently used one.
const MAX_SESSIONS: usize = 10_000;

/// An open session, as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub operator: String,
    pub csrf: String,
}

#[derive(Debug)]
struct Entry {
    session: Session,
    created: UnixMillis,
    used: UnixMillis,
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    /// Attempts begun and not yet ended.
    in_flight: u32,
    /// Set once `count` reached the limit: until when the name is locked.
    locked_until: Option<UnixMillis>,
}

/// The session store. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Sessions {
    clock: SharedClock,
    idle_ms: u64,
    max_ms: u64,
    max_failed: u32,
    lockout_ms: u64,
    open: Mutex<HashMap<String, Entry>>,
    failures: Mutex<HashMap<String, Failures>>,
}

/// The system random number generator failed: no id or token can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed")]
pub struct RandomError;

/// 32 random bytes as 64 hex digits.
pub fn random_token() -> Result<String, RandomError> {
    use aws_lc_rs::rand::SecureRandom;
    let mut raw = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| RandomError)?;
    Ok(raw.iter().map(|b| format!("{b:02x}")).collect())
}

/// Equal secrets. Their SHA-256 digests are compared, so the time the comparison takes tells
/// an attacker nothing about how much of a guess matched.
pub fn same_secret(a: &str, b: &str) -> bool {
    use aws_lc_rs::digest::{SHA256, digest};
    !a.is_empty()
        && digest(&SHA256, a.as_bytes()).as_ref() == digest(&SHA256, b.as_bytes()).as_ref()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Sessions {
    pub fn new(clock: SharedClock, cfg: &crate::DashboardConfig) -> Self {
        Self {
            clock,
            idle_ms: millis(cfg.session_idle),
            max_ms: millis(cfg.session_max),
            max_failed: cfg.max_failed_logins,
            lockout_ms: millis(cfg.login_lockout),
            open: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session for `operator`; answers its id (the cookie value).
    pub fn open(&self, operator: &str) -> Result<(String, Session), RandomError> {
        let (id, csrf) = (random_token()?, random_token()?);
        let now = self.clock.now_ms();
        let session = Session {
            operator: operator.to_string(),
            csrf,
        };
        let mut open = self.open.lock();
        self.expire(&mut open, now);
        if open.len() >= MAX_SESSIONS
            && let Some(oldest) = open
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
        {
            open.remove(&oldest);
        }
        let entry = Entry {
            session: session.clone(),
            created: now,
            used: now,
        };
        open.insert(id.clone(), entry);
        Ok((id, session))
    }

    /// The live session with this id, its idle time restarted; `None` if unknown or ended.
    pub fn get(&self, id: &str) -> Option<Session> {
        self.lookup(id, true)
    }

    /// The live session with this id, its idle time left running (a page's background
    /// refresh is not the operator's use).
    pub fn peek(&self, id: &str) -> Option<Session> {
        self.lookup(id, false)
    }

    fn lookup(&self, id: &str, used: bool) -> Option<Session> {
        let now = self.clock.now_ms();
        let mut open = self.open.lock();
        let entry = open.get_mut(id)?;
        if self.ended(entry, now) {
            open.remove(id);
            return None;
        }
        if used {
            entry.used = now;
        }
        Some(entry.session.clone())
    }

    /// Ends a session (logout).
    pub fn close(&self, id: &str) {
        self.open.lock().remove(id);
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        let mut open = self.open.lock();
        self.expire(&mut open, self.clock.now_ms());
        open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn ended(&self, e: &Entry, now: UnixMillis) -> bool {
        now.saturating_sub(e.used) >= self.idle_ms || now.saturating_sub(e.created) >= self.max_ms
    }

    fn expire(&self, open: &mut HashMap<String, Entry>, now: UnixMillis) {
        open.retain(|_, e| !self.ended(e, now));
    }

    /// Until when `name` is locked out, if it is.
    pub fn locked(&self, name: &str) -> Option<UnixMillis> {
        let now = self.clock.now_ms();
        let mut failures = self.failures.lock();
        let until = failures.get(name)?.locked_until?;
        if until > now {
            return Some(until);
        }
        if let Some(f) = failures.get_mut(name) {
            f.locked_until = None;
        }
        None
    }

    /// Starts a login attempt of `name`. Attempts under way count as failures until they end,
    /// so parallel guesses cannot get past the limit; refused while the name is locked.
    pub fn begin_attempt(&self, name: &str) -> Result<(), Locked> {
        if let Some(until) = self.locked(name) {
            return Err(Locked(until));
        }
        let mut failures = self.failures.lock();
        let f = failures.entry(name.to_string()).or_default();
        if f.count + f.in_flight >= self.max_failed {
            return Err(Locked(self.clock.now_ms()));
        }
        f.in_flight += 1;
        Ok(())
    }

    /// Ends an attempt begun with [`Sessions::begin_attempt`]: a success forgets the name's
    /// failures, a failure counts, and the last allowed one locks the name.
    pub fn end_attempt(&self, name: &str, ok: bool) {
        let now = self.clock.now_ms();
        let mut failures = self.failures.lock();
        let Some(f) = failures.get_mut(name) else {
            return;
        };
        f.in_flight = f.in_flight.saturating_sub(1);
        if ok {
            f.count = 0;
            if f.in_flight == 0 && f.locked_until.is_none() {
                failures.remove(name);
            }
            return;
        }
        f.count += 1;
        if f.count >= self.max_failed {
            f.locked_until = Some(now.saturating_add(self.lockout_ms));
            f.count = 0;
            tracing::warn!(name, "dashboard: login locked after repeated failures");
        }
    }
}

/// A name locked out until this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked(pub UnixMillis);

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_clock::ManualClock;
    use std::sync::Arc;

    fn store() -> (Arc<ManualClock>, Sessions) {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let cfg = crate::DashboardConfig {
            session_idle: Duration::from_secs(60),
            session_max: Duration::from_secs(300),
            max_failed_logins: 3,
            login_lockout: Duration::from_secs(600),
            ..crate::DashboardConfig::default()
        };
        (clock.clone(), Sessions::new(clock, &cfg))
    }

    #[test]
    fn a_session_ends_when_idle_and_at_its_maximum_age_even_if_used() {
        let (clock, s) = store();
        let (id, session) = s.open("ana").unwrap();
        assert_eq!(id.len(), 64);
        assert_ne!(id, session.csrf);
        clock.advance(Duration::from_secs(59));
        assert_eq!(s.get(&id), Some(session.clone()));
        // Used at 59 s: idle restarts, so 118 s after login it is still open.
        clock.advance(Duration::from_secs(59));
        assert!(s.get(&id).is_some());
        clock.advance(Duration::from_secs(60));
        assert_eq!(s.get(&id), None, "idle for 60 s");
        let (id, _) = s.open("ana").unwrap();
        clock.advance(Duration::from_secs(40));
        assert!(s.peek(&id).is_some());
        clock.advance(Duration::from_secs(20));
        assert_eq!(s.peek(&id), None, "peeking is not use: idle for 60 s");
        let (id, _) = s.open("ana").unwrap();
        for _ in 0..6 {
            clock.advance(Duration::from_secs(50));
            let _ = s.get(&id);
        }
        assert_eq!(s.get(&id), None, "300 s after login, however used");
    }

    #[test]
    fn logout_ends_only_that_session() {
        let (_, s) = store();
        let (a, _) = s.open("ana").unwrap();
        let (b, _) = s.open("ana").unwrap();
        s.close(&a);
        assert_eq!(s.get(&a), None);
        assert!(s.get(&b).is_some());
        assert_eq!(s.len(), 1);
        assert_eq!(s.get("not-an-id"), None);
    }

    fn fail(s: &Sessions, name: &str) {
        s.begin_attempt(name).unwrap();
        s.end_attempt(name, false);
    }

    #[test]
    fn repeated_failures_lock_a_name_for_the_lockout_then_it_is_free() {
        let (clock, s) = store();
        fail(&s, "ana");
        fail(&s, "ana");
        assert_eq!(s.locked("ana"), None);
        fail(&s, "ana");
        assert_eq!(s.locked("ana"), Some(1_000_000 + 600_000));
        assert_eq!(s.begin_attempt("ana"), Err(Locked(1_000_000 + 600_000)));
        assert_eq!(s.locked("bob"), None, "other names are not affected");
        clock.advance(Duration::from_secs(600));
        assert_eq!(s.locked("ana"), None);
        fail(&s, "ana");
        s.begin_attempt("ana").unwrap();
        s.end_attempt("ana", true);
        fail(&s, "ana");
        fail(&s, "ana");
        assert_eq!(
            s.locked("ana"),
            None,
            "a success forgot the earlier failure"
        );
    }

    #[test]
    fn attempts_under_way_count_so_parallel_guesses_stop_at_the_limit() {
        let (_, s) = store();
        for _ in 0..3 {
            s.begin_attempt("ana").unwrap();
        }
        assert!(
            s.begin_attempt("ana").is_err(),
            "a fourth guess while three run"
        );
        s.end_attempt("ana", false);
        s.end_attempt("ana", false);
        s.end_attempt("ana", false);
        assert!(s.locked("ana").is_some());
    }

    #[test]
    fn secrets_compare_equal_only_when_identical_and_never_when_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", ""));
    }
}
