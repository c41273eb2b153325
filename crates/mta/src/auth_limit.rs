//! Back-off for failed SMTP AUTH attempts, per client IP and over all clients.
//!
//! Each limit is a token bucket kept as a theoretical arrival time (GCRA): a failure costs one
//! `refill` interval, and a bucket may run at most `burst` intervals ahead of the clock. An
//! attempt is let through only when both buckets still have a token; the token is taken before
//! the (slow, PBKDF2) password check and given back when the password was right, so parallel
//! sessions cannot guess more than the buckets allow. Time comes from the injectable clock.

use cartero_clock::SharedClock;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// `[smtp.auth_limit]`: failed AUTH attempts allowed before clients must wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthLimitConfig {
    /// Failures one client IP (IPv6: its /64) may make in a burst; 0 turns the limit off.
    pub per_ip: u32,
    /// After the burst, one more failure per this interval.
    #[serde(with = "humantime_serde")]
    pub per_ip_refill: Duration,
    /// Failures all clients together may make in a burst; 0 turns the limit off.
    pub global: u32,
    #[serde(with = "humantime_serde")]
    pub global_refill: Duration,
    /// Client IPs remembered at once. Beyond that, new IPs meet only the global limit.
    pub max_tracked: usize,
}

impl Default for AuthLimitConfig {
    fn default() -> Self {
        Self {
            per_ip: 10,
            per_ip_refill: Duration::from_secs(30),
            global: 100,
            global_refill: Duration::from_millis(200),
            max_tracked: 10_000,
        }
    }
}

/// Which limit refused an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limited {
    PerIp,
    Global,
}

impl Limited {
    pub fn as_str(self) -> &'static str {
        match self {
            Limited::PerIp => "per-ip",
            Limited::Global => "global",
        }
    }
}

/// A token taken for one attempt; hand it back with [`AuthLimiter::succeeded`].
#[derive(Debug)]
#[must_use]
pub(crate) struct Ticket {
    key: IpAddr,
    ip_charged: bool,
    global_charged: bool,
}

/// One bucket's state.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Theoretical arrival time in ms: the bucket is full once the clock passes it.
    tat: u64,
    /// A refusal was logged since the bucket last let an attempt through (one line per episode).
    warned: bool,
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    burst: u64,
    refill_ms: u64,
}

impl Rule {
    fn new(burst: u32, refill: Duration) -> Option<Self> {
        let refill_ms = u64::try_from(refill.as_millis()).unwrap_or(u64::MAX);
        (burst > 0 && refill_ms > 0).then_some(Rule {
            burst: u64::from(burst),
            refill_ms,
        })
    }

    /// The arrival time after one more failure, when the bucket still has room for it.
    fn charge(&self, b: &Bucket, now: u64) -> Option<u64> {
        let tat = b.tat.max(now).saturating_add(self.refill_ms);
        (tat - now <= self.burst.saturating_mul(self.refill_ms)).then_some(tat)
    }
}

#[derive(Debug, Default)]
struct State {
    per_ip: HashMap<IpAddr, Bucket>,
    global: Bucket,
    last_prune: u64,
}

/// Shared by every session of a listener.
#[derive(Debug)]
pub(crate) struct AuthLimiter {
    clock: SharedClock,
    per_ip: Option<Rule>,
    global: Option<Rule>,
    max_tracked: usize,
    state: Mutex<State>,
}

/// IPv6 clients usually hold a whole /64, so that is what one client is.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// How often a full per-IP map is swept for buckets that have refilled.
const PRUNE_EVERY_MS: u64 = 1_000;

impl AuthLimiter {
    pub fn new(cfg: &AuthLimitConfig, clock: SharedClock) -> Self {
        Self {
            clock,
            per_ip: Rule::new(cfg.per_ip, cfg.per_ip_refill),
            global: Rule::new(cfg.global, cfg.global_refill),
            max_tracked: cfg.max_tracked,
            state: Mutex::new(State::default()),
        }
    }

    /// Takes a token from the client's bucket and the global one, or says which is empty. The
    /// `bool` in the error is true for the first refusal of an episode (the one worth logging).
    pub fn try_acquire(&self, ip: IpAddr) -> Result<Ticket, (Limited, bool)> {
        let key = client_key(ip);
        let now = self.clock.now_ms();
        let mut st = self.state.lock();
        let global_tat = match self.global.map(|r| r.charge(&st.global, now)) {
            Some(None) => {
                return Err((
                    Limited::Global,
                    !std::mem::replace(&mut st.global.warned, true),
                ));
            }
            other => other.flatten(),
        };
        let ip_tat = match self.per_ip {
            Some(rule) => {
                let bucket = st.per_ip.get(&key).copied().unwrap_or_default();
                match rule.charge(&bucket, now) {
                    Some(tat) => Some(tat),
                    None => {
                        let first = st
                            .per_ip
                            .get_mut(&key)
                            .is_some_and(|b| !std::mem::replace(&mut b.warned, true));
                        return Err((Limited::PerIp, first));
                    }
                }
            }
            None => None,
        };
        if let Some(tat) = global_tat {
            st.global = Bucket { tat, warned: false };
        }
        let ip_charged = match ip_tat {
            Some(tat) => self.store(&mut st, key, tat, now),
            None => false,
        };
        Ok(Ticket {
            key,
            ip_charged,
            global_charged: global_tat.is_some(),
        })
    }

    /// Records the client's new arrival time; false when the map is full and it is not tracked.
    fn store(&self, st: &mut State, key: IpAddr, tat: u64, now: u64) -> bool {
        if !st.per_ip.contains_key(&key) && st.per_ip.len() >= self.max_tracked {
            if now.saturating_sub(st.last_prune) >= PRUNE_EVERY_MS {
                st.last_prune = now;
                st.per_ip.retain(|_, b| b.tat > now);
            }
            if st.per_ip.len() >= self.max_tracked {
                return false;
            }
        }
        st.per_ip.insert(key, Bucket { tat, warned: false });
        true
    }

    /// The password was right: the attempt costs nothing.
    pub fn succeeded(&self, ticket: Ticket) {
        let mut st = self.state.lock();
        if ticket.global_charged
            && let Some(rule) = self.global
        {
            st.global.tat = st.global.tat.saturating_sub(rule.refill_ms);
        }
        if ticket.ip_charged
            && let Some(rule) = self.per_ip
            && let Some(b) = st.per_ip.get_mut(&ticket.key)
        {
            b.tat = b.tat.saturating_sub(rule.refill_ms);
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.state.lock().per_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_clock::ManualClock;
    use std::sync::Arc;

    fn limiter(cfg: AuthLimitConfig) -> (AuthLimiter, ManualClock) {
        let clock = ManualClock::new(1_000_000);
        (AuthLimiter::new(&cfg, Arc::new(clock.clone())), clock)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_ip_bucket_allows_the_burst_then_one_per_refill() {
        let (l, clock) = limiter(AuthLimitConfig {
            per_ip: 3,
            per_ip_refill: Duration::from_secs(10),
            global: 0,
            ..AuthLimitConfig::default()
        });
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            let _ = l.try_acquire(a).unwrap();
        }
        assert_eq!(l.try_acquire(a).unwrap_err(), (Limited::PerIp, true));
        assert_eq!(l.try_acquire(a).unwrap_err(), (Limited::PerIp, false));
        // Another client is not affected.
        let _ = l.try_acquire(ip("192.0.2.2")).unwrap();
        clock.advance(Duration::from_millis(9_999));
        assert!(l.try_acquire(a).is_err());
        clock.advance(Duration::from_millis(1));
        let _ = l.try_acquire(a).unwrap();
        assert!(l.try_acquire(a).is_err());
    }

    #[test]
    fn a_right_password_gives_its_token_back() {
        let (l, _clock) = limiter(AuthLimitConfig {
            per_ip: 1,
            global: 1,
            ..AuthLimitConfig::default()
        });
        let a = ip("192.0.2.1");
        for _ in 0..5 {
            let t = l.try_acquire(a).unwrap();
            l.succeeded(t);
        }
        let _failed = l.try_acquire(a).unwrap();
        assert!(l.try_acquire(a).is_err());
    }

    #[test]
    fn global_bucket_binds_all_clients_and_ipv6_counts_per_64() {
        let (l, clock) = limiter(AuthLimitConfig {
            per_ip: 2,
            global: 3,
            global_refill: Duration::from_secs(1),
            ..AuthLimitConfig::default()
        });
        let _ = l.try_acquire(ip("2001:db8::1")).unwrap();
        let _ = l.try_acquire(ip("2001:db8::2")).unwrap();
        assert_eq!(
            l.try_acquire(ip("2001:db8::3")).unwrap_err().0,
            Limited::PerIp,
            "same /64"
        );
        let _ = l.try_acquire(ip("192.0.2.9")).unwrap();
        assert_eq!(
            l.try_acquire(ip("192.0.2.10")).unwrap_err().0,
            Limited::Global
        );
        clock.advance(Duration::from_secs(1));
        let _ = l.try_acquire(ip("192.0.2.10")).unwrap();
        // IPv4-mapped IPv6 is the IPv4 client.
        let _ = l.try_acquire(ip("::ffff:192.0.2.9"));
        assert!(l.state.lock().per_ip.contains_key(&ip("192.0.2.9")));
    }

    #[test]
    fn the_per_ip_map_stays_bounded_and_sheds_refilled_clients() {
        let (l, clock) = limiter(AuthLimitConfig {
            per_ip: 5,
            per_ip_refill: Duration::from_secs(1),
            global: 0,
            max_tracked: 100,
            ..AuthLimitConfig::default()
        });
        for i in 0..10_000u32 {
            let _ = l.try_acquire(IpAddr::V4(i.into()));
        }
        assert_eq!(l.tracked(), 100);
        // Once their buckets refilled, old clients make room for new ones.
        clock.advance(Duration::from_secs(2));
        let _ = l.try_acquire(ip("198.51.100.1")).unwrap();
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let (l, _clock) = limiter(AuthLimitConfig {
            per_ip: 0,
            global: 0,
            ..AuthLimitConfig::default()
        });
        for _ in 0..1_000 {
            let _ = l.try_acquire(ip("192.0.2.1")).unwrap();
        }
        assert_eq!(l.tracked(), 0);
    }
}
