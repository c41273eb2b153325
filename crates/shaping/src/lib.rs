//! Traffic shaping: the one place that decides how fast and how wide cartero may send to a
//! destination from a source (SPEC §2.5).
//!
//! The MTA asks a [`Limits`] implementation "may I open a connection / send a message to
//! (source, site) now?". [`StaticLimits`] answers from the configured, layered limits and keeps its
//! counters in memory; adaptive rules (issue 3) and a Redis-backed implementation for several nodes
//! (roadmap) take over behind the same trait.
//!
//! # Adaptive pieces (tested, not yet wired into the MTA)
//! [`rules`], [`aimd`], [`warmup`] and [`sweep`] are pure state machines over an explicit `now`.
//! The intended wiring, so the next change has one obvious shape:
//! - an `AdaptiveLimits` implementing [`Limits`] that wraps [`StaticLimits`] and holds, per
//!   [`QueueKey`], an `Aimd`, active suspensions/throttles/`Set` overrides from `rules`, and per
//!   (source, provider) a `Warmup`, per (source, domain) a `Sweep`;
//! - `cartero-mta`'s `queue/settle.rs` (the one place outcomes are settled) reports every reply to
//!   it (a new `Limits::observe`), and turns each triggered action into a `shaping` event;
//! - `queue/dispatch.rs` already asks `open_connection` / `reserve_message`: suspensions answer
//!   `Wait::Until`, the live rate is `min(configured, aimd)` × active throttle factors;
//! - a suspended site requeues its recipients without counting an attempt (settle needs a
//!   disposition for that), and `Bounce` fails what is queued for the site with the reply;
//! - `AimdSnapshot` and `WarmupState` are persisted (e.g. beside the spool) and restored at start.

pub mod aimd;
mod config;
mod rate;
pub mod rules;
pub mod sweep;
pub mod warmup;

pub use aimd::{Aimd, AimdConfig, AimdSnapshot};
pub use config::{LimitsSpec, Rate, RateParseError, ShapingConfig, TlsPolicy};
pub use rate::Pacer;
pub use rules::{Action, ResponseRule, RuleEngine, RuleError, Trigger, Triggered, default_rules};
pub use sweep::{Outcome, Sweep, SweepAction, SweepConfig, SweepKind, SweepMetric};
pub use warmup::{DEFAULT_STAGES, OverCap, Warmup, WarmupConfig, WarmupState};

use cartero_clock::{SharedClock, UnixMillis};
use parking_lot::Mutex;
use std::collections::HashMap;
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
    pub tls: TlsPolicy,
}

/// Why the MTA may not send right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// The connection limit is reached; wait for one to close.
    Connections,
    /// The rate allows the next message at this time.
    Until(UnixMillis),
}

/// Counts one open connection; dropping it releases the slot.
#[derive(Debug)]
pub struct ConnectionPermit {
    counter: Arc<Mutex<u32>>,
}

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        let mut n = self.counter.lock();
        *n = n.saturating_sub(1);
    }
}

/// The shaping seam. Implementations must be cheap and non-blocking: they sit on the delivery path.
pub trait Limits: Send + Sync {
    /// Effective limits for a queue. `domain` is the routing domain that made the MTA ask; it lets
    /// per-domain layers apply.
    fn params(&self, key: &QueueKey, domain: &str) -> Params;
    /// Takes a connection slot, or says to wait.
    fn open_connection(&self, key: &QueueKey, domain: &str) -> Result<ConnectionPermit, Wait>;
    /// Takes a message slot from the rate, or says when the next one is free.
    fn reserve_message(&self, key: &QueueKey, domain: &str) -> Result<(), Wait>;
    /// Connections open now for a queue (for `cartero queue` and metrics).
    fn open_connections(&self, key: &QueueKey) -> u32;
}

#[derive(Debug, Default)]
struct QueueState {
    connections: Arc<Mutex<u32>>,
    pacer: Pacer,
}

/// Limits from configuration only, counters in process memory.
#[derive(Debug)]
pub struct StaticLimits {
    config: ShapingConfig,
    clock: SharedClock,
    queues: Mutex<HashMap<QueueKey, QueueState>>,
}

impl StaticLimits {
    pub fn new(config: ShapingConfig, clock: SharedClock) -> Self {
        Self {
            config,
            clock,
            queues: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> &ShapingConfig {
        &self.config
    }
}

impl Limits for StaticLimits {
    fn params(&self, key: &QueueKey, domain: &str) -> Params {
        self.config.resolve(&key.source, &key.site, domain)
    }

    fn open_connection(&self, key: &QueueKey, domain: &str) -> Result<ConnectionPermit, Wait> {
        let max = self.params(key, domain).max_connections;
        let mut queues = self.queues.lock();
        let state = queues.entry(key.clone()).or_default();
        let mut n = state.connections.lock();
        if *n >= max {
            return Err(Wait::Connections);
        }
        *n += 1;
        Ok(ConnectionPermit {
            counter: state.connections.clone(),
        })
    }

    fn reserve_message(&self, key: &QueueKey, domain: &str) -> Result<(), Wait> {
        let Some(rate) = self.params(key, domain).max_message_rate else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let mut queues = self.queues.lock();
        let state = queues.entry(key.clone()).or_default();
        state.pacer.reserve(rate, now).map_err(Wait::Until)
    }

    fn open_connections(&self, key: &QueueKey) -> u32 {
        self.queues
            .lock()
            .get(key)
            .map_or(0, |s| *s.connections.lock())
    }
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

    fn limits(toml_text: &str) -> (StaticLimits, ManualClock) {
        let clock = ManualClock::new(1_000_000);
        let cfg: ShapingConfig = toml::from_str(toml_text).unwrap();
        (StaticLimits::new(cfg, Arc::new(clock.clone())), clock)
    }

    #[test]
    fn connection_slots_are_counted_and_released_on_drop() {
        let (l, _) = limits("[default]\nmax_connections = 2\n");
        let a = l.open_connection(&key(), "example.test").unwrap();
        let _b = l.open_connection(&key(), "example.test").unwrap();
        assert_eq!(
            l.open_connection(&key(), "example.test").unwrap_err(),
            Wait::Connections
        );
        assert_eq!(l.open_connections(&key()), 2);
        drop(a);
        assert!(l.open_connection(&key(), "example.test").is_ok());
    }

    #[test]
    fn message_rate_is_spread_evenly_not_bursty() {
        // 3600/h must mean one per second, not 3600 in the first second.
        let (l, clock) = limits("[default]\nmax_message_rate = \"3600/h\"\n");
        assert!(l.reserve_message(&key(), "example.test").is_ok());
        assert_eq!(
            l.reserve_message(&key(), "example.test"),
            Err(Wait::Until(1_001_000))
        );
        clock.advance(Duration::from_millis(999));
        assert!(l.reserve_message(&key(), "example.test").is_err());
        clock.advance(Duration::from_millis(1));
        assert!(l.reserve_message(&key(), "example.test").is_ok());
    }

    #[test]
    fn domain_layer_overrides_default_and_unrelated_domains_keep_default() {
        let (l, _) = limits(
            "[default]\nmax_connections = 10\n[domains.\"slow.test\"]\nmax_connections = 1\n",
        );
        assert_eq!(l.params(&key(), "slow.test").max_connections, 1);
        assert_eq!(l.params(&key(), "other.test").max_connections, 10);
    }
}
