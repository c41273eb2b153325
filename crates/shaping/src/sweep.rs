//! Sweep rules (SPEC §2.5): per (source, domain), over the last hour and above a minimum volume,
//! too many invalid recipients + timeouts (bounce classes 10 and 24) or too many complaints
//! throttle or suspend the queue. Counters live in per-minute buckets so memory is bounded no
//! matter the volume.

use crate::rules::millis;
use cartero_bounce::BounceClass;
use cartero_clock::UnixMillis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

const BUCKET_MS: u64 = 60_000;

/// Sweep thresholds. Ratios are fractions (0.03 = 3%).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SweepConfig {
    /// Look-back window (whole minutes; at most 24 h).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Attempts needed in the window before any ratio is judged.
    pub min_volume: u64,
    pub hard_throttle: f64,
    pub hard_suspend: f64,
    pub complaint_throttle: f64,
    pub complaint_suspend: f64,
    /// Rate multiplier of a sweep throttle.
    pub throttle_factor: f64,
    #[serde(with = "humantime_serde")]
    pub throttle_for: Duration,
    #[serde(with = "humantime_serde")]
    pub suspend_for: Duration,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(3_600),
            min_volume: 500,
            hard_throttle: 0.03,
            hard_suspend: 0.10,
            complaint_throttle: 0.002,
            complaint_suspend: 0.005,
            throttle_factor: 0.5,
            throttle_for: Duration::from_secs(3_600),
            suspend_for: Duration::from_secs(4 * 3_600),
        }
    }
}

/// One outcome fed to the sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Accepted by the receiver.
    Delivered,
    /// Failed (permanently or transiently) with this bounce class.
    Failed { class: BounceClass },
    /// A spam complaint (FBL) for a message sent from this queue.
    Complaint,
}

impl Outcome {
    /// Whether the outcome counts against one of the sweep's ratios.
    pub fn is_bad(self) -> bool {
        match self {
            Outcome::Delivered => false,
            Outcome::Failed { class } => is_invalid_or_timeout(class),
            Outcome::Complaint => true,
        }
    }
}

/// The failures the hard-bounce ratio counts.
fn is_invalid_or_timeout(class: BounceClass) -> bool {
    matches!(class, BounceClass::INVALID_RECIPIENT | BounceClass::TIMEOUT)
}

/// Which ratio tripped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SweepMetric {
    /// Bounce classes 10 (invalid recipient) + 24 (timeout) over attempts.
    InvalidAndTimeouts,
    /// Complaints over delivered messages.
    Complaints,
}

/// What the sweep asks for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SweepKind {
    Throttle { factor: f64 },
    Suspend,
}

/// A sweep decision with its cause.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepAction {
    pub kind: SweepKind,
    pub until: UnixMillis,
    pub metric: SweepMetric,
    /// Bad outcomes counted in the window.
    pub count: u64,
    /// The volume they are a share of.
    pub volume: u64,
    pub ratio: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    minute: u64,
    attempts: u64,
    invalid_or_timeout: u64,
    delivered: u64,
    complaints: u64,
}

/// Sweep counters of one (source, domain).
#[derive(Debug, Clone)]
pub struct Sweep {
    config: SweepConfig,
    buckets: Vec<Bucket>,
}

impl Sweep {
    pub fn new(config: SweepConfig) -> Self {
        let minutes = (millis(config.window) / BUCKET_MS).clamp(1, 24 * 60);
        Self {
            buckets: vec![Bucket::default(); minutes as usize],
            config,
        }
    }

    /// Counts one outcome at `now`.
    pub fn record(&mut self, outcome: Outcome, now: UnixMillis) {
        let b = self.bucket(now);
        match outcome {
            Outcome::Delivered => {
                b.attempts += 1;
                b.delivered += 1;
            }
            Outcome::Failed { class } => {
                b.attempts += 1;
                if is_invalid_or_timeout(class) {
                    b.invalid_or_timeout += 1;
                }
            }
            Outcome::Complaint => b.complaints += 1,
        }
    }

    /// Judges the window ending at `now`; the most severe action wins (suspend over throttle).
    pub fn evaluate(&self, now: UnixMillis) -> Option<SweepAction> {
        let t = self.totals(now);
        let c = &self.config;
        let hard = self.judge(
            SweepMetric::InvalidAndTimeouts,
            t.invalid_or_timeout,
            t.attempts,
            (c.hard_throttle, c.hard_suspend),
            now,
        );
        let complaints = self.judge(
            SweepMetric::Complaints,
            t.complaints,
            t.delivered,
            (c.complaint_throttle, c.complaint_suspend),
            now,
        );
        match (hard, complaints) {
            (Some(a), Some(b)) if matches!(b.kind, SweepKind::Suspend) => {
                Some(if matches!(a.kind, SweepKind::Suspend) {
                    a
                } else {
                    b
                })
            }
            (Some(a), _) => Some(a),
            (None, b) => b,
        }
    }

    /// Whether the window holds nothing at `now` (the entry can be dropped).
    pub fn is_idle(&self, now: UnixMillis) -> bool {
        let t = self.totals(now);
        t.attempts == 0 && t.complaints == 0
    }

    fn judge(
        &self,
        metric: SweepMetric,
        count: u64,
        volume: u64,
        (throttle, suspend): (f64, f64),
        now: UnixMillis,
    ) -> Option<SweepAction> {
        if volume == 0 || volume < self.config.min_volume {
            return None;
        }
        let ratio = count as f64 / volume as f64;
        let kind = if ratio >= suspend {
            SweepKind::Suspend
        } else if ratio >= throttle {
            SweepKind::Throttle {
                factor: self.config.throttle_factor,
            }
        } else {
            return None;
        };
        let dur = match kind {
            SweepKind::Suspend => self.config.suspend_for,
            SweepKind::Throttle { .. } => self.config.throttle_for,
        };
        Some(SweepAction {
            kind,
            until: now.saturating_add(millis(dur)),
            metric,
            count,
            volume,
            ratio,
        })
    }

    fn bucket(&mut self, now: UnixMillis) -> &mut Bucket {
        let minute = now / BUCKET_MS;
        let len = self.buckets.len() as u64;
        let idx = (minute % len) as usize;
        let slot = &mut self.buckets[idx];
        if slot.minute != minute {
            *slot = Bucket {
                minute,
                ..Bucket::default()
            };
        }
        slot
    }

    fn totals(&self, now: UnixMillis) -> Bucket {
        let minute = now / BUCKET_MS;
        let len = self.buckets.len() as u64;
        let mut t = Bucket::default();
        // A bucket counts when its minute is one of the last `len` minutes, current included.
        for b in self
            .buckets
            .iter()
            .filter(|b| b.minute <= minute && minute - b.minute < len)
        {
            t.attempts += b.attempts;
            t.invalid_or_timeout += b.invalid_or_timeout;
            t.delivered += b.delivered;
            t.complaints += b.complaints;
        }
        t
    }
}
