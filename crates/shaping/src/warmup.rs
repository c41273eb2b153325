//! IP warm-up (SPEC §2.4): a new source has a daily cap per provider that follows a stage table
//! and moves up one stage after a day in which it delivered more than 90% of the stage volume.
//! Days are UTC days; `now` is passed in so tests and restarts are exact.

use cartero_clock::UnixMillis;
use serde::{Deserialize, Serialize};

const DAY_MS: u64 = 86_400_000;

/// The default stage table, messages per day; past the last stage the source is unlimited.
pub const DEFAULT_STAGES: [u64; 16] = [
    200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 40_000, 50_000, 75_000, 100_000, 150_000,
    250_000, 400_000, 600_000, 1_000_000,
];

/// Warm-up configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmupConfig {
    /// Daily caps, one per stage.
    pub stages: Vec<u64>,
    /// Fraction of the stage volume that must be exceeded in a day to move up.
    pub promote_ratio: f64,
}

impl Default for WarmupConfig {
    fn default() -> Self {
        Self {
            stages: DEFAULT_STAGES.to_vec(),
            promote_ratio: 0.9,
        }
    }
}

/// The daily cap is used up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("warm-up stage {stage} cap of {cap}/day reached; next slot at {retry_at} (UTC midnight)")]
pub struct OverCap {
    /// Current stage index (0-based).
    pub stage: usize,
    /// Today's cap.
    pub cap: u64,
    /// Start of the next UTC day.
    pub retry_at: UnixMillis,
}

/// Persisted warm-up state of one (source, provider).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarmupState {
    /// Stage index; equal to or past the table length means warmed up (no cap).
    pub stage: usize,
    /// UTC day number (days since the epoch) the counters belong to.
    pub day: u64,
    /// Messages allowed out today (counted against the cap).
    pub taken: u64,
    /// Messages delivered today (decides promotion).
    pub delivered: u64,
}

/// Warm-up of one (source, provider).
#[derive(Debug, Clone, PartialEq)]
pub struct Warmup {
    config: WarmupConfig,
    state: WarmupState,
    /// The day (number) the cap was last reported reached, so it is reported once a day.
    cap_reported_day: Option<u64>,
}

impl Warmup {
    /// A source starting warm-up at stage 0 on `now`'s day.
    pub fn new(config: WarmupConfig, now: UnixMillis) -> Self {
        Self::restore(
            config,
            WarmupState {
                day: now / DAY_MS,
                ..WarmupState::default()
            },
        )
    }

    /// Continues from persisted state.
    pub fn restore(config: WarmupConfig, state: WarmupState) -> Self {
        Self {
            config,
            state,
            cap_reported_day: None,
        }
    }

    /// Whether reaching today's cap was already reported.
    pub fn cap_reported(&self) -> bool {
        self.cap_reported_day == Some(self.state.day)
    }

    pub fn mark_cap_reported(&mut self) {
        self.cap_reported_day = Some(self.state.day);
    }

    /// State to persist (call after [`Warmup::roll`] for an up-to-date day).
    pub fn state(&self) -> WarmupState {
        self.state
    }

    /// Today's cap; `None` once warmed up.
    pub fn cap(&self) -> Option<u64> {
        self.config.stages.get(self.state.stage).copied()
    }

    /// Current stage index.
    pub fn stage(&self) -> usize {
        self.state.stage
    }

    /// Whether the table is finished (no cap any more).
    pub fn is_warm(&self) -> bool {
        self.cap().is_none()
    }

    /// Moves the counters to `now`'s day, promoting when the last active day qualified. A gap of
    /// several days promotes at most once: the stage reflects days of proven volume, not time.
    pub fn roll(&mut self, now: UnixMillis) {
        let today = now / DAY_MS;
        if today <= self.state.day {
            return;
        }
        if let Some(cap) = self.cap()
            && self.state.delivered as f64 > cap as f64 * self.config.promote_ratio
        {
            self.state.stage += 1;
        }
        self.state.day = today;
        self.state.taken = 0;
        self.state.delivered = 0;
    }

    /// Takes one message from today's cap.
    pub fn try_take(&mut self, now: UnixMillis) -> Result<(), OverCap> {
        self.roll(now);
        if let Some(cap) = self.cap()
            && self.state.taken >= cap
        {
            return Err(OverCap {
                stage: self.state.stage,
                cap,
                retry_at: (self.state.day + 1).saturating_mul(DAY_MS),
            });
        }
        self.state.taken += 1;
        Ok(())
    }

    /// Gives back a slot taken for a message that was not sent after all (e.g. the connection
    /// failed before DATA), so failures do not eat the day's cap.
    pub fn give_back(&mut self, now: UnixMillis) {
        self.roll(now);
        self.state.taken = self.state.taken.saturating_sub(1);
    }

    /// Counts one delivered message towards promotion.
    pub fn on_delivered(&mut self, now: UnixMillis) {
        self.roll(now);
        self.state.delivered += 1;
    }
}
