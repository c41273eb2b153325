//! Live rate control (SPEC §2.5): additive increase while the site answers 2xx, multiplicative
//! decrease on throttling replies, never above the configured maximum and never below a floor.
//! The learned rate is what makes a restart start from experience instead of from the maximum.
//!
//! A queue with no configured rate is unlimited until its site first throttles: the decrease
//! then starts from the rate actually measured when the throttle came, which is the best
//! estimate of the site's limit there is.

use crate::Rate;
use crate::rules::millis;
use cartero_clock::UnixMillis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// AIMD parameters. Rates are messages per hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AimdConfig {
    /// Floor of the live rate: throttling never pushes it below this.
    pub min: f64,
    /// Messages/hour added per accepted message. Because it is per message, the rate grows
    /// faster the faster the site accepts: recovery takes about the same time at any scale.
    pub increase_per_success: f64,
    /// Multiplier applied on a throttle (0 < factor < 1).
    pub decrease_factor: f64,
    /// Throttles within this interval of the last decrease count once: a burst of 421s on several
    /// connections reports one overload, not many.
    #[serde(with = "humantime_serde")]
    pub decrease_holdoff: Duration,
}

impl Default for AimdConfig {
    fn default() -> Self {
        Self {
            min: 60.0,
            increase_per_success: 100.0,
            decrease_factor: 0.85,
            decrease_holdoff: Duration::from_secs(2),
        }
    }
}

/// The persisted part of an [`Aimd`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AimdSnapshot {
    /// Learned rate, messages per hour; `None` = at the configured maximum (or unlimited).
    pub rate: Option<f64>,
    /// When the last decrease happened, if any.
    pub last_decrease: Option<UnixMillis>,
}

/// The live rate of one (source, site) queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    config: AimdConfig,
    /// Configured maximum, messages per hour.
    ceiling: Option<f64>,
    rate: Option<f64>,
    last_decrease: Option<UnixMillis>,
}

impl Aimd {
    /// Starts at the ceiling: until a site complains, the configured limit is trusted.
    pub fn new(config: AimdConfig, ceiling: Option<Rate>) -> Self {
        Self {
            config: sanitize(config),
            ceiling: ceiling.map(Rate::per_hour),
            rate: None,
            last_decrease: None,
        }
    }

    /// Starts from a persisted snapshot, clamped to the (possibly changed) bounds.
    pub fn restore(config: AimdConfig, ceiling: Option<Rate>, snapshot: AimdSnapshot) -> Self {
        let mut a = Self::new(config, ceiling);
        a.rate = snapshot.rate.filter(|r| r.is_finite());
        a.last_decrease = snapshot.last_decrease;
        a.clamp();
        a
    }

    pub fn snapshot(&self) -> AimdSnapshot {
        AimdSnapshot {
            rate: self.rate,
            last_decrease: self.last_decrease,
        }
    }

    /// Applies new bounds (configuration reload) and clamps the live rate into them.
    pub fn reconfigure(&mut self, config: AimdConfig, ceiling: Option<Rate>) {
        self.config = sanitize(config);
        self.ceiling = ceiling.map(Rate::per_hour);
        self.clamp();
    }

    fn clamp(&mut self) {
        if let Some(r) = self.rate {
            let r = r.max(self.config.min);
            self.rate = match self.ceiling {
                Some(c) if r >= c => None,
                _ => Some(r),
            };
        }
    }

    /// A message was accepted (2xx). Successes inside the hold-off after a decrease are ignored:
    /// they were sent at the old, too-high rate and say nothing about the new one.
    pub fn on_success(&mut self, now: UnixMillis) {
        if self.in_holdoff(now) {
            return;
        }
        if let Some(r) = self.rate {
            self.rate = Some(r + self.config.increase_per_success);
            self.clamp();
        }
    }

    /// A throttling reply. `measured` is the rate (messages/hour) the queue was actually sending
    /// at; the decrease starts from it when it is lower than the live limit. Returns whether the
    /// rate was decreased.
    pub fn on_throttle(&mut self, now: UnixMillis, measured: f64) -> bool {
        if self.in_holdoff(now) {
            return false;
        }
        let limit = self.current().unwrap_or(f64::INFINITY);
        let base = if measured.is_finite() && measured >= 1.0 {
            limit.min(measured)
        } else if limit.is_finite() {
            limit
        } else {
            // Unlimited and nothing sent lately (a refusal before the first message): there is
            // no rate to go down from, and the floor would be a guess far too low.
            return false;
        };
        self.rate = Some((base * self.config.decrease_factor).max(self.config.min));
        self.last_decrease = Some(now);
        true
    }

    /// Live limit in messages per hour; `None` = unlimited.
    pub fn current(&self) -> Option<f64> {
        self.rate.or(self.ceiling)
    }

    /// The learned limit alone (messages per hour), `None` when nothing was learned. Callers
    /// that combine it with the configured limit should use this, not [`Aimd::current`], whose
    /// ceiling may be stale until the next observation after a reload.
    pub fn learned(&self) -> Option<f64> {
        self.rate
    }

    /// Whether the live limit is below the configured one (something was learned).
    pub fn is_reduced(&self) -> bool {
        self.rate.is_some()
    }

    /// Live limit as a pacer [`Rate`] (at least 1/h).
    pub fn current_rate(&self) -> Option<Rate> {
        self.current().map(|r| Rate {
            // Bounded by clamp(); the cast saturates anyway.
            count: r.round().clamp(1.0, f64::from(u32::MAX)) as u32,
            per_ms: 3_600_000,
        })
    }

    fn in_holdoff(&self, now: UnixMillis) -> bool {
        self.last_decrease
            .is_some_and(|t| now.saturating_sub(t) < millis(self.config.decrease_holdoff))
    }
}

/// Makes any configuration safe to compute with: a finite positive floor, a non-negative step
/// and a decrease factor that actually decreases.
fn sanitize(mut c: AimdConfig) -> AimdConfig {
    let finite_or = |v: f64, d: f64| if v.is_finite() { v } else { d };
    c.min = finite_or(c.min, 1.0).max(1.0);
    c.increase_per_success = finite_or(c.increase_per_success, 0.0).max(0.0);
    c.decrease_factor = finite_or(c.decrease_factor, 0.5);
    if !(c.decrease_factor > 0.0 && c.decrease_factor < 1.0) {
        c.decrease_factor = 0.5;
    }
    c
}
