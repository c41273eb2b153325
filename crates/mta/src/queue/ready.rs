//! Ready queues: recipients routed and waiting for a connection of one (source, site).

use super::QRcpt;
use crate::routing::Destination;
use cartero_clock::UnixMillis;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::oneshot;

/// What a connection worker gets when it asks for work.
#[derive(Debug)]
pub(crate) enum Batch {
    /// Recipients of one message, to send in one transaction.
    Send(Vec<QRcpt>),
    /// The rate allows the next message at this clock time; ask again then.
    WaitUntil(UnixMillis),
    /// Nothing to do: close the connection.
    Done,
}

#[derive(Debug)]
pub(crate) struct ReadyQueue {
    pub dest: Arc<Destination>,
    pub items: VecDeque<QRcpt>,
    /// Workers that are connected (or connecting).
    pub active: u32,
    /// Idle workers parked until work arrives.
    pub waiters: Vec<oneshot::Sender<Batch>>,
    /// A domain that routes here, for per-domain limits.
    pub domain: Arc<str>,
}

impl ReadyQueue {
    pub fn new(dest: Arc<Destination>, domain: Arc<str>) -> Self {
        Self {
            dest,
            items: VecDeque::new(),
            active: 0,
            waiters: Vec::new(),
            domain,
        }
    }

    /// Takes the next recipient and the following recipients of the same message, up to `max`.
    pub fn take_batch(&mut self, max: usize) -> Vec<QRcpt> {
        let mut batch = Vec::new();
        let Some(first) = self.items.pop_front() else {
            return batch;
        };
        let msg = first.msg.id;
        batch.push(first);
        while batch.len() < max.max(1) {
            match self.items.front() {
                Some(next) if next.msg.id == msg => {
                    if let Some(r) = self.items.pop_front() {
                        batch.push(r);
                    }
                }
                _ => break,
            }
        }
        batch
    }
}
