//! Turning one observed outcome into adaptive actions: response rules, AIMD, the learned
//! connection limit and sweeps. Called with the engine lock held; pure apart from `inner`.

use super::{ActionKind, Compiled, Inner, Observed, QueueState, Scope, ShapingAction, Suspension};
use super::{SweepState, Target, Timed, Verdict};
use crate::rules::{Action, Triggered};
use crate::sweep::{Outcome, Sweep, SweepKind, SweepMetric};
use crate::{Aimd, QueueKey};
use cartero_clock::UnixMillis;

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
        } => {
            let fired = inner.rules.observe(key, t.provider, reply, now);
            for f in fired {
                apply_rule(inner, c, key, t, f, now, &mut v);
            }
            if !permanent && c.throttle.is_match(reply) {
                on_throttle(inner, c, key, t, reply, now, &mut v);
            }
            sweep(inner, c, key, t, Outcome::Failed { class }, now, &mut v);
        }
        Observed::ConnectFailed { reply, refused } => {
            let fired = inner.rules.observe(key, t.provider, reply, now);
            for f in fired {
                apply_rule(inner, c, key, t, f, now, &mut v);
            }
            if refused || c.throttle.is_match(reply) {
                on_refused(inner, c, key, t, reply, now, &mut v);
            } else {
                avoid(inner, c, key, t, reply, now, &mut v);
            }
        }
        Observed::Complaint => sweep(inner, c, key, t, Outcome::Complaint, now, &mut v),
    }
    if !v.actions.is_empty() {
        inner.dirty = true;
    }
    v
}

fn aimd_of<'a>(q: &'a mut QueueState, c: &Compiled, key: &QueueKey, t: &Target) -> &'a mut Aimd {
    let ceiling = c
        .cfg
        .resolve(&key.source, &key.site, t.domain, t.provider)
        .max_message_rate;
    let cfg = c.cfg.adaptive.aimd.clone();
    match &mut q.aimd {
        Some(a) => {
            a.reconfigure(cfg, ceiling);
            a
        }
        slot @ None => slot.insert(Aimd::new(cfg, ceiling)),
    }
}

fn on_delivered(inner: &mut Inner, c: &Compiled, key: &QueueKey, t: &Target, now: UnixMillis) {
    let q = inner.queues.entry(key.clone()).or_default();
    q.accepted.record(now);
    if q.aimd.is_some() {
        let a = aimd_of(q, c, key, t);
        if a.is_reduced() {
            a.on_success(now);
            inner.dirty = true;
        }
    }
    let Some(live) = q.live_connections else {
        return;
    };
    q.successes_since_step += 1;
    if q.successes_since_step >= c.cfg.adaptive.connection_increase_every {
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

/// Pause after a rate decrease, milliseconds.
const THROTTLE_PAUSE_MS: u64 = 1_000;

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
    // When the site is overloaded, what it accepted over the last second is its limit: decrease
    // from that rather than from what we pushed at it, so one decrease lands near the limit.
    let accepted = q.accepted.per_hour(now);
    let sent = q.meter.per_hour(now);
    let measured = if accepted >= 1.0 {
        accepted.min(sent)
    } else {
        sent
    };
    let a = aimd_of(q, c, key, t);
    let before = a.current();
    // The recipient waits for the lower rate without using up an attempt: the site refused the
    // pace, not the recipient.
    v.hold = Some(v.hold.flatten().max(Some(now)));
    if a.on_throttle(now, measured) {
        let after = a.current();
        // Sites count over a sliding second (or more): sending on at once, even at the lower
        // rate, only meets the window the overshoot filled. Pause one second first.
        q.pacer.pause_until(now.saturating_add(THROTTLE_PAUSE_MS));
        let mut e = base_action(ActionKind::RateDecrease, "aimd", key, t);
        e.reply = Some(reply.to_string());
        e.rate_before = before;
        e.rate_after = after;
        v.actions.push(e);
    }
}

/// Refusals needed within the hold-off to lower an already learned connection limit. One is
/// not enough: at connection turnover the site may not have freed the old slot yet when the new
/// connection arrives, and such a race says nothing about its limit.
const REFUSALS_TO_DECREASE: u32 = 3;

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
    let mut e = base_action(ActionKind::ConnectionsDecrease, "aimd", key, t);
    e.reply = Some(reply.to_string());
    e.max_connections = Some(target);
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
    v.hold = Some(Some(now));
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
            v.hold = Some(v.hold.flatten().max(Some(until)));
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
    let s = inner
        .sweeps
        .entry((key.source.clone(), t.domain.to_string()))
        .or_insert_with(|| SweepState {
            sweep: Sweep::new(cfg.clone()),
            acted_until: 0,
            acted_suspend: false,
        });
    s.sweep.record(outcome, now);
    let bad = matches!(
        outcome,
        Outcome::Complaint | Outcome::Failed { class: 10 | 24 }
    );
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
            v.hold = Some(v.hold.flatten().max(Some(act.until)));
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
