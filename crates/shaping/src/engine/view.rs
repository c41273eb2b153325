//! What `cartero shaping` and the API show: per (source, site) configured and live limits,
//! suspensions with their reason, warm-up stages and today's volume.

use super::{Compiled, Inner, Target, live_params};
use crate::Params;
use cartero_clock::UnixMillis;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitsView {
    pub max_connections: u32,
    pub max_messages_per_connection: u32,
    /// Messages per hour; `None` = unlimited.
    pub max_message_rate_per_hour: Option<f64>,
}

impl From<&Params> for LimitsView {
    fn from(p: &Params) -> Self {
        Self {
            max_connections: p.max_connections,
            max_messages_per_connection: p.max_messages_per_connection,
            max_message_rate_per_hour: p.max_message_rate.map(crate::Rate::per_hour),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueueView {
    pub source: String,
    pub site: String,
    /// Last domain seen on the queue (per-domain layers depend on it).
    pub domain: String,
    pub provider: Option<String>,
    pub configured: LimitsView,
    pub live: LimitsView,
    pub open_connections: u32,
    /// Why the live limits differ from the configured ones, when a rule or sweep imposed it.
    pub throttled_by: Option<String>,
    pub throttled_until: Option<UnixMillis>,
    pub avoided_until: Option<UnixMillis>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SuspensionView {
    /// `domain:…`, `site:…`, `source:…`, `queue:SOURCE/SITE` or `source-domain:SOURCE/DOMAIN`.
    pub scope: String,
    pub until: Option<UnixMillis>,
    pub since: UnixMillis,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WarmupView {
    pub source: String,
    pub provider: String,
    /// 0-based stage; `cap` is `None` once warmed up.
    pub stage: usize,
    pub cap: Option<u64>,
    pub taken_today: u64,
    pub delivered_today: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShapingView {
    pub now: UnixMillis,
    pub adaptive: bool,
    pub queues: Vec<QueueView>,
    pub suspensions: Vec<SuspensionView>,
    pub warmup: Vec<WarmupView>,
}

pub(super) fn build(inner: &Inner, c: &Compiled, now: UnixMillis) -> ShapingView {
    let mut queues: Vec<QueueView> = inner
        .queues
        .iter()
        .filter(|(_, q)| {
            // Queues restored from the state file show what was learned before any traffic.
            !q.domain.is_empty() || *q.connections.lock() > 0 || q.carries_state(now)
        })
        .map(|(k, q)| {
            let t = Target {
                domain: &q.domain,
                provider: q.provider.as_deref(),
            };
            let configured = c.cfg.resolve(&k.source, &k.site, t.domain, t.provider);
            let live = live_params(c, k, &t, Some(q), now);
            let throttle = q.throttle.as_ref().filter(|t| t.until > now);
            QueueView {
                source: k.source.to_string(),
                site: k.site.to_string(),
                domain: q.domain.clone(),
                provider: q.provider.clone(),
                configured: (&configured).into(),
                live: (&live).into(),
                open_connections: *q.connections.lock(),
                throttled_by: throttle.map(|t| t.cause.clone()),
                throttled_until: throttle.map(|t| t.until),
                avoided_until: q.avoid_until.filter(|u| *u > now),
            }
        })
        .collect();
    queues.sort_by(|a, b| (&a.source, &a.site).cmp(&(&b.source, &b.site)));
    let mut suspensions: Vec<SuspensionView> = inner
        .suspensions
        .iter()
        .filter(|(_, s)| s.until.is_none_or(|u| u > now))
        .map(|(scope, s)| SuspensionView {
            scope: scope.to_string(),
            until: s.until,
            since: s.since,
            reason: s.reason.clone(),
        })
        .collect();
    suspensions.sort_by(|a, b| a.scope.cmp(&b.scope));
    let mut warmup: Vec<WarmupView> = inner
        .warmups
        .iter()
        .map(|((source, provider), w)| {
            let mut w = w.clone();
            w.roll(now);
            let st = w.state();
            WarmupView {
                source: source.clone(),
                provider: provider.clone(),
                stage: st.stage,
                cap: w.cap(),
                taken_today: st.taken,
                delivered_today: st.delivered,
            }
        })
        .collect();
    warmup.sort_by(|a, b| (&a.source, &a.provider).cmp(&(&b.source, &b.provider)));
    ShapingView {
        now,
        adaptive: c.cfg.adaptive.enabled,
        queues,
        suspensions,
        warmup,
    }
}
