//! Even spreading of a rate: a pacer hands out one slot every `period / count`, so 10,000/h is
//! one message every 360 ms rather than 10,000 in the first minute.

use crate::Rate;
use cartero_clock::UnixMillis;

/// Tracks the next free slot of one rate. Kept in microseconds: at a few hundred messages per
/// second a whole-millisecond interval would be off by tens of percent (2.5 ms is not 2 ms).
#[derive(Debug, Default, Clone)]
pub struct Pacer {
    next_free_us: u64,
}

impl Pacer {
    /// Takes a slot at `now`, or returns the time (ms, rounded up) the next slot is free.
    pub fn reserve(&mut self, rate: Rate, now: UnixMillis) -> Result<(), UnixMillis> {
        let now_us = now.saturating_mul(1_000);
        if now_us < self.next_free_us {
            return Err(self.next_free_us.div_ceil(1_000));
        }
        let interval = rate.interval_us();
        // A caller slightly late keeps the remainder (polling in whole milliseconds must not
        // lower the rate), but an idle pacer banks nothing: no burst after a quiet period.
        let base = if now_us - self.next_free_us < interval {
            self.next_free_us
        } else {
            now_us
        };
        self.next_free_us = base.saturating_add(interval);
        Ok(())
    }
}

impl Pacer {
    /// Hands out nothing before `t` (a pause after the site pushed back).
    pub fn pause_until(&mut self, t: UnixMillis) {
        self.next_free_us = self.next_free_us.max(t.saturating_mul(1_000));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_hands_out_evenly_spaced_slots() {
        let rate: Rate = "10/s".parse().unwrap();
        let mut p = Pacer::default();
        assert_eq!(p.reserve(rate, 0), Ok(()));
        assert_eq!(p.reserve(rate, 50), Err(100));
        assert_eq!(p.reserve(rate, 100), Ok(()));
        assert_eq!(p.reserve(rate, 5_000), Ok(()));
        assert_eq!(p.reserve(rate, 5_099), Err(5_100));
    }

    #[test]
    fn regression_sub_millisecond_remainders_are_not_rounded_away() {
        // 400/s is 2.5 ms apart: 4 slots need 7.5 ms, not 6 ms.
        let rate: Rate = "400/s".parse().unwrap();
        let mut p = Pacer::default();
        let mut t = 0;
        let mut granted = 0;
        while t <= 1_000 {
            if p.reserve(rate, t).is_ok() {
                granted += 1;
            }
            t += 1;
        }
        assert!((390..=401).contains(&granted), "{granted}");
    }
}
