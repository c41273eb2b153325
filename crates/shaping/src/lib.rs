//! Traffic shaping: the one place that decides how fast and how wide cartero may send to a
//! destination from a source (SPEC §2.4–2.5).
//!
//! The MTA asks a [`Limits`] implementation "may this source take a recipient for that site?"
//! ([`Limits::admit`]: suspensions, warm-up caps, sources to avoid), "may I open a connection /
//! send a message now?" ([`Limits::open_connection`], [`Limits::reserve_message`]) and tells it
//! every outcome ([`Limits::observe`]), getting back what to do with the recipient and the
//! adaptive actions taken. [`AdaptiveLimits`] is the in-process implementation; a Redis-backed
//! one for several nodes (roadmap) takes over behind the same trait.
//!
//! The adaptive pieces are pure state machines over an explicit `now`: [`rules`] (response
//! rules), [`aimd`] (live rate), [`warmup`] (IP warm-up) and [`sweep`] (sweep rules).

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod adaptive_config;
pub mod aimd;
mod config;
mod engine;
mod provider;
mod rate;
pub mod rules;
pub mod sweep;
pub mod warmup;

pub use adaptive_config::{AdaptiveConfig, DEFAULT_THROTTLE_PATTERNS, ShapingConfigError};
pub use aimd::{Aimd, AimdConfig, AimdSnapshot};
pub use config::{LimitsSpec, Rate, RateParseError, ShapingConfig};
pub use engine::*;
pub use provider::{ProviderSpec, builtin_providers};
pub use rate::Pacer;
pub use rules::{Action, ResponseRule, RuleEngine, RuleError, Trigger, Triggered, default_rules};
pub use sweep::{Outcome, Sweep, SweepAction, SweepConfig, SweepKind, SweepMetric};
pub use warmup::{DEFAULT_STAGES, OverCap, Warmup, WarmupConfig, WarmupState};

use cartero_clock::UnixMillis;
use cartero_smtp::io::{PhaseTimeouts, TlsMode};
use parking_lot::Mutex;
use std::sync::Arc;

/// Identifies a ready queue: an egress source sending to a site.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueKey {
    /// Egress source name.
    pub source: Arc<str>,
    /// Site name (the canonical MX host set, or a domain with limits of its own).
    pub site: Arc<str>,
}

/// Effective limits for one queue, every layer applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub max_connections: u32,
    pub max_messages_per_connection: u32,
    pub max_recipients_per_message: u32,
    /// `None` = unlimited.
    pub max_message_rate: Option<Rate>,
    /// New connections per time unit; `None` = unlimited.
    pub max_connection_rate: Option<Rate>,
    pub tls: TlsMode,
    /// Phase timeouts set by a layer; unset ones come from the MTA's defaults.
    pub timeouts: PhaseTimeouts,
}

/// Why the MTA may not send right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The connection limit is reached; wait for one to close.
    Connections,
    /// The rate allows the next message at this time.
    Until(UnixMillis),
}

/// Counts one open connection; dropping it releases the slot. Until [`ConnectionPermit::
/// established`] is called the connection also counts as still dialing.
#[derive(Debug)]
pub struct ConnectionPermit {
    counter: Arc<Mutex<u32>>,
    /// Connections of the queue still dialing; `None` once this one is established.
    dialing: Option<Arc<Mutex<u32>>>,
}

impl ConnectionPermit {
    /// The site greeted the connection: it no longer counts as dialing.
    pub fn established(&mut self) {
        if let Some(d) = self.dialing.take() {
            let mut n = d.lock();
            *n = n.saturating_sub(1);
        }
    }
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.established();
        let mut n = self.counter.lock();
        *n = n.saturating_sub(1);
    }
}

/// The shaping seam. Implementations must be cheap and non-blocking: they sit on the delivery path.
pub trait Limits: Send + Sync {
    /// Live limits for a queue: configured layers narrowed by what was learned and imposed.
    fn params(&self, key: &QueueKey, t: &Target) -> Params;
    /// Takes a connection slot, or says to wait.
    fn open_connection(&self, key: &QueueKey, t: &Target) -> Result<ConnectionPermit, Wait>;
    /// Takes a message slot from the rate, or says when the next one is free.
    fn reserve_message(&self, key: &QueueKey, t: &Target) -> Result<(), Wait>;
    /// Connections open now for a queue (for `cartero queue` and metrics).
    fn open_connections(&self, key: &QueueKey) -> u32;
    /// Whether the queue may take one more recipient: not suspended, not a source to avoid
    /// (unless `allow_avoided`), within the warm-up cap (a slot is taken on success; give it
    /// back with [`Limits::release`]).
    fn admit(&self, key: &QueueKey, t: &Target, allow_avoided: bool) -> Result<(), Hold>;
    /// A recipient admitted on `key` left its queue.
    fn release(&self, key: &QueueKey, t: &Target, sent: Sent);
    /// An outcome on `key`: returns what to do with the recipient and the actions taken.
    fn observe(&self, key: &QueueKey, t: &Target, what: Observed) -> Verdict;
    /// A spam complaint about a message `source` sent to a recipient at `domain` (from a
    /// feedback loop, so possibly long after the queue that carried it went idle). Feeds the
    /// complaint sweep of (source, domain); its actions apply to the queue that last sent there.
    fn complaint(&self, source: &str, domain: &str) -> Verdict;
    /// Suspends a scope until a time (`None` = until resumed).
    fn suspend(&self, scope: Scope, until: Option<UnixMillis>, reason: &str) -> ShapingAction;
    /// Lifts a suspension; `None` when there was none.
    fn resume(&self, scope: &Scope) -> Option<ShapingAction>;
    /// Everything an operator needs to see.
    fn view(&self) -> ShapingView;
    /// Actions taken outside [`Limits::observe`] (warm-up promotions, caps reached) since the
    /// last call, for the caller to publish.
    fn take_actions(&self) -> Vec<ShapingAction>;
    /// Whether `domain` has limits of its own in the configuration in force, so the MTA queues
    /// it apart from the rest of its site.
    fn has_own_limits(&self, domain: &str) -> bool;
    /// The provider a destination belongs to (matched by domain or MX host suffix), if any.
    fn provider_of(&self, domain: &str, mx_hosts: &[&str]) -> Option<String>;
    /// Applies a new configuration (`warming` = the sources in warm-up); on error the running
    /// configuration stays.
    fn reload(&self, cfg: ShapingConfig, warming: &[String]) -> Result<(), ShapingConfigError>;
    /// The learned state for the caller to persist, when it changed since the last call.
    /// `None` when nothing changed, or for an implementation that keeps its state elsewhere.
    fn changed_state(&self) -> Option<ShapingState>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_clock::ManualClock;
    use std::time::Duration;

    fn key() -> QueueKey {
        QueueKey {
            source: "default".into(),
            site: "mx.example.test".into(),
        }
    }

    const T: Target = Target {
        domain: "example.test",
        provider: None,
    };

    fn limits(toml_text: &str) -> (AdaptiveLimits, ManualClock) {
        let clock = ManualClock::new(1_000_000);
        let cfg: ShapingConfig = toml::from_str(toml_text).unwrap();
        (
            AdaptiveLimits::new(cfg, &[], Arc::new(clock.clone())).unwrap(),
            clock,
        )
    }

    #[test]
    fn connection_slots_are_counted_and_released_on_drop() {
        let (l, _) = limits("[default]\nmax_connections = 2\n");
        let mut a = l.open_connection(&key(), &T).unwrap();
        a.established();
        let mut b = l.open_connection(&key(), &T).unwrap();
        b.established();
        assert_eq!(
            l.open_connection(&key(), &T).unwrap_err(),
            Wait::Connections
        );
        assert_eq!(l.open_connections(&key()), 2);
        drop(a);
        assert!(l.open_connection(&key(), &T).is_ok());
    }

    #[test]
    fn dials_in_flight_grow_with_the_connections_the_site_took() {
        let (l, clock) = limits("[default]\nmax_connections = 20\n");
        let mut first = l.open_connection(&key(), &T).unwrap();
        assert_eq!(
            l.open_connection(&key(), &T).unwrap_err(),
            Wait::Until(1_000_005),
            "one dial at a time until the site greets one"
        );
        first.established();
        let mut open = vec![first];
        // With n greeted, n/2 (at least one) may dial together.
        while open.len() < 6 {
            let mut p = l.open_connection(&key(), &T).unwrap();
            p.established();
            open.push(p);
        }
        let dials: Vec<_> = (0..3)
            .map(|_| l.open_connection(&key(), &T).unwrap())
            .collect();
        assert!(l.open_connection(&key(), &T).is_err(), "6 greeted: 3 dials");
        assert_eq!(l.open_connections(&key()), 9);
        // A dial that fails frees its place in flight.
        drop(dials);
        clock.advance(Duration::from_millis(5));
        assert!(l.open_connection(&key(), &T).is_ok());
        // Static limits (adaptive off) dial the whole configured limit at once.
        let (s, _) = limits("[default]\nmax_connections = 3\n[adaptive]\nenabled = false\n");
        let all: Vec<_> = (0..3).map(|_| s.open_connection(&key(), &T)).collect();
        assert!(all.iter().all(Result::is_ok));
    }

    #[test]
    fn message_rate_is_spread_evenly_not_bursty() {
        // 3600/h must mean one per second, not 3600 in the first second.
        let (l, clock) = limits("[default]\nmax_message_rate = \"3600/h\"\n");
        assert!(l.reserve_message(&key(), &T).is_ok());
        assert_eq!(l.reserve_message(&key(), &T), Err(Wait::Until(1_001_000)));
        clock.advance(Duration::from_millis(999));
        assert!(l.reserve_message(&key(), &T).is_err());
        clock.advance(Duration::from_millis(1));
        assert!(l.reserve_message(&key(), &T).is_ok());
    }

    #[test]
    fn connection_rate_spaces_new_connections() {
        let (l, clock) = limits("[default]\nmax_connection_rate = \"2/s\"\n");
        let mut a = l.open_connection(&key(), &T).unwrap();
        a.established();
        assert_eq!(
            l.open_connection(&key(), &T).unwrap_err(),
            Wait::Until(1_000_500)
        );
        clock.advance(Duration::from_millis(500));
        assert!(l.open_connection(&key(), &T).is_ok());
    }

    #[test]
    fn domain_layer_overrides_default_and_unrelated_domains_keep_default() {
        let (l, _) = limits(
            "[default]\nmax_connections = 10\n[domains.\"slow.test\"]\nmax_connections = 1\n",
        );
        let slow = Target {
            domain: "slow.test",
            provider: None,
        };
        assert_eq!(l.params(&key(), &slow).max_connections, 1);
        assert_eq!(l.params(&key(), &T).max_connections, 10);
    }
}
