//! The scheduler task and its commands.

use super::cmd::Cmd;
use super::ready::{Batch, ReadyQueue};
use super::settle::{Disposition, QueueEffects, Settler};
use super::{QRcpt, QueueCtx};
use crate::outcome::{AttemptContext, Failure, Outcome};
use crate::routing::Destination;
use cartero_bounce::BounceClass;
use cartero_clock::UnixMillis;
use cartero_shaping::{Hold, QueueKey, Target};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Default)]
pub(super) struct DomainState {
    pub(super) dest: Option<(Arc<Destination>, UnixMillis)>,
    pub(super) resolving: bool,
    pub(super) awaiting: Vec<QRcpt>,
}

/// Owns the queues. Runs as one task: see the module docs of `queue`.
pub(crate) struct Scheduler {
    pub(super) ctx: QueueCtx,
    rx: mpsc::Receiver<Cmd>,
    pub(super) scheduled: BTreeMap<(UnixMillis, u64), QRcpt>,
    seq: u64,
    pub(super) domains: HashMap<Arc<str>, DomainState>,
    pub(super) ready: HashMap<QueueKey, ReadyQueue>,
    pub(super) settler: Settler,
    pub(super) workers: u32,
    /// Ready queues whose work or capacity changed since the last pump: only these are
    /// dispatched, so a pump costs what changed, not the number of queues.
    pub(super) dirty: HashSet<QueueKey>,
    /// Queues the limits refused a connection, with when to try again.
    pub(super) blocked: HashMap<QueueKey, UnixMillis>,
    /// Queues that wanted a connection when `max_workers` were busy: a worker's exit wakes them.
    pub(super) starved: HashSet<QueueKey>,
    pub(super) shutdown: Vec<tokio::sync::oneshot::Sender<()>>,
    pub(super) stopping: bool,
}

impl Scheduler {
    /// The receiver comes from `queue::cmd::channel`, whose handle the workers (built before
    /// the scheduler) already hold.
    pub fn new(ctx: QueueCtx, rx: mpsc::Receiver<Cmd>, settler: Settler) -> Self {
        Self {
            ctx,
            rx,
            scheduled: BTreeMap::new(),
            seq: 0,
            domains: HashMap::new(),
            ready: HashMap::new(),
            settler,
            workers: 0,
            dirty: HashSet::new(),
            blocked: HashMap::new(),
            starved: HashSet::new(),
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
        self.settler.export_gauges();
    }

    fn next_wakeup(&self) -> std::time::Duration {
        let now = self.ctx.clock.now_ms();
        let due = self.scheduled.keys().next().map(|k| k.0);
        let due = match self.blocked.values().min().copied() {
            Some(b) => Some(due.map_or(b, |d| d.min(b))),
            None => due,
        };
        // At least once a second, so gauges never lag the queue by more than that.
        let ms = due.map_or(1_000, |d| d.saturating_sub(now).min(1_000));
        std::time::Duration::from_millis(ms.max(1))
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Enqueue(rcpts) => rcpts.into_iter().for_each(|r| self.schedule(r)),
            Cmd::NextBatch { key, wait, reply } => self.next_batch(key, wait, reply),
            Cmd::Settled(results, at) => {
                let mut effects = QueueEffects::default();
                for (r, outcome) in results {
                    let (d, e) = self.settler.settle(r, outcome, &at);
                    self.dispose(d);
                    effects.merge(e);
                }
                self.apply(effects);
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
                let _ = reply.send(self.summary());
            }
            Cmd::Inspect { id, reply } => {
                let _ = reply.send(self.inspect(id));
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
                let effects = self.settler.complaint(&source, &domain);
                self.apply(effects);
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

    /// Settles one outcome and applies what it means for its queue.
    pub(super) fn settle(&mut self, r: QRcpt, outcome: Outcome, at: &AttemptContext) {
        let (d, effects) = self.settler.settle(r, outcome, at);
        self.dispose(d);
        self.apply(effects);
    }

    pub(super) fn dispose(&mut self, d: Disposition) {
        if let Disposition::Requeue(r) = d {
            self.schedule(r);
        }
    }

    /// What settled outcomes mean for whole queues: a suspension holds what waits for its
    /// scope, a bounce rule fails the queue with the reply. (A throttle only changes the pace,
    /// which the limits apply by themselves.)
    pub(super) fn apply(&mut self, effects: QueueEffects) {
        for a in &effects.actions {
            if a.action == cartero_shaping::ActionKind::Suspend {
                self.evict(&a.scope, a.until);
            }
        }
        if let Some((key, f)) = effects.bounce {
            self.bounce_queue(&key, f);
        }
    }

    /// Moves due recipients on and gives work to the queues that changed.
    fn pump(&mut self) {
        if self.stopping {
            return;
        }
        self.pump_due();
        for a in self.ctx.limits.take_actions() {
            self.settler.shaping_event(&a, None);
        }
        let now = self.ctx.clock.now_ms();
        let dirty = &mut self.dirty;
        self.blocked.retain(|key, at| {
            let due = *at <= now;
            if due {
                dirty.insert(key.clone());
            }
            !due
        });
        for key in std::mem::take(&mut self.dirty) {
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
                    self.ctx.launcher.resolve(domain);
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
            .entry(key.clone())
            .or_insert_with(|| ReadyQueue::new(dest.clone(), domain));
        q.dest = dest;
        q.items.push_back(r);
        self.dirty.insert(key);
    }

    fn routed(&mut self, domain: Arc<str>, result: Result<Arc<Destination>, Outcome>) {
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
            Err(outcome) => {
                ds.dest = None;
                let at = AttemptContext::default();
                for r in waiting {
                    self.settle(r, outcome.clone(), &at);
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
