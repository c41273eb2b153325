//! Turning one observed outcome into adaptive actions: response rules, AIMD, the learned
//! connection limit and sweeps. Called with the engine lock held; pure apart from `inner`.

use super::{ActionKind, Compiled, Inner, Observed, QueueState, Scope, ShapingAction, Suspension};
use super::{SweepState, Target, Timed, Verdict, aimd_of, streak};
use crate::QueueKey;
use crate::rules::{Action, Triggered};
use crate::sweep::{Outcome, Sweep, SweepKind, SweepMetric};
use cartero_bounce::BounceClass;
use cartero_clock::UnixMillis;
use std::sync::Arc;

/// Size of the sweep map below which idle pairs are not looked for.
pub(super) const MIN_SWEEPS_PRUNE: usize = 1_024;

pub(super) fn observe(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    what: Observed,
    now: UnixMillis,
) -> Verdict {
    let mut v = Verdict::default();
    if !c.cfg.adaptive.enabled {
        return v;
    }
    inner.queues.entry(key.clone()).or_default().note_target(t);
    match what {
        Observed::Delivered => {
            on_delivered(inner, c, key, t, now);
            sweep(inner, c, key, t, Outcome::Delivered, now, &mut v);
        }
        Observed::Failed {
            reply,
            class,
            permanent,
            session,
        } => {
            apply_rules(inner, c, key, t, reply, now, &mut v);
            let pushback = !permanent && (session || c.throttle.is_match(reply));
            if !pushback && !session {
                // Refused for the recipient's sake (greylisting, unknown user): the site took
                // the transaction at this pace, which is what the live rate needs to know.
                on_answered(inner, c, key, t, now);
            }
            on_failed(inner, c, key, t, (reply, class, pushback), now, &mut v);
        }
        Observed::Deferred { reply, class } => {
            let pushback = c.throttle.is_match(reply);
            on_failed(inner, c, key, t, (reply, class, pushback), now, &mut v);
            // A rule fired by the connection's reply may have suspended the queue: the recipients
            // that waited for the connection wait for the suspension, without an attempt.
            if let Err(h) = inner.check_suspended(key, t.domain, now) {
                v.hold_until(h.until);
            }
        }
        Observed::ConnectFailed { reply, refused } => {
            apply_rules(inner, c, key, t, reply, now, &mut v);
            if refused && reply.starts_with('5') && was_serving(inner, key, now) {
                blocked(inner, key, t, reply, now, &mut v);
                inner.dirty = true;
                return v;
            }
            // A site that resets or drops a connection while it is serving others from the
            // same source is counting connections, not unreachable: the source is not avoided.
            let serving = inner.queues.get(key).is_some_and(|q| {
                let open = *q.connections.lock();
                open > *q.dialing.lock()
            });
            if refused || serving || c.throttle.is_match(reply) {
                on_refused(inner, c, key, t, reply, now, &mut v);
            } else {
                avoid(inner, c, key, t, reply, now, &mut v);
            }
        }
    }
    if !v.actions.is_empty() {
        inner.dirty = true;
    }
    v
}

/// A complaint about mail `source` sent to `domain`. Without a sweep for the pair nothing was
/// sent there in the window, so there is no ratio the complaint could move: it is dropped rather
/// than starting a sweep (a report names any domain it likes, and must not grow the map).
pub(super) fn complaint(
    inner: &mut Inner,
    c: &Compiled,
    source: &str,
    domain: &str,
    now: UnixMillis,
) -> Verdict {
    let mut v = Verdict::default();
    if !c.cfg.adaptive.enabled {
        return v;
    }
    let pair = (Arc::<str>::from(source), domain.to_ascii_lowercase());
    let Some((key, provider)) = inner.sweeps.get(&pair).and_then(|s| s.last.clone()) else {
        return v;
    };
    let t = Target {
        domain: &pair.1,
        provider: provider.as_deref(),
    };
    sweep(inner, c, &key, &t, Outcome::Complaint, now, &mut v);
    if !v.actions.is_empty() {
        inner.dirty = true;
    }
    v
}

/// The sweep of a (source, domain) pair. Pairs whose window emptied are dropped whenever the map
/// has doubled since the last pass, so it stays within twice the pairs with recent traffic.
fn sweep_state<'a>(
    inner: &'a mut Inner,
    c: &Compiled,
    pair: (Arc<str>, String),
    now: UnixMillis,
) -> &'a mut SweepState {
    if inner.sweeps.len() >= inner.sweeps_prune_at && !inner.sweeps.contains_key(&pair) {
        inner.sweeps.retain(|_, s| !s.sweep.is_idle(now));
        inner.sweeps_prune_at = (inner.sweeps.len() * 2).max(MIN_SWEEPS_PRUNE);
    }
    inner.sweeps.entry(pair).or_insert_with(|| SweepState {
        sweep: Sweep::new(c.cfg.adaptive.sweep.clone()),
        acted_until: 0,
        acted_suspend: false,
        last: None,
    })
}

/// Feeds a reply to the response rules and applies those that fire.
fn apply_rules(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    reply: &str,
    now: UnixMillis,
    v: &mut Verdict,
) {
    for f in inner.rules.observe(key, t.provider, reply, now) {
        apply_rule(inner, c, key, t, f, now, v);
    }
}

/// A recipient failed: the site pushing back (a throttling reply, or a transient refusal of
/// the session) slows the queue, and the sweep counts it.
fn on_failed(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    (reply, class, pushback): (&str, BounceClass, bool),
    now: UnixMillis,
    v: &mut Verdict,
) {
    if pushback {
        on_throttle(inner, c, key, t, reply, now, v);
    }
    sweep(inner, c, key, t, Outcome::Failed { class }, now, v);
}

/// The site answered a transaction without pushing back: it took this pace. Counted in the
/// meters a throttle's estimate is taken from, and lets the live rate grow.
fn on_answered(inner: &mut Inner, c: &Compiled, key: &QueueKey, t: &Target, now: UnixMillis) {
    let q = inner.queues.entry(key.clone()).or_default();
    q.accepted.record(now);
    q.accepted_minute.record(now);
    q.streak.answered();
    q.block_pause_ms = 0;
    if q.aimd.as_ref().is_some_and(crate::Aimd::is_reduced) {
        let sending = q.meter.per_hour(now);
        aimd_of(q, c, key, t).on_success(now, sending);
        inner.dirty = true;
    }
}

fn on_delivered(inner: &mut Inner, c: &Compiled, key: &QueueKey, t: &Target, now: UnixMillis) {
    on_answered(inner, c, key, t, now);
    let q = inner.queues.entry(key.clone()).or_default();
    let Some(live) = q.live_connections else {
        return;
    };
    q.successes_since_step += 1;
    // Above a learned limit only after a while without refusals: the site said how many
    // connections it takes, and probing again at once would only be refused again.
    let quiet = now.saturating_sub(q.last_conn_decrease) >= q.conn_probe_every_ms;
    if q.successes_since_step >= c.cfg.adaptive.connection_increase_every && quiet {
        q.successes_since_step = 0;
        let configured = c
            .cfg
            .resolve(&key.source, &key.site, t.domain, t.provider)
            .max_connections;
        q.live_connections = (live + 1 < configured).then_some(live + 1);
        inner.dirty = true;
    }
}

fn base_action(
    kind: ActionKind,
    cause: impl Into<String>,
    key: &QueueKey,
    t: &Target,
) -> ShapingAction {
    let mut a = ShapingAction::new(
        kind,
        cause,
        Scope::Queue {
            source: key.source.to_string(),
            site: key.site.to_string(),
        },
    );
    a.provider = t.provider.map(str::to_string);
    a
}

fn on_throttle(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    reply: &str,
    now: UnixMillis,
    v: &mut Verdict,
) {
    let q = inner.queues.entry(key.clone()).or_default();
    // The recipient waits for the lower rate without using up an attempt: the site refused the
    // pace, not the recipient.
    v.hold_until(Some(now));
    let open = *q.connections.lock();
    let frees = q
        .accepted_minute
        .oldest(now)
        .map(|t| t.saturating_add(61_000));
    let pause = q.streak.throttled(now, open, frees);
    if let Some(p) = pause {
        q.pacer.pause_until(p.until);
    }
    // What the site accepted just before is its limit: over the last second, or over the last
    // minute for a site that counts per minute (the last second of such a site says nothing:
    // it refuses everything once the minute is used up, and takes a burst when it frees).
    let count = pause.map(|p| p.count);
    let long = count.is_some_and(|n| n >= streak::LONG_WINDOW_STREAK)
        || q.aimd.as_ref().is_some_and(crate::Aimd::long_window);
    let last_second = q.accepted.per_hour(now);
    let accepted = if long || last_second < 1.0 {
        q.accepted_minute.per_hour_of_window(now)
    } else {
        last_second
    };
    let in_streak = q.streak.in_streak();
    let a = aimd_of(q, c, key, t);
    let before = a.current();
    // Within a streak the rate settles at most twice: when it starts (the hold-off of the
    // throttle before usually covers it), and on the minute's count once the streak shows a
    // long window. The refusals between and after are the full window draining, not the new
    // rate overrunning it: lowering the rate on each would leave it far under the limit once
    // the window frees.
    let decreased = match count {
        Some(streak::LONG_WINDOW_STREAK) => {
            a.settle_long(now, accepted);
            true
        }
        Some(1) => a.on_throttle(now, accepted),
        None if !in_streak => a.on_throttle(now, accepted),
        _ => false,
    };
    if decreased {
        let mut e = base_action(ActionKind::RateDecrease, "aimd", key, t);
        e.reply = Some(reply.to_string());
        e.rate_before = before;
        e.rate_after = a.current();
        v.actions.push(e);
    }
}

/// Refusals needed within the hold-off to lower an already learned connection limit. One is
/// not enough: at connection turnover the site may not have freed the old slot yet when the new
/// connection arrives, and such a race says nothing about its limit.
const REFUSALS_TO_DECREASE: u32 = 3;

/// Longest wait before probing a learned connection limit again.
const MAX_CONN_PROBE_MS: u64 = 15 * 60 * 1_000;

fn on_refused(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    reply: &str,
    now: UnixMillis,
    v: &mut Verdict,
) {
    let q = inner.queues.entry(key.clone()).or_default();
    let holdoff = crate::rules::millis(c.cfg.adaptive.aimd.decrease_holdoff);
    if now.saturating_sub(q.refusals.1) > holdoff {
        q.refusals = (0, now);
    }
    q.refusals.0 += 1;
    if q.live_connections.is_some() && q.refusals.0 < REFUSALS_TO_DECREASE {
        return;
    }
    // The refused connection's slot is already released: what is open now is what the site takes.
    let open = *q.connections.lock();
    let target = open.max(1);
    if q.live_connections.is_some_and(|l| l <= target) {
        return;
    }
    q.live_connections = Some(target);
    q.refusals = (0, now);
    q.successes_since_step = 0;
    let base = crate::rules::millis(c.cfg.adaptive.connection_probe_every);
    q.conn_probe_every_ms = match q.last_conn_decrease {
        0 => base,
        _ => q
            .conn_probe_every_ms
            .saturating_mul(2)
            .clamp(base, MAX_CONN_PROBE_MS),
    };
    q.last_conn_decrease = now;
    let mut e = base_action(ActionKind::ConnectionsDecrease, "aimd", key, t);
    e.reply = Some(reply.to_string());
    e.max_connections = Some(target);
    v.actions.push(e);
}

/// First pause of a source blocked at a site's banner; doubles with every further refusal
/// there, up to [`MAX_BLOCK_PAUSE_MS`], until the site answers again.
const BLOCK_PAUSE_MS: u64 = 60_000;
const MAX_BLOCK_PAUSE_MS: u64 = 30 * 60_000;

/// Whether the site took this queue's mail within the last minute, or is blocking it already.
fn was_serving(inner: &mut Inner, key: &QueueKey, now: UnixMillis) -> bool {
    inner
        .queues
        .get_mut(key)
        .is_some_and(|q| q.block_pause_ms > 0 || q.accepted_minute.oldest(now).is_some())
}

/// A 5xx at the banner from a site that was taking this source's mail moments ago: the source
/// is blocked (a reputation penalty), not the recipients refused. The queue is suspended for a
/// pause that grows while the block lasts, and what waited for the connection is held for it
/// without using an attempt — or moves to another source of the pool at once. A site that never
/// took anything from the source is not presumed to block it: its 5xx stays a failure.
fn blocked(
    inner: &mut Inner,
    key: &QueueKey,
    t: &Target,
    reply: &str,
    now: UnixMillis,
    v: &mut Verdict,
) {
    let q = inner.queues.entry(key.clone()).or_default();
    let pause = q.block_pause_ms.clamp(BLOCK_PAUSE_MS, MAX_BLOCK_PAUSE_MS);
    q.block_pause_ms = pause.saturating_mul(2).min(MAX_BLOCK_PAUSE_MS);
    let until = now.saturating_add(pause);
    let mut e = base_action(ActionKind::Suspend, "block", key, t);
    e.reply = Some(reply.to_string());
    e.until = Some(until);
    let s = Suspension {
        until: Some(until),
        reason: format!("block: refused at the banner: {reply}"),
        since: now,
    };
    inner.suspensions.insert(e.scope.clone(), s);
    v.hold_until(Some(until));
    v.actions.push(e);
}

fn avoid(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    reply: &str,
    now: UnixMillis,
    v: &mut Verdict,
) {
    let q = inner.queues.entry(key.clone()).or_default();
    // While the source is avoided, what waited for it may move to another source at once, with
    // no attempt used — on every failed connection of the period, not only the first.
    v.hold_until(Some(now));
    if q.avoid_until.is_some_and(|u| u > now) {
        return;
    }
    let until = now.saturating_add(crate::rules::millis(c.cfg.adaptive.avoid_source_for));
    q.avoid_until = Some(until);
    let mut e = base_action(ActionKind::AvoidSource, "connect", key, t);
    e.reply = Some(reply.to_string());
    e.until = Some(until);
    v.actions.push(e);
}

fn apply_rule(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    f: Triggered,
    now: UnixMillis,
    v: &mut Verdict,
) {
    let cause = format!("rule:{}", f.rule);
    let kind = match &f.action {
        Action::Suspend { .. } => ActionKind::Suspend,
        Action::Throttle { .. } => ActionKind::Throttle,
        Action::Set { .. } => ActionKind::Set,
        Action::Bounce => ActionKind::Bounce,
    };
    let mut e = base_action(kind, cause.clone(), key, t);
    e.reply = Some(f.reply.clone());
    e.count = Some(u64::from(f.count));
    e.window_secs = (!f.window.is_zero()).then_some(f.window.as_secs());
    e.until = f.until;
    let until = f.until.unwrap_or(now);
    let q = inner.queues.entry(key.clone()).or_default();
    match f.action {
        Action::Suspend { .. } => {
            let scope = e.scope.clone();
            let reason = format!("{cause}: {}", f.reply);
            let s = Suspension {
                until: Some(until),
                reason,
                since: now,
            };
            inner.suspensions.insert(scope, s);
            v.hold_until(Some(until));
        }
        Action::Throttle { factor, .. } => {
            let live = live_rate(c, key, t, q, now);
            let floor = c.cfg.adaptive.aimd.min;
            (e.rate_before, e.rate_after) =
                impose_throttle(q, live, floor, factor, until, cause, now);
        }
        Action::Set {
            max_connections, ..
        } => {
            if let Some(n) = max_connections {
                e.max_connections = Some(n);
                q.set_connections = Some(Timed {
                    value: n,
                    until,
                    cause,
                });
            }
        }
        Action::Bounce => v.bounce = true,
    }
    v.actions.push(e);
}

#[allow(clippy::too_many_arguments)]
fn sweep(
    inner: &mut Inner,
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    outcome: Outcome,
    now: UnixMillis,
    v: &mut Verdict,
) {
    let cfg = &c.cfg.adaptive.sweep;
    let s = sweep_state(inner, c, (key.source.clone(), t.domain.to_string()), now);
    if s.last
        .as_ref()
        .is_none_or(|(k, p)| k != key || p.as_deref() != t.provider)
    {
        s.last = Some((key.clone(), t.provider.map(str::to_string)));
    }
    s.sweep.record(outcome, now);
    let bad = outcome.is_bad();
    let active = s.acted_until > now;
    if !bad || (active && s.acted_suspend) {
        return;
    }
    let Some(act) = s.sweep.evaluate(now) else {
        return;
    };
    let suspend = matches!(act.kind, SweepKind::Suspend);
    if active && !suspend {
        return;
    }
    s.acted_until = act.until;
    s.acted_suspend = suspend;
    let metric = match act.metric {
        SweepMetric::InvalidAndTimeouts => "invalid_and_timeouts",
        SweepMetric::Complaints => "complaints",
    };
    let cause = format!("sweep:{metric}");
    let scope = Scope::SourceDomain {
        source: key.source.to_string(),
        domain: t.domain.to_string(),
    };
    let kind = match act.kind {
        SweepKind::Suspend => ActionKind::Suspend,
        SweepKind::Throttle { .. } => ActionKind::Throttle,
    };
    let mut e = ShapingAction::new(kind, cause.clone(), scope.clone());
    e.provider = t.provider.map(str::to_string);
    e.count = Some(act.count);
    e.volume = Some(act.volume);
    e.ratio = Some(act.ratio);
    e.window_secs = Some(cfg.window.as_secs());
    e.until = Some(act.until);
    match act.kind {
        SweepKind::Suspend => {
            let reason = format!(
                "{cause}: {} of {} ({:.2}%)",
                act.count,
                act.volume,
                act.ratio * 100.0
            );
            inner.suspensions.insert(
                scope,
                Suspension {
                    until: Some(act.until),
                    reason,
                    since: now,
                },
            );
            v.hold_until(Some(act.until));
        }
        SweepKind::Throttle { factor } => {
            let q = inner.queues.entry(key.clone()).or_default();
            let live = live_rate(c, key, t, q, now);
            let floor = c.cfg.adaptive.aimd.min;
            (e.rate_before, e.rate_after) =
                impose_throttle(q, live, floor, factor, act.until, cause, now);
        }
    }
    v.actions.push(e);
}

/// The queue's live rate limit in messages per hour (`None` = unlimited).
fn live_rate(
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    q: &QueueState,
    now: UnixMillis,
) -> Option<f64> {
    super::live_params(c, key, t, Some(q), now)
        .max_message_rate
        .map(crate::Rate::per_hour)
}

/// Multiplies the queue's rate by `factor` until `until`: the live limit, or the rate it is
/// really sending at when that is lower (or when unlimited). A quiet queue (nothing measured)
/// is throttled from its live limit, never from zero. Returns the rate before and after,
/// messages per hour.
fn impose_throttle(
    q: &mut QueueState,
    live: Option<f64>,
    floor: f64,
    factor: f64,
    until: UnixMillis,
    cause: String,
    now: UnixMillis,
) -> (Option<f64>, Option<f64>) {
    let measured = q.meter.per_hour(now);
    let base = match (live, measured >= 1.0) {
        (Some(l), true) => l.min(measured),
        (Some(l), false) => l,
        (None, true) => measured,
        (None, false) => floor,
    };
    let after = (base * factor).max(floor.min(base));
    q.throttle = Some(Timed {
        value: after,
        until,
        cause,
    });
    (Some(base), Some(after))
}

#[cfg(test)]
mod tests {
    use super::super::AdaptiveLimits;
    use crate::{Limits, Observed, QueueKey, ShapingConfig, Target};
    use cartero_clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn sweeps_of_pairs_without_recent_traffic_are_dropped_as_the_map_grows() {
        let clock = ManualClock::new(1_700_000_000_000);
        let l = AdaptiveLimits::new(ShapingConfig::default(), &[], Arc::new(clock.clone()))
            .unwrap_or_else(|e| panic!("engine: {e}"));
        let key = QueueKey {
            source: "ip1".into(),
            site: "mx.test".into(),
        };
        let deliver = |d: &str| {
            let t = Target {
                domain: d,
                provider: None,
            };
            l.observe(&key, &t, Observed::Delivered);
        };
        for i in 0..3 * super::MIN_SWEEPS_PRUNE {
            deliver(&format!("old{i}.test"));
        }
        let grown = l.inner.lock().sweeps.len();
        assert_eq!(
            grown,
            3 * super::MIN_SWEEPS_PRUNE,
            "all pairs have recent traffic"
        );
        // Two hours later the old windows are empty. The map was last pruned at 2,048 pairs, all
        // busy, so the next pass comes at 4,096: after it only the new pairs are left.
        clock.advance(std::time::Duration::from_secs(2 * 3_600));
        let fresh = 4 * super::MIN_SWEEPS_PRUNE - grown + 10;
        for i in 0..fresh {
            deliver(&format!("new{i}.test"));
        }
        let now = l.inner.lock().sweeps.len();
        assert_eq!(
            now, fresh,
            "only the pairs with traffic in the window are kept"
        );
        // Complaints about domains never sent to add nothing.
        for i in 0..100 {
            assert!(
                l.complaint("ip1", &format!("never{i}.test"))
                    .actions
                    .is_empty()
            );
        }
        assert_eq!(l.inner.lock().sweeps.len(), fresh);
    }
}
