//! Even spreading of a message rate: a pacer hands out one slot every `period / count`, so
//! 10,000/h is one message every 360 ms rather than 10,000 in the first minute.

use crate::Rate;
use cartero_clock::UnixMillis;

/// Tracks the next free slot of one rate.
#[derive(Debug, Default, Clone)]
pub struct Pacer {
    next_free: UnixMillis,
}

impl Pacer {
    /// Takes a slot at `now`, or returns the time the next slot is free.
    pub fn reserve(&mut self, rate: Rate, now: UnixMillis) -> Result<(), UnixMillis> {
        if now < self.next_free {
            return Err(self.next_free);
        }
        // Sub-millisecond intervals round down to 0: rates above 1000/s are not paced, only counted.
        self.next_free = now + rate.interval_ms();
        Ok(())
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
}
