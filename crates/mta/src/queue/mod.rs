//! The scheduler: one task that owns every queued recipient.
//!
//! * The **scheduled queue** orders recipients by next-attempt time; when one is due it is routed
//!   (per domain, cached) and moved to the **ready queue** of its (egress source, site).
//! * Connection workers (`crate::delivery`) ask their ready queue for batches and report outcomes.
//! * Outcomes are settled in one place (`settle`), which requeues, finalises, emits events and
//!   counts metrics.
//!
//! One owner task means no locks on the hot path and a single order of events per recipient.

mod dispatch;
mod hold;
mod ready;
mod settle;
mod state;
pub mod view;

pub(crate) use ready::Batch;
pub(crate) use settle::Settler;
pub(crate) use state::{Cmd, Scheduler, SchedulerHandle};

use cartero_clock::UnixMillis;
use cartero_spool::{Envelope, MessageId};
use std::sync::Arc;

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
    pub fn address(&self) -> &str {
        self.msg
            .env
            .recipients
            .get(self.idx as usize)
            .map_or("", String::as_str)
    }
}

/// The domain part of an address, lowercased; empty for an address without `@`.
pub(crate) fn domain_of(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
        .unwrap_or_default()
}
