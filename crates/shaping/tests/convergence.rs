//! Convergence of the adaptive engine against model sites, in simulated time: a sender with a
//! few connections asks [`AdaptiveLimits`] for every message, a model site accepts or throttles
//! it the way `cartero-simulator` does (a count over a sliding window, a reputation that shrinks
//! the limits and finally blocks), and the engine hears every answer. Nothing sleeps: the
//! manual clock jumps from event to event, so a five-minute campaign runs in well under a second
//! and every figure is exact and repeatable.
//!
//! These pin the behaviour `bench/adaptive.sh` measures over real sockets (issue 13): a short
//! campaign to a site the engine was told nothing about ends near the ideal time with few
//! throttled attempts, and never gets the sender blocked.

use cartero_bounce::BounceClass;
use cartero_clock::ManualClock;
use cartero_shaping::*;
use std::collections::VecDeque;
use std::sync::Arc;

/// A whole second, so the engine's meters start clean.
const START: u64 = 1_700_006_400_000;
const THROTTLE: &str = "451 4.7.1 Zu viele Nachrichten, bitte spaeter erneut versuchen";
const BLOCKED: &str = "554 5.7.1 Service unavailable; client host blocked";

/// How the model site counts and punishes.
#[derive(Clone, Copy)]
struct SiteSpec {
    per_second: Option<usize>,
    per_minute: Option<usize>,
    /// Score lost per throttle reply; 0 = no reputation.
    penalty: i32,
    /// Below this score the limits are halved.
    shrink_below: i32,
    /// Below this score the source is blocked for [`BLOCK_MS`] (0 = never).
    block_below: i32,
}

const BLOCK_MS: u64 = 60_000;

/// The site's state for the one source the test sends from.
struct Site {
    spec: SiteSpec,
    accepted_at: VecDeque<u64>,
    score: i32,
    blocked_until: u64,
    throttled: u64,
    blocks: u64,
}

enum Answer {
    Accepted,
    Throttled,
    Blocked,
}

impl Site {
    fn new(spec: SiteSpec) -> Self {
        Self {
            spec,
            accepted_at: VecDeque::new(),
            score: 100,
            blocked_until: 0,
            throttled: 0,
            blocks: 0,
        }
    }

    fn limit(&self, l: usize) -> usize {
        if self.spec.penalty > 0 && self.score < self.spec.shrink_below {
            (l / 2).max(1)
        } else {
            l
        }
    }

    /// MAIL FROM at `now`.
    fn mail(&mut self, now: u64) -> Answer {
        if now < self.blocked_until {
            return Answer::Blocked;
        }
        let window = if self.spec.per_minute.is_some() {
            60_000
        } else {
            1_000
        };
        while self.accepted_at.front().is_some_and(|&t| t + window <= now) {
            self.accepted_at.pop_front();
        }
        let in_second = self
            .accepted_at
            .iter()
            .filter(|&&t| t + 1_000 > now)
            .count();
        let over = |l: Option<usize>, n: usize| l.is_some_and(|l| n >= self.limit(l));
        if over(self.spec.per_second, in_second)
            || over(self.spec.per_minute, self.accepted_at.len())
        {
            self.throttled += 1;
            self.score -= self.spec.penalty;
            if self.spec.block_below > 0 && self.score < self.spec.block_below {
                self.blocks += 1;
                self.blocked_until = now + BLOCK_MS;
                self.score = 60;
            }
            return Answer::Throttled;
        }
        self.accepted_at.push_back(now);
        self.score = (self.score + 1).min(100);
        Answer::Accepted
    }
}

/// What one campaign cost.
#[derive(Debug)]
struct Run {
    /// Time until the last message was accepted, ms.
    elapsed: u64,
    delivered: u64,
    attempts: u64,
    throttled: u64,
    blocks: u64,
}

impl Run {
    fn refused_share(&self) -> f64 {
        self.throttled as f64 / self.attempts as f64
    }
}

/// Time from MAIL FROM to its answer, and from MAIL FROM to the end of the message, ms: two
/// connections of this model take about 110 messages/s, more than any site below allows.
const MAIL_MS: u64 = 2;
const MESSAGE_MS: u64 = 18;
/// Bound on simulated time: a run that does not finish within it fails the test.
const CAP_MS: u64 = 3 * 3_600_000;

/// Sends `n` messages over `conns` connections to a site the engine has no limits for.
fn campaign(spec: SiteSpec, conns: usize, n: u64) -> Run {
    campaign_from(spec, conns, n, START, None).0
}

/// [`campaign`] starting at `start`, by an engine restored from `state` when given (what a
/// restarted cartero, or the next campaign, begins with); returns the engine's state after.
fn campaign_from(
    spec: SiteSpec,
    conns: usize,
    n: u64,
    start: u64,
    state: Option<ShapingState>,
) -> (Run, ShapingState) {
    let clock = ManualClock::new(start);
    let l = AdaptiveLimits::new(ShapingConfig::default(), &[], Arc::new(clock.clone()))
        .unwrap_or_else(|e| panic!("engine: {e}"));
    if let Some(state) = state {
        l.restore(state);
    }
    let key = QueueKey {
        source: "ip1".into(),
        site: "mx.model.test".into(),
    };
    let t = Target {
        domain: "model.test",
        provider: None,
    };
    let mut site = Site::new(spec);
    let _permits: Vec<ConnectionPermit> = (0..conns)
        .map(|_| {
            let mut p = l
                .open_connection(&key, &t)
                .unwrap_or_else(|w| panic!("no connection: {w:?}"));
            p.established();
            p
        })
        .collect();
    // When each connection is free next, and whether the message it carries was accepted.
    let mut free_at = vec![start; conns];
    let mut carrying: Vec<Option<Answer>> = (0..conns).map(|_| None).collect();
    // Messages held by a verdict, with the time they may go again.
    let mut held: Vec<u64> = Vec::new();
    let (mut waiting, mut delivered, mut attempts, mut lost) = (n, 0u64, 0u64, 0u64);
    let mut last_accept = start;
    let trace = std::env::var_os("CONVERGENCE_TRACE").is_some();
    while delivered + lost < n {
        let now = *free_at.iter().min().unwrap_or(&START);
        assert!(
            now - START < CAP_MS,
            "not finished in three hours: {delivered} of {n}"
        );
        clock.set(now);
        let c = free_at.iter().position(|&f| f == now).unwrap_or(0);
        match carrying[c].take() {
            Some(Answer::Accepted) => {
                l.observe(&key, &t, Observed::Delivered);
                delivered += 1;
                last_accept = now;
            }
            Some(answer) => {
                let blocked = matches!(answer, Answer::Blocked);
                let before = l.params(&key, &t).max_message_rate.map(Rate::per_hour);
                let v = l.observe(
                    &key,
                    &t,
                    Observed::Failed {
                        reply: if blocked { BLOCKED } else { THROTTLE },
                        class: BounceClass::SOFT,
                        permanent: blocked,
                        session: true,
                    },
                );
                if trace {
                    let after = l.params(&key, &t).max_message_rate.map(Rate::per_hour);
                    eprintln!(
                        "{:>8} refused; window {} score {}; rate/s {:?} -> {:?}; hold {:?}",
                        now - start,
                        site.accepted_at.len(),
                        site.score,
                        before.map(|r| r / 3600.0),
                        after.map(|r| r / 3600.0),
                        v.hold.map(|h| h.map(|h| h.saturating_sub(start)))
                    );
                }
                match (blocked, v.hold) {
                    (true, _) => lost += 1,
                    (false, Some(until)) => held.push(until.unwrap_or(now).max(now)),
                    (false, None) => held.push(now + 60_000),
                }
            }
            None => {}
        }
        held.retain(|&h| {
            let due = h <= now;
            waiting += u64::from(due);
            !due
        });
        if waiting == 0 {
            free_at[c] = held
                .iter()
                .copied()
                .min()
                .unwrap_or(now + 1_000)
                .max(now + 1);
            continue;
        }
        match l.reserve_message(&key, &t) {
            Ok(()) => {
                waiting -= 1;
                attempts += 1;
                let answer = site.mail(now);
                free_at[c] = now
                    + match answer {
                        Answer::Accepted => MESSAGE_MS,
                        _ => MAIL_MS,
                    };
                carrying[c] = Some(answer);
            }
            Err(Wait::Until(at)) => free_at[c] = at.max(now + 1),
            Err(Wait::Connections) => free_at[c] = now + 1,
        }
    }
    assert_eq!(lost, 0, "messages refused for good while blocked");
    let run = Run {
        elapsed: last_accept - start,
        delivered,
        attempts,
        throttled: site.throttled,
        blocks: site.blocks,
    };
    (run, l.snapshot())
}

fn check(name: &str, run: &Run, ideal_ms: u64, max_ratio: f64, max_refused: f64) {
    let ratio = run.elapsed as f64 / ideal_ms as f64;
    eprintln!(
        "{name}: {:.3}x ideal, {:.2}% refused ({run:?})",
        ratio,
        run.refused_share() * 100.0
    );
    assert_eq!(run.blocks, 0, "{name}: the sender got itself blocked");
    assert!(
        run.delivered > 0 && run.delivered <= run.attempts,
        "{name}: {run:?}"
    );
    assert!(ratio <= max_ratio, "{name}: {ratio:.3}x ideal");
    assert!(
        run.refused_share() < max_refused,
        "{name}: {:.2}% refused",
        run.refused_share() * 100.0
    );
}

const PER_SECOND: SiteSpec = SiteSpec {
    per_second: Some(45),
    per_minute: None,
    penalty: 0,
    shrink_below: 0,
    block_below: 0,
};

const PER_MINUTE: SiteSpec = SiteSpec {
    per_second: None,
    per_minute: Some(2_400),
    penalty: 0,
    shrink_below: 0,
    block_below: 0,
};

/// The reputation of `bench/adaptive/reputation.toml`.
fn harsh(spec: SiteSpec) -> SiteSpec {
    SiteSpec {
        penalty: 5,
        shrink_below: 80,
        block_below: 20,
        ..spec
    }
}

#[test]
fn a_per_second_site_is_met_within_a_few_percent_in_one_and_five_minutes() {
    for minutes in [1, 5] {
        let n = 45 * 60 * minutes;
        let run = campaign(PER_SECOND, 2, n);
        check(
            &format!("per second, {minutes} min"),
            &run,
            n * 1_000 / 45,
            1.10,
            0.01,
        );
    }
}

#[test]
fn a_per_minute_site_is_learned_as_one_and_its_window_is_not_overrun_again() {
    let n = 40 * 60 * 5;
    let run = campaign(PER_MINUTE, 2, n);
    check("per minute, 5 min", &run, n * 1_000 / 40, 1.15, 0.01);
}

#[test]
fn a_harsh_per_minute_site_never_blocks_the_sender() {
    let n = 40 * 60 * 5;
    let run = campaign(harsh(PER_MINUTE), 2, n);
    check("per minute, harsh, 5 min", &run, n * 1_000 / 40, 1.15, 0.01);
    let n = 45 * 60 * 5;
    let run = campaign(harsh(PER_SECOND), 2, n);
    check("per second, harsh, 5 min", &run, n * 1_000 / 45, 1.10, 0.01);
}

#[test]
fn an_hour_long_campaign_stays_near_the_ideal_on_every_model_site() {
    let sites = [
        ("per second", PER_SECOND, 45),
        ("per minute", PER_MINUTE, 40),
        ("per second, harsh", harsh(PER_SECOND), 45),
        ("per minute, harsh", harsh(PER_MINUTE), 40),
    ];
    for (name, spec, per_second) in sites {
        let n = per_second * 3_600;
        let run = campaign(spec, 2, n);
        check(
            &format!("{name}, 60 min"),
            &run,
            n * 1_000 / per_second,
            1.05,
            0.01,
        );
    }
}

#[test]
fn the_next_campaign_starts_from_what_the_last_one_learned() {
    for (name, spec, per_second) in [
        ("per second", PER_SECOND, 45),
        ("per minute", PER_MINUTE, 40),
    ] {
        let n = per_second * 60 * 5;
        let (first, state) = campaign_from(spec, 2, n, START, None);
        // Through the persisted form, as a restart would read it; an hour later.
        let json = serde_json::to_string(&state).unwrap_or_else(|e| panic!("{e}"));
        let state: ShapingState = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
        let later = START + first.elapsed + 3_600_000;
        let (second, _) = campaign_from(spec, 2, n, later, Some(state));
        let ideal = n * 1_000 / per_second;
        check(
            &format!("{name}, second campaign"),
            &second,
            ideal,
            1.05,
            0.01,
        );
        // No cold start and no search: only probes above the learned limit are refused.
        assert!(
            second.throttled < first.throttled,
            "{name}: {} throttled after learning, {} before",
            second.throttled,
            first.throttled
        );
        assert!(
            second.elapsed < first.elapsed,
            "{name}: no faster the second time"
        );
    }
}

#[test]
fn harsh_per_second_sites_of_every_width_end_a_one_minute_campaign_on_time() {
    for (conns, per_second) in [(1usize, 25usize), (2, 45), (4, 90)] {
        let spec = harsh(SiteSpec {
            per_second: Some(per_second),
            ..PER_SECOND
        });
        let n = per_second as u64 * 60;
        let run = campaign(spec, conns, n);
        let name = format!("harsh, {per_second}/s on {conns} connections, 1 min");
        check(&name, &run, n * 1_000 / per_second as u64, 1.10, 0.01);
    }
}
