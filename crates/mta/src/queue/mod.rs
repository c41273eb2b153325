//! The scheduler: one task that owns every queued recipient.
//!
//! * The **scheduled queue** orders recipients by next-attempt time; when one is due it is routed
//!   (per domain, cached) and moved to the **ready queue** of its (egress source, site).
//! * Connection workers (`crate::delivery`) ask their ready queue for batches and report outcomes.
//! * Outcomes are settled in one place (`settle`), which requeues, finalises, emits events and
//!   counts metrics.
//!
//! One owner task means no locks on the hot path and a single order of events per recipient.

mod cmd;
mod dispatch;
pub(crate) mod event;
mod hold;
mod ready;
mod settle;
mod state;
pub mod view;

pub(crate) use cmd::{Cmd, SchedulerHandle, channel};
pub(crate) use ready::Batch;
pub(crate) use settle::Settler;
pub(crate) use state::Scheduler;

use crate::pools::Pools;
use crate::routing::Destination;
use cartero_clock::{SharedClock, UnixMillis};
use cartero_shaping::{ConnectionPermit, Limits, QueueKey};
use cartero_spool::{Envelope, MessageId};
use std::sync::Arc;

/// What the scheduler starts but does not run itself: route lookups and connection workers.
/// The delivery module implements it, so the queues never depend on how mail is sent.
pub(crate) trait Launcher: Send + Sync {
    /// Looks `domain` up; the answer comes back as [`Cmd::Routed`].
    fn resolve(&self, domain: Arc<str>);
    /// Opens a connection for the queue `key`; [`Cmd::WorkerExit`] reports its end, whatever
    /// happens to it.
    fn connect(
        &self,
        key: QueueKey,
        dest: Arc<Destination>,
        domain: Arc<str>,
        permit: ConnectionPermit,
    );
}

/// What the scheduler needs from the rest of the MTA.
pub(crate) struct QueueCtx {
    pub clock: SharedClock,
    pub limits: Arc<dyn Limits>,
    pub pools: Arc<Pools>,
    pub launcher: Arc<dyn Launcher>,
    /// Per-recipient return paths (inMail) need one recipient per transaction.
    pub one_recipient_per_transaction: bool,
    pub route_cache_ms: u64,
    /// Outbound connections across all destinations.
    pub max_workers: u32,
}

/// A message as the queues hold it: the envelope in memory, the body on disk.
#[derive(Debug)]
pub(crate) struct Msg {
    pub id: MessageId,
    pub env: Envelope,
    pub size: u64,
}

/// Why a recipient last failed, kept for the expiry event and `cartero queue`.
#[derive(Debug, Clone)]
pub(crate) struct LastFailure {
    pub text: Box<str>,
    pub class: cartero_bounce::BounceClass,
}

/// One queued recipient. Kept small: a million of these must fit well under 1 GiB.
#[derive(Debug, Clone)]
pub(crate) struct QRcpt {
    pub msg: Arc<Msg>,
    pub idx: u32,
    pub domain: Arc<str>,
    /// Transient failures so far.
    pub attempts: u16,
    /// Waiting for a suspension or throttle to end rather than for a retry; `resume` wakes these.
    pub held: bool,
    pub next_attempt: UnixMillis,
    pub last: Option<Box<LastFailure>>,
}

impl QRcpt {
    /// Waits, without using an attempt, until `until` (`None` = until resumed), not before
    /// `not_before` and never past the validity: an expired recipient is due at once and fails.
    pub fn hold(&mut self, until: Option<UnixMillis>, not_before: UnixMillis) {
        self.next_attempt = until
            .unwrap_or(u64::MAX)
            .max(not_before)
            .min(self.msg.env.expires_at);
        self.held = true;
    }

    pub fn address(&self) -> &str {
        self.msg
            .env
            .recipients
            .get(self.idx as usize)
            .map_or("", String::as_str)
    }
}

pub(crate) use cartero_address::routing_domain as domain_of;

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_spool::{Envelope, MessageId};

    fn rcpt(expires_at: UnixMillis) -> QRcpt {
        let env = Envelope {
            sender: String::new(),
            recipients: vec!["a@b.test".into()],
            received_at: 0,
            expires_at,
            metadata: Default::default(),
            pool: None,
            idempotency: Vec::new(),
        };
        let msg = Arc::new(Msg {
            id: MessageId(1),
            env,
            size: 1,
        });
        QRcpt {
            msg,
            idx: 0,
            domain: "b.test".into(),
            attempts: 0,
            held: false,
            next_attempt: 0,
            last: None,
        }
    }

    #[test]
    fn regression_hold_of_an_expired_recipient_does_not_panic() {
        // `clamp(now + 1, expires_at)` panicked when a suspension evicted a recipient whose
        // validity had ended while it waited in a ready queue.
        let mut r = rcpt(1_000);
        r.hold(Some(5_000), 2_001);
        assert_eq!(r.next_attempt, 1_000, "due at once, to expire");
        assert!(r.held);
        let mut r = rcpt(10_000);
        r.hold(None, 2_001);
        assert_eq!(
            r.next_attempt, 10_000,
            "until resumed = until the validity ends"
        );
        r.hold(Some(3_000), 2_001);
        assert_eq!(r.next_attempt, 3_000);
        r.hold(Some(1_000), 2_001);
        assert_eq!(r.next_attempt, 2_001, "never before not_before");
    }
}
