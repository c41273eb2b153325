//! Per-provider decisions: limits, greylisting, recipients and reputation, all per source IP.
//! Pure logic under one lock; time comes from the injected clock so tests are exact.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use cartero_clock::SharedClock;
use cartero_smtp::reply::Reply;

use crate::replies::{Refusal, refusal};
use crate::scenario::ProviderConfig;

/// Greylist entries kept at most; older ones are forgotten first when full.
const GREYLIST_CAP: usize = 100_000;

/// Counters of one provider since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// TCP connections received (including refused ones).
    pub connections: u64,
    /// Messages accepted (one per completed DATA).
    pub accepted: u64,
    /// Throttle replies: over the connection limit (`421`) or over the rate (`451 4.7.1`).
    pub throttled: u64,
    /// Of `throttled`: connections turned away at the banner over the connection limit.
    pub refused_connections: u64,
    /// Greylisting replies.
    pub greylisted: u64,
    /// Permanent refusals: unknown users and blocked sources.
    pub rejected: u64,
    /// Other transient refusals: full mailboxes and random 4xx.
    pub deferred: u64,
    /// Times a source IP fell to the bottom of its reputation and got blocked.
    pub blocks: u64,
}

#[derive(Debug)]
struct Source {
    active: u32,
    /// Times (ms) of accepted MAIL FROM within the longest rate window.
    sent: VecDeque<u64>,
    score: u32,
    blocked_until: Option<u64>,
}

#[derive(Debug)]
struct Inner {
    sources: HashMap<IpAddr, Source>,
    greylist: HashMap<(IpAddr, String, String), u64>,
    rng: fastrand::Rng,
    stats: Stats,
}

/// The decisions of one provider, shared by its connections.
#[derive(Debug)]
pub(crate) struct Policy {
    cfg: ProviderConfig,
    clock: SharedClock,
    inner: Mutex<Inner>,
}

/// Holds a connection slot of a source IP; frees it on drop.
#[derive(Debug)]
pub(crate) struct Slot {
    policy: Arc<Policy>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.policy.lock();
        if let Some(src) = inner.sources.get_mut(&self.ip) {
            src.active = src.active.saturating_sub(1);
        }
    }
}

impl Policy {
    pub(crate) fn new(cfg: ProviderConfig, clock: SharedClock, seed: u64) -> Self {
        Self {
            cfg,
            clock,
            inner: Mutex::new(Inner {
                sources: HashMap::new(),
                greylist: HashMap::new(),
                rng: fastrand::Rng::with_seed(seed),
                stats: Stats::default(),
            }),
        }
    }

    pub(crate) fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// A poisoned lock only means another connection task panicked; the counters stay usable.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn stats(&self) -> Stats {
        self.lock().stats
    }

    /// The current score of `ip`, `None` when it has not been seen or reputation is off.
    pub(crate) fn reputation(&self, ip: IpAddr) -> Option<u32> {
        self.cfg.reputation.as_ref()?;
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let src = inner.sources.get_mut(&ip)?;
        expire_block(&self.cfg, src, now);
        Some(src.score)
    }

    fn refuse(&self, what: Refusal, ip: IpAddr) -> Reply {
        refusal(self.cfg.style, what, ip)
    }

    /// A new connection from `ip`: a slot, or the reply to close with.
    pub(crate) fn connect(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Reply> {
        let now = self.clock.now_ms();
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.stats.connections += 1;
        let src = source(&self.cfg, &mut inner.sources, ip);
        if is_blocked(&self.cfg, src, now) {
            inner.stats.rejected += 1;
            return Err(self.refuse(Refusal::Blocked, ip));
        }
        if let Some(max) = self.cfg.max_connections
            && src.active >= effective(&self.cfg, src, max)
        {
            inner.stats.throttled += 1;
            inner.stats.refused_connections += 1;
            if penalize(&self.cfg, src, now) {
                inner.stats.blocks += 1;
            }
            return Err(self.refuse(Refusal::Connections, ip));
        }
        src.active += 1;
        Ok(Slot {
            policy: Arc::clone(self),
            ip,
        })
    }

    /// MAIL FROM from `ip`: blocks, rate limits and random failures.
    pub(crate) fn mail(&self, ip: IpAddr) -> Result<(), Reply> {
        let now = self.clock.now_ms();
        let mut guard = self.lock();
        let inner = &mut *guard;
        let src = source(&self.cfg, &mut inner.sources, ip);
        if is_blocked(&self.cfg, src, now) {
            inner.stats.rejected += 1;
            return Err(self.refuse(Refusal::Blocked, ip));
        }
        let window = if self.cfg.messages_per_minute.is_some() {
            60_000
        } else {
            1_000
        };
        while src.sent.front().is_some_and(|&t| t + window <= now) {
            src.sent.pop_front();
        }
        let in_second = src.sent.iter().filter(|&&t| t + 1_000 > now).count();
        let over = |limit: Option<u32>, count: usize| {
            limit.is_some_and(|l| count >= effective(&self.cfg, src, l) as usize)
        };
        if over(self.cfg.messages_per_second, in_second)
            || over(self.cfg.messages_per_minute, src.sent.len())
        {
            inner.stats.throttled += 1;
            if penalize(&self.cfg, src, now) {
                inner.stats.blocks += 1;
            }
            return Err(self.refuse(Refusal::Rate, ip));
        }
        if self.cfg.random_4xx > 0.0 && inner.rng.f64() < self.cfg.random_4xx {
            inner.stats.deferred += 1;
            return Err(self.refuse(Refusal::Random, ip));
        }
        if self.cfg.messages_per_second.is_some() || self.cfg.messages_per_minute.is_some() {
            src.sent.push_back(now);
        }
        Ok(())
    }

    /// RCPT TO: unknown users, full mailboxes, then greylisting.
    pub(crate) fn rcpt(&self, ip: IpAddr, sender: &str, rcpt: &str) -> Result<(), Reply> {
        let local = local_part(rcpt);
        let unknown = self
            .cfg
            .unknown_users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&local))
            || self
                .cfg
                .unknown_user_prefixes
                .iter()
                .any(|p| local.starts_with(&p.to_ascii_lowercase()));
        let mut inner = self.lock();
        if unknown {
            inner.stats.rejected += 1;
            return Err(self.refuse(Refusal::UnknownUser, ip));
        }
        if self
            .cfg
            .full_mailboxes
            .iter()
            .any(|u| u.eq_ignore_ascii_case(&local))
        {
            inner.stats.deferred += 1;
            return Err(self.refuse(Refusal::MailboxFull, ip));
        }
        let Some(delay) = self.cfg.greylist else {
            return Ok(());
        };
        let now = self.clock.now_ms();
        let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        let key = (ip, sender.to_ascii_lowercase(), rcpt.to_ascii_lowercase());
        if inner.greylist.len() >= GREYLIST_CAP && !inner.greylist.contains_key(&key) {
            forget_oldest_half(&mut inner.greylist);
        }
        match inner.greylist.get(&key) {
            Some(&first) if now.saturating_sub(first) >= delay_ms => return Ok(()),
            Some(_) => {}
            None => {
                inner.greylist.insert(key, now);
            }
        }
        inner.stats.greylisted += 1;
        Err(self.refuse(Refusal::Greylisted, ip))
    }

    /// A message was accepted from `ip`.
    pub(crate) fn accepted(&self, ip: IpAddr) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        inner.stats.accepted += 1;
        if let (Some(rep), Some(src)) = (&self.cfg.reputation, inner.sources.get_mut(&ip)) {
            src.score = src.score.saturating_add(rep.recovery).min(rep.initial);
        }
    }
}

fn source<'a>(
    cfg: &ProviderConfig,
    map: &'a mut HashMap<IpAddr, Source>,
    ip: IpAddr,
) -> &'a mut Source {
    map.entry(ip).or_insert_with(|| Source {
        active: 0,
        sent: VecDeque::new(),
        score: cfg.reputation.as_ref().map_or(0, |r| r.initial),
        blocked_until: None,
    })
}

/// Lifts an expired block, restoring the configured score.
fn expire_block(cfg: &ProviderConfig, src: &mut Source, now: u64) {
    if let (Some(until), Some(rep)) = (src.blocked_until, &cfg.reputation)
        && now >= until
    {
        src.blocked_until = None;
        src.score = rep.after_block;
    }
}

fn is_blocked(cfg: &ProviderConfig, src: &mut Source, now: u64) -> bool {
    expire_block(cfg, src, now);
    src.blocked_until.is_some()
}

/// A limit after the reputation shrink, never below 1.
fn effective(cfg: &ProviderConfig, src: &Source, limit: u32) -> u32 {
    match &cfg.reputation {
        Some(rep) if src.score < rep.shrink_below => {
            let shrunk = (f64::from(limit) * rep.shrink_factor).floor();
            (shrunk as u32).max(1)
        }
        _ => limit,
    }
}

/// Lowers the score for an over-limit attempt; true when this starts a block.
fn penalize(cfg: &ProviderConfig, src: &mut Source, now: u64) -> bool {
    let Some(rep) = &cfg.reputation else {
        return false;
    };
    src.score = src.score.saturating_sub(rep.penalty);
    if src.score < rep.block_below && src.blocked_until.is_none() {
        let block_ms = u64::try_from(rep.block_for.as_millis()).unwrap_or(u64::MAX);
        src.blocked_until = Some(now.saturating_add(block_ms));
        return true;
    }
    false
}

fn local_part(addr: &str) -> String {
    let local = addr.rsplit_once('@').map_or(addr, |(l, _)| l);
    local.to_ascii_lowercase()
}

fn forget_oldest_half(map: &mut HashMap<(IpAddr, String, String), u64>) {
    let mut times: Vec<u64> = map.values().copied().collect();
    times.sort_unstable();
    if let Some(&median) = times.get(times.len() / 2) {
        map.retain(|_, &mut t| t > median);
    }
}
