//! What the MTA tells the shaping engine and what it hears back.

use crate::QueueKey;
use cartero_bounce::BounceClass;
use cartero_clock::UnixMillis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a queue's traffic is going, beyond its key: the routing domain that made the MTA ask
/// (for per-domain layers and sweeps) and the provider of the site, when one matched.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub domain: &'a str,
    pub provider: Option<&'a str>,
}

/// One thing that happened on a queue.
#[derive(Debug, Clone, Copy)]
pub enum Observed<'a> {
    /// A message was accepted.
    Delivered,
    /// A recipient failed with this (one-line) reply or local error and bounce class.
    Failed {
        reply: &'a str,
        class: BounceClass,
        permanent: bool,
        /// The reply refused the sender or the session, not this recipient: a reply to MAIL
        /// FROM, or a 421 (closing the channel). A transient one is the site pushing back
        /// whatever its words — recipients are refused at RCPT or after the data.
        session: bool,
    },
    /// A recipient deferred because no connection could be made for it. The connection itself
    /// was observed (as [`Observed::ConnectFailed`]), so response rules do not count its reply
    /// again for every recipient that waited; the throttle check and the sweep still see it, and
    /// the recipient is held (no attempt used) when its queue is suspended.
    Deferred { reply: &'a str, class: BounceClass },
    /// No connection could be made. `refused` when the peer answered and turned us away
    /// (e.g. `421` at the banner), as opposed to a network failure.
    ConnectFailed { reply: &'a str, refused: bool },
}

/// What the sender must do with the recipient whose outcome was observed, and what happened.
#[derive(Debug, Clone, Default)]
pub struct Verdict {
    /// Requeue without counting an attempt, not before this time (`Some(None)` = until resumed).
    pub hold: Option<Option<UnixMillis>>,
    /// Fail everything queued for the queue with the reply (a `bounce` rule fired).
    pub bounce: bool,
    /// Adaptive actions taken, each to be published as a `shaping` event.
    pub actions: Vec<ShapingAction>,
}

impl Verdict {
    /// Holds the recipient until `until` (`None` = until resumed). Several reasons may hold it
    /// at once: the later end wins, and "until resumed" is the latest of all.
    pub(crate) fn hold_until(&mut self, until: Option<UnixMillis>) {
        self.hold = Some(match (self.hold, until) {
            (None, u) => u,
            (Some(Some(a)), Some(b)) => Some(a.max(b)),
            (Some(_), _) => None,
        });
    }
}

/// Why a queue may not take a recipient now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// Until when; `None` = until an operator resumes.
    pub until: Option<UnixMillis>,
    pub reason: String,
}

/// A text that is not a [`Scope`]; shown as `"INPUT": what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?}: {why}")]
pub struct ScopeParseError {
    pub input: String,
    pub why: ScopeFault,
}

/// What is wrong with a scope text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeFault {
    #[error("expected domain:NAME, site:NAME or source:NAME")]
    NoKind,
    #[error("empty name")]
    EmptyName,
    #[error("expected {0}:SOURCE/NAME")]
    NotAPair(String),
    #[error("unknown scope {0:?} (domain, site, source, queue or source-domain)")]
    UnknownKind(String),
}

/// What may be suspended by an operator or a rule.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(tag = "scope", content = "name", rename_all = "snake_case")]
pub enum Scope {
    /// Every source sending to a recipient domain.
    Domain(String),
    /// Every source sending to a site.
    Site(String),
    /// A source, whatever the destination.
    Source(String),
    /// One source to one site (response rules).
    Queue { source: String, site: String },
    /// One source to one domain (sweep rules).
    SourceDomain { source: String, domain: String },
}

impl Scope {
    /// Parses `domain:NAME`, `site:NAME`, `source:NAME`, `queue:SOURCE/SITE` or
    /// `source-domain:SOURCE/DOMAIN` (the CLI and API syntax; the inverse of `Display`).
    pub fn parse(s: &str) -> Result<Self, ScopeParseError> {
        let err = |why| ScopeParseError {
            input: s.to_string(),
            why,
        };
        let (kind, name) = s.split_once(':').ok_or_else(|| err(ScopeFault::NoKind))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(err(ScopeFault::EmptyName));
        }
        let kind = kind.trim();
        // `queue:` and `source-domain:` are what rules and sweeps suspend; the view prints them
        // this way so an operator can resume them.
        let pair = || {
            name.split_once('/')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
                .ok_or_else(|| err(ScopeFault::NotAPair(kind.to_string())))
        };
        match kind {
            "domain" => Ok(Scope::Domain(name.to_ascii_lowercase())),
            "site" => Ok(Scope::Site(name.to_string())),
            "source" => Ok(Scope::Source(name.to_string())),
            "queue" => pair().map(|(source, site)| Scope::Queue {
                source: source.to_string(),
                site: site.to_string(),
            }),
            "source-domain" => pair().map(|(source, domain)| Scope::SourceDomain {
                source: source.to_string(),
                domain: domain.to_ascii_lowercase(),
            }),
            _ => Err(err(ScopeFault::UnknownKind(kind.to_string()))),
        }
    }

    /// Whether some recipient queued on `key` may be covered (the domain aside).
    pub fn covers_queue(&self, key: &QueueKey) -> bool {
        match self {
            Scope::Domain(_) => true,
            Scope::Site(s) => **s == *key.site,
            Scope::Source(s) | Scope::SourceDomain { source: s, .. } => **s == *key.source,
            Scope::Queue { source, site } => **source == *key.source && **site == *key.site,
        }
    }

    /// Whether a recipient of `domain` queued on `key` is covered.
    pub fn covers(&self, key: &QueueKey, domain: &str) -> bool {
        self.covers_queue(key)
            && match self {
                Scope::Domain(d) | Scope::SourceDomain { domain: d, .. } => d == domain,
                Scope::Site(_) | Scope::Source(_) | Scope::Queue { .. } => true,
            }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Domain(d) => write!(f, "domain:{d}"),
            Scope::Site(s) => write!(f, "site:{s}"),
            Scope::Source(s) => write!(f, "source:{s}"),
            Scope::Queue { source, site } => write!(f, "queue:{source}/{site}"),
            Scope::SourceDomain { source, domain } => write!(f, "source-domain:{source}/{domain}"),
        }
    }
}

/// Kinds of adaptive action, as `shaping.action` in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Suspend,
    Resume,
    Throttle,
    Set,
    Bounce,
    /// AIMD multiplicative decrease.
    RateDecrease,
    /// The live connection limit was lowered after a refused connection.
    ConnectionsDecrease,
    /// A source that cannot connect to a site is avoided for a while.
    AvoidSource,
    /// Warm-up moved a source up one stage.
    WarmupPromoted,
    /// Warm-up cap of the day reached.
    WarmupCap,
}

/// One adaptive action with its cause; becomes the `shaping` object of a `shaping` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShapingAction {
    pub action: ActionKind,
    /// `rule:NAME`, `aimd`, `sweep:invalid_and_timeouts`, `sweep:complaints`, `operator`, `warmup`.
    pub cause: String,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The reply that made it happen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// Matches or bad outcomes counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// The volume a sweep ratio is a share of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Window the matches were counted in, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_secs: Option<u64>,
    /// End of the action (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<UnixMillis>,
    /// Live rate before and after, messages per hour (`None` = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_after: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// Warm-up stage after the action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
}

impl ShapingAction {
    pub fn new(action: ActionKind, cause: impl Into<String>, scope: Scope) -> Self {
        Self {
            action,
            cause: cause.into(),
            scope,
            provider: None,
            reply: None,
            count: None,
            volume: None,
            ratio: None,
            window_secs: None,
            until: None,
            rate_before: None,
            rate_after: None,
            max_connections: None,
            stage: None,
        }
    }
}

/// How a recipient left its queue, for warm-up accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// Accepted by the receiver: counts towards promotion.
    Delivered,
    /// Transmitted but refused for good: the day's slot stays used.
    Refused,
    /// Never transmitted (connection failure, hold, drain): the slot is given back.
    NotSent,
}
