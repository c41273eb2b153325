//! Response rules (SPEC §2.5): a regex over the one-line SMTP reply, optionally scoped to a
//! provider, with a trigger (at once, or N matches within a sliding window) and an action that
//! lasts for a duration. Pure logic: the caller passes `now` and applies what comes back.

use crate::QueueKey;
use cartero_clock::UnixMillis;
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

/// One configured response rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRule {
    /// Unique name, recorded as the cause of every action the rule takes.
    pub name: String,
    /// Provider name (e.g. `gmail`); `None` applies to every destination.
    #[serde(default)]
    pub provider: Option<String>,
    /// Regex matched against the one-line reply (`code enhanced text`).
    pub pattern: String,
    /// When the rule fires.
    #[serde(default)]
    pub trigger: Trigger,
    /// What happens when it fires.
    pub action: Action,
}

/// When a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// On the first match.
    #[default]
    Immediate,
    /// On the `n`-th match whose first counted match is at most `within` old.
    Count {
        n: u32,
        #[serde(with = "humantime_serde")]
        within: Duration,
    },
}

/// What a fired rule does to the (source, site) queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Stop sending; the messages wait without using up attempts.
    Suspend {
        #[serde(rename = "for", with = "humantime_serde")]
        duration: Duration,
    },
    /// Multiply the live rate by `factor` (0 < factor ≤ 1).
    Throttle {
        factor: f64,
        #[serde(rename = "for", with = "humantime_serde")]
        duration: Duration,
    },
    /// Override limits.
    Set {
        #[serde(default)]
        max_connections: Option<u32>,
        #[serde(rename = "for", with = "humantime_serde")]
        duration: Duration,
    },
    /// Fail what is queued for the site with the reply.
    Bounce,
}

impl Action {
    /// How long the action lasts; `None` for a one-shot action (bounce).
    pub fn duration(&self) -> Option<Duration> {
        match self {
            Action::Suspend { duration }
            | Action::Throttle { duration, .. }
            | Action::Set { duration, .. } => Some(*duration),
            Action::Bounce => None,
        }
    }
}

/// A rule that fired, with everything an operator needs to see why.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggered {
    /// Rule name.
    pub rule: Arc<str>,
    pub action: Action,
    /// End of the action; `None` for one-shot actions.
    pub until: Option<UnixMillis>,
    /// Matches counted when it fired (1 for immediate rules).
    pub count: u32,
    /// The window the matches were counted in (zero for immediate rules).
    pub window: Duration,
    /// The reply that made it fire.
    pub reply: String,
}

/// A rule set that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("response rule {name:?}: invalid pattern: {source}")]
    Pattern {
        name: String,
        #[source]
        source: Box<regex::Error>,
    },
    #[error("response rule {name:?}: {reason}")]
    Invalid { name: String, reason: &'static str },
    #[error("response rule name {0:?} is used twice")]
    Duplicate(String),
}

#[derive(Debug)]
struct Compiled {
    name: Arc<str>,
    provider: Option<String>,
    regex: Regex,
    trigger: Trigger,
    action: Action,
}

/// Evaluates replies against the rules and keeps the per (rule, queue) match windows.
#[derive(Debug)]
pub struct RuleEngine {
    rules: Vec<Compiled>,
    windows: HashMap<(usize, QueueKey), VecDeque<UnixMillis>>,
}

impl RuleEngine {
    /// Compiles and checks the rules.
    pub fn new(rules: &[ResponseRule]) -> Result<Self, RuleError> {
        let mut compiled: Vec<Compiled> = Vec::with_capacity(rules.len());
        for r in rules {
            validate(r)?;
            if compiled.iter().any(|c| *c.name == *r.name) {
                return Err(RuleError::Duplicate(r.name.clone()));
            }
            let regex = Regex::new(&r.pattern).map_err(|e| RuleError::Pattern {
                name: r.name.clone(),
                source: Box::new(e),
            })?;
            compiled.push(Compiled {
                name: r.name.as_str().into(),
                provider: r.provider.as_ref().map(|p| p.to_ascii_lowercase()),
                regex,
                trigger: r.trigger,
                action: r.action.clone(),
            });
        }
        Ok(Self {
            rules: compiled,
            windows: HashMap::new(),
        })
    }

    /// Feeds one reply seen on `key` (whose destination belongs to `provider`, if known) and
    /// returns the rules that fired, in configuration order.
    pub fn observe(
        &mut self,
        key: &QueueKey,
        provider: Option<&str>,
        reply: &str,
        now: UnixMillis,
    ) -> Vec<Triggered> {
        let mut fired = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if let Some(p) = &rule.provider
                && !provider.is_some_and(|q| q.eq_ignore_ascii_case(p))
            {
                continue;
            }
            if !rule.regex.is_match(reply) {
                continue;
            }
            let (count, window) = match rule.trigger {
                Trigger::Immediate => (1, Duration::ZERO),
                Trigger::Count { n, within } => {
                    let w = self.windows.entry((i, key.clone())).or_default();
                    let within_ms = millis(within);
                    w.retain(|t| now.saturating_sub(*t) <= within_ms);
                    w.push_back(now);
                    let count = u32::try_from(w.len()).unwrap_or(u32::MAX);
                    if count < n {
                        continue;
                    }
                    // The matches that fired are used up: the next action needs n new ones.
                    w.clear();
                    (count, within)
                }
            };
            fired.push(Triggered {
                rule: rule.name.clone(),
                action: rule.action.clone(),
                until: rule
                    .action
                    .duration()
                    .map(|d| now.saturating_add(millis(d))),
                count,
                window,
                reply: reply.to_string(),
            });
        }
        fired
    }

    /// Drops match windows with nothing left in them at `now`, so idle queues cost no memory.
    pub fn prune(&mut self, now: UnixMillis) {
        let rules = &self.rules;
        self.windows.retain(|(i, _), w| {
            let within = match rules.get(*i).map(|r| r.trigger) {
                Some(Trigger::Count { within, .. }) => millis(within),
                _ => 0,
            };
            w.retain(|t| now.saturating_sub(*t) <= within);
            !w.is_empty()
        });
    }

    /// Number of (rule, queue) windows held (for metrics and tests).
    pub fn tracked_windows(&self) -> usize {
        self.windows.len()
    }
}

fn validate(r: &ResponseRule) -> Result<(), RuleError> {
    let invalid = |reason| {
        Err(RuleError::Invalid {
            name: r.name.clone(),
            reason,
        })
    };
    if r.name.trim().is_empty() {
        return invalid("the name is empty");
    }
    if let Trigger::Count { n, within } = r.trigger {
        if n == 0 {
            return invalid("trigger count n must be at least 1");
        }
        if within.is_zero() {
            return invalid("trigger window must be longer than zero");
        }
    }
    if let Action::Throttle { factor, .. } = r.action
        && !(factor > 0.0 && factor <= 1.0)
    {
        return invalid("throttle factor must be in (0, 1]");
    }
    if let Action::Set {
        max_connections: Some(0),
        ..
    } = r.action
    {
        return invalid("set max_connections = 0 would stall the queue; use suspend");
    }
    Ok(())
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Rules shipped for the big mailbox providers. They paraphrase what the providers publish in
/// their postmaster/sender guidelines, as observed in replies; they are a starting point the
/// operator reviews and overrides:
///
/// * **Gmail** (`gmail`): `421 4.7.28` means Gmail saw an unusual rate of mail from the sending IP
///   and is rate limiting it; `421 4.7.0` with "try again later"/"rate limited" is a generic
///   temporary block. Both are throttled; repeated ones suspend the queue for an hour.
/// * **Yahoo** (`yahoo`): `421 4.7.0 [TSS04]` defers mail because of unexpected volume or user
///   complaints (throttle, suspend when repeated); `[TS03]` (and the other `[TS0x]` codes) is a
///   deferral retrying will not fix for a while, so the queue is suspended for four hours.
/// * **Outlook / Microsoft 365** (`outlook`): `451 4.7.650` is temporary rate limiting on IP
///   reputation (throttle); `550 5.7.1 ... S3150` (and the `S3140`-family block list codes) means
///   the IP is on Microsoft's block list: suspend for four hours and let the operator delist.
/// * **Apple iCloud** (`apple`): `421 4.7.0` / `4.7.1` "try again later"/"too many" replies are
///   throttled; `5.7.x` policy blocks with `[CS0x]`/`[HM0x]` codes suspend for four hours.
pub fn default_rules() -> Vec<ResponseRule> {
    const MIN: u64 = 60;
    const HOUR: u64 = 3_600;
    let throttle = |mins: u64| Action::Throttle {
        factor: 0.5,
        duration: Duration::from_secs(mins * MIN),
    };
    let suspend = |secs: u64| Action::Suspend {
        duration: Duration::from_secs(secs),
    };
    let count = |n, secs| Trigger::Count {
        n,
        within: Duration::from_secs(secs),
    };
    let rule = |name: &str, provider: &str, pattern: &str, trigger, action| ResponseRule {
        name: name.to_string(),
        provider: Some(provider.to_string()),
        pattern: pattern.to_string(),
        trigger,
        action,
    };
    vec![
        rule(
            "gmail-rate-limited",
            "gmail",
            r"^421[ -]4\.7\.28\b",
            Trigger::Immediate,
            throttle(15),
        ),
        rule(
            "gmail-rate-limited-repeated",
            "gmail",
            r"^421[ -]4\.7\.28\b",
            count(5, 10 * MIN),
            suspend(HOUR),
        ),
        rule(
            "gmail-try-later",
            "gmail",
            r"(?i)^421[ -]4\.7\.0\b.*(try again later|rate limit)",
            Trigger::Immediate,
            throttle(15),
        ),
        rule(
            "yahoo-tss04",
            "yahoo",
            r"^421[ -]4\.7\.0 \[TSS04\]",
            Trigger::Immediate,
            throttle(30),
        ),
        rule(
            "yahoo-tss04-repeated",
            "yahoo",
            r"^421[ -]4\.7\.0 \[TSS04\]",
            count(5, 10 * MIN),
            suspend(HOUR),
        ),
        rule(
            "yahoo-ts0x",
            "yahoo",
            r"^4\d\d[ -]4\.7\.\d+ \[TS0\d\]",
            Trigger::Immediate,
            suspend(4 * HOUR),
        ),
        rule(
            "outlook-rate-limited",
            "outlook",
            r"^451[ -]4\.7\.650\b",
            Trigger::Immediate,
            throttle(30),
        ),
        rule(
            "outlook-blocklisted",
            "outlook",
            r"^550[ -]5\.7\.1\b.*\bS3(140|150)\b",
            Trigger::Immediate,
            suspend(4 * HOUR),
        ),
        rule(
            "apple-try-later",
            "apple",
            r"(?i)^421[ -]4\.7\.[01]\b.*(try again later|too many)",
            Trigger::Immediate,
            throttle(15),
        ),
        rule(
            "apple-policy-block",
            "apple",
            r"^5\d\d[ -]5\.7\.\d+ .*\[(CS|HM)0\d\]",
            Trigger::Immediate,
            suspend(4 * HOUR),
        ),
    ]
}
