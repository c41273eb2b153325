//! The commands the scheduler task answers, and the handle that sends them. The channel is
//! bounded: when the scheduler falls behind, injection and workers wait instead of piling up
//! commands in memory.

use super::QRcpt;
use super::ready::Batch;
use super::view;
use crate::outcome::{AttemptContext, Failure, Outcome};
use crate::routing::Destination;
use cartero_clock::UnixMillis;
use cartero_shaping::{QueueKey, Scope, ShapingAction};
use cartero_spool::MessageId;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Commands waiting for the scheduler at most. One command carries a whole message's
/// recipients or a whole transaction's outcomes, so this is plenty to keep it busy.
const CAPACITY: usize = 4096;

/// Everything the scheduler can be asked.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// New (or recovered) recipients, each with its `next_attempt`.
    Enqueue(Vec<QRcpt>),
    /// A connection worker wants work; `wait` parks it while the queue is empty.
    NextBatch {
        key: QueueKey,
        wait: bool,
        reply: oneshot::Sender<Batch>,
    },
    /// Outcomes of one transaction.
    Settled(Vec<(QRcpt, Outcome)>, AttemptContext),
    /// A worker ended; `failure` when it could not connect to any host.
    WorkerExit {
        key: QueueKey,
        failure: Option<Failure>,
    },
    Routed {
        domain: Arc<str>,
        /// The destination, or the failure outcome (transient or permanent) for every
        /// recipient waiting for the domain.
        result: Result<Arc<Destination>, Outcome>,
    },
    /// Re-examine due recipients now (tests with a manual clock, and the timer).
    Tick,
    /// Make the recipients of a domain (all when `None`) due now; replies with the count.
    Flush {
        domain: Option<String>,
        reply: oneshot::Sender<usize>,
    },
    /// Fail every queued recipient of a domain; replies with the count.
    Drain {
        domain: String,
        reply: oneshot::Sender<usize>,
    },
    Summary {
        reply: oneshot::Sender<view::QueueSummary>,
    },
    Inspect {
        id: MessageId,
        reply: oneshot::Sender<Option<view::MessageView>>,
    },
    /// Suspend a scope (`until` `None` = until resumed); what is queued for it waits.
    Suspend {
        scope: Scope,
        until: Option<UnixMillis>,
        reason: String,
        reply: oneshot::Sender<ShapingAction>,
    },
    /// A spam complaint about mail `source` sent to `domain`: fed to the sweep, whose actions
    /// apply here like those of a delivery outcome.
    Complaint { source: String, domain: String },
    /// Lift a suspension and wake what waited for it; `None` when there was none.
    Resume {
        scope: Scope,
        reply: oneshot::Sender<Option<ShapingAction>>,
    },
    /// Stop starting transactions; reply once every worker has finished.
    Shutdown { reply: oneshot::Sender<()> },
}

/// Cheap handle to send commands to the scheduler.
#[derive(Debug, Clone)]
pub(crate) struct SchedulerHandle {
    tx: mpsc::Sender<Cmd>,
}

/// Creates the channel between the handles and the scheduler task.
pub(crate) fn channel() -> (SchedulerHandle, mpsc::Receiver<Cmd>) {
    let (tx, rx) = mpsc::channel(CAPACITY);
    (SchedulerHandle { tx }, rx)
}

impl SchedulerHandle {
    /// Sends a command, waiting while the scheduler is behind.
    pub async fn send(&self, cmd: Cmd) {
        // The scheduler only stops at process end; a send after that has nobody to tell.
        let _ = self.tx.send(cmd).await;
    }

    /// Sends without waiting; `false` when the scheduler is behind (or gone) and the command
    /// was dropped. Only for commands whose loss costs nothing but a delay or a count.
    pub fn try_send(&self, cmd: Cmd) -> bool {
        self.tx.try_send(cmd).is_ok()
    }

    /// Sends a command that carries a reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx)).await;
        rx.await.ok()
    }
}
