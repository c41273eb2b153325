//! Group commit of transactional calls: the requests that arrive while a transaction is being
//! written wait together and go in the next one, so a busy node commits many calls at once
//! instead of queueing one transaction per call behind the single writer. Each request is
//! answered once its transaction committed; a request refused for a key conflict is taken out
//! and the others are written without it.

use super::Engine;
use crate::model::{LogStatus, UnixMillis};
use crate::quarantine;
use crate::store::{CallOutcome, GroupError, NewCall, StoreError, TxTemplate};
use tokio::sync::oneshot;

/// Calls one transaction carries at most (a request's calls are never split).
const MAX_CALLS: usize = 2_000;

/// Each call's outcome and the status its row was stored with.
pub(super) type Stored = (Vec<CallOutcome>, Vec<LogStatus>);

type Reply = oneshot::Sender<Result<Stored, StoreError>>;

/// One request waiting for its commit.
pub(super) struct Waiting {
    template: TxTemplate,
    calls: Vec<NewCall>,
    reply: Reply,
}

/// The requests waiting, and whether a writer is draining them.
#[derive(Default)]
pub(super) struct CallQueue {
    waiting: Vec<Waiting>,
    writing: bool,
}

impl Engine {
    /// Stores one request's calls with whatever else is waiting; returns its outcomes.
    pub(super) async fn commit_calls(
        &self,
        template: TxTemplate,
        calls: Vec<NewCall>,
    ) -> Result<Stored, StoreError> {
        let (reply, answer) = oneshot::channel();
        let start = {
            let mut q = self.inner.tx_queue.lock();
            q.waiting.push(Waiting {
                template,
                calls,
                reply,
            });
            !std::mem::replace(&mut q.writing, true)
        };
        if start {
            // Its own task: the caller's request may be dropped, the others must be written.
            let engine = self.clone();
            tokio::spawn(async move { engine.write_waiting().await });
        }
        answer
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::Protocol("the call writer stopped".into())))?
    }

    async fn write_waiting(&self) {
        loop {
            let batch = {
                let mut q = self.inner.tx_queue.lock();
                if q.waiting.is_empty() {
                    q.writing = false;
                    return;
                }
                let mut n = 0;
                let take = q
                    .waiting
                    .iter()
                    .take_while(|w| {
                        n += w.calls.len();
                        n <= MAX_CALLS
                    })
                    .count()
                    .max(1);
                q.waiting.drain(..take).collect::<Vec<_>>()
            };
            self.write(batch).await;
        }
    }

    /// The calls' rows decided with their addresses' quarantine states, read once for the
    /// whole batch (one query instead of one per request).
    async fn decide(&self, batch: &mut [Waiting]) -> Result<(), StoreError> {
        let keys: Vec<String> = batch
            .iter()
            .flat_map(|w| &w.calls)
            .map(|c| quarantine::address_key(&c.row.address))
            .collect();
        let states = self.store().address_states(&keys).await?;
        let now = self.now();
        for c in batch.iter_mut().flat_map(|w| &mut w.calls) {
            c.row = self.decide_call(now, &c.row.address, c.row.delivery, &states);
        }
        Ok(())
    }

    /// One transaction for `batch`, minus the requests refused on the way.
    async fn write(&self, mut batch: Vec<Waiting>) {
        if let Err(e) = self.decide(&mut batch).await {
            fail_all(batch, &e.to_string());
            return;
        }
        while !batch.is_empty() {
            let now = self.now();
            let window = self.inner.cfg.idempotency_window;
            let window_start: UnixMillis =
                now.saturating_sub(u64::try_from(window.as_millis()).unwrap_or(u64::MAX));
            let groups: Vec<(&TxTemplate, &[NewCall])> = batch
                .iter()
                .map(|w| (&w.template, w.calls.as_slice()))
                .collect();
            match self
                .store()
                .insert_call_groups(&groups, window_start, now)
                .await
            {
                Ok(outcomes) => {
                    for (w, o) in batch.into_iter().zip(outcomes) {
                        let statuses = w.calls.iter().map(|c| c.row.status).collect();
                        let _ = w.reply.send(Ok((o, statuses)));
                    }
                    return;
                }
                Err(GroupError {
                    group: Some(g),
                    error,
                }) => {
                    let refused = batch.remove(g);
                    let _ = refused.reply.send(Err(error));
                }
                Err(GroupError { group: None, error }) => {
                    let text = error.to_string();
                    tracing::error!(error = %text, calls = batch.len(), "transactional calls not stored");
                    fail_all(batch, &text);
                    return;
                }
            }
        }
    }
}

/// Answers every request of `batch` with the same database error.
fn fail_all(batch: Vec<Waiting>, text: &str) {
    for w in batch {
        let _ = w
            .reply
            .send(Err(StoreError::Db(sqlx::Error::Protocol(text.to_string()))));
    }
}
