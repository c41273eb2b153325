//! The one place that decides what an outcome means: requeue or finish, hold without using an
//! attempt, move to another source, the spool record, the delivery and shaping events and the
//! metrics, and what the outcome means for the whole queue. Nothing else in the MTA tells
//! shaping an outcome, emits delivery events or changes recipient state.

use super::{LastFailure, QRcpt, event};
use crate::outcome::{AttemptContext, Failure, Lane, Outcome};
use crate::retry::RetryConfig;
use cartero_clock::{SharedClock, UnixMillis};
use cartero_events::{Event, EventSink, EventType};
use cartero_shaping::{Limits, Observed, QueueKey, Sent, ShapingAction, Target, Verdict};
use cartero_spool::{RcptState, RcptStatus, Spool};
use std::sync::Arc;

/// What happens to the recipient after settling.
#[derive(Debug)]
pub(crate) enum Disposition {
    /// Back to the scheduled queue at `next_attempt`.
    Requeue(QRcpt),
    /// Final: delivered or failed.
    Final,
}

/// What settled outcomes mean for whole queues, for the scheduler to apply once however many
/// recipients carried the news.
#[derive(Debug, Default)]
pub(crate) struct QueueEffects {
    /// Adaptive actions taken (already published as `shaping` events); a suspension holds
    /// what waits for its scope.
    pub actions: Vec<ShapingAction>,
    /// A `bounce` rule fired on this queue: what waits in it fails with the reply.
    pub bounce: Option<(QueueKey, Failure)>,
}

impl QueueEffects {
    fn add(&mut self, v: Verdict, lane: Option<&Lane>, failure: Option<&Failure>) {
        self.actions.extend(v.actions);
        if let (true, None, Some(lane), Some(f)) = (v.bounce, &self.bounce, lane, failure) {
            self.bounce = Some((lane.key.clone(), f.clone()));
        }
    }

    pub fn merge(&mut self, other: QueueEffects) {
        self.actions.extend(other.actions);
        if self.bounce.is_none() {
            self.bounce = other.bounce;
        }
    }
}

pub(crate) struct Settler {
    pub spool: Spool,
    pub events: Arc<dyn EventSink>,
    pub clock: SharedClock,
    pub retry: RetryConfig,
    pub limits: Arc<dyn Limits>,
}

impl Settler {
    /// Settles one outcome.
    pub fn settle(
        &self,
        mut r: QRcpt,
        outcome: Outcome,
        at: &AttemptContext,
    ) -> (Disposition, QueueEffects) {
        let now = self.clock.now_ms();
        let outcome = match outcome {
            Outcome::Transient(f) if now >= r.msg.env.expires_at => Outcome::Expired(f),
            o => o,
        };
        let verdict = at
            .lane
            .as_ref()
            .map(|lane| self.shape(lane, &r, &outcome, at));
        // A `bounce` rule fails what is queued for the site with the reply, this recipient too.
        let outcome = match outcome {
            Outcome::Transient(f) if verdict.as_ref().is_some_and(|v| v.bounce) => {
                Outcome::Permanent(f)
            }
            o => o,
        };
        let hold = verdict.as_ref().and_then(|v| v.hold);
        let mut effects = QueueEffects::default();
        if let Some(v) = verdict {
            effects.add(v, at.lane.as_ref(), failure_of(&outcome));
        }
        if let (Some(until), Outcome::Transient(f)) = (hold, &outcome) {
            // The site refused the pace or is suspended: the recipient waits without using up an
            // attempt (SPEC §2.6), but the reply is still reported.
            r.hold(until, now);
            let e = event::outcome(EventType::Delay, &r, &outcome, at, self.clock.as_ref(), now);
            self.record_and_emit(&r, RcptStatus::Queued, Some(f.text.clone()), &e);
            count(EventType::Delay);
            return (Disposition::Requeue(r), effects);
        }
        (self.finish(r, outcome, at, now), effects)
    }

    /// Settles a connection that reached no host, for the recipients that waited for it
    /// (empty when other connections still work the queue). Shaping hears of the connection
    /// once — a refusal lowers the live connection limit, a network failure makes the source
    /// avoided — and each recipient once as deferred. When the source is avoided and its pool
    /// has another (`may_move`), they move on without using an attempt.
    pub fn connection_failed(
        &self,
        lane: &Lane,
        failure: Failure,
        waiting: Vec<QRcpt>,
        may_move: bool,
    ) -> (Vec<Disposition>, QueueEffects) {
        let reply = failure.reply_line();
        let t = Target {
            domain: waiting.first().map_or("", |r| &*r.domain),
            provider: lane.provider.as_deref(),
        };
        let observed = Observed::ConnectFailed {
            reply: &reply,
            refused: failure.reply.is_some(),
        };
        let v = self.limits.observe(&lane.key, &t, observed);
        for a in &v.actions {
            self.shaping_event(a, waiting.first().map(|r| &*r.domain));
        }
        let (avoided, bounce) = (v.hold.is_some(), v.bounce);
        let mut effects = QueueEffects::default();
        effects.add(v, Some(lane), Some(&failure));
        let mut at = AttemptContext::on_lane(lane.clone());
        at.connection_failed = true;
        let now = self.clock.now_ms();
        let mut out = Vec::with_capacity(waiting.len());
        for mut r in waiting {
            if avoided && may_move {
                release_unsent(
                    self.limits.as_ref(),
                    &lane.key,
                    lane.provider.as_deref(),
                    &r,
                );
                r.next_attempt = now;
                out.push(Disposition::Requeue(r));
                continue;
            }
            let outcome = match bounce {
                true => Outcome::Permanent(failure.clone()),
                false => Outcome::Transient(failure.clone()),
            };
            let (d, e) = self.settle(r, outcome, &at);
            out.push(d);
            effects.merge(e);
        }
        (out, effects)
    }

    /// A spam complaint about mail `source` sent to `domain`, charged to its sweep.
    pub fn complaint(&self, source: &str, domain: &str) -> QueueEffects {
        let v = self.limits.complaint(source, domain);
        for a in &v.actions {
            self.shaping_event(a, Some(domain));
        }
        let mut effects = QueueEffects::default();
        effects.add(v, None, None);
        effects
    }

    fn finish(
        &self,
        mut r: QRcpt,
        outcome: Outcome,
        at: &AttemptContext,
        now: UnixMillis,
    ) -> Disposition {
        let (kind, failure, status) = match &outcome {
            Outcome::Delivered { .. } => (EventType::Delivery, None, RcptStatus::Delivered),
            Outcome::Transient(f) => (EventType::Delay, Some(f), RcptStatus::Queued),
            Outcome::Permanent(f) => (EventType::Bounce, Some(f), RcptStatus::Failed),
            Outcome::Expired(f) => (EventType::Expiration, Some(f), RcptStatus::Failed),
        };
        r.held = false;
        if let Some(f) = failure
            && status == RcptStatus::Queued
        {
            r.attempts = r.attempts.saturating_add(1);
            let delay = self
                .retry
                .delay(r.attempts as u32, f.class, fastrand::f64());
            // Past the validity there is no next attempt: wake up at expiry to fail it then.
            let delay = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
            r.next_attempt = now.saturating_add(delay).min(r.msg.env.expires_at);
            r.last = Some(Box::new(LastFailure {
                text: f.text.clone().into(),
                class: f.class,
            }));
        }
        let last_reply = match &outcome {
            Outcome::Delivered { reply } => Some(reply.to_string()),
            _ => failure.map(|f| f.text.clone()),
        };
        let e = event::outcome(kind, &r, &outcome, at, self.clock.as_ref(), now);
        self.record_and_emit(&r, status, last_reply, &e);
        count(kind);
        if kind == EventType::Delivery {
            let secs = now.saturating_sub(r.msg.env.received_at) as f64 / 1000.0;
            metrics::histogram!("cartero_delivery_queue_time_seconds").record(secs);
        }
        if status == RcptStatus::Queued {
            Disposition::Requeue(r)
        } else {
            Disposition::Final
        }
    }

    /// Records the recipient's state and emits its event. With an outbox the event goes into the
    /// spool with the state, in the same batch, so a crash never keeps one without the other.
    fn record_and_emit(
        &self,
        r: &QRcpt,
        status: RcptStatus,
        last_reply: Option<String>,
        event: &Event,
    ) {
        let state = RcptState {
            status,
            attempts: r.attempts,
            next_attempt: r.next_attempt,
            last_reply,
        };
        let (id, idx) = (r.msg.id, r.idx);
        let encoded = match self.spool.outbox_enabled() {
            true => crate::outbox::encode(event),
            false => None,
        };
        let written = match encoded {
            Some(bytes) => self.spool.update_nowait_with_event(id, idx, state, bytes),
            None => self.spool.update_nowait(id, idx, state),
        };
        if let Err(e) = written {
            tracing::error!(message = %id, rcpt = idx, error = %e, "spool update or its event failed");
        }
        self.events.emit(event);
    }

    /// Exports the outbox gauges (the scheduler calls this with its own gauges).
    pub fn export_gauges(&self) {
        crate::outbox::export_gauges(&self.spool);
    }

    /// Tells shaping the outcome, gives back the warm-up slot of what was not sent, and
    /// publishes the adaptive actions taken.
    fn shape(&self, lane: &Lane, r: &QRcpt, outcome: &Outcome, at: &AttemptContext) -> Verdict {
        let t = Target {
            domain: &r.domain,
            provider: lane.provider.as_deref(),
        };
        let reply = match outcome {
            Outcome::Transient(f) | Outcome::Expired(f) | Outcome::Permanent(f) => f.reply_line(),
            Outcome::Delivered { .. } => "".into(),
        };
        let failed = |f: &Failure, permanent| match at.connection_failed {
            true => Observed::Deferred {
                reply: &reply,
                class: f.class,
            },
            false => Observed::Failed {
                reply: &reply,
                class: f.class,
                permanent,
                session: f.refuses_session(),
            },
        };
        let (observed, sent) = match outcome {
            Outcome::Delivered { .. } => (Observed::Delivered, Sent::Delivered),
            Outcome::Transient(f) | Outcome::Expired(f) => (failed(f, false), Sent::NotSent),
            Outcome::Permanent(f) => {
                let sent = if f.reply.is_some() {
                    Sent::Refused
                } else {
                    Sent::NotSent
                };
                (failed(f, true), sent)
            }
        };
        let verdict = self.limits.observe(&lane.key, &t, observed);
        self.limits.release(&lane.key, &t, sent);
        for a in &verdict.actions {
            self.shaping_event(a, Some(&r.domain));
        }
        verdict
    }

    /// Publishes one adaptive action as a `shaping` event.
    pub fn shaping_event(&self, a: &ShapingAction, domain: Option<&str>) {
        tracing::info!(action = ?a.action, cause = %a.cause, scope = %a.scope, "shaping action");
        self.events
            .emit(&event::shaping(a, domain, self.clock.as_ref()));
        metrics::counter!("cartero_shaping_actions_total").increment(1);
    }
}

fn failure_of(o: &Outcome) -> Option<&Failure> {
    match o {
        Outcome::Transient(f) | Outcome::Permanent(f) | Outcome::Expired(f) => Some(f),
        Outcome::Delivered { .. } => None,
    }
}

/// Gives back the warm-up slot of a recipient admitted on `key` that leaves without being sent.
pub(super) fn release_unsent(
    limits: &dyn Limits,
    key: &QueueKey,
    provider: Option<&str>,
    r: &QRcpt,
) {
    let t = Target {
        domain: &r.domain,
        provider,
    };
    limits.release(key, &t, Sent::NotSent);
}

fn count(kind: EventType) {
    let name = match kind {
        EventType::Delivery => "cartero_recipients_delivered_total",
        EventType::Delay => "cartero_recipients_deferred_total",
        EventType::Bounce => "cartero_recipients_bounced_total",
        EventType::Expiration => "cartero_recipients_expired_total",
        _ => return,
    };
    metrics::counter!(name).increment(1);
}
