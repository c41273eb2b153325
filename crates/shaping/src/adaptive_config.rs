//! `[shaping.adaptive]`: how cartero reacts to what the providers answer.

use crate::aimd::AimdConfig;
use crate::rules::{ResponseRule, RuleEngine, RuleError, default_rules};
use crate::sweep::SweepConfig;
use regex::RegexSet;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Replies that mean "you are sending too fast" rather than "this recipient has a problem".
/// Greylisting is excluded on purpose: it is per recipient and says nothing about the rate.
pub const DEFAULT_THROTTLE_PATTERNS: [&str; 4] = [
    r"(?i)^4\d\d[ -](?:.*\b(?:rate[- ]?limit\w*|too many|throttl\w*|unusual rate|unexpected volume|exceeded|slow down)\b)",
    r"^421[ -]4\.7\.(?:0|28)\b",
    r"^451[ -]4\.7\.650\b",
    // The same in the languages of the big European ISPs' replies: "trop de", "zu viele",
    // "demasiadas", "troppe/troppi", "te veel", "za dużo" — all "too many".
    r"(?i)^4\d\d[ -](?:.*(?:\btrop de\b|\bzu viele\b|\bdemasiad[oa]s\b|\btropp[ei]\b|\bte veel\b|\bza du(?:ż|z)o\b|\bdébit\b|\bdebit d'envoi\b))",
];

/// Why a `[shaping]` configuration cannot be used; each names the option at fault.
#[derive(Debug, thiserror::Error)]
pub enum ShapingConfigError {
    #[error("shaping.adaptive.throttle_patterns: {source}")]
    ThrottlePatterns {
        #[source]
        source: regex::Error,
    },
    #[error("shaping.adaptive.rules: {0}")]
    Rules(#[source] RuleError),
    #[error("shaping.adaptive.connection_increase_every must be at least 1")]
    ConnectionIncreaseEvery,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdaptiveConfig {
    /// Off: only the configured (static) limits apply; replies change nothing.
    pub enabled: bool,
    /// Live rate control per (source, site).
    pub aimd: AimdConfig,
    /// Regexes over the one-line reply that count as throttling (AIMD decrease, no attempt used).
    pub throttle_patterns: Vec<String>,
    /// Ship the response rules for the big providers (see `default_rules`).
    pub default_rules: bool,
    /// Operator response rules, tried before the shipped ones.
    pub rules: Vec<ResponseRule>,
    /// Sweep rules per (source, domain).
    pub sweep: SweepConfig,
    /// How long a source that cannot connect to a site is avoided when the pool has others.
    #[serde(with = "humantime_serde")]
    pub avoid_source_for: Duration,
    /// Accepted messages between two additive steps of the live connection limit.
    pub connection_increase_every: u32,
    /// After a refusal lowered the learned connection limit, how long the limit is kept before
    /// it is probed upwards again; doubles with every further decrease, up to 15 minutes.
    #[serde(with = "humantime_serde")]
    pub connection_probe_every: Duration,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            aimd: AimdConfig::default(),
            throttle_patterns: DEFAULT_THROTTLE_PATTERNS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            default_rules: true,
            rules: Vec::new(),
            sweep: SweepConfig::default(),
            avoid_source_for: Duration::from_secs(300),
            connection_increase_every: 1000,
            connection_probe_every: Duration::from_secs(30),
        }
    }
}

impl AdaptiveConfig {
    /// The rules in force: the operator's first, then (optionally) the shipped ones.
    pub fn all_rules(&self) -> Vec<ResponseRule> {
        let mut rules = self.rules.clone();
        if self.default_rules {
            let own: Vec<&str> = rules.iter().map(|r| r.name.as_str()).collect();
            let shipped: Vec<ResponseRule> = default_rules()
                .into_iter()
                .filter(|r| !own.contains(&r.name.as_str()))
                .collect();
            rules.extend(shipped);
        }
        rules
    }

    pub fn throttle_set(&self) -> Result<RegexSet, ShapingConfigError> {
        RegexSet::new(&self.throttle_patterns)
            .map_err(|source| ShapingConfigError::ThrottlePatterns { source })
    }

    pub fn validate(&self) -> Result<(), ShapingConfigError> {
        self.throttle_set()?;
        RuleEngine::new(&self.all_rules()).map_err(ShapingConfigError::Rules)?;
        if self.connection_increase_every == 0 {
            return Err(ShapingConfigError::ConnectionIncreaseEvery);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_throttle_patterns_tell_rate_limits_from_greylisting() {
        let set = AdaptiveConfig::default().throttle_set().unwrap();
        for reply in [
            "451 4.7.1 The mail server [127.0.0.2] has been temporarily rate limited",
            "421 4.7.0 Try again later, closing connection. Too many open sessions",
            "421 4.7.28 Our system has detected an unusual rate of unsolicited mail",
            "451 4.7.650 The mail server has been temporarily rate limited due to IP reputation",
            "450 4.2.1 The user you are trying to contact is receiving mail too quickly, slow down",
            "421 Trop de connexions simultanees depuis 127.0.0.2, merci de reessayer plus tard",
            "421 4.3.2 Zu viele gleichzeitige Verbindungen, bitte spaeter erneut versuchen",
            "450 4.7.1 Débit d'envoi trop élevé, réessayez plus tard",
            "421 Demasiadas conexiones desde su IP",
        ] {
            assert!(set.is_match(reply), "{reply}");
        }
        for reply in [
            "451 4.7.1 Greylisted, please try again in a few minutes",
            "452 4.2.2 Mailbox full, try again later",
            "550 5.7.1 rate limited",
            "451 4.3.0 Temporary system problem, try again later",
            "550 5.7.1 Trop de plaintes",
            "452 4.2.2 Boîte pleine, réessayez plus tard",
        ] {
            assert!(!set.is_match(reply), "{reply}");
        }
    }

    #[test]
    fn bad_pattern_or_rule_is_a_clear_error() {
        let mut c = AdaptiveConfig::default();
        c.throttle_patterns.push("(".into());
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("throttle_patterns")
        );
    }
}
