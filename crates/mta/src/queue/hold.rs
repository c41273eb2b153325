//! Queue-wide effects of shaping: suspensions (by a rule, a sweep or an operator) move what waits
//! in the ready queues back to the scheduled queue until they end, without using attempts;
//! `resume` wakes them; a `bounce` rule fails a queue with the reply.

use super::QRcpt;
use super::settle::release_unsent;
use super::state::Scheduler;
use crate::outcome::{AttemptContext, Failure, Outcome};
use cartero_clock::UnixMillis;
use cartero_shaping::{QueueKey, Scope, ShapingAction};

impl Scheduler {
    pub(super) fn suspend(
        &mut self,
        scope: Scope,
        until: Option<UnixMillis>,
        reason: &str,
    ) -> ShapingAction {
        let action = self.ctx.limits.suspend(scope.clone(), until, reason);
        self.settler.shaping_event(&action, None);
        self.evict(&scope, until);
        action
    }

    pub(super) fn resume(&mut self, scope: &Scope) -> Option<ShapingAction> {
        let action = self.ctx.limits.resume(scope)?;
        self.settler.shaping_event(&action, None);
        let now = self.ctx.clock.now_ms();
        let keys: Vec<_> = self
            .scheduled
            .iter()
            .filter(|(_, r)| r.held && self.held_by(scope, r))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(mut r) = self.scheduled.remove(&k) {
                r.next_attempt = now;
                self.schedule(r);
            }
        }
        Some(action)
    }

    /// Whether a scheduled recipient may be waiting for `scope`. Sources and sites are not known
    /// for scheduled recipients (they are chosen at routing), so those scopes wake every held
    /// recipient routed to the site, or all of them for a source; admission sorts out the rest.
    fn held_by(&self, scope: &Scope, r: &QRcpt) -> bool {
        let site_of = || {
            self.domains
                .get(&r.domain)
                .and_then(|d| d.dest.as_ref())
                .map(|(dest, _)| dest.site.clone())
        };
        match scope {
            Scope::Domain(d) | Scope::SourceDomain { domain: d, .. } => **d == *r.domain,
            Scope::Site(s) | Scope::Queue { site: s, .. } => {
                site_of().is_none_or(|site| *site == **s)
            }
            Scope::Source(_) => true,
        }
    }

    /// Takes out of the ready queues every recipient `pick` selects (queues `skip` rules out are
    /// not walked) and gives back their warm-up slots: they leave without being sent.
    pub(super) fn take_ready(
        &mut self,
        skip: impl Fn(&QueueKey) -> bool,
        pick: impl Fn(&QueueKey, &QRcpt) -> bool,
    ) -> Vec<QRcpt> {
        let mut taken = Vec::new();
        for (key, q) in self.ready.iter_mut().filter(|(k, _)| !skip(k)) {
            let (out, keep): (Vec<_>, Vec<_>) = q.items.drain(..).partition(|r| pick(key, r));
            q.items = keep.into();
            for r in &out {
                release_unsent(self.ctx.limits.as_ref(), key, q.dest.provider.as_deref(), r);
            }
            taken.extend(out);
        }
        taken
    }

    /// Moves the ready recipients a suspension covers back to the scheduled queue until it ends.
    pub(super) fn evict(&mut self, scope: &Scope, until: Option<UnixMillis>) {
        let now = self.ctx.clock.now_ms();
        let held = self.take_ready(
            |k| !scope.covers_queue(k),
            |k, r| scope.covers(k, &r.domain),
        );
        for mut r in held {
            r.hold(until, now + 1);
            self.schedule(r);
        }
    }

    /// Fails everything waiting in one queue with the reply that fired a `bounce` rule.
    pub(super) fn bounce_queue(&mut self, key: &QueueKey, failure: Failure) {
        let taken = self.take_ready(|k| k != key, |_, _| true);
        // Settled without a lane: these recipients were not sent, so shaping must not count
        // them (nor fire the same rule once per recipient).
        let at = AttemptContext::default();
        for r in taken {
            self.settle(r, Outcome::Permanent(failure.clone()), &at);
        }
    }
}
