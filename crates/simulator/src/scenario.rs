//! The scenario file: which providers to simulate and how each one behaves.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown/mistyped keys (the message names line and column).
    #[error("invalid scenario: {0}")]
    Parse(#[from] toml::de::Error),
    /// A provider listens outside loopback: the simulator must never face a real network.
    #[error(
        "provider {provider:?}: listen address {addr} is not loopback (only 127.0.0.0/8 and ::1 are allowed)"
    )]
    NotLoopback { provider: String, addr: SocketAddr },
    /// A value is out of range or inconsistent.
    #[error("provider {provider:?}: {reason}")]
    Invalid { provider: String, reason: String },
}

/// Wording of the replies, imitating the tone of a well-known provider (the text is our own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    /// Plain wording.
    #[default]
    Generic,
    /// Gmail-like (`... - gsmtp-sim`).
    Gmail,
    /// Yahoo-like (`[TSS-SIM]` tags).
    Yahoo,
    /// Outlook-like (`(S-SIM)` tags, `[ip]` in text).
    Outlook,
    /// A French ISP: replies in French, some without enhanced codes.
    FrenchIsp,
    /// A German ISP: replies in German with enhanced codes that do not say "policy".
    GermanIsp,
    /// Replies that say nothing: RFC 5321's stock phrases, no enhanced codes. Only where a reply
    /// comes (the banner, MAIL FROM) tells what it means.
    Terse,
}

/// A whole scenario: a seed and the providers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed for the random 4xx decisions, so a run can be repeated.
    #[serde(default)]
    pub seed: u64,
    /// The simulated providers (`[[provider]]` tables).
    #[serde(rename = "provider", default)]
    pub providers: Vec<ProviderConfig>,
}

/// One simulated provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Unique name, used for [`crate::Simulator::stats`].
    pub name: String,
    /// Loopback address and port (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Name in the banner and EHLO reply.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    /// Reply wording.
    #[serde(default)]
    pub style: Style,
    /// Connections open at once per source IP; the next gets `421 4.7.0` at the banner.
    pub max_connections: Option<u32>,
    /// Messages (accepted MAIL FROM) per second per source IP; more get `451 4.7.1`.
    pub messages_per_second: Option<u32>,
    /// Messages per minute per source IP; more get `451 4.7.1`.
    pub messages_per_minute: Option<u32>,
    /// Greylisting: the first attempt of a (source IP, sender, recipient) triple gets
    /// `451 4.7.1`; a retry at least this long after it passes.
    #[serde(default, with = "humantime_serde")]
    pub greylist: Option<Duration>,
    /// Local parts that do not exist (`550 5.1.1`), compared case-insensitively.
    #[serde(default)]
    pub unknown_users: BTreeSet<String>,
    /// Local-part prefixes that do not exist (`550 5.1.1`).
    #[serde(default)]
    pub unknown_user_prefixes: Vec<String>,
    /// Local parts whose mailbox is full (`452 4.2.2`).
    #[serde(default)]
    pub full_mailboxes: BTreeSet<String>,
    /// Chance (0..=1) that a MAIL FROM gets a random `451 4.3.0`.
    #[serde(default)]
    pub random_4xx: f64,
    /// Delay before each reply, per phase.
    #[serde(default)]
    pub delays: Delays,
    /// Reputation per source IP; absent means no reputation tracking.
    pub reputation: Option<ReputationConfig>,
}

/// Delays before replying, per SMTP phase.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Delays {
    /// Before the banner.
    #[serde(default, with = "humantime_serde")]
    pub banner: Option<Duration>,
    /// Before the HELO/EHLO reply.
    #[serde(default, with = "humantime_serde")]
    pub helo: Option<Duration>,
    /// Before the MAIL FROM reply.
    #[serde(default, with = "humantime_serde")]
    pub mail: Option<Duration>,
    /// Before each RCPT TO reply.
    #[serde(default, with = "humantime_serde")]
    pub rcpt: Option<Duration>,
    /// Before the reply to the end of the message data.
    #[serde(default, with = "humantime_serde")]
    pub data: Option<Duration>,
}

/// How a source IP's score reacts to sending while throttled.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReputationConfig {
    /// Score of a new source.
    #[serde(default = "default_initial")]
    pub initial: u32,
    /// Subtracted per over-limit attempt (connection or rate).
    #[serde(default = "default_penalty")]
    pub penalty: u32,
    /// Added per accepted message, up to `initial`.
    #[serde(default)]
    pub recovery: u32,
    /// Below this score the limits are multiplied by `shrink_factor`.
    #[serde(default = "default_shrink_below")]
    pub shrink_below: u32,
    /// Factor (0..=1) applied to the limits of a low-score source.
    #[serde(default = "default_shrink_factor")]
    pub shrink_factor: f64,
    /// Below this score the source is blocked (`554 5.7.1`) for `block_for`.
    #[serde(default = "default_block_below")]
    pub block_below: u32,
    /// How long a block lasts.
    #[serde(default = "default_block_for", with = "humantime_serde")]
    pub block_for: Duration,
    /// Score after the block expires.
    #[serde(default = "default_after_block")]
    pub after_block: u32,
}

fn default_hostname() -> String {
    "mx.simulator.invalid".to_string()
}
fn default_initial() -> u32 {
    100
}
fn default_penalty() -> u32 {
    5
}
fn default_shrink_below() -> u32 {
    60
}
fn default_shrink_factor() -> f64 {
    0.5
}
fn default_block_below() -> u32 {
    20
}
fn default_block_for() -> Duration {
    Duration::from_secs(600)
}
fn default_after_block() -> u32 {
    40
}

impl Scenario {
    /// Parses and validates a scenario from TOML text.
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text)
    }

    /// Checks what serde cannot: loopback only, unique names, sane ranges.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let mut names = BTreeSet::new();
        for p in &self.providers {
            let invalid = |reason: &str| ScenarioError::Invalid {
                provider: p.name.clone(),
                reason: reason.to_string(),
            };
            if !names.insert(p.name.as_str()) {
                return Err(invalid("duplicate provider name"));
            }
            if !p.listen.ip().to_canonical().is_loopback() {
                return Err(ScenarioError::NotLoopback {
                    provider: p.name.clone(),
                    addr: p.listen,
                });
            }
            if !(0.0..=1.0).contains(&p.random_4xx) {
                return Err(invalid("random_4xx must be between 0 and 1"));
            }
            if p.max_connections == Some(0) {
                return Err(invalid("max_connections must be at least 1"));
            }
            if let Some(r) = &p.reputation {
                if !(0.0..=1.0).contains(&r.shrink_factor) {
                    return Err(invalid("reputation.shrink_factor must be between 0 and 1"));
                }
                if r.block_below > r.shrink_below || r.shrink_below > r.initial {
                    return Err(invalid(
                        "reputation thresholds must satisfy block_below <= shrink_below <= initial",
                    ));
                }
            }
        }
        Ok(())
    }
}
