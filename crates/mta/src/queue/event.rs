//! Every event the MTA emits about a recipient or a shaping action is built here, so the
//! fields a consumer relies on (SPEC §2.10) are filled the same way whoever emits it.

use super::{Msg, QRcpt};
use crate::outcome::{AttemptContext, Outcome};
use cartero_clock::Clock;
use cartero_events::{Event, EventType};
use cartero_shaping::ShapingAction;
use cartero_spool::Envelope;

/// The fields every event about one recipient of a message carries.
pub(crate) fn recipient(kind: EventType, msg: &Msg, idx: u32, clock: &dyn Clock) -> Event {
    let mut e = about(kind, &msg.env, msg.size, idx, clock);
    e.message_id = Some(msg.id.to_string());
    e
}

/// [`recipient`] without the message id, for a message not spooled yet.
fn about(kind: EventType, env: &Envelope, size: u64, idx: u32, clock: &dyn Clock) -> Event {
    let mut e = Event::new(kind, clock);
    let meta = &env.metadata;
    let text = |k: &str| meta.get(k).and_then(|v| v.as_str()).map(str::to_string);
    e.rcpt_to = env.recipients.get(idx as usize).cloned();
    e.mail_from = Some(env.sender.clone());
    e.delivery_id = text("delivery_id");
    e.campaign_id = text("campaign_id");
    e.metadata = meta.clone();
    e.msg_size = Some(size);
    e.ip_pool = env.pool.clone();
    e
}

/// The `reception` events of a message about to be spooled, one per recipient; the caller sets
/// `message_id` once the spool gave it.
pub(crate) fn receptions(env: &Envelope, size: u64, clock: &dyn Clock) -> Vec<Event> {
    (0..env.recipients.len() as u32)
        .map(|idx| about(EventType::Reception, env, size, idx, clock))
        .collect()
}

/// The event of a settled outcome (delivery, delay, bounce, expiration).
pub(crate) fn outcome(
    kind: EventType,
    r: &QRcpt,
    outcome: &Outcome,
    at: &AttemptContext,
    clock: &dyn Clock,
    now: u64,
) -> Event {
    let mut e = recipient(kind, &r.msg, r.idx, clock);
    e.num_retries = Some(u32::from(r.attempts));
    e.queue_time = Some(now.saturating_sub(r.msg.env.received_at));
    e.mx_host = at.mx_host.clone();
    e.sending_ip = at.sending_ip.clone();
    e.tls = at.tls;
    e.routing_domain = Some(r.domain.to_string());
    match outcome {
        Outcome::Delivered { reply } => {
            e.raw_reason = Some(reply.to_string());
            e.error_code = Some(reply.code);
        }
        Outcome::Transient(f) | Outcome::Permanent(f) | Outcome::Expired(f) => {
            e.bounce_class = Some(f.class.0);
            e.raw_reason = Some(f.text.clone());
            e.reason = Some(f.rule.clone());
            if let Some(reply) = &f.reply {
                e.error_code = Some(reply.code);
                e.enhanced_code = reply.enhanced.map(|c| c.to_string());
            }
        }
    }
    e
}

/// A `shaping` event for one adaptive or operator action.
pub(crate) fn shaping(a: &ShapingAction, domain: Option<&str>, clock: &dyn Clock) -> Event {
    let mut e = Event::new(EventType::Shaping, clock);
    e.reason = Some(a.cause.clone());
    e.raw_reason = a.reply.clone();
    e.routing_domain = domain.map(str::to_string);
    e.shaping = serde_json::to_value(a).ok();
    e
}
