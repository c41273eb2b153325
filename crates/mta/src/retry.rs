//! Retry schedule and validity (SPEC §2.6). Pure functions of attempts, class and a random draw, so
//! tests are exact.

use cartero_bounce::BounceClass;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `[delivery.retry]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Delay after the first transient failure.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Each further failure multiplies the delay by this factor.
    pub factor: u32,
    /// Upper bound of one delay.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Random spread of each delay, as a fraction (0.1 = ±10%), so that a burst of deferrals does
    /// not come back as a burst.
    pub jitter: f64,
    /// First retry after a greylisting-like reply (class 70): at this delay, up to a tenth
    /// later (never earlier: a retry before a greylister's delay is only greylisted again).
    /// Short greylists (one minute is common) are passed at once.
    #[serde(with = "humantime_serde")]
    pub greylist_first: Duration,
    /// Second retry of a recipient still greylisted falls in this window: the five minutes of
    /// the classic greylisters (postgrey, sqlgrey) are over by then.
    #[serde(with = "humantime_serde")]
    pub greylist_min: Duration,
    #[serde(with = "humantime_serde")]
    pub greylist_max: Duration,
    /// A full mailbox (class 22) waits at least this long.
    #[serde(with = "humantime_serde")]
    pub mailbox_full_min: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(20 * 60),
            factor: 2,
            max: Duration::from_secs(12 * 3600),
            jitter: 0.1,
            greylist_first: Duration::from_secs(60),
            greylist_min: Duration::from_secs(5 * 60),
            greylist_max: Duration::from_secs(10 * 60),
            mailbox_full_min: Duration::from_secs(3600),
        }
    }
}

impl RetryConfig {
    /// Delay before the next attempt. `failures` counts transient failures so far, this one
    /// included (so the first failure passes 1). `draw` is uniform in [0, 1).
    pub fn delay(&self, failures: u32, class: BounceClass, draw: f64) -> Duration {
        let draw = draw.clamp(0.0, 1.0);
        if class == BounceClass::TRANSIENT {
            if failures <= 1 {
                return self.greylist_first + self.greylist_first.mul_f64(0.1 * draw);
            }
            if failures == 2 {
                let span = self.greylist_max.saturating_sub(self.greylist_min);
                return self.greylist_min + span.mul_f64(draw);
            }
        }
        let mut d = self.initial;
        for _ in 1..failures.min(64) {
            d = d.saturating_mul(self.factor.max(1));
            if d >= self.max {
                break;
            }
        }
        let d = d.min(self.max);
        let spread = 1.0 + self.jitter.clamp(0.0, 0.9) * (2.0 * draw - 1.0);
        let d = d.mul_f64(spread).min(self.max);
        if class == BounceClass::MAILBOX_FULL {
            d.max(self.mailbox_full_min)
        } else {
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> RetryConfig {
        RetryConfig {
            jitter: 0.0,
            ..RetryConfig::default()
        }
    }

    #[test]
    fn schedule_doubles_from_20_minutes_and_caps_at_12_hours() {
        let c = no_jitter();
        let mins = |n| c.delay(n, BounceClass::SOFT, 0.5).as_secs() / 60;
        assert_eq!(
            (1..=7).map(mins).collect::<Vec<_>>(),
            vec![20, 40, 80, 160, 320, 640, 720]
        );
        assert_eq!(mins(1000), 720);
    }

    #[test]
    fn jitter_spreads_within_bounds() {
        let c = RetryConfig::default();
        assert_eq!(
            c.delay(1, BounceClass::SOFT, 0.0),
            Duration::from_secs(18 * 60)
        );
        assert_eq!(
            c.delay(1, BounceClass::SOFT, 1.0),
            Duration::from_secs(22 * 60)
        );
        assert!(c.delay(30, BounceClass::SOFT, 1.0) <= c.max);
    }

    #[test]
    fn greylisting_retries_after_a_minute_then_within_5_to_10_minutes() {
        let c = RetryConfig::default();
        let d = |n, draw| c.delay(n, BounceClass::TRANSIENT, draw);
        assert_eq!(
            d(1, 0.0),
            Duration::from_secs(60),
            "never before the minute"
        );
        assert_eq!(d(1, 1.0), Duration::from_secs(66));
        assert_eq!(d(2, 0.0), Duration::from_secs(300));
        assert_eq!(d(2, 1.0), Duration::from_secs(600));
        // After those two, the normal schedule applies (third failure: 80 min ± 10 %).
        assert!(d(3, 0.5) >= Duration::from_secs(72 * 60));
        // Other classes never take the greylisting path.
        assert_eq!(
            c.delay(1, BounceClass::SOFT, 0.0),
            Duration::from_secs(18 * 60)
        );
    }

    #[test]
    fn mailbox_full_waits_longer() {
        let c = no_jitter();
        assert_eq!(
            c.delay(1, BounceClass::MAILBOX_FULL, 0.5),
            Duration::from_secs(3600)
        );
    }
}
