//! [`AdaptiveLimits`]: the shaping engine. Configured (layered) limits, narrowed live by what the
//! providers answer: AIMD rate, connection limit learned from refusals, response rules, sweeps,
//! suspensions and warm-up caps. All state sits under one lock and every time is read from the
//! injected clock, so the engine is exact in tests and cheap on the delivery path.

mod observe;
mod persist;
mod streak;
mod types;
mod view;

pub use persist::{STATE_VERSION, ShapingState};
pub use types::{
    ActionKind, Hold, Observed, Scope, ScopeFault, ScopeParseError, Sent, ShapingAction, Target,
    Verdict,
};
pub use view::{LimitsView, QueueView, ShapingView, SuspensionView, WarmupView};

use crate::rules::RuleEngine;
use crate::sweep::Sweep;
use crate::warmup::Warmup;
use crate::{
    Aimd, ConnectionPermit, Limits, Pacer, Params, QueueKey, ShapingConfig, ShapingConfigError,
    Wait,
};
use cartero_clock::{SharedClock, UnixMillis};
use parking_lot::Mutex;
use regex::RegexSet;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A configuration ready to use: checked, with its regexes compiled.
#[derive(Debug)]
struct Compiled {
    cfg: ShapingConfig,
    throttle: RegexSet,
    /// Sources in warm-up.
    warming: HashSet<String>,
}

impl Compiled {
    fn new(
        cfg: ShapingConfig,
        warming: &[String],
    ) -> Result<(Self, RuleEngine), ShapingConfigError> {
        cfg.validate()?;
        let throttle = cfg.adaptive.throttle_set()?;
        let rules =
            RuleEngine::new(&cfg.adaptive.all_rules()).map_err(ShapingConfigError::Rules)?;
        let warming = warming.iter().cloned().collect();
        Ok((
            Self {
                cfg,
                throttle,
                warming,
            },
            rules,
        ))
    }
}

/// Events counted in a sliding window of `N` buckets of `W` ms (the newest one filling):
/// how fast a queue sends and how fast its site takes it, over the last second ([`Meter`]) and
/// over the last minute ([`MinuteMeter`]). Fine buckets matter: a site's limit is a count over
/// its own sliding window, and an estimate blurred over two seconds of a ramp misses it by the
/// ramp's slope.
#[derive(Debug, Clone)]
struct Window<const N: usize, const W: u64> {
    started: Option<UnixMillis>,
    /// Index (time / W) of the newest bucket.
    newest: u64,
    buckets: [u32; N],
}

/// The last second, in tenths.
type Meter = Window<11, 100>;
/// The last minute, in seconds: the window of sites that count per minute, where the last
/// second says nothing once the minute is used up.
type MinuteMeter = Window<61, 1_000>;

impl<const N: usize, const W: u64> Default for Window<N, W> {
    fn default() -> Self {
        Self {
            started: None,
            newest: 0,
            buckets: [0; N],
        }
    }
}

impl<const N: usize, const W: u64> Window<N, W> {
    fn advance(&mut self, now: UnixMillis) {
        let b = now / W;
        if b <= self.newest {
            return;
        }
        let gap = (b - self.newest).min(N as u64);
        for k in 1..=gap {
            self.buckets[((self.newest + k) % N as u64) as usize] = 0;
        }
        self.newest = b;
    }

    fn record(&mut self, now: UnixMillis) {
        self.started.get_or_insert(now);
        self.advance(now);
        let b = &mut self.buckets[(self.newest % N as u64) as usize];
        *b = b.saturating_add(1);
    }

    /// Per hour over the window, or since the first event when that is more recent — but over
    /// at least a second: a burst in the first milliseconds says nothing about a sustainable rate.
    fn per_hour(&mut self, now: UnixMillis) -> f64 {
        self.advance(now);
        let total: u64 = self.buckets.iter().map(|&b| u64::from(b)).sum();
        let span = ((N as u64 - 1) * W + now % W) as f64;
        let since = self.started.map_or(span, |t| now.saturating_sub(t) as f64);
        total as f64 / (span.min(since).max(1_000.0) / 1_000.0) * 3_600.0
    }

    /// Start of the oldest bucket in the window that holds an event: when it leaves the window,
    /// a site counting over the same window has room again.
    fn oldest(&mut self, now: UnixMillis) -> Option<UnixMillis> {
        self.advance(now);
        let first = self.newest.saturating_sub(N as u64 - 1);
        (first..=self.newest)
            .find(|b| self.buckets[(b % N as u64) as usize] > 0)
            .map(|b| b * W)
    }

    /// Per hour over the whole window, however recent the first event: what a site that counts
    /// over this window took in it (a minute's allowance used up in 45 s is still a minute's).
    fn per_hour_of_window(&mut self, now: UnixMillis) -> f64 {
        self.advance(now);
        let total: u64 = self.buckets.iter().map(|&b| u64::from(b)).sum();
        let span = ((N as u64 - 1) * W + now % W) as f64;
        total as f64 / (span / 1_000.0) * 3_600.0
    }
}

/// A temporary override with its end.
#[derive(Debug, Clone)]
struct Timed<T> {
    value: T,
    until: UnixMillis,
    cause: String,
}

#[derive(Debug, Default)]
struct QueueState {
    connections: Arc<Mutex<u32>>,
    /// Of `connections`, those not greeted yet.
    dialing: Arc<Mutex<u32>>,
    pacer: Pacer,
    conn_pacer: Pacer,
    /// Messages handed out.
    meter: Meter,
    /// Transactions the site answered without pushing back (accepted, or refused for the
    /// recipient's sake): the pace it took.
    accepted: Meter,
    accepted_minute: MinuteMeter,
    aimd: Option<Aimd>,
    /// Throttles in a row with nothing answered in between.
    streak: streak::Streak,
    /// Connection limit learned from refusals; `None` = the configured one.
    live_connections: Option<u32>,
    /// Refusals since the last decrease of the connection limit, and when the first came.
    refusals: (u32, UnixMillis),
    successes_since_step: u32,
    /// When a refusal last lowered the learned connection limit, and how long after it the
    /// limit may be probed upwards (doubling with every decrease).
    last_conn_decrease: UnixMillis,
    conn_probe_every_ms: u64,
    /// The next pause of a site that refuses this source at the banner with a 5xx after it
    /// was taking its mail (a block); 0 = not blocked since the site last answered.
    block_pause_ms: u64,
    /// Rate (messages/hour) imposed by a throttle rule or sweep.
    throttle: Option<Timed<f64>>,
    /// Connection limit imposed by a `set` rule.
    set_connections: Option<Timed<u32>>,
    avoid_until: Option<UnixMillis>,
    /// Last target seen, for the view.
    domain: String,
    provider: Option<String>,
}

impl QueueState {
    /// Whether the queue holds something learned or imposed that outlives its traffic: what a
    /// restart must restore and the view shows even before the queue is used again.
    fn carries_state(&self, now: UnixMillis) -> bool {
        self.aimd.as_ref().is_some_and(crate::Aimd::is_reduced)
            || self.live_connections.is_some()
            || self.throttle.as_ref().is_some_and(|t| t.until > now)
            || self.set_connections.as_ref().is_some_and(|s| s.until > now)
    }

    /// Remembers the last target for the view; allocates only when it changes (this runs for
    /// every outcome and connection).
    fn note_target(&mut self, t: &Target) {
        if self.domain != t.domain || self.provider.as_deref() != t.provider {
            self.domain = t.domain.to_string();
            self.provider = t.provider.map(str::to_string);
        }
    }
}

#[derive(Debug, Clone)]
struct Suspension {
    until: Option<UnixMillis>,
    reason: String,
    since: UnixMillis,
}

#[derive(Debug)]
struct SweepState {
    sweep: Sweep,
    /// A sweep action is in force until then; before that only a more severe one (a suspend
    /// after a throttle) may follow.
    acted_until: UnixMillis,
    acted_suspend: bool,
    /// The queue and provider that last sent to the domain, so that a complaint (which names only
    /// the source and the recipient domain) acts on the queue that carries the traffic.
    last: Option<(QueueKey, Option<String>)>,
}

#[derive(Debug)]
struct Inner {
    queues: HashMap<QueueKey, QueueState>,
    rules: RuleEngine,
    suspensions: HashMap<Scope, Suspension>,
    warmups: HashMap<(String, String), Warmup>,
    sweeps: HashMap<(Arc<str>, String), SweepState>,
    /// Size of `sweeps` at which idle pairs are next dropped.
    sweeps_prune_at: usize,
    /// Something worth persisting changed since the last snapshot.
    dirty: bool,
    /// Actions taken outside `observe` (warm-up promotions and caps), until collected.
    outbox: Vec<ShapingAction>,
}

/// The shaping engine; see the module docs.
#[derive(Debug)]
pub struct AdaptiveLimits {
    clock: SharedClock,
    compiled: Mutex<Arc<Compiled>>,
    inner: Mutex<Inner>,
}

impl AdaptiveLimits {
    /// Builds the engine; `warming` names the sources in warm-up. Fails on a bad configuration
    /// (an invalid regex in a rule or throttle pattern).
    pub fn new(
        cfg: ShapingConfig,
        warming: &[String],
        clock: SharedClock,
    ) -> Result<Self, ShapingConfigError> {
        let (compiled, rules) = Compiled::new(cfg, warming)?;
        Ok(Self {
            clock,
            compiled: Mutex::new(Arc::new(compiled)),
            inner: Mutex::new(Inner {
                queues: HashMap::new(),
                rules,
                suspensions: HashMap::new(),
                warmups: HashMap::new(),
                sweeps: HashMap::new(),
                sweeps_prune_at: observe::MIN_SWEEPS_PRUNE,
                dirty: false,
                outbox: Vec::new(),
            }),
        })
    }

    /// Replaces the configuration without a restart. A bad configuration is refused and the
    /// running one stays. Learned state (live rates, suspensions, warm-up) is kept; rule match
    /// windows start over.
    pub fn reload(&self, cfg: ShapingConfig, warming: &[String]) -> Result<(), ShapingConfigError> {
        let (compiled, rules) = Compiled::new(cfg, warming)?;
        *self.compiled.lock() = Arc::new(compiled);
        self.inner.lock().rules = rules;
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> ShapingConfig {
        self.compiled.lock().cfg.clone()
    }

    /// See [`ShapingConfig::has_own_limits`]; reads the configuration in force.
    pub fn has_own_limits(&self, domain: &str) -> bool {
        self.compiled().cfg.has_own_limits(domain)
    }

    /// See [`ShapingConfig::provider_of`]; reads the configuration in force.
    pub fn provider_of(&self, domain: &str, mx_hosts: &[&str]) -> Option<String> {
        self.compiled().cfg.provider_of(domain, mx_hosts)
    }

    fn compiled(&self) -> Arc<Compiled> {
        self.compiled.lock().clone()
    }

    fn now(&self) -> UnixMillis {
        self.clock.now_ms()
    }
}

/// How soon a queue whose dials in flight are at their limit asks again, milliseconds: about
/// one loopback handshake, far less than any real one.
const DIAL_RECHECK_MS: u64 = 5;

/// The queue's live rate control, made on first use and kept in step with the configuration.
fn aimd_of<'a>(q: &'a mut QueueState, c: &Compiled, key: &QueueKey, t: &Target) -> &'a mut Aimd {
    let ceiling = c
        .cfg
        .resolve(&key.source, &key.site, t.domain, t.provider)
        .max_message_rate;
    let cfg = c.cfg.adaptive.aimd.clone();
    match &mut q.aimd {
        Some(a) => {
            a.reconfigure(cfg, ceiling);
            a
        }
        slot @ None => slot.insert(Aimd::new(cfg, ceiling)),
    }
}

/// Configured limits narrowed by what was learned and what rules impose.
fn live_params(
    c: &Compiled,
    key: &QueueKey,
    t: &Target,
    q: Option<&QueueState>,
    now: u64,
) -> Params {
    let mut p = c.cfg.resolve(&key.source, &key.site, t.domain, t.provider);
    let Some(q) = q else { return p };
    let min_conn = |p: &mut Params, v: u32| p.max_connections = p.max_connections.min(v.max(1));
    if let Some(n) = q.live_connections {
        min_conn(&mut p, n);
    }
    if let Some(s) = q.set_connections.as_ref().filter(|s| s.until > now) {
        min_conn(&mut p, s.value);
    }
    let mut rate = p.max_message_rate.map(crate::Rate::per_hour);
    let mut narrow = |r: f64| rate = Some(rate.map_or(r, |x| x.min(r)));
    if let Some(a) = q.aimd.as_ref().and_then(Aimd::learned) {
        narrow(a);
    }
    if let Some(t) = q.throttle.as_ref().filter(|t| t.until > now) {
        narrow(t.value);
    }
    p.max_message_rate = rate.map(|r| crate::Rate {
        count: r.round().clamp(1.0, f64::from(u32::MAX)) as u32,
        per_ms: 3_600_000,
    });
    p
}

impl Limits for AdaptiveLimits {
    fn params(&self, key: &QueueKey, t: &Target) -> Params {
        let c = self.compiled();
        let now = self.now();
        let inner = self.inner.lock();
        live_params(&c, key, t, inner.queues.get(key), now)
    }

    fn open_connection(&self, key: &QueueKey, t: &Target) -> Result<ConnectionPermit, Wait> {
        let c = self.compiled();
        let now = self.now();
        let mut inner = self.inner.lock();
        let q = inner.queues.entry(key.clone()).or_default();
        q.note_target(t);
        let p = live_params(&c, key, t, Some(q), now);
        let mut n = q.connections.lock();
        if *n >= p.max_connections {
            return Err(Wait::Connections);
        }
        let mut dialing = q.dialing.lock();
        // Dials in flight grow with the connections the site has already taken: at a site's
        // connection limit, the dials that were in flight together are the refusals it costs
        // to find it — a handful, not the whole configured limit opened at once.
        if c.cfg.adaptive.enabled && *dialing >= (n.saturating_sub(*dialing) / 2).max(1) {
            return Err(Wait::Until(now + DIAL_RECHECK_MS));
        }
        if let Some(rate) = p.max_connection_rate {
            q.conn_pacer.reserve(rate, now).map_err(Wait::Until)?;
        }
        *n += 1;
        *dialing += 1;
        Ok(ConnectionPermit {
            counter: q.connections.clone(),
            dialing: Some(q.dialing.clone()),
        })
    }

    fn reserve_message(&self, key: &QueueKey, t: &Target) -> Result<(), Wait> {
        let c = self.compiled();
        let now = self.now();
        let mut inner = self.inner.lock();
        let q = inner.queues.entry(key.clone()).or_default();
        if c.cfg.adaptive.enabled && q.aimd.is_none() {
            // The first message of a queue: its live rate starts here (a cold start, unless a
            // rate is configured).
            aimd_of(q, &c, key, t);
        }
        if let Some(rate) = live_params(&c, key, t, Some(q), now).max_message_rate {
            q.pacer.reserve(rate, now).map_err(Wait::Until)?;
        }
        q.meter.record(now);
        Ok(())
    }

    fn open_connections(&self, key: &QueueKey) -> u32 {
        self.inner
            .lock()
            .queues
            .get(key)
            .map_or(0, |s| *s.connections.lock())
    }

    fn admit(&self, key: &QueueKey, t: &Target, allow_avoided: bool) -> Result<(), Hold> {
        let c = self.compiled();
        let now = self.now();
        let mut inner = self.inner.lock();
        inner.check_suspended(key, t.domain, now)?;
        if !allow_avoided
            && let Some(until) = inner.queues.get(key).and_then(|q| q.avoid_until)
            && until > now
        {
            return Err(Hold {
                until: Some(until),
                reason: format!("source {} cannot connect to {}", key.source, key.site),
            });
        }
        if c.warming.contains(&*key.source) {
            return inner.take_warmup(&c, key, t, now);
        }
        Ok(())
    }

    fn release(&self, key: &QueueKey, t: &Target, sent: Sent) {
        let c = self.compiled();
        if !c.warming.contains(&*key.source) || sent == Sent::Refused {
            return;
        }
        let now = self.now();
        let mut inner = self.inner.lock();
        let provider = warmup_group(key, t);
        if let Some(w) = inner.warmups.get_mut(&(key.source.to_string(), provider)) {
            match sent {
                Sent::Delivered => w.on_delivered(now),
                Sent::NotSent => w.give_back(now),
                Sent::Refused => {}
            }
            inner.dirty = true;
        }
    }

    fn observe(&self, key: &QueueKey, t: &Target, what: Observed) -> Verdict {
        let c = self.compiled();
        let now = self.now();
        let mut inner = self.inner.lock();
        observe::observe(&mut inner, &c, key, t, what, now)
    }

    fn complaint(&self, source: &str, domain: &str) -> Verdict {
        let c = self.compiled();
        let now = self.now();
        let mut inner = self.inner.lock();
        observe::complaint(&mut inner, &c, source, domain, now)
    }

    fn suspend(&self, scope: Scope, until: Option<UnixMillis>, reason: &str) -> ShapingAction {
        let now = self.now();
        let mut inner = self.inner.lock();
        let s = Suspension {
            until,
            reason: reason.to_string(),
            since: now,
        };
        inner.suspensions.insert(scope.clone(), s);
        inner.dirty = true;
        let mut a = ShapingAction::new(ActionKind::Suspend, "operator", scope);
        a.until = until;
        a.reply = Some(reason.to_string());
        a
    }

    fn resume(&self, scope: &Scope) -> Option<ShapingAction> {
        let mut inner = self.inner.lock();
        inner.suspensions.remove(scope)?;
        inner.dirty = true;
        Some(ShapingAction::new(
            ActionKind::Resume,
            "operator",
            scope.clone(),
        ))
    }

    fn view(&self) -> ShapingView {
        let c = self.compiled();
        let now = self.now();
        view::build(&self.inner.lock(), &c, now)
    }

    fn take_actions(&self) -> Vec<ShapingAction> {
        std::mem::take(&mut self.inner.lock().outbox)
    }

    fn has_own_limits(&self, domain: &str) -> bool {
        AdaptiveLimits::has_own_limits(self, domain)
    }

    fn provider_of(&self, domain: &str, mx_hosts: &[&str]) -> Option<String> {
        AdaptiveLimits::provider_of(self, domain, mx_hosts)
    }

    fn reload(&self, cfg: ShapingConfig, warming: &[String]) -> Result<(), ShapingConfigError> {
        AdaptiveLimits::reload(self, cfg, warming)
    }

    fn changed_state(&self) -> Option<ShapingState> {
        self.is_dirty().then(|| self.snapshot())
    }
}

/// Warm-up counts per (source, provider); destinations without a provider count per site.
fn warmup_group(key: &QueueKey, t: &Target) -> String {
    t.provider
        .map_or_else(|| format!("site:{}", key.site), str::to_string)
}

impl Inner {
    fn check_suspended(
        &mut self,
        key: &QueueKey,
        domain: &str,
        now: UnixMillis,
    ) -> Result<(), Hold> {
        if self.suspensions.is_empty() {
            return Ok(());
        }
        let before = self.suspensions.len();
        self.suspensions
            .retain(|_, s| s.until.is_none_or(|u| u > now));
        if self.suspensions.len() != before {
            self.dirty = true;
        }
        let mut hold: Option<Hold> = None;
        for (scope, s) in &self.suspensions {
            if !scope.covers(key, domain) {
                continue;
            }
            // The longest suspension decides; "until resumed" is the longest of all.
            let longer = hold.as_ref().is_none_or(|h| match (h.until, s.until) {
                (Some(a), Some(b)) => b > a,
                (Some(_), None) => true,
                (None, _) => false,
            });
            if longer {
                hold = Some(Hold {
                    until: s.until,
                    reason: format!("{scope} suspended: {}", s.reason),
                });
            }
        }
        hold.map_or(Ok(()), Err)
    }

    fn take_warmup(
        &mut self,
        c: &Compiled,
        key: &QueueKey,
        t: &Target,
        now: UnixMillis,
    ) -> Result<(), Hold> {
        let group = warmup_group(key, t);
        let w = self
            .warmups
            .entry((key.source.to_string(), group.clone()))
            .or_insert_with(|| Warmup::new(c.cfg.warmup.clone(), now));
        self.dirty = true;
        let stage = w.stage();
        let result = w.try_take(now);
        let scope = Scope::Source(key.source.to_string());
        if w.stage() > stage {
            let mut a = ShapingAction::new(ActionKind::WarmupPromoted, "warmup", scope.clone());
            a.provider = Some(group.clone());
            a.stage = Some(w.stage());
            a.count = w.cap();
            self.outbox.push(a);
        }
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                // Reported once a day: the first refusal after the cap was reached.
                if w.state().taken == e.cap && !w.cap_reported() {
                    w.mark_cap_reported();
                    let mut a = ShapingAction::new(ActionKind::WarmupCap, "warmup", scope);
                    a.provider = Some(group.clone());
                    a.stage = Some(e.stage);
                    a.count = Some(e.cap);
                    a.until = Some(e.retry_at);
                    self.outbox.push(a);
                }
                Err(Hold {
                    until: Some(e.retry_at),
                    reason: format!("source {} warm-up for {group}: {e}", key.source),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Meter, MinuteMeter};

    #[test]
    fn windows_count_the_last_second_or_minute_and_forget_the_rest() {
        let mut m = Meter::default();
        let t0 = 1_000_000;
        for i in 0..20 {
            m.record(t0 + i * 100);
        }
        // Events at t0 … t0+1900; at t0+1900 the window holds t0+900 … t0+1900 (11), over 1 s.
        assert_eq!(m.per_hour(t0 + 1_900), 11.0 * 3_600.0);
        // Half a second later five of them have left; a long gap empties the ring.
        assert_eq!(m.per_hour(t0 + 2_450), 6.0 / 1.05 * 3_600.0);
        assert_eq!(m.per_hour(t0 + 60_000), 0.0);
        m.record(t0 + 60_000);
        assert_eq!(m.per_hour(t0 + 60_000), 3_600.0);

        // A queue that started 10 s ago is measured over those 10 s, not over a minute.
        let mut minute = MinuteMeter::default();
        for i in 0..100 {
            minute.record(t0 + i * 100);
        }
        assert_eq!(minute.per_hour(t0 + 10_000), 10.0 * 3_600.0);
        assert_eq!(minute.per_hour(t0 + 130_000), 0.0);
    }
}
