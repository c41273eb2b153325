//! What survives a restart: learned live rates and connection limits, throttles and limits
//! imposed by rules and sweeps (until they end), warm-up stages and counters, and suspensions. Written as one JSON document; the MTA decides where and when.

use super::{AdaptiveLimits, Scope, Suspension, Timed};
use crate::warmup::{Warmup, WarmupState};
use crate::{Aimd, AimdSnapshot, QueueKey};
use cartero_clock::UnixMillis;
use serde::{Deserialize, Serialize};

/// Format version; a state file of another version is ignored with a warning by the caller.
pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    pub source: String,
    pub site: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aimd: Option<AimdSnapshot>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub live_connections: Option<u32>,
    /// Rate (messages/hour) imposed by a throttle rule or sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<TimedEntry<f64>>,
    /// Connection limit imposed by a `set` rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_connections: Option<TimedEntry<u32>>,
}

/// A limit imposed until a time, with what imposed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimedEntry<T> {
    pub value: T,
    pub until: UnixMillis,
    pub cause: String,
}

fn save<T: Copy>(t: &Option<Timed<T>>, now: UnixMillis) -> Option<TimedEntry<T>> {
    t.as_ref().filter(|t| t.until > now).map(|t| TimedEntry {
        value: t.value,
        until: t.until,
        cause: t.cause.clone(),
    })
}

fn load<T>(e: Option<TimedEntry<T>>, now: UnixMillis) -> Option<Timed<T>> {
    e.filter(|e| e.until > now).map(|e| Timed {
        value: e.value,
        until: e.until,
        cause: e.cause,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmupEntry {
    pub source: String,
    /// Provider name, or `site:NAME` for destinations of no known provider.
    pub provider: String,
    pub state: WarmupState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuspensionEntry {
    pub scope: Scope,
    pub until: Option<UnixMillis>,
    pub reason: String,
    pub since: UnixMillis,
}

/// The persisted state of an [`AdaptiveLimits`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapingState {
    pub version: u32,
    pub queues: Vec<QueueEntry>,
    pub warmup: Vec<WarmupEntry>,
    pub suspensions: Vec<SuspensionEntry>,
}

impl AdaptiveLimits {
    /// The state to persist, and clears the "changed" mark.
    pub fn snapshot(&self) -> ShapingState {
        let now = self.now();
        let mut inner = self.inner.lock();
        inner.dirty = false;
        let mut queues: Vec<QueueEntry> = inner
            .queues
            .iter()
            .filter(|(_, q)| q.carries_state(now))
            .map(|(k, q)| QueueEntry {
                source: k.source.to_string(),
                site: k.site.to_string(),
                aimd: q
                    .aimd
                    .as_ref()
                    .filter(|a| a.is_reduced())
                    .map(Aimd::snapshot),
                live_connections: q.live_connections,
                throttle: save(&q.throttle, now),
                set_connections: save(&q.set_connections, now),
            })
            .collect();
        queues.sort_by(|a, b| (&a.source, &a.site).cmp(&(&b.source, &b.site)));
        let mut warmup: Vec<WarmupEntry> = inner
            .warmups
            .iter_mut()
            .map(|((source, provider), w)| {
                w.roll(now);
                WarmupEntry {
                    source: source.clone(),
                    provider: provider.clone(),
                    state: w.state(),
                }
            })
            .collect();
        warmup.sort_by(|a, b| (&a.source, &a.provider).cmp(&(&b.source, &b.provider)));
        let mut suspensions: Vec<SuspensionEntry> = inner
            .suspensions
            .iter()
            .filter(|(_, s)| s.until.is_none_or(|u| u > now))
            .map(|(scope, s)| SuspensionEntry {
                scope: scope.clone(),
                until: s.until,
                reason: s.reason.clone(),
                since: s.since,
            })
            .collect();
        suspensions.sort_by(|a, b| a.scope.cmp(&b.scope));
        ShapingState {
            version: STATE_VERSION,
            queues,
            warmup,
            suspensions,
        }
    }

    /// Whether something changed since the last [`AdaptiveLimits::snapshot`].
    pub fn is_dirty(&self) -> bool {
        self.inner.lock().dirty
    }

    /// Continues from a persisted state (at start, before any traffic).
    pub fn restore(&self, state: ShapingState) {
        let c = self.compiled();
        let now = self.now();
        let mut inner = self.inner.lock();
        for e in state.queues {
            let key = QueueKey {
                source: e.source.into(),
                site: e.site.into(),
            };
            let q = inner.queues.entry(key).or_default();
            // The ceiling is re-applied at the first use, when the destination is known.
            q.aimd = e
                .aimd
                .map(|s| Aimd::restore(c.cfg.adaptive.aimd.clone(), None, s));
            q.live_connections = e.live_connections;
            q.throttle = load(e.throttle, now);
            q.set_connections = load(e.set_connections, now);
        }
        for e in state.warmup {
            let w = Warmup::restore(c.cfg.warmup.clone(), e.state);
            inner.warmups.insert((e.source, e.provider), w);
        }
        for e in state.suspensions {
            if e.until.is_none_or(|u| u > now) {
                let s = Suspension {
                    until: e.until,
                    reason: e.reason,
                    since: e.since,
                };
                inner.suspensions.insert(e.scope, s);
            }
        }
    }
}
