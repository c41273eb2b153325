//! From a recipient domain to where to connect: static routes first, then MX through the real
//! resolver. The site (shared limits) is the canonical MX host set.

use crate::outcome::{Failure, Outcome};
use cartero_bounce::BounceClass;
use cartero_dns::{MxResolver, Route};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One host to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostTarget {
    pub name: String,
    pub port: u16,
}

/// Where a domain's mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Destination {
    pub site: Arc<str>,
    pub hosts: Vec<HostTarget>,
    /// The mailbox provider the site belongs to, when a provider definition matches.
    pub provider: Option<Arc<str>>,
}

/// What the router asks shaping: whether a domain has limits of its own, and the provider of a
/// (domain, MX hosts). Read at every lookup so a configuration reload applies.
pub(crate) trait SiteClassifier: Send + Sync {
    fn has_own_limits(&self, domain: &str) -> bool;
    fn provider_of(&self, domain: &str, mx_hosts: &[&str]) -> Option<String>;
}

/// A static route target that cannot be used, shown as `route "TARGET": what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route {target:?}: {fault}")]
pub struct RouteError {
    pub target: String,
    pub fault: RouteFault,
}

/// What is wrong with a route target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RouteFault {
    #[error("missing ']'")]
    MissingBracket,
    #[error("bad port")]
    BadPort,
    #[error("junk after ']'")]
    JunkAfterBracket,
    #[error("empty host")]
    EmptyHost,
}

/// Parses a static route target: `host`, `host:port`, `1.2.3.4:25`, `[::1]:2525`.
pub(crate) fn parse_target(target: &str, default_port: u16) -> Result<HostTarget, RouteError> {
    let err = |fault| RouteError {
        target: target.to_string(),
        fault,
    };
    let port_of = |p: &str| p.parse().map_err(|_| err(RouteFault::BadPort));
    let t = target.trim();
    let (host, port) = if let Some(rest) = t.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| err(RouteFault::MissingBracket))?;
        let port = match after.strip_prefix(':') {
            Some(p) => port_of(p)?,
            None if after.is_empty() => default_port,
            None => return Err(err(RouteFault::JunkAfterBracket)),
        };
        (h.to_string(), port)
    } else {
        match t.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h.to_string(), port_of(p)?),
            _ => (t.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(err(RouteFault::EmptyHost));
    }
    Ok(HostTarget { name: host, port })
}

/// Resolves domains to destinations.
pub(crate) struct Router {
    resolver: MxResolver,
    routes: BTreeMap<String, HostTarget>,
    port: u16,
    sites: Arc<dyn SiteClassifier>,
}

impl Router {
    /// Fails on a malformed static route, so bad config is caught at start.
    pub fn new(
        resolver: MxResolver,
        routes: &BTreeMap<String, String>,
        port: u16,
        sites: Arc<dyn SiteClassifier>,
    ) -> Result<Self, RouteError> {
        let routes = routes
            .iter()
            .map(|(d, t)| Ok((d.to_ascii_lowercase(), parse_target(t, port)?)))
            .collect::<Result<_, RouteError>>()?;
        Ok(Self {
            resolver,
            routes,
            port,
            sites,
        })
    }

    pub fn resolver(&self) -> &MxResolver {
        &self.resolver
    }

    /// The destination of `domain`, or the outcome (transient or permanent failure) of every
    /// recipient waiting for it.
    pub async fn route(&self, domain: &str) -> Result<Destination, Outcome> {
        let static_route = self.routes.get(domain).or_else(|| self.routes.get("*"));
        let mut dest = match static_route {
            Some(t) => Destination {
                site: format!("route:{}:{}", t.name, t.port).into(),
                hosts: vec![t.clone()],
                provider: None,
            },
            None => self.mx_destination(domain).await?,
        };
        let hosts: Vec<&str> = dest.hosts.iter().map(|h| h.name.as_str()).collect();
        dest.provider = self.sites.provider_of(domain, &hosts).map(Arc::from);
        if self.sites.has_own_limits(domain) {
            // A domain with limits of its own is shaped apart from the rest of its site.
            dest.site = format!("domain:{domain}").into();
        }
        Ok(dest)
    }

    async fn mx_destination(&self, domain: &str) -> Result<Destination, Outcome> {
        match self.resolver.route(domain).await {
            Ok(route) => {
                let site = cartero_dns::site_name(&route).into();
                let hosts = match route {
                    Route::Mx(hosts) => hosts
                        .into_iter()
                        .map(|h| HostTarget {
                            name: h.name,
                            port: self.port,
                        })
                        .collect(),
                    Route::Implicit(d) => vec![HostTarget {
                        name: d,
                        port: self.port,
                    }],
                };
                Ok(Destination {
                    site,
                    hosts,
                    provider: None,
                })
            }
            Err(e) if e.is_permanent() => Err(Outcome::Permanent(Failure::local(
                e.to_string(),
                BounceClass::DNS_FAILURE,
                "dns:permanent",
            ))),
            Err(e) => Err(Outcome::Transient(Failure::local(
                e.to_string(),
                BounceClass::TRANSIENT,
                "dns:transient",
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_targets_parse() {
        let t = |s| parse_target(s, 25);
        assert_eq!(
            t("mx.test").unwrap(),
            HostTarget {
                name: "mx.test".into(),
                port: 25
            }
        );
        assert_eq!(t("127.0.0.1:2526").unwrap().port, 2526);
        assert_eq!(
            t("[::1]:2527").unwrap(),
            HostTarget {
                name: "::1".into(),
                port: 2527
            }
        );
        assert_eq!(t("[::1]").unwrap().port, 25);
        assert!(t("host:notaport").is_err());
        assert!(t("[::1").is_err());
        assert!(t(":25").is_err());
        assert_eq!(
            t("[::1]x").unwrap_err().to_string(),
            "route \"[::1]x\": junk after ']'"
        );
    }
}
