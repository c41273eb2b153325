//! The one place that decides what an outcome means: requeue or finish, hold without using an
//! attempt, the spool record, the delivery and shaping events and the metrics. Nothing else in
//! the MTA emits delivery events or changes recipient state.

use super::{LastFailure, QRcpt};
use crate::outcome::{AttemptContext, Failure, Lane, Outcome};
use crate::retry::RetryConfig;
use cartero_clock::{SharedClock, UnixMillis};
use cartero_events::{Event, EventSink, EventType};
use cartero_shaping::{Limits, Observed, Sent, ShapingAction, Target, Verdict};
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

pub(crate) struct Settler {
    pub spool: Spool,
    pub events: Arc<dyn EventSink>,
    pub clock: SharedClock,
    pub retry: RetryConfig,
    pub limits: Arc<dyn Limits>,
}

impl Settler {
    /// Settles one outcome. The verdict of shaping (when the recipient came from a queue) is
    /// returned so the scheduler can apply what concerns the whole queue (suspend, bounce).
    pub fn settle(
        &self,
        mut r: QRcpt,
        outcome: Outcome,
        at: &AttemptContext,
    ) -> (Disposition, Option<Verdict>) {
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
        if let (Some(until), Outcome::Transient(f)) = (hold, &outcome) {
            // The site refused the pace or is suspended: the recipient waits without using up an
            // attempt (SPEC §2.6), but the reply is still reported.
            r.hold(until, now);
            self.record(&r, RcptStatus::Queued, Some(f.text.clone()));
            self.events
                .emit(&self.event(EventType::Delay, &r, &outcome, Some(f), at, now));
            count(EventType::Delay);
            return (Disposition::Requeue(r), verdict);
        }
        (self.finish(r, outcome, at, now), verdict)
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
        self.record(&r, status, last_reply);
        self.events
            .emit(&self.event(kind, &r, &outcome, failure, at, now));
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

    fn record(&self, r: &QRcpt, status: RcptStatus, last_reply: Option<String>) {
        let state = RcptState {
            status,
            attempts: r.attempts,
            next_attempt: r.next_attempt,
            last_reply,
        };
        if let Err(e) = self.spool.update_nowait(r.msg.id, r.idx, state) {
            tracing::error!(message = %r.msg.id, rcpt = r.idx, error = %e, "spool update failed");
        }
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
        let mut e = Event::new(EventType::Shaping, self.clock.as_ref());
        e.reason = Some(a.cause.clone());
        e.raw_reason = a.reply.clone();
        e.routing_domain = domain.map(str::to_string);
        e.shaping = serde_json::to_value(a).ok();
        tracing::info!(action = ?a.action, cause = %a.cause, scope = %a.scope, "shaping action");
        self.events.emit(&e);
        metrics::counter!("cartero_shaping_actions_total").increment(1);
    }

    fn event(
        &self,
        kind: EventType,
        r: &QRcpt,
        outcome: &Outcome,
        failure: Option<&Failure>,
        at: &AttemptContext,
        now: u64,
    ) -> Event {
        let mut e = crate::inject::base_event(kind, &r.msg, r.idx, self.clock.as_ref());
        e.num_retries = Some(r.attempts as u32);
        e.queue_time = Some(now.saturating_sub(r.msg.env.received_at));
        e.mx_host = at.mx_host.clone();
        e.sending_ip = at.sending_ip.clone();
        e.tls = at.tls;
        e.routing_domain = Some(r.domain.to_string());
        if let Outcome::Delivered { reply } = outcome {
            e.raw_reason = Some(reply.to_string());
            e.error_code = Some(reply.code);
        }
        if let Some(f) = failure {
            e.bounce_class = Some(f.class.0);
            e.raw_reason = Some(f.text.clone());
            e.reason = Some(f.rule.clone());
            if let Some(reply) = &f.reply {
                e.error_code = Some(reply.code);
                e.enhanced_code = reply.enhanced.map(|c| c.to_string());
            }
        }
        e
    }
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
