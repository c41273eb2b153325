//! Resolver configuration (the `[dns]` section of the cartero config).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// Default DNS port, used when a nameserver is given without one.
const DNS_PORT: u16 = 53;

/// How the MX resolver talks to DNS.
///
/// Deserializes from e.g. TOML:
/// ```toml
/// nameservers = ["127.0.0.1:5353", "9.9.9.9"]   # port defaults to 53; empty = /etc/resolv.conf
/// timeout = "2s"
/// attempts = 2
/// cache_size = 8192
/// min_ttl = "30s"
/// max_ttl = "1h"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Nameservers to query (UDP, with TCP on truncation). Empty means the system
    /// configuration (`/etc/resolv.conf`). Entries may omit the port (53).
    #[serde(deserialize_with = "de_nameservers")]
    pub nameservers: Vec<SocketAddr>,
    /// Timeout of one query to one nameserver.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How many times a failed query is retried.
    pub attempts: usize,
    /// Number of responses kept in the cache (positive and negative).
    pub cache_size: usize,
    /// Lower bound on the TTL of cached positive answers (`None`: the record TTL).
    #[serde(with = "humantime_serde")]
    pub min_ttl: Option<Duration>,
    /// Upper bound on the TTL of cached answers, positive and negative (`None`: the record TTL).
    #[serde(with = "humantime_serde")]
    pub max_ttl: Option<Duration>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
            attempts: 2,
            cache_size: 8192,
            min_ttl: None,
            max_ttl: None,
        }
    }
}

/// Parses `"1.2.3.4"`, `"1.2.3.4:5353"`, `"::1"` or `"[::1]:5353"`.
pub fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    text.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
}

fn de_nameservers<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<SocketAddr>, D::Error> {
    let raw = Vec::<String>::deserialize(de)?;
    raw.iter()
        .map(|s| {
            parse_nameserver(s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid nameserver {s:?}: expected IP or IP:port"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_section() {
        let cfg: DnsConfig = toml::from_str(
            r#"
            nameservers = ["127.0.0.1:5353", "9.9.9.9", "::1", "[::1]:54"]
            timeout = "2s"
            attempts = 3
            cache_size = 100
            min_ttl = "30s"
            max_ttl = "1h"
            "#,
        )
        .unwrap();
        assert_eq!(
            cfg.nameservers,
            vec![
                "127.0.0.1:5353".parse().unwrap(),
                "9.9.9.9:53".parse().unwrap(),
                "[::1]:53".parse().unwrap(),
                "[::1]:54".parse().unwrap(),
            ]
        );
        assert_eq!(cfg.timeout, Duration::from_secs(2));
        assert_eq!(cfg.attempts, 3);
        assert_eq!(cfg.cache_size, 100);
        assert_eq!(cfg.min_ttl, Some(Duration::from_secs(30)));
        assert_eq!(cfg.max_ttl, Some(Duration::from_secs(3600)));
    }

    #[test]
    fn empty_section_is_default() {
        let cfg: DnsConfig = toml::from_str("").unwrap();
        assert_eq!(cfg, DnsConfig::default());
    }

    #[test]
    fn rejects_unknown_fields_and_bad_nameservers() {
        assert!(toml::from_str::<DnsConfig>("timeuot = \"1s\"").is_err());
        assert!(toml::from_str::<DnsConfig>("nameservers = [\"dns.example\"]").is_err());
        assert!(toml::from_str::<DnsConfig>("nameservers = [\"1.2.3.4:99999\"]").is_err());
    }
}
