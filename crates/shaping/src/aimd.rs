//! Live rate control (SPEC §2.5): additive increase while the site answers 2xx, multiplicative
//! decrease on throttling replies and refused connections, clamped to [min, max]. The learned rate
//! is what makes a restart start from experience instead of from the configured maximum.

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
    /// Ceiling: the configured maximum rate of the queue.
    pub max: f64,
    /// Messages/hour added per accepted message.
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
            max: 36_000.0,
            increase_per_success: 10.0,
            decrease_factor: 0.5,
            decrease_holdoff: Duration::from_secs(10),
        }
    }
}

/// The persisted part of an [`Aimd`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AimdSnapshot {
    /// Live rate, messages per hour.
    pub rate: f64,
    /// When the last decrease happened, if any.
    pub last_decrease: Option<UnixMillis>,
}

/// The live rate of one (source, site) queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    config: AimdConfig,
    rate: f64,
    last_decrease: Option<UnixMillis>,
}

impl Aimd {
    /// Starts at the maximum: until a site complains, the configured limit is trusted.
    pub fn new(config: AimdConfig) -> Self {
        let config = sanitize(config);
        Self {
            rate: config.max,
            config,
            last_decrease: None,
        }
    }

    /// Starts from a persisted snapshot, clamped to the (possibly changed) bounds.
    pub fn restore(config: AimdConfig, snapshot: AimdSnapshot) -> Self {
        let mut a = Self::new(config);
        if snapshot.rate.is_finite() {
            a.rate = snapshot.rate.clamp(a.config.min, a.config.max);
        }
        a.last_decrease = snapshot.last_decrease;
        a
    }

    /// What to persist.
    pub fn snapshot(&self) -> AimdSnapshot {
        AimdSnapshot {
            rate: self.rate,
            last_decrease: self.last_decrease,
        }
    }

    /// Applies new bounds (configuration reload) and clamps the live rate into them.
    pub fn reconfigure(&mut self, config: AimdConfig) {
        self.config = sanitize(config);
        self.rate = self.rate.clamp(self.config.min, self.config.max);
    }

    /// A message was accepted (2xx). Successes inside the hold-off after a decrease are ignored:
    /// they were sent at the old, too-high rate and say nothing about the new one.
    pub fn on_success(&mut self, now: UnixMillis) {
        if self.in_holdoff(now) {
            return;
        }
        self.rate = (self.rate + self.config.increase_per_success).min(self.config.max);
    }

    /// A throttling reply or refused connection. Returns whether the rate was decreased.
    pub fn on_throttle(&mut self, now: UnixMillis) -> bool {
        if self.in_holdoff(now) {
            return false;
        }
        self.rate = (self.rate * self.config.decrease_factor).max(self.config.min);
        self.last_decrease = Some(now);
        true
    }

    /// Live rate in messages per hour.
    pub fn current(&self) -> f64 {
        self.rate
    }

    /// Live rate as a pacer [`Rate`] (at least 1/h).
    pub fn current_rate(&self) -> Rate {
        // Rates are bounded by sanitize(); the cast saturates anyway.
        let count = self.rate.round().clamp(1.0, f64::from(u32::MAX)) as u32;
        Rate {
            count,
            per_ms: 3_600_000,
        }
    }

    fn in_holdoff(&self, now: UnixMillis) -> bool {
        self.last_decrease
            .is_some_and(|t| now.saturating_sub(t) < millis(self.config.decrease_holdoff))
    }
}

/// Makes any configuration safe to compute with: finite, ordered, positive bounds and a
/// decrease factor that actually decreases.
fn sanitize(mut c: AimdConfig) -> AimdConfig {
    let finite_or = |v: f64, d: f64| if v.is_finite() { v } else { d };
    c.min = finite_or(c.min, 1.0).max(1.0);
    c.max = finite_or(c.max, c.min).max(c.min);
    c.increase_per_success = finite_or(c.increase_per_success, 0.0).max(0.0);
    c.decrease_factor = finite_or(c.decrease_factor, 0.5);
    if !(c.decrease_factor > 0.0 && c.decrease_factor < 1.0) {
        c.decrease_factor = 0.5;
    }
    c
}
