//! Giving work to connections: spawning workers within the limits, handing out batches, and the
//! operator actions that move recipients around (flush, drain).

use super::QRcpt;
use super::ready::Batch;
use super::state::Scheduler;
use crate::outcome::{AttemptContext, Failure, Lane, Outcome};
use cartero_bounce::BounceClass;
use cartero_shaping::{QueueKey, Target, Wait};
use tokio::sync::oneshot;

/// When the limits refuse a connection without saying until when (connection slots, which
/// another node of a cluster may free), the queue asks again after this long.
const RETRY_CONNECTIONS_MS: u64 = 1_000;

impl Scheduler {
    /// Feeds parked workers, then opens connections while the queue has more work than its busy
    /// workers can take and the limits allow.
    pub(super) fn dispatch(&mut self, key: &QueueKey) {
        loop {
            let Some(q) = self.ready.get_mut(key) else {
                return;
            };
            if q.items.is_empty() {
                return;
            }
            let Some(waiter) = q.waiters.pop() else { break };
            if waiter.is_closed() {
                continue;
            }
            let batch = self.make_batch(key);
            if let Err(Batch::Send(rcpts)) = waiter.send(batch) {
                self.requeue_front(key, rcpts);
            }
        }
        loop {
            let Some(q) = self.ready.get_mut(key) else {
                return;
            };
            let wanted = q.items.len() > 2 * q.active as usize || q.active == 0;
            if q.items.is_empty() || !wanted {
                return;
            }
            if self.workers >= self.ctx.max_workers {
                self.starved.insert(key.clone());
                return;
            }
            let t = Target {
                domain: &q.domain,
                provider: q.dest.provider.as_deref(),
            };
            let permit = match self.ctx.limits.open_connection(key, &t) {
                Ok(p) => p,
                Err(w) => {
                    let now = self.ctx.clock.now_ms();
                    let at = match w {
                        Wait::Until(t) => t.max(now + 1),
                        // Live limits grow back by themselves (AIMD): ask again in a while.
                        Wait::Connections => now + RETRY_CONNECTIONS_MS,
                    };
                    let e = self.blocked.entry(key.clone()).or_insert(at);
                    *e = (*e).min(at);
                    return;
                }
            };
            q.active += 1;
            self.workers += 1;
            let (dest, domain) = (q.dest.clone(), q.domain.clone());
            self.ctx.launcher.connect(key.clone(), dest, domain, permit);
        }
    }

    fn requeue_front(&mut self, key: &QueueKey, rcpts: Vec<QRcpt>) {
        if let Some(q) = self.ready.get_mut(key) {
            for r in rcpts.into_iter().rev() {
                q.items.push_front(r);
            }
            self.dirty.insert(key.clone());
        }
    }

    fn make_batch(&mut self, key: &QueueKey) -> Batch {
        let Some(q) = self.ready.get_mut(key) else {
            return Batch::Done;
        };
        if q.items.is_empty() {
            return Batch::Done;
        }
        let t = Target {
            domain: &q.domain,
            provider: q.dest.provider.as_deref(),
        };
        match self.ctx.limits.reserve_message(key, &t) {
            Err(Wait::Until(t)) => return Batch::WaitUntil(t),
            Err(Wait::Connections) | Ok(()) => {}
        }
        let max = if self.ctx.one_recipient_per_transaction {
            1
        } else {
            self.ctx.limits.params(key, &t).max_recipients_per_message
        };
        Batch::Send(q.take_batch(max as usize))
    }

    pub(super) fn next_batch(&mut self, key: QueueKey, wait: bool, reply: oneshot::Sender<Batch>) {
        if self.stopping {
            let _ = reply.send(Batch::Done);
            return;
        }
        // Recipients that just became due should be routed before we tell a worker there is nothing.
        self.pump_due();
        // A worker asking is a connection the site greeted: a queue whose next dial was put off
        // (shaping limits the dials in flight to what the site has already taken) may dial now.
        if self.blocked.contains_key(&key) {
            self.dirty.insert(key.clone());
        }
        match self.make_batch(&key) {
            Batch::Done if wait => {
                if let Some(q) = self.ready.get_mut(&key) {
                    q.waiters.retain(|w| !w.is_closed());
                    q.waiters.push(reply);
                } else {
                    let _ = reply.send(Batch::Done);
                }
            }
            batch => {
                if let Err(Batch::Send(rcpts)) = reply.send(batch) {
                    self.requeue_front(&key, rcpts);
                }
            }
        }
    }

    /// A worker ended. When it could not connect at all and no other connection is working
    /// the queue, what waits in it settles with the connection's failure (see
    /// `Settler::connection_failed`) rather than being retried in a hot loop.
    pub(super) fn worker_exit(&mut self, key: QueueKey, failure: Option<Failure>) {
        self.workers = self.workers.saturating_sub(1);
        // A global connection slot is free: queues that were refused one may try again.
        self.dirty.extend(self.starved.drain());
        if let Some(q) = self.ready.get_mut(&key) {
            q.active = q.active.saturating_sub(1);
            q.waiters.retain(|w| !w.is_closed());
            self.dirty.insert(key.clone());
            if let Some(f) = failure {
                let lane = Lane {
                    key: key.clone(),
                    provider: q.dest.provider.clone(),
                };
                let waiting = match q.active {
                    0 => q.items.drain(..).collect(),
                    _ => Vec::new(),
                };
                let may_move = self.ctx.pools.has_alternative(&key.source);
                let (dispositions, effects) =
                    self.settler.connection_failed(&lane, f, waiting, may_move);
                for d in dispositions {
                    self.dispose(d);
                }
                self.apply(effects);
            }
        }
        self.maybe_finish_shutdown();
    }

    pub(super) fn maybe_finish_shutdown(&mut self) {
        if self.stopping && self.workers == 0 {
            for s in self.shutdown.drain(..) {
                let _ = s.send(());
            }
        }
    }

    /// Makes recipients due now. Route caches of the flushed domains are dropped too, so a fixed
    /// DNS record is seen at once.
    pub(super) fn flush(&mut self, domain: Option<&str>) -> usize {
        let now = self.ctx.clock.now_ms();
        let keys: Vec<_> = self
            .scheduled
            .iter()
            .filter(|(_, r)| domain.is_none_or(|d| &*r.domain == d))
            .map(|(k, _)| *k)
            .collect();
        for k in &keys {
            if let Some(mut r) = self.scheduled.remove(k) {
                if let Some(ds) = self.domains.get_mut(&r.domain) {
                    ds.dest = None;
                }
                r.next_attempt = now;
                self.schedule(r);
            }
        }
        keys.len()
    }

    /// Fails every queued recipient of `domain` with an administrative reason.
    pub(super) fn drain(&mut self, domain: &str) -> usize {
        let mut taken: Vec<QRcpt> = Vec::new();
        let keys: Vec<_> = self
            .scheduled
            .iter()
            .filter(|(_, r)| &*r.domain == domain)
            .map(|(k, _)| *k)
            .collect();
        taken.extend(keys.iter().filter_map(|k| self.scheduled.remove(k)));
        if let Some(ds) = self.domains.get_mut(domain) {
            taken.append(&mut ds.awaiting);
        }
        taken.extend(self.take_ready(|_| false, |_, r| &*r.domain == domain));
        let n = taken.len();
        let failure = Failure::local("drained by operator", BounceClass::ADMIN, "operator:drain");
        let at = AttemptContext::default();
        for r in taken {
            self.settle(r, Outcome::Permanent(failure.clone()), &at);
        }
        n
    }
}
