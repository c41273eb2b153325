//! Shaping configuration: layers from general to specific, each option inherited when unset.
//! Today: default → domain → (domain, source). Provider and site layers arrive with adaptive shaping.

use crate::Params;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// STARTTLS policy towards a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TlsPolicy {
    /// Use STARTTLS when offered; fall back to plain text when not.
    #[default]
    Opportunistic,
    /// Fail (transiently) when STARTTLS is not offered or the handshake fails.
    Required,
    /// Never use STARTTLS.
    Disabled,
}

/// A message rate such as `100/s`, `600/min` or `10000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per_ms: u64,
}

impl Rate {
    /// Milliseconds between two evenly spread messages.
    pub fn interval_ms(self) -> u64 {
        if self.count == 0 {
            return u64::MAX / 4;
        }
        self.per_ms / self.count as u64
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid rate {0:?}: expected COUNT/UNIT with UNIT one of s, min, h, d (e.g. \"10000/h\")")]
pub struct RateParseError(String);

impl FromStr for Rate {
    type Err = RateParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || RateParseError(s.to_string());
        let (count, unit) = s.trim().split_once('/').ok_or_else(err)?;
        let count: u32 = count.trim().parse().map_err(|_| err())?;
        let per_ms = match unit.trim() {
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            _ => return Err(err()),
        };
        Ok(Self { count, per_ms })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per_ms {
            1_000 => "s",
            60_000 => "min",
            3_600_000 => "h",
            _ => "d",
        };
        write!(f, "{}/{}", self.count, unit)
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One layer of limits; every field unset means "inherit".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    pub max_connections: Option<u32>,
    pub max_messages_per_connection: Option<u32>,
    pub max_recipients_per_message: Option<u32>,
    pub max_message_rate: Option<Rate>,
    pub tls: Option<TlsPolicy>,
}

impl LimitsSpec {
    fn apply(&self, p: &mut Params) {
        if let Some(v) = self.max_connections {
            p.max_connections = v;
        }
        if let Some(v) = self.max_messages_per_connection {
            p.max_messages_per_connection = v;
        }
        if let Some(v) = self.max_recipients_per_message {
            p.max_recipients_per_message = v;
        }
        if self.max_message_rate.is_some() {
            p.max_message_rate = self.max_message_rate;
        }
        if let Some(v) = self.tls {
            p.tls = v;
        }
    }
}

/// `[shaping]` in the config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShapingConfig {
    /// Applies to every destination.
    pub default: LimitsSpec,
    /// Per routing domain (exact, lowercase).
    pub domains: BTreeMap<String, LimitsSpec>,
    /// Per (domain, source): keys are `"domain@source"`.
    pub domain_sources: BTreeMap<String, LimitsSpec>,
}

/// Built-in defaults under every layer: conservative enough for real providers, wide enough for
/// a smart host.
pub fn builtin() -> Params {
    Params {
        max_connections: 20,
        max_messages_per_connection: 100,
        max_recipients_per_message: 100,
        max_message_rate: None,
        tls: TlsPolicy::Opportunistic,
    }
}

impl ShapingConfig {
    /// Effective limits for (source, site) when sending for `domain`.
    pub fn resolve(&self, source: &str, _site: &str, domain: &str) -> Params {
        let mut p = builtin();
        self.default.apply(&mut p);
        if let Some(l) = self.domains.get(domain) {
            l.apply(&mut p);
        }
        if let Some(l) = self.domain_sources.get(&format!("{domain}@{source}")) {
            l.apply(&mut p);
        }
        p
    }

    /// Whether a domain has limits of its own; such a domain is queued apart from its site so its
    /// limits are not shared with other domains on the same MX hosts.
    pub fn has_own_limits(&self, domain: &str) -> bool {
        self.domains.contains_key(domain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_and_print() {
        let r: Rate = "10000/h".parse().unwrap();
        assert_eq!(r.interval_ms(), 360);
        assert_eq!(r.to_string(), "10000/h");
        assert!("10/fortnight".parse::<Rate>().is_err());
        assert!("abc".parse::<Rate>().is_err());
        assert!("-1/s".parse::<Rate>().is_err());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let e = toml::from_str::<ShapingConfig>("[default]\nmax_conections = 3\n").unwrap_err();
        assert!(e.to_string().contains("max_conections"), "{e}");
    }

    #[test]
    fn domain_source_layer_is_most_specific() {
        let cfg: ShapingConfig = toml::from_str(
            "[default]\nmax_connections = 5\n[domains.\"a.test\"]\nmax_connections = 3\n[domain_sources.\"a.test@ip2\"]\nmax_connections = 1\n",
        )
        .unwrap();
        assert_eq!(cfg.resolve("ip1", "s", "a.test").max_connections, 3);
        assert_eq!(cfg.resolve("ip2", "s", "a.test").max_connections, 1);
        assert_eq!(cfg.resolve("ip2", "s", "b.test").max_connections, 5);
    }
}
