//! Giving work to connections: spawning workers within the limits, handing out batches, and the
//! operator actions that move recipients around (flush, drain).

use super::QRcpt;
use super::hold::release_unsent;
use super::ready::Batch;
use super::state::Scheduler;
use crate::delivery;
use crate::outcome::{AttemptContext, Failure, Lane, Outcome};
use cartero_bounce::BounceClass;
use cartero_shaping::{Observed, QueueKey, Target, Verdict, Wait};
use tokio::sync::oneshot;

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
        while self.workers < self.ctx.max_workers {
            let Some(q) = self.ready.get_mut(key) else {
                return;
            };
            let wanted = q.items.len() > 2 * q.active as usize || q.active == 0;
            if q.items.is_empty() || !wanted {
                return;
            }
            let t = Target {
                domain: &q.domain,
                provider: q.dest.provider.as_deref(),
            };
            let Ok(permit) = self.ctx.limits.open_connection(key, &t) else {
                return;
            };
            q.active += 1;
            self.workers += 1;
            let (dest, domain) = (q.dest.clone(), q.domain.clone());
            delivery::spawn_connection(self.ctx.clone(), key.clone(), dest, domain, permit);
        }
    }

    fn requeue_front(&mut self, key: &QueueKey, rcpts: Vec<QRcpt>) {
        if let Some(q) = self.ready.get_mut(key) {
            for r in rcpts.into_iter().rev() {
                q.items.push_front(r);
            }
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
        let max = if self.ctx.prepare.one_recipient_per_transaction() {
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

    /// A worker ended. When it could not connect at all, shaping hears of it (a refusal lowers
    /// the live connection limit; a network failure makes the source avoided) and, if no other
    /// connection is working the queue, its recipients are deferred — or, when the pool has
    /// another source to try, re-routed without using an attempt.
    pub(super) fn worker_exit(&mut self, key: QueueKey, failure: Option<Failure>) {
        self.workers = self.workers.saturating_sub(1);
        let mut deferred = Vec::new();
        let mut lane = None;
        if let Some(q) = self.ready.get_mut(&key) {
            q.active = q.active.saturating_sub(1);
            q.waiters.retain(|w| !w.is_closed());
            lane = Some(Lane {
                key: key.clone(),
                provider: q.dest.provider.clone(),
            });
            // No host answered and no other connection is working this queue: the destination is
            // down, so everything waiting for it is deferred rather than retried in a hot loop.
            if failure.is_some() && q.active == 0 {
                deferred = q.items.drain(..).collect();
            }
        }
        if let (Some(f), Some(lane)) = (failure, lane) {
            let v = self.connect_failed(&lane, &f, deferred.first().map(|r| &*r.domain));
            let avoided = v.hold.is_some();
            let mut at = AttemptContext::on_lane(lane);
            at.connection_failed = true;
            let now = self.ctx.clock.now_ms();
            for mut r in deferred {
                if avoided && self.ctx.pools.has_alternative(&key.source) {
                    let provider = at.lane.as_ref().and_then(|l| l.provider.as_deref());
                    release_unsent(self.ctx.limits.as_ref(), &key, provider, &r);
                    r.next_attempt = now;
                    self.schedule(r);
                } else if v.bounce {
                    self.settle(r, Outcome::Permanent(f.clone()), &at);
                } else {
                    self.settle(r, Outcome::Transient(f.clone()), &at);
                }
            }
            // The connection's verdict concerns the whole queue, like a recipient's.
            self.apply_actions(&v.actions);
            if v.bounce {
                self.bounce_queue(&key, f);
            }
        }
        self.maybe_finish_shutdown();
    }

    /// Reports a failed connection to shaping and publishes the actions taken. A hold in the
    /// verdict means the source is being avoided (or its queue was suspended), so what waited for
    /// it may move to another source without using an attempt.
    fn connect_failed(&mut self, lane: &Lane, f: &Failure, domain: Option<&str>) -> Verdict {
        let reply = f.reply_line();
        let t = Target {
            domain: domain.unwrap_or(""),
            provider: lane.provider.as_deref(),
        };
        let observed = Observed::ConnectFailed {
            reply: &reply,
            refused: f.reply.is_some(),
        };
        let v = self.ctx.limits.observe(&lane.key, &t, observed);
        for a in &v.actions {
            self.settler.shaping_event(a, domain);
        }
        v
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
