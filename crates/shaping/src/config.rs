//! Shaping configuration: layers from general to specific, each option inherited when unset:
//! default → provider (matched by MX host or domain suffix) → site → domain → (domain, source).

use crate::Params;
use crate::adaptive_config::{AdaptiveConfig, ShapingConfigError};
use crate::provider::{ProviderSpec, builtin_providers};
use crate::warmup::WarmupConfig;
use cartero_smtp::io::{PhaseTimeouts, TlsMode};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// A message rate such as `100/s`, `600/min` or `10000/h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per_ms: u64,
}

impl Rate {
    /// Milliseconds between two evenly spread messages.
    pub fn interval_ms(self) -> u64 {
        self.interval_us() / 1_000
    }

    /// Microseconds between two evenly spread messages.
    pub fn interval_us(self) -> u64 {
        if self.count == 0 {
            return u64::MAX / 4;
        }
        self.per_ms.saturating_mul(1_000) / self.count as u64
    }

    /// The rate in messages per hour.
    pub fn per_hour(self) -> f64 {
        self.count as f64 * 3_600_000.0 / self.per_ms.max(1) as f64
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
    pub max_connection_rate: Option<Rate>,
    pub tls: Option<TlsMode>,
    /// SMTP phase timeouts for this layer, e.g. `timeouts = { banner = "1m" }`; what no layer
    /// sets comes from `[delivery.timeouts]`.
    #[serde(default)]
    pub timeouts: PhaseTimeouts,
}

impl LimitsSpec {
    fn apply(&self, p: &mut Params) {
        p.timeouts.merge(&self.timeouts);
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
        if self.max_connection_rate.is_some() {
            p.max_connection_rate = self.max_connection_rate;
        }
        if let Some(v) = self.tls {
            p.tls = v;
        }
    }
}

/// `[shaping]` in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShapingConfig {
    /// Applies to every destination.
    pub default: LimitsSpec,
    /// Ship the built-in provider definitions (Gmail, Yahoo, Outlook, Apple, …); entries of
    /// `providers` with the same name replace them.
    pub builtin_providers: bool,
    /// Mailbox providers, matched by MX host suffix or recipient domain suffix.
    pub providers: BTreeMap<String, ProviderSpec>,
    /// Per site: the MX host set as `cartero shaping` shows it (e.g. `"mx1.example.com,mx2.example.com"`).
    pub sites: BTreeMap<String, LimitsSpec>,
    /// Per routing domain (exact, lowercase).
    pub domains: BTreeMap<String, LimitsSpec>,
    /// Per (domain, source): keys are `"domain@source"`.
    pub domain_sources: BTreeMap<String, LimitsSpec>,
    /// Live adaptation from the providers' replies.
    pub adaptive: AdaptiveConfig,
    /// IP warm-up of the sources marked `warmup = true`.
    pub warmup: WarmupConfig,
}

impl Default for ShapingConfig {
    fn default() -> Self {
        Self {
            default: LimitsSpec::default(),
            builtin_providers: true,
            providers: BTreeMap::new(),
            sites: BTreeMap::new(),
            domains: BTreeMap::new(),
            domain_sources: BTreeMap::new(),
            adaptive: AdaptiveConfig::default(),
            warmup: WarmupConfig::default(),
        }
    }
}

/// Built-in defaults under every layer: conservative enough for real providers, wide enough for
/// a smart host.
pub fn builtin() -> Params {
    Params {
        max_connections: 20,
        max_messages_per_connection: 100,
        max_recipients_per_message: 100,
        max_message_rate: None,
        max_connection_rate: None,
        tls: TlsMode::Opportunistic,
        timeouts: PhaseTimeouts::default(),
    }
}

impl ShapingConfig {
    /// Configured limits for (source, site) when sending for `domain` of `provider`.
    pub fn resolve(
        &self,
        source: &str,
        site: &str,
        domain: &str,
        provider: Option<&str>,
    ) -> Params {
        let mut p = builtin();
        self.default.apply(&mut p);
        if let Some(spec) = provider.and_then(|name| self.provider(name)) {
            spec.limits.apply(&mut p);
        }
        if let Some(l) = self.sites.get(site) {
            l.apply(&mut p);
        }
        if let Some(l) = self.domains.get(domain) {
            l.apply(&mut p);
        }
        // Resolved for every message sent: no key to build when the layer is empty.
        if !self.domain_sources.is_empty()
            && let Some(l) = self.domain_sources.get(&format!("{domain}@{source}"))
        {
            l.apply(&mut p);
        }
        p
    }

    /// A provider by name: configured first, then built in.
    pub fn provider(&self, name: &str) -> Option<&ProviderSpec> {
        self.providers.get(name).or_else(|| {
            if self.builtin_providers {
                builtin_providers().get(name)
            } else {
                None
            }
        })
    }

    /// The provider a destination belongs to: a recipient-domain suffix match first (it is the
    /// more specific statement), then an MX host suffix match. Configured providers are tried
    /// before built-in ones, each set in name order.
    pub fn provider_of(&self, domain: &str, mx_hosts: &[&str]) -> Option<String> {
        // A configured provider that only changes limits keeps the built-in matching.
        let inherited: Vec<(&String, ProviderSpec)> = self
            .providers
            .iter()
            .map(|(n, p)| (n, self.matching_of(n, p)))
            .collect();
        let configured = inherited.iter().map(|(n, p)| (*n, p));
        let builtin = builtin_providers()
            .iter()
            .filter(|(n, _)| self.builtin_providers && !self.providers.contains_key(*n));
        let all: Vec<(&String, &ProviderSpec)> = configured.chain(builtin).collect();
        all.iter()
            .find(|(_, p)| p.matches_domain(domain))
            .or_else(|| {
                all.iter()
                    .find(|(_, p)| mx_hosts.iter().any(|h| p.matches_mx(h)))
            })
            .map(|(n, _)| (*n).clone())
    }

    fn matching_of(&self, name: &str, p: &ProviderSpec) -> ProviderSpec {
        let builtin = builtin_providers()
            .get(name)
            .filter(|_| self.builtin_providers);
        match builtin {
            Some(b) if p.mx_suffixes.is_empty() && p.domain_suffixes.is_empty() => ProviderSpec {
                mx_suffixes: b.mx_suffixes.clone(),
                domain_suffixes: b.domain_suffixes.clone(),
                limits: p.limits.clone(),
            },
            _ => p.clone(),
        }
    }

    /// Checks what serde cannot: rules compile, throttle patterns are valid regexes.
    pub fn validate(&self) -> Result<(), ShapingConfigError> {
        self.adaptive.validate()
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
        assert_eq!(cfg.resolve("ip1", "s", "a.test", None).max_connections, 3);
        assert_eq!(cfg.resolve("ip2", "s", "a.test", None).max_connections, 1);
        assert_eq!(cfg.resolve("ip2", "s", "b.test", None).max_connections, 5);
    }

    #[test]
    fn layers_apply_in_order_default_provider_site_domain_source() {
        let cfg: ShapingConfig = toml::from_str(
            r#"
[default]
max_connections = 50
max_messages_per_connection = 7
[providers.big]
mx_suffixes = ["mx.big.test"]
[providers.big.limits]
max_connections = 10
max_message_rate = "100/s"
[sites."a.mx.big.test,b.mx.big.test"]
max_connections = 4
[domains."x.test"]
max_message_rate = "10/s"
"#,
        )
        .unwrap();
        let site = "a.mx.big.test,b.mx.big.test";
        let p = cfg.resolve("s1", site, "x.test", Some("big"));
        assert_eq!(p.max_connections, 4, "site over provider");
        assert_eq!(
            p.max_message_rate,
            Some("10/s".parse().unwrap()),
            "domain over provider"
        );
        assert_eq!(p.max_messages_per_connection, 7, "default inherited");
        let q = cfg.resolve("s1", "other-site", "y.test", Some("big"));
        assert_eq!(q.max_connections, 10);
        assert_eq!(q.max_message_rate, Some("100/s".parse().unwrap()));
        assert_eq!(cfg.resolve("s1", "z", "z.test", None).max_connections, 50);
    }

    #[test]
    fn phase_timeouts_are_inherited_per_phase() {
        let cfg: ShapingConfig = toml::from_str(
            "[default]\ntimeouts = { banner = \"2m\", data_end = \"5m\" }\n[domains.\"x.test\"]\ntimeouts = { banner = \"20s\" }\n",
        )
        .unwrap();
        let t = cfg.resolve("s", "site", "x.test", None).timeouts;
        assert_eq!(t.banner, Some(std::time::Duration::from_secs(20)));
        assert_eq!(t.data_end, Some(std::time::Duration::from_secs(300)));
        assert_eq!(
            t.connect, None,
            "unset everywhere: [delivery.timeouts] decides"
        );
        let other = cfg.resolve("s", "site", "y.test", None).timeouts;
        assert_eq!(other.banner, Some(std::time::Duration::from_secs(120)));
        let e = toml::from_str::<ShapingConfig>("[default]\ntimeouts = { banr = \"1s\" }\n");
        assert!(e.unwrap_err().to_string().contains("banr"));
    }

    #[test]
    fn providers_match_by_domain_suffix_then_mx_suffix() {
        let cfg = ShapingConfig::default();
        assert_eq!(cfg.provider_of("gmail.com", &[]).as_deref(), Some("gmail"));
        assert_eq!(
            cfg.provider_of("corp.example", &["aspmx.l.google.com"])
                .as_deref(),
            Some("gmail"),
            "Google Workspace domains are found by their MX"
        );
        assert_eq!(
            cfg.provider_of("x.example", &["x-example.mail.protection.outlook.com"])
                .as_deref(),
            Some("outlook")
        );
        assert_eq!(cfg.provider_of("example.test", &["mx.example.test"]), None);
        // Suffixes match whole labels only.
        assert_eq!(cfg.provider_of("notgmail.com", &["mx.notgoogle.com"]), None);
        let off: ShapingConfig = toml::from_str("builtin_providers = false").unwrap();
        assert_eq!(off.provider_of("gmail.com", &[]), None);
    }
}
