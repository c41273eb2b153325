//! The one place that decides what an outcome means: requeue or finish, the spool record, the
//! event and the metrics. Nothing else in the MTA emits delivery events or changes recipient state.

use super::{LastFailure, QRcpt};
use crate::outcome::{AttemptContext, Failure, Outcome};
use crate::retry::RetryConfig;
use cartero_clock::SharedClock;
use cartero_events::{Event, EventSink, EventType};
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
    pub source_ip: Option<String>,
}

impl Settler {
    pub fn settle(&self, mut r: QRcpt, outcome: Outcome, at: &AttemptContext) -> Disposition {
        let now = self.clock.now_ms();
        let outcome = match outcome {
            Outcome::Transient(f) if now >= r.msg.env.expires_at => Outcome::Expired(f),
            o => o,
        };
        let (kind, failure, status) = match &outcome {
            Outcome::Delivered { .. } => (EventType::Delivery, None, RcptStatus::Delivered),
            Outcome::Transient(f) => (EventType::Delay, Some(f), RcptStatus::Queued),
            Outcome::Permanent(f) => (EventType::Bounce, Some(f), RcptStatus::Failed),
            Outcome::Expired(f) => (EventType::Expiration, Some(f), RcptStatus::Failed),
        };
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
        let state = RcptState {
            status,
            attempts: r.attempts,
            next_attempt: r.next_attempt,
            last_reply,
        };
        if let Err(e) = self.spool.update_nowait(r.msg.id, r.idx, state) {
            tracing::error!(message = %r.msg.id, rcpt = r.idx, error = %e, "spool update failed");
        }
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
        e.sending_ip = at.sending_ip.clone().or_else(|| self.source_ip.clone());
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
