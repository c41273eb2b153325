//! Live rate control (SPEC §2.5) of one (source, site) queue.
//!
//! Three regimes, each answering a question the site keeps asking:
//! - **Cold start.** A site nobody configured and nothing was learned about is not trusted with
//!   the whole ready queue at once: the rate starts at `start_rate` and doubles every second the
//!   queue actually uses it and the site accepts, until the first throttle (or until it is so
//!   high that it no longer limits anything).
//! - **Settled.** A throttle says the site's limit was reached. What the site *accepted* in the
//!   seconds before it throttled is the best estimate of that limit there is, so the rate goes
//!   straight to just under it (`settle_fraction` of the estimate), instead of being cut by a
//!   factor from whatever was pushed at the site — one decrease lands near the limit.
//! - **Probing.** Limits change (reputation, time of day), so above the estimate the rate steps
//!   up gently (`probe_step` of the estimate every `probe_every` of clean sending). A step that
//!   lasts a whole interval without a throttle proves the site takes more: the estimate follows,
//!   and the next step is twice as large (an estimate taken too low is left quickly).
//!   A throttle during a probe doubles the wait before the next one (up to `probe_max`), so a
//!   site that means its limit sees fewer and fewer probes.
//! - **Long windows.** A site that keeps refusing while nothing it accepted is recent counts
//!   over a longer window than a second (per minute, typically): its limit is what it accepted
//!   over that window, and a rate is proven only once a whole window passed at it. Such a site
//!   is marked, so its probes wait [`LONG_WINDOW_PROBE_MS`] and never grow — a probe taken as
//!   proven after five seconds would overrun the minute it is counted in a minute later.
//!
//! The learned rate and estimate are persisted, so a restart or the next campaign starts from
//! experience instead of from the maximum or from a cold start.

use crate::Rate;
use crate::rules::millis;
use cartero_clock::UnixMillis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Rates above this (messages/hour, ≈ 10,000/s) limit nothing a single queue can send: a cold
/// start that gets there without a throttle ends, unlimited.
const SLOW_START_END: f64 = 36_000_000.0;

/// Wait between probes of a site that counts per minute: a whole window at the probed rate,
/// and a second for the window's edge.
pub const LONG_WINDOW_PROBE_MS: u64 = 61_000;

/// AIMD parameters. Rates are messages per hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AimdConfig {
    /// Floor of the live rate: throttling never pushes it below this.
    pub min: f64,
    /// Messages/hour added per accepted message while the rate is below the settled level
    /// (after an imposed throttle, or when nothing was measured). Per message, so recovery
    /// takes about the same time at any scale.
    pub increase_per_success: f64,
    /// Multiplier applied on a throttle when nothing accepted was measured to settle under
    /// (0 < factor < 1).
    pub decrease_factor: f64,
    /// Throttles within this interval of the last decrease count once: a burst of 421s on several
    /// connections reports one overload, not many.
    #[serde(with = "humantime_serde")]
    pub decrease_holdoff: Duration,
    /// Cold-start rate of a site with no configured rate and nothing learned; `0` = unlimited
    /// until the first throttle (the behaviour before cold starts were paced).
    pub start_rate: f64,
    /// Growth of the cold-start rate per second of use (> 1).
    pub start_growth: f64,
    /// Share of the estimated limit the rate settles at after a throttle (0 < f ≤ 1): a little
    /// under, so that jitter in the pacing does not meet the site's window.
    pub settle_fraction: f64,
    /// Size of one probe step above the estimate, as a share of the estimate.
    pub probe_step: f64,
    /// Clean sending needed before the next probe step.
    #[serde(with = "humantime_serde")]
    pub probe_every: Duration,
    /// Longest wait between probes after repeated failed ones.
    #[serde(with = "humantime_serde")]
    pub probe_max: Duration,
}

impl Default for AimdConfig {
    fn default() -> Self {
        Self {
            min: 60.0,
            increase_per_success: 100.0,
            decrease_factor: 0.85,
            decrease_holdoff: Duration::from_secs(2),
            start_rate: 36_000.0,
            start_growth: 2.0,
            settle_fraction: 0.97,
            probe_step: 0.03,
            probe_every: Duration::from_secs(5),
            probe_max: Duration::from_secs(300),
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
    /// Estimated limit of the site (messages/hour), from what it accepted when it throttled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<f64>,
    /// A cold start was in progress.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub slow_start: bool,
    /// The site counts over a long window (see [`Aimd::settle_long`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub long_window: bool,
}

/// The live rate of one (source, site) queue.
#[derive(Debug, Clone, PartialEq)]
pub struct Aimd {
    config: AimdConfig,
    /// Configured maximum, messages per hour.
    ceiling: Option<f64>,
    rate: Option<f64>,
    last_decrease: Option<UnixMillis>,
    estimate: Option<f64>,
    slow_start: bool,
    long_window: bool,
    /// When the rate last went up by a doubling or a probe step (or settled), so the next step
    /// waits for a whole interval at the new rate.
    last_step: Option<UnixMillis>,
    /// Wait between probe steps now, milliseconds.
    probe_every_ms: u64,
    /// Multiplier of the probe step: doubles after every probe the site took (up to
    /// [`MAX_PROBE_GAIN`]), back to 1 after one it throttled — an estimate that was too low
    /// is left in a few steps, a right one is only ever probed by `probe_step`.
    probe_gain: f64,
}

/// Largest multiplier of a probe step.
const MAX_PROBE_GAIN: f64 = 8.0;

impl Aimd {
    /// A queue with a configured maximum starts there (the operator's word is trusted until the
    /// site complains); one without starts cold, at `start_rate`.
    pub fn new(config: AimdConfig, ceiling: Option<Rate>) -> Self {
        let config = sanitize(config);
        let ceiling = ceiling.map(Rate::per_hour);
        let cold = ceiling.is_none() && config.start_rate > 0.0;
        Self {
            rate: cold.then_some(config.start_rate),
            slow_start: cold,
            probe_every_ms: millis(config.probe_every).max(1),
            config,
            ceiling,
            last_decrease: None,
            estimate: None,
            long_window: false,
            last_step: None,
            probe_gain: 1.0,
        }
    }

    /// Starts from a persisted snapshot, clamped to the (possibly changed) bounds.
    pub fn restore(config: AimdConfig, ceiling: Option<Rate>, snapshot: AimdSnapshot) -> Self {
        let mut a = Self::new(config, ceiling);
        a.rate = snapshot.rate.filter(|r| r.is_finite());
        a.last_decrease = snapshot.last_decrease;
        a.estimate = snapshot.estimate.filter(|e| e.is_finite() && *e >= 1.0);
        a.slow_start = snapshot.slow_start && a.rate.is_some();
        a.long_window = snapshot.long_window;
        a.clamp();
        a
    }

    pub fn snapshot(&self) -> AimdSnapshot {
        AimdSnapshot {
            rate: self.rate,
            last_decrease: self.last_decrease,
            estimate: self.estimate,
            slow_start: self.slow_start,
            long_window: self.long_window,
        }
    }

    /// Applies new bounds (configuration reload) and clamps the live rate into them. A queue
    /// that was given a configured maximum leaves its cold start: the operator set the pace.
    pub fn reconfigure(&mut self, config: AimdConfig, ceiling: Option<Rate>) {
        self.config = sanitize(config);
        self.ceiling = ceiling.map(Rate::per_hour);
        if self.slow_start && self.ceiling.is_some() {
            self.slow_start = false;
            self.rate = None;
        }
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

    /// The site answered a transaction without pushing back: accepted it, or refused it for the
    /// recipient's sake (greylisting, unknown user) — either way it took the pace. `sending` is
    /// the rate (messages/hour) the queue handed out
    /// over the last second or two: a rate the queue does not use proves nothing, so it is not
    /// raised. Successes inside the hold-off after a decrease are ignored: they were sent at the
    /// old, too-high rate and say nothing about the new one.
    pub fn on_success(&mut self, now: UnixMillis, sending: f64) {
        if self.in_holdoff(now) {
            return;
        }
        let Some(r) = self.rate else { return };
        let step_due = |every: u64| {
            self.last_step
                .is_none_or(|t| now.saturating_sub(t) >= every)
        };
        let used = sending >= 0.8 * r;
        if self.slow_start {
            if self.last_step.is_none() {
                self.last_step = Some(now);
            } else if step_due(1_000) && used {
                self.last_step = Some(now);
                let next = r * self.config.start_growth;
                if next >= SLOW_START_END && self.ceiling.is_none() {
                    self.slow_start = false;
                    self.rate = None;
                    return;
                }
                self.rate = Some(next);
            }
            self.clamp();
            return;
        }
        match self.estimate {
            Some(e) if r < e * self.config.settle_fraction => {
                let settled = e * self.config.settle_fraction;
                self.rate = Some((r + self.config.increase_per_success).min(settled));
            }
            Some(e) => {
                let every = if self.long_window {
                    self.probe_every_ms.max(LONG_WINDOW_PROBE_MS)
                } else {
                    self.probe_every_ms
                };
                if !(step_due(every) && used) {
                    return;
                }
                // A whole interval at `r` without a throttle: the site takes it.
                if r > e {
                    self.estimate = Some(r);
                    self.probe_every_ms = millis(self.config.probe_every).max(1);
                    if !self.long_window {
                        self.probe_gain = (self.probe_gain * 2.0).min(MAX_PROBE_GAIN);
                    }
                }
                self.last_step = Some(now);
                let step = self.config.probe_step * self.probe_gain;
                self.rate = Some(r + step * self.estimate.unwrap_or(e));
            }
            None => self.rate = Some(r + self.config.increase_per_success),
        }
        self.clamp();
    }

    /// A throttling reply. `accepted` is the rate (messages/hour) the site was seen to accept
    /// just before (non-finite or below 1 when nothing was measured): the new estimate of its
    /// limit, which the rate settles under. Returns whether the rate was decreased.
    pub fn on_throttle(&mut self, now: UnixMillis, accepted: f64) -> bool {
        if self.in_holdoff(now) {
            return false;
        }
        let limit = self.current().unwrap_or(f64::INFINITY);
        let probing = match (self.rate, self.estimate) {
            (Some(r), Some(e)) => !self.slow_start && r > e * self.config.settle_fraction * 1.001,
            _ => false,
        };
        if accepted.is_finite() && accepted >= 1.0 {
            let e = accepted.min(limit);
            self.estimate = Some(e);
            self.rate = Some(e * self.config.settle_fraction);
        } else if limit.is_finite() {
            self.rate = Some(limit * self.config.decrease_factor);
        } else {
            // Unlimited and nothing accepted lately (a refusal before the first message): there
            // is no rate to go down from, and the floor would be a guess far too low.
            return false;
        }
        if probing {
            let max = millis(self.config.probe_max).max(1);
            self.probe_every_ms = self.probe_every_ms.saturating_mul(2).min(max);
        }
        self.probe_gain = 1.0;
        self.slow_start = false;
        self.last_decrease = Some(now);
        self.last_step = Some(now);
        self.clamp();
        if self.rate.is_none() {
            // Clamped back to the configured maximum: keep the measured level as the live limit
            // anyway, since the site just said the maximum is too much.
            self.rate = Some((limit * self.config.decrease_factor).max(self.config.min));
        }
        true
    }

    /// The site kept refusing with nothing it accepted recent: it counts over a long window,
    /// and `accepted` (messages/hour) is what it took over that window. Settles under it at
    /// once, hold-off or not — the estimate of the throttle that opened the hold-off was taken
    /// over the last second, which says nothing about such a site. From now on its probes wait
    /// a whole window.
    pub fn settle_long(&mut self, now: UnixMillis, accepted: f64) {
        self.long_window = true;
        if !(accepted.is_finite() && accepted >= 1.0) {
            return;
        }
        let limit = self.current().unwrap_or(f64::INFINITY);
        let e = accepted.min(limit);
        self.estimate = Some(e);
        self.rate = Some(e * self.config.settle_fraction);
        self.probe_gain = 1.0;
        self.slow_start = false;
        self.last_decrease = Some(now);
        self.last_step = Some(now);
        self.clamp();
    }

    /// Whether the site was seen to count over a long window.
    pub fn long_window(&self) -> bool {
        self.long_window
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

    /// The site's estimated limit (messages per hour), once it throttled.
    pub fn estimate(&self) -> Option<f64> {
        self.estimate
    }

    /// Whether the queue is still in its cold start.
    pub fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// Whether the live limit is below the configured one (something was learned, or a cold
    /// start is pacing the queue).
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

/// Makes any configuration safe to compute with: a finite positive floor, a non-negative step,
/// a decrease factor that actually decreases, growth that grows, fractions in range.
fn sanitize(mut c: AimdConfig) -> AimdConfig {
    let finite_or = |v: f64, d: f64| if v.is_finite() { v } else { d };
    c.min = finite_or(c.min, 1.0).max(1.0);
    c.increase_per_success = finite_or(c.increase_per_success, 0.0).max(0.0);
    c.decrease_factor = finite_or(c.decrease_factor, 0.5);
    if !(c.decrease_factor > 0.0 && c.decrease_factor < 1.0) {
        c.decrease_factor = 0.5;
    }
    c.start_rate = finite_or(c.start_rate, 0.0).max(0.0);
    if c.start_rate > 0.0 {
        c.start_rate = c.start_rate.max(c.min);
    }
    c.start_growth = finite_or(c.start_growth, 2.0);
    if c.start_growth <= 1.0 {
        c.start_growth = 2.0;
    }
    c.settle_fraction = finite_or(c.settle_fraction, 0.97);
    if !(c.settle_fraction > 0.0 && c.settle_fraction <= 1.0) {
        c.settle_fraction = 0.97;
    }
    c.probe_step = finite_or(c.probe_step, 0.0).clamp(0.0, 1.0);
    c
}
