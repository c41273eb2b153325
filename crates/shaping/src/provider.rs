//! Mailbox providers: a name, how to recognise its destinations, and the limits that apply to
//! all of them. Providers let one rule or limit cover every domain a provider hosts — including
//! company domains whose MX points at Google Workspace or Microsoft 365.

use crate::LimitsSpec;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// `[shaping.providers.NAME]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProviderSpec {
    /// MX host suffixes (whole labels): `google.com` matches `aspmx.l.google.com`.
    pub mx_suffixes: Vec<String>,
    /// Recipient domain suffixes (whole labels): `yahoo.com` matches `yahoo.com` and `x.yahoo.com`.
    pub domain_suffixes: Vec<String>,
    /// Limits for every destination of the provider.
    pub limits: LimitsSpec,
}

fn suffix_match(name: &str, suffix: &str) -> bool {
    let name = name.trim_end_matches('.');
    let suffix = suffix.trim_end_matches('.').trim_start_matches('.');
    if suffix.is_empty() || name.len() < suffix.len() {
        return false;
    }
    let (head, tail) = name.split_at(name.len() - suffix.len());
    tail.eq_ignore_ascii_case(suffix) && (head.is_empty() || head.ends_with('.'))
}

impl ProviderSpec {
    pub fn matches_domain(&self, domain: &str) -> bool {
        self.domain_suffixes.iter().any(|s| suffix_match(domain, s))
    }

    pub fn matches_mx(&self, host: &str) -> bool {
        self.mx_suffixes.iter().any(|s| suffix_match(host, s))
    }
}

/// The providers cartero knows without configuration. The MX suffixes and consumer domains are
/// public DNS facts; the limits are cartero's conservative starting points (the providers do not
/// publish connection or rate numbers), meant to be tuned and learned from (AIMD):
///
/// | provider | MX suffixes | max_connections | max_messages_per_connection |
/// |---|---|---|---|
/// | gmail | google.com, googlemail.com | 20 | 100 |
/// | yahoo | yahoodns.net | 10 | 20 |
/// | outlook | outlook.com, hotmail.com | 10 | 50 |
/// | apple | icloud.com, me.com | 5 | 50 |
/// | gmx | gmx.net, web.de | 5 | 50 |
/// | orange | orange.fr | 5 | 20 |
pub fn builtin_providers() -> &'static BTreeMap<String, ProviderSpec> {
    static TABLE: OnceLock<BTreeMap<String, ProviderSpec>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let p = |mx: &[&str], domains: &[&str], conns: u32, per_conn: u32| ProviderSpec {
            mx_suffixes: mx.iter().map(|s| s.to_string()).collect(),
            domain_suffixes: domains.iter().map(|s| s.to_string()).collect(),
            limits: LimitsSpec {
                max_connections: Some(conns),
                max_messages_per_connection: Some(per_conn),
                ..LimitsSpec::default()
            },
        };
        BTreeMap::from([
            (
                "gmail".to_string(),
                p(
                    &["google.com", "googlemail.com"],
                    &["gmail.com", "googlemail.com"],
                    20,
                    100,
                ),
            ),
            (
                "yahoo".to_string(),
                p(
                    &["yahoodns.net"],
                    &[
                        "yahoo.com",
                        "ymail.com",
                        "rocketmail.com",
                        "aol.com",
                        "yahoo.co.uk",
                        "yahoo.fr",
                        "yahoo.es",
                    ],
                    10,
                    20,
                ),
            ),
            (
                "outlook".to_string(),
                p(
                    &["outlook.com", "hotmail.com"],
                    &[
                        "outlook.com",
                        "hotmail.com",
                        "live.com",
                        "msn.com",
                        "hotmail.es",
                        "outlook.es",
                    ],
                    10,
                    50,
                ),
            ),
            (
                "apple".to_string(),
                p(
                    &["icloud.com", "me.com"],
                    &["icloud.com", "me.com", "mac.com"],
                    5,
                    50,
                ),
            ),
            (
                "gmx".to_string(),
                p(
                    &["gmx.net", "web.de"],
                    &["gmx.net", "gmx.de", "gmx.com", "web.de"],
                    5,
                    50,
                ),
            ),
            (
                "orange".to_string(),
                p(&["orange.fr"], &["orange.fr", "wanadoo.fr"], 5, 20),
            ),
        ])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_match_whole_labels_case_insensitively() {
        assert!(suffix_match("aspmx.l.google.com", "google.com"));
        assert!(suffix_match("GOOGLE.COM.", "google.com"));
        assert!(suffix_match("x.google.com", ".google.com"));
        assert!(!suffix_match("notgoogle.com", "google.com"));
        assert!(!suffix_match("google.com", ""));
        assert!(!suffix_match("com", "google.com"));
    }
}
