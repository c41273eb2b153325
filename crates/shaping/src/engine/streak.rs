//! Throttles in a row: a site that keeps refusing after the rate settled, with nothing it
//! accepted in between, has its window full — it counts per minute, or its limit shrank — and
//! waiting is all that helps. How long to wait, and when a refusal starts such a streak rather
//! than being one of several sent together before the first answer came back.

use cartero_clock::UnixMillis;

/// First pause of a streak, milliseconds; doubles with every further throttle in a row, up to
/// [`MAX_PAUSE_MS`].
const PAUSE_MS: u64 = 500;
const MAX_PAUSE_MS: u64 = 32_000;
/// Throttles closer than this to the previous one may have been in flight with it.
pub(super) const SAME_BURST_MS: u64 = 250;
/// Throttles in a row after which the site is taken to count over a long window: by then
/// nothing was accepted for the first two pauses (1.5 s), which a window of one second would
/// have freed.
pub(super) const LONG_WINDOW_STREAK: u32 = 3;

#[derive(Debug, Default, Clone)]
pub(super) struct Streak {
    /// Throttles in a row so far; 0 = none.
    count: u32,
    /// When the last throttle came, and how many came since the site last answered.
    last: Option<(UnixMillis, u32)>,
    paused_until: UnixMillis,
    /// The streak already waited once for its window to free: refused again after that, the
    /// limit is lower than the count it was full at, and the pauses keep doubling.
    waited_for_window: bool,
}

/// A throttle that advanced the streak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pause {
    /// Throttles in a row, this one included.
    pub count: u32,
    /// Nothing is to be sent before then.
    pub until: UnixMillis,
}

impl Streak {
    /// The site answered without pushing back: the streak, if any, is over.
    pub fn answered(&mut self) {
        *self = Self::default();
    }

    /// Whether throttles in a row are going on.
    pub fn in_streak(&self) -> bool {
        self.count > 0
    }

    /// A throttle at `now` while `open` connections are open. `frees` is when what the site
    /// accepted first within the last minute is a minute old: a window counted over a minute
    /// (sliding, or aligned to the clock) has room by then at the latest, so the first pause
    /// that would outlast it ends there instead. Returns the pause when the throttle came in a
    /// row: after the previous one with nothing answered between, and not in flight with it —
    /// well after it, or with more throttles since the last answer than the open connections
    /// carry at once (one transaction each), so some were sent after a refusal had been heard.
    pub fn throttled(
        &mut self,
        now: UnixMillis,
        open: u32,
        frees: Option<UnixMillis>,
    ) -> Option<Pause> {
        let in_row = self.last.is_some_and(|(l, since_answer)| {
            now.saturating_sub(l) >= SAME_BURST_MS || since_answer >= open.max(1)
        });
        let since_answer = self.last.map_or(0, |(_, n)| n);
        self.last = Some((now, since_answer.saturating_add(1)));
        if !in_row || now < self.paused_until {
            return None;
        }
        self.count += 1;
        let pause = PAUSE_MS
            .saturating_mul(1 << (self.count - 1).min(16))
            .min(MAX_PAUSE_MS);
        let mut until = now.saturating_add(pause);
        if let Some(f) = frees.filter(|&f| f < until && !self.waited_for_window) {
            self.waited_for_window = true;
            until = f.max(now.saturating_add(SAME_BURST_MS));
        }
        self.paused_until = until;
        Some(Pause {
            count: self.count,
            until,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_in_flight_together_are_one_and_pauses_double_up_to_the_cap() {
        let mut s = Streak::default();
        // Two connections: the second refusal may have been sent before the first was heard.
        assert_eq!(s.throttled(1_000, 2, None), None);
        assert_eq!(s.throttled(1_005, 2, None), None);
        // A third within milliseconds was sent after a refusal came back.
        let p = s.throttled(1_010, 2, None);
        assert_eq!(
            p,
            Some(Pause {
                count: 1,
                until: 1_510
            })
        );
        // During the pause: nothing changes.
        assert_eq!(s.throttled(1_200, 2, None), None);
        let p = s.throttled(1_510, 2, None);
        assert_eq!(
            p,
            Some(Pause {
                count: 2,
                until: 2_510
            })
        );
        let mut t = 2_510;
        for _ in 0..10 {
            t = s.throttled(t, 2, None).map_or(t, |p| p.until);
        }
        assert_eq!(s.count, 12);
        assert_eq!(
            s.throttled(t, 2, None).map(|p| p.until - t),
            Some(MAX_PAUSE_MS)
        );
        // An answer ends it: the next refusal starts nothing on its own.
        s.answered();
        assert_eq!(s.throttled(t + 40_000, 2, None), None);
    }

    #[test]
    fn the_first_pause_past_the_window_ends_when_it_frees_and_only_the_first() {
        let mut s = Streak::default();
        assert_eq!(s.throttled(10_000, 1, Some(61_000)), None);
        let mut t = 10_300;
        let mut ends = Vec::new();
        while let Some(p) = s.throttled(t, 1, Some(61_000 + (t - 10_000) / 10)) {
            ends.push(p.until);
            t = p.until;
            if ends.len() == 9 {
                break;
            }
        }
        // 0.5, 1, 2, 4, 8, 16 s; the 32 s pause would outlast the window's oldest message: it
        // ends at 61 s + drift instead. Refused even then, the pauses go on doubling.
        assert_eq!(
            &ends[..6],
            &[10_800, 11_800, 13_800, 17_800, 25_800, 41_800]
        );
        assert_eq!(ends[6], 61_000 + 3_180);
        assert_eq!(ends[7], ends[6] + MAX_PAUSE_MS);
    }
}
