//! The scheduler task and its commands.

use super::ready::{Batch, ReadyQueue};
use super::settle::{Disposition, Settler};
use super::{QRcpt, view};
use crate::delivery::{self, DeliveryCtx};
use crate::outcome::{AttemptContext, Failure, Outcome};
use crate::routing::Destination;
use cartero_bounce::BounceClass;
use cartero_clock::UnixMillis;
use cartero_shaping::{Hold, QueueKey, Scope, ShapingAction, Target};
use cartero_spool::MessageId;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

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
        result: Result<Arc<Destination>, (bool, Failure)>,
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
    tx: mpsc::UnboundedSender<Cmd>,
}

impl crate::inmail::ComplaintFeed for SchedulerHandle {
    fn complaint(&self, source: &str, domain: &str) {
        self.send(Cmd::Complaint {
            source: source.to_string(),
            domain: domain.to_string(),
        });
    }
}

impl SchedulerHandle {
    pub fn send(&self, cmd: Cmd) {
        // The scheduler only stops at process end; a send after that has nobody to tell.
        let _ = self.tx.send(cmd);
    }

    /// Sends a command that carries a reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Cmd) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx));
        rx.await.ok()
    }
}

#[derive(Debug, Default)]
pub(super) struct DomainState {
    pub(super) dest: Option<(Arc<Destination>, UnixMillis)>,
    pub(super) resolving: bool,
    pub(super) awaiting: Vec<QRcpt>,
}

/// Owns the queues. Runs as one task: see the module docs of `queue`.
pub(crate) struct Scheduler {
    pub(super) ctx: Arc<DeliveryCtx>,
    rx: mpsc::UnboundedReceiver<Cmd>,
    pub(super) scheduled: BTreeMap<(UnixMillis, u64), QRcpt>,
    seq: u64,
    pub(super) domains: HashMap<Arc<str>, DomainState>,
    pub(super) ready: HashMap<QueueKey, ReadyQueue>,
    pub(super) settler: Settler,
    pub(super) workers: u32,
    pub(super) shutdown: Vec<oneshot::Sender<()>>,
    pub(super) stopping: bool,
}

impl Scheduler {
    /// Creates the scheduler and the handle to reach it. The context needs the handle too, so the
    /// caller builds the context from the returned handle and passes it to [`Scheduler::run`].
    pub fn channel() -> (SchedulerHandle, mpsc::UnboundedReceiver<Cmd>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (SchedulerHandle { tx }, rx)
    }

    pub fn new(ctx: Arc<DeliveryCtx>, rx: mpsc::UnboundedReceiver<Cmd>, settler: Settler) -> Self {
        Self {
            ctx,
            rx,
            scheduled: BTreeMap::new(),
            seq: 0,
            domains: HashMap::new(),
            ready: HashMap::new(),
            settler,
            workers: 0,
            shutdown: Vec::new(),
            stopping: false,
        }
    }

    /// Runs until every handle is dropped.
    pub async fn run(mut self) {
        let mut last_gauges = std::time::Instant::now();
        self.export_gauges();
        loop {
            let sleep = self.next_wakeup();
            tokio::select! {
                cmd = self.rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                _ = tokio::time::sleep(sleep) => {}
            }
            // Drain what is already queued before pumping, so bursts are handled in one pass.
            while let Ok(cmd) = self.rx.try_recv() {
                self.handle(cmd);
            }
            self.pump();
            // The sums below walk every domain and site: once a second is plenty for a gauge.
            if last_gauges.elapsed() >= std::time::Duration::from_secs(1) {
                self.export_gauges();
                last_gauges = std::time::Instant::now();
            }
        }
    }

    fn export_gauges(&self) {
        let ready: usize = self.ready.values().map(|q| q.items.len()).sum();
        let routing: usize = self.domains.values().map(|d| d.awaiting.len()).sum();
        metrics::gauge!("cartero_queue_scheduled_recipients").set(self.scheduled.len() as f64);
        metrics::gauge!("cartero_queue_ready_recipients").set((ready + routing) as f64);
        metrics::gauge!("cartero_outbound_connections").set(self.workers as f64);
    }

    fn next_wakeup(&self) -> std::time::Duration {
        let now = self.ctx.clock.now_ms();
        let due = self.scheduled.keys().next().map(|k| k.0);
        // At least once a second, so gauges never lag the queue by more than that.
        let ms = due.map_or(1_000, |d| d.saturating_sub(now).min(1_000));
        std::time::Duration::from_millis(ms.max(1))
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Enqueue(rcpts) => rcpts.into_iter().for_each(|r| self.schedule(r)),
            Cmd::NextBatch { key, wait, reply } => self.next_batch(key, wait, reply),
            Cmd::Settled(results, at) => {
                for (r, outcome) in results {
                    self.settle(r, outcome, &at);
                }
            }
            Cmd::WorkerExit { key, failure } => self.worker_exit(key, failure),
            Cmd::Routed { domain, result } => self.routed(domain, result),
            Cmd::Tick => {}
            Cmd::Flush { domain, reply } => {
                let _ = reply.send(self.flush(domain.as_deref()));
            }
            Cmd::Drain { domain, reply } => {
                let _ = reply.send(self.drain(&domain));
            }
            Cmd::Summary { reply } => {
                let _ = reply.send(view::summary(self));
            }
            Cmd::Inspect { id, reply } => {
                let _ = reply.send(view::inspect(self, id));
            }
            Cmd::Suspend {
                scope,
                until,
                reason,
                reply,
            } => {
                let _ = reply.send(self.suspend(scope, until, &reason));
            }
            Cmd::Resume { scope, reply } => {
                let _ = reply.send(self.resume(&scope));
            }
            Cmd::Complaint { source, domain } => {
                let v = self.ctx.limits.complaint(&source, &domain);
                for a in &v.actions {
                    self.settler.shaping_event(a, Some(&domain));
                }
                self.apply_actions(&v.actions);
            }
            Cmd::Shutdown { reply } => {
                self.stopping = true;
                self.shutdown.push(reply);
                for q in self.ready.values_mut() {
                    for w in q.waiters.drain(..) {
                        let _ = w.send(Batch::Done);
                    }
                }
                self.maybe_finish_shutdown();
            }
        }
    }

    pub(super) fn schedule(&mut self, mut r: QRcpt) {
        // One shared copy of each domain name, however many recipients wait for it.
        if let Some((d, _)) = self.domains.get_key_value(&r.domain) {
            r.domain = d.clone();
        } else {
            self.domains
                .insert(r.domain.clone(), DomainState::default());
        }
        self.seq += 1;
        r.next_attempt = r.next_attempt.max(1);
        self.scheduled.insert((r.next_attempt, self.seq), r);
    }

    pub(super) fn settle(&mut self, r: QRcpt, outcome: Outcome, at: &AttemptContext) {
        // Only a queue's outcome can fire a bounce rule, which needs the reply afterwards.
        let failure = match &outcome {
            Outcome::Transient(f) | Outcome::Permanent(f) | Outcome::Expired(f)
                if at.lane.is_some() =>
            {
                Some(f.clone())
            }
            _ => None,
        };
        let (disposition, verdict) = self.settler.settle(r, outcome, at);
        if let Disposition::Requeue(r) = disposition {
            self.schedule(r);
        }
        let Some(v) = verdict else { return };
        // What concerns the whole queue: a suspension holds what waits in it, a bounce rule
        // fails it with the reply.
        self.apply_actions(&v.actions);
        if let (true, Some(lane), Some(f)) = (v.bounce, &at.lane, failure) {
            self.bounce_queue(&lane.key, f);
        }
    }

    /// What adaptive actions change in the queues: a suspension holds what waits for its scope.
    /// (A throttle only changes the pace, which the engine applies by itself.)
    pub(super) fn apply_actions(&mut self, actions: &[cartero_shaping::ShapingAction]) {
        for a in actions {
            if a.action == cartero_shaping::ActionKind::Suspend {
                self.evict(&a.scope, a.until);
            }
        }
    }

    /// Moves due recipients on and gives work to connections.
    fn pump(&mut self) {
        if self.stopping {
            return;
        }
        self.pump_due();
        for a in self.ctx.limits.take_actions() {
            self.settler.shaping_event(&a, None);
        }
        let keys: Vec<QueueKey> = self
            .ready
            .iter()
            .filter(|(_, q)| !q.items.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.dispatch(&key);
        }
    }

    /// Routes every recipient whose next attempt has come.
    pub(super) fn pump_due(&mut self) {
        let now = self.ctx.clock.now_ms();
        while let Some(entry) = self.scheduled.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let r = entry.remove();
            self.route_rcpt(r, now);
        }
    }

    fn route_rcpt(&mut self, r: QRcpt, now: UnixMillis) {
        if now >= r.msg.env.expires_at {
            let last = r.last.as_deref().map_or_else(
                || {
                    Failure::local(
                        "validity ended before any attempt",
                        BounceClass::UNDETERMINED,
                        "expiry",
                    )
                },
                |l| Failure::local(l.text.to_string(), l.class, "expiry"),
            );
            self.settle(r, Outcome::Expired(last), &AttemptContext::default());
            return;
        }
        let cache = self.ctx.route_cache_ms;
        let ds = self.domains.entry(r.domain.clone()).or_default();
        match &ds.dest {
            Some((dest, at)) if now.saturating_sub(*at) < cache => {
                let dest = dest.clone();
                self.push_ready(dest, r);
            }
            _ => {
                ds.awaiting.push(r);
                if !ds.resolving {
                    ds.resolving = true;
                    let domain = ds.awaiting[0].domain.clone();
                    delivery::spawn_resolve(self.ctx.clone(), domain);
                }
            }
        }
    }

    /// Puts a routed recipient on the ready queue of one source of its pool: the first, in
    /// weighted random order, that shaping admits; sources to avoid only when nothing else is
    /// admitted. When none may take it (suspended, warm-up caps used up) it waits, without
    /// using an attempt, until the earliest of them may.
    fn push_ready(&mut self, dest: Arc<Destination>, mut r: QRcpt) {
        let pools = &self.ctx.pools;
        let pool = pools.pool_for(r.msg.env.pool.as_deref(), &r.msg.env.sender, &r.domain);
        let candidates = pools.candidates(pool);
        let t = Target {
            domain: &r.domain,
            provider: dest.provider.as_deref(),
        };
        let mut hold: Option<Hold> = None;
        let mut chosen = None;
        'passes: for allow_avoided in [false, true] {
            for source in candidates.iter() {
                let key = QueueKey {
                    source: source.clone(),
                    site: dest.site.clone(),
                };
                match self.ctx.limits.admit(&key, &t, allow_avoided) {
                    Ok(()) => {
                        chosen = Some(key);
                        break 'passes;
                    }
                    Err(h) => hold = Some(earliest(hold, h)),
                }
            }
        }
        let Some(key) = chosen else {
            let until = hold.and_then(|h| h.until);
            let now = self.ctx.clock.now_ms();
            r.hold(until, now + 1);
            self.schedule(r);
            return;
        };
        let domain = r.domain.clone();
        let q = self
            .ready
            .entry(key)
            .or_insert_with(|| ReadyQueue::new(dest.clone(), domain));
        q.dest = dest;
        q.items.push_back(r);
    }

    fn routed(&mut self, domain: Arc<str>, result: Result<Arc<Destination>, (bool, Failure)>) {
        let now = self.ctx.clock.now_ms();
        let Some(ds) = self.domains.get_mut(&domain) else {
            return;
        };
        ds.resolving = false;
        let waiting = std::mem::take(&mut ds.awaiting);
        match result {
            Ok(dest) => {
                ds.dest = Some((dest.clone(), now));
                for r in waiting {
                    self.push_ready(dest.clone(), r);
                }
            }
            Err((permanent, failure)) => {
                ds.dest = None;
                let at = AttemptContext::default();
                for r in waiting {
                    let o = if permanent {
                        Outcome::Permanent(failure.clone())
                    } else {
                        Outcome::Transient(failure.clone())
                    };
                    self.settle(r, o, &at);
                }
            }
        }
    }
}

/// The hold that ends first; "until resumed" ends last.
fn earliest(a: Option<Hold>, b: Hold) -> Hold {
    match a {
        Some(a) if a.until.is_some_and(|x| b.until.is_none_or(|y| x <= y)) => a,
        _ => b,
    }
}
