//! Egress sources and pools (SPEC §2.4). A message picks its pool from an injection parameter or
//! header, else from the first matching pool rule, else the default pool; each recipient then
//! goes to one of the pool's sources, chosen at random by weight among those the shaping engine
//! admits (not suspended, not avoided, within warm-up caps).

use crate::config::{DeliveryConfig, PoolRule};
use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// An egress source as the delivery workers use it.
#[derive(Debug, Clone)]
pub(crate) struct SourceInfo {
    pub name: Arc<str>,
    pub ip: Option<IpAddr>,
    pub helo: String,
}

/// Why `[delivery]` sources, pools or pool rules cannot be used; each names the key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolsError {
    #[error("delivery.sources is empty: at least one egress source is needed")]
    NoSources,
    #[error("delivery.sources: source {0:?} is defined twice")]
    DuplicateSource(String),
    #[error("delivery.pools {pool:?}: unknown source {member:?}")]
    UnknownSource { pool: String, member: String },
    #[error("delivery.pools {pool:?}: weight of {member:?} must be at least 1")]
    ZeroWeight { pool: String, member: String },
    #[error("delivery.pools {0:?} has no sources")]
    EmptyPool(String),
    #[error("delivery.pools: pool {0:?} is defined twice")]
    DuplicatePool(String),
    #[error("delivery.default_pool: unknown pool {0:?}")]
    UnknownDefaultPool(String),
    #[error("delivery.pool_rules: unknown pool {0:?}")]
    UnknownRulePool(String),
}

/// Sources, pools and rules, checked.
#[derive(Debug)]
pub(crate) struct Pools {
    sources: HashMap<Arc<str>, SourceInfo>,
    pools: HashMap<String, Vec<(Arc<str>, u32)>>,
    default: String,
    rules: Vec<PoolRule>,
}

/// The pool of every source, equally weighted, when no pool is configured.
pub const IMPLICIT_POOL: &str = "default";

impl Pools {
    pub fn build(cfg: &DeliveryConfig, hostname: &str) -> Result<Self, PoolsError> {
        if cfg.sources.is_empty() {
            return Err(PoolsError::NoSources);
        }
        let mut sources = HashMap::new();
        for s in &cfg.sources {
            let info = SourceInfo {
                name: s.name.as_str().into(),
                ip: s.ip,
                helo: s.helo.clone().unwrap_or_else(|| hostname.to_string()),
            };
            if sources.insert(info.name.clone(), info).is_some() {
                return Err(PoolsError::DuplicateSource(s.name.clone()));
            }
        }
        let mut pools = HashMap::new();
        for p in &cfg.pools {
            let mut members = Vec::new();
            for m in &p.sources {
                let (name, _) = sources.get_key_value(m.source.as_str()).ok_or_else(|| {
                    PoolsError::UnknownSource {
                        pool: p.name.clone(),
                        member: m.source.clone(),
                    }
                })?;
                if m.weight == 0 {
                    return Err(PoolsError::ZeroWeight {
                        pool: p.name.clone(),
                        member: m.source.clone(),
                    });
                }
                members.push((name.clone(), m.weight));
            }
            if members.is_empty() {
                return Err(PoolsError::EmptyPool(p.name.clone()));
            }
            if pools.insert(p.name.clone(), members).is_some() {
                return Err(PoolsError::DuplicatePool(p.name.clone()));
            }
        }
        if cfg.pools.is_empty() {
            let all = cfg
                .sources
                .iter()
                .map(|s| (Arc::<str>::from(s.name.as_str()), 1))
                .collect();
            pools.insert(IMPLICIT_POOL.to_string(), all);
        }
        let default = cfg
            .default_pool
            .clone()
            .unwrap_or_else(|| IMPLICIT_POOL.to_string());
        if !pools.contains_key(&default) {
            return Err(PoolsError::UnknownDefaultPool(default));
        }
        for r in &cfg.pool_rules {
            if !pools.contains_key(&r.pool) {
                return Err(PoolsError::UnknownRulePool(r.pool.clone()));
            }
        }
        Ok(Self {
            sources,
            pools,
            default,
            rules: cfg.pool_rules.clone(),
        })
    }

    /// The pools a message may name.
    pub fn names(&self) -> Vec<String> {
        self.pools.keys().cloned().collect()
    }

    pub fn source(&self, name: &str) -> Option<&SourceInfo> {
        self.sources.get(name)
    }

    /// The pool for a recipient: the message's own (when it names a known pool), a rule, or the
    /// default. An unknown requested pool falls back rather than stalling the message.
    pub fn pool_for(&self, requested: Option<&str>, sender: &str, rcpt_domain: &str) -> &str {
        if let Some(p) = requested.and_then(|p| self.pools.get_key_value(p)) {
            return p.0;
        }
        if self.rules.is_empty() {
            return &self.default;
        }
        let sender_domain = cartero_address::routing_domain(sender);
        let eq = |want: &Option<String>, have: &str| {
            want.as_deref().is_none_or(|w| w.eq_ignore_ascii_case(have))
        };
        self.rules
            .iter()
            .find(|r| eq(&r.sender_domain, &sender_domain) && eq(&r.recipient_domain, rcpt_domain))
            .map_or(&self.default, |r| &r.pool)
    }

    /// The pool's sources in a random order weighted by share: the first is picked with
    /// probability weight / total, and so on down the list. Asked per recipient: a pool of one
    /// source is lent, not copied.
    pub fn candidates(&self, pool: &str) -> Cow<'_, [Arc<str>]> {
        let Some(members) = self.pools.get(pool) else {
            return Cow::Borrowed(&[]);
        };
        if let [(only, _)] = members.as_slice() {
            return Cow::Borrowed(std::slice::from_ref(only));
        }
        // Weighted sampling without replacement: sort by u^(1/w), largest first.
        let mut keyed: Vec<(f64, &Arc<str>)> = members
            .iter()
            .map(|(s, w)| (fastrand::f64().powf(1.0 / f64::from(*w)), s))
            .collect();
        keyed.sort_by(|a, b| b.0.total_cmp(&a.0));
        Cow::Owned(keyed.into_iter().map(|(_, s)| s.clone()).collect())
    }

    /// Whether some pool holding `source` has another source to send from.
    pub fn has_alternative(&self, source: &str) -> bool {
        self.pools
            .values()
            .any(|m| m.len() > 1 && m.iter().any(|(s, _)| &**s == source))
    }

    /// Names of the sources in warm-up.
    pub fn warming(cfg: &DeliveryConfig) -> Vec<String> {
        cfg.sources
            .iter()
            .filter(|s| s.warmup)
            .map(|s| s.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;

    fn cfg(toml_text: &str) -> DeliveryConfig {
        toml::from_str(toml_text).unwrap()
    }

    fn source(name: &str) -> SourceConfig {
        SourceConfig {
            name: name.into(),
            ip: None,
            helo: None,
            warmup: false,
        }
    }

    #[test]
    fn weights_share_traffic_roughly_in_proportion() {
        let mut c = cfg(concat!(
            "default_pool = \"p\"\n",
            "[[pools]]\nname = \"p\"\nsources = [{ source = \"a\", weight = 3 }, { source = \"b\" }]\n",
        ));
        c.sources = vec![source("a"), source("b")];
        let pools = Pools::build(&c, "h").unwrap();
        let firsts = (0..4000)
            .filter(|_| &*pools.candidates("p")[0] == "a")
            .count();
        assert!(
            (2700..3300).contains(&firsts),
            "a first {firsts} of 4000 (expected ~3000)"
        );
        assert_eq!(pools.candidates("p").len(), 2);
    }

    #[test]
    fn pool_choice_request_then_rule_then_default() {
        let mut c = cfg(concat!(
            "default_pool = \"main\"\n",
            "[[pools]]\nname = \"main\"\nsources = [{ source = \"a\" }]\n",
            "[[pools]]\nname = \"news\"\nsources = [{ source = \"b\" }]\n",
            "[[pool_rules]]\nsender_domain = \"news.example\"\npool = \"news\"\n",
        ));
        c.sources = vec![source("a"), source("b")];
        let p = Pools::build(&c, "h").unwrap();
        assert_eq!(p.pool_for(Some("news"), "x@y.example", "d.test"), "news");
        assert_eq!(p.pool_for(None, "x@NEWS.example", "d.test"), "news");
        assert_eq!(p.pool_for(None, "x@y.example", "d.test"), "main");
        assert_eq!(p.pool_for(Some("nope"), "x@y.example", "d.test"), "main");
        assert!(!p.has_alternative("a") && !p.has_alternative("b"));
    }

    #[test]
    fn bad_pools_are_rejected_with_the_reason() {
        let mut c = cfg("[[pools]]\nname = \"p\"\nsources = [{ source = \"zz\" }]\n");
        c.sources = vec![source("a")];
        assert!(
            Pools::build(&c, "h")
                .unwrap_err()
                .to_string()
                .contains("unknown source \"zz\"")
        );
        let mut c = cfg("default_pool = \"q\"\n");
        c.sources = vec![source("a")];
        assert!(
            Pools::build(&c, "h")
                .unwrap_err()
                .to_string()
                .contains("default_pool")
        );
        let mut c = cfg("");
        c.sources = vec![source("a"), source("a")];
        assert!(
            Pools::build(&c, "h")
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
