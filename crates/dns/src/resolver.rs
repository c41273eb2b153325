//! MX routing on top of hickory's caching resolver.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError as HickoryDnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use tracing::debug;

use crate::domain::{Target, normalize_name, parse_target};
use crate::{ConfigError, DnsConfig, DnsError};

/// One mail exchanger of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MxHost {
    /// MX preference: lower is tried first.
    pub preference: u16,
    /// Host name: ASCII, lowercase, no trailing dot.
    pub name: String,
}

/// Where mail for a domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The domain's MX hosts, sorted by preference then name, each host once (at its lowest
    /// preference). Hosts of equal preference are NOT shuffled: the order is deterministic,
    /// and spreading load among them (RFC 5321 §5.1 "SHOULD randomize") is the connection
    /// layer's choice.
    Mx(Vec<MxHost>),
    /// No MX records: the domain itself is the mail host (implicit MX, RFC 5321 §5.1). Its
    /// A/AAAA records were checked to exist. Also used for address literals such as
    /// `[192.0.2.1]` / `[IPv6:2001:db8::1]`, which are passed through in that canonical form.
    Implicit(String),
}

impl Route {
    /// The hosts to try in order; an implicit route is one host of preference 0.
    pub fn hosts(&self) -> Vec<MxHost> {
        match self {
            Self::Mx(hosts) => hosts.clone(),
            Self::Implicit(domain) => vec![MxHost {
                preference: 0,
                name: domain.clone(),
            }],
        }
    }
}

/// Canonical name of the *site* a route leads to: the sorted, deduplicated MX host names
/// joined by `,`; for an implicit route, the domain. Domains hosted by the same provider
/// (same MX set) get the same site name, whatever their preferences.
pub fn site_name(route: &Route) -> String {
    match route {
        Route::Mx(hosts) => {
            let mut names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            names.join(",")
        }
        Route::Implicit(domain) => domain.clone(),
    }
}

/// Resolves mail routes through a real DNS resolver with a TTL-respecting cache (positive and
/// negative answers). Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct MxResolver {
    inner: TokioResolver,
    /// Upper bound for one lookup, whatever the resolver does internally.
    guard: Duration,
}

impl std::fmt::Debug for MxResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MxResolver")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

/// Outcome of one failed query, before it is turned into a [`DnsError`].
#[derive(Debug)]
enum Failure {
    NxDomain,
    /// The name exists but has no record of the asked type (NODATA).
    NoData,
    Transient(String),
}

impl MxResolver {
    /// Builds a resolver. With no nameservers configured it reads `/etc/resolv.conf` for the
    /// servers (its options are overridden by `cfg`). `/etc/hosts` is never consulted: routes
    /// come from DNS only (static routes belong to the config layer).
    ///
    /// Each lookup (MX, A, AAAA) is abandoned after `timeout × (attempts + 1)` at the latest.
    pub fn new(cfg: &DnsConfig) -> Result<Self, ConfigError> {
        if cfg.timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout);
        }
        if let (Some(min), Some(max)) = (cfg.min_ttl, cfg.max_ttl)
            && min > max
        {
            return Err(ConfigError::TtlBounds { min, max });
        }
        let mut builder = if cfg.nameservers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| ConfigError::SystemConfig(e.to_string()))?
        } else {
            let servers = cfg.nameservers.iter().map(|a| name_server(*a)).collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        };
        apply_options(builder.options_mut(), cfg);
        let inner = builder
            .build()
            .map_err(|e| ConfigError::Build(e.to_string()))?;
        let tries = u32::try_from(cfg.attempts.saturating_add(1)).unwrap_or(u32::MAX);
        Ok(Self {
            inner,
            guard: cfg.timeout.saturating_mul(tries),
        })
    }

    /// Finds where mail for `domain` goes. `domain` may carry a trailing dot, upper case or
    /// U-labels (converted to A-labels); an address literal yields [`Route::Implicit`] without
    /// any query.
    ///
    /// Errors: [`DnsError::InvalidDomain`], [`DnsError::NxDomain`], [`DnsError::NullMx`]
    /// (a `0 .` MX), [`DnsError::NoAddress`] (no MX and no A/AAAA) are permanent;
    /// [`DnsError::Transient`] (SERVFAIL, REFUSED, timeout) is not.
    pub async fn route(&self, domain: &str) -> Result<Route, DnsError> {
        let name = match parse_target(domain)? {
            Target::Literal(ip) => return Ok(Route::Implicit(literal(ip))),
            Target::Name(name) => name,
        };
        match self.query(&name, RecordType::MX).await {
            Ok(answers) => {
                let exchangers = answers.iter().filter_map(|rdata| match rdata {
                    RData::MX(mx) => Some((mx.preference, &mx.exchange)),
                    _ => None,
                });
                match mx_route(&name, exchangers)? {
                    Some(route) => Ok(route),
                    // Only a CNAME came back, no MX at its target: same as NODATA.
                    None => self.implicit(name).await,
                }
            }
            Err(Failure::NoData) => self.implicit(name).await,
            Err(Failure::NxDomain) => Err(DnsError::NxDomain { domain: name }),
            Err(Failure::Transient(detail)) => Err(DnsError::Transient {
                domain: name,
                detail,
            }),
        }
    }

    /// The addresses of `host`: A records first, then AAAA. Address literals (`[1.2.3.4]`,
    /// `[IPv6:::1]`) and bare IPs are returned as they are, without DNS.
    ///
    /// When one family fails transiently and the other has addresses, those are returned.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        match parse_target(host)? {
            Target::Literal(ip) => Ok(vec![ip]),
            Target::Name(name) => self.addresses_of(name).await,
        }
    }

    async fn implicit(&self, name: String) -> Result<Route, DnsError> {
        match self.addresses_of(name.clone()).await {
            Ok(_) => Ok(Route::Implicit(name)),
            Err(DnsError::NxDomain { domain }) => Err(DnsError::NoAddress { domain }),
            Err(other) => Err(other),
        }
    }

    async fn addresses_of(&self, name: String) -> Result<Vec<IpAddr>, DnsError> {
        let (v4, v6) = tokio::join!(
            self.query(&name, RecordType::A),
            self.query(&name, RecordType::AAAA)
        );
        let mut ips: Vec<IpAddr> = Vec::new();
        let mut failures = Vec::new();
        for result in [v4, v6] {
            match result {
                Ok(answers) => ips.extend(answers.iter().filter_map(|rdata| match rdata {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })),
                Err(failure) => failures.push(failure),
            }
        }
        if !ips.is_empty() {
            if !failures.is_empty() {
                debug!(host = %name, ?failures, "partial address lookup");
            }
            return Ok(ips);
        }
        let transient = failures.iter().find_map(|f| match f {
            Failure::Transient(detail) => Some(detail.clone()),
            _ => None,
        });
        if let Some(detail) = transient {
            return Err(DnsError::Transient {
                domain: name,
                detail,
            });
        }
        if failures.iter().any(|f| matches!(f, Failure::NxDomain)) {
            return Err(DnsError::NxDomain { domain: name });
        }
        Err(DnsError::NoAddress { domain: name })
    }

    /// One query for a normalized name, as a fully qualified name so no search list applies.
    async fn query(&self, name: &str, rtype: RecordType) -> Result<Vec<RData>, Failure> {
        let fqdn = Name::from_ascii(format!("{name}."))
            .map_err(|e| Failure::Transient(format!("cannot encode name: {e}")))?;
        let lookup = tokio::time::timeout(self.guard, self.inner.lookup(fqdn, rtype)).await;
        let result = match lookup {
            Err(_elapsed) => Err(Failure::Transient(format!(
                "{rtype} lookup timed out after {:?}",
                self.guard
            ))),
            Ok(Ok(found)) => Ok(found.answers().iter().map(|r| r.data.clone()).collect()),
            Ok(Err(err)) => Err(classify(&err)),
        };
        debug!(host = %name, %rtype, ?result, "dns lookup");
        result
    }
}

fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut server = NameServerConfig::udp_and_tcp(addr.ip());
    server.connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut conn| {
            conn.port = addr.port();
            conn
        })
        .collect();
    server
}

fn apply_options(opts: &mut ResolverOpts, cfg: &DnsConfig) {
    opts.timeout = cfg.timeout;
    opts.attempts = cfg.attempts;
    opts.cache_size = u64::try_from(cfg.cache_size).unwrap_or(u64::MAX);
    opts.positive_min_ttl = cfg.min_ttl;
    opts.positive_max_ttl = cfg.max_ttl;
    opts.negative_max_ttl = cfg.max_ttl;
    opts.use_hosts_file = ResolveHosts::Never;
}

fn classify(err: &NetError) -> Failure {
    match err {
        NetError::Dns(HickoryDnsError::NoRecordsFound(none)) => {
            if none.response_code == ResponseCode::NXDomain {
                Failure::NxDomain
            } else {
                Failure::NoData
            }
        }
        NetError::Dns(HickoryDnsError::ResponseCode(ResponseCode::NXDomain)) => Failure::NxDomain,
        NetError::Dns(HickoryDnsError::ResponseCode(code)) => {
            Failure::Transient(format!("server answered {code}"))
        }
        other => Failure::Transient(other.to_string()),
    }
}

/// Builds the MX route from the answer. `Ok(None)` when there was no MX record at all.
fn mx_route<'a>(
    domain: &str,
    exchangers: impl Iterator<Item = (u16, &'a Name)>,
) -> Result<Option<Route>, DnsError> {
    let mut best: BTreeMap<String, u16> = BTreeMap::new();
    let (mut seen, mut null_mx, mut invalid) = (false, false, 0usize);
    for (preference, exchange) in exchangers {
        seen = true;
        if exchange.is_root() {
            null_mx = true;
            continue;
        }
        match normalize_name(&exchange.to_ascii()) {
            Ok(host) => {
                let entry = best.entry(host).or_insert(preference);
                *entry = (*entry).min(preference);
            }
            Err(err) => {
                invalid += 1;
                debug!(%domain, %err, "ignoring MX with an unusable exchange");
            }
        }
    }
    if !seen {
        return Ok(None);
    }
    // RFC 7505 §3 forbids mixing `0 .` with real MX records; when a domain does it anyway the
    // real hosts win, since delivering is what the owner most likely wants.
    if best.is_empty() {
        return Err(if null_mx && invalid == 0 {
            DnsError::NullMx {
                domain: domain.to_owned(),
            }
        } else {
            DnsError::InvalidDomain {
                domain: domain.to_owned(),
                reason: "MX records name no usable host".to_owned(),
            }
        });
    }
    let mut hosts: Vec<MxHost> = best
        .into_iter()
        .map(|(name, preference)| MxHost { preference, name })
        .collect();
    hosts.sort();
    Ok(Some(Route::Mx(hosts)))
}

fn literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn mx_route_sorts_dedups_and_normalizes() {
        let (a, b, c) = (
            n("MX2.Example.Test."),
            n("mx1.example.test."),
            n("mx2.example.test."),
        );
        let route = mx_route("example.test", [(20, &a), (10, &b), (5, &c)].into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(
            route,
            Route::Mx(vec![
                MxHost {
                    preference: 5,
                    name: "mx2.example.test".into()
                },
                MxHost {
                    preference: 10,
                    name: "mx1.example.test".into()
                },
            ])
        );
    }

    #[test]
    fn mx_route_null_and_mixed() {
        let root = Name::root();
        let real = n("mx.example.test.");
        let err = mx_route("d.test", [(0, &root)].into_iter()).unwrap_err();
        assert_eq!(
            err,
            DnsError::NullMx {
                domain: "d.test".into()
            }
        );
        let mixed = mx_route("d.test", [(0, &root), (10, &real)].into_iter()).unwrap();
        assert_eq!(mixed.map(|r| r.hosts().len()), Some(1));
        assert_eq!(mx_route("d.test", std::iter::empty()).unwrap(), None);
        let bad = n("under_score.test.");
        let err = mx_route("d.test", [(10, &bad)].into_iter()).unwrap_err();
        assert!(matches!(err, DnsError::InvalidDomain { .. }));
    }

    #[test]
    fn site_name_ignores_preference_and_duplicates() {
        let host = |p, s: &str| MxHost {
            preference: p,
            name: s.into(),
        };
        let one = Route::Mx(vec![host(10, "b.mx"), host(20, "a.mx")]);
        let two = Route::Mx(vec![host(5, "a.mx"), host(5, "b.mx"), host(9, "a.mx")]);
        assert_eq!(site_name(&one), "a.mx,b.mx");
        assert_eq!(site_name(&one), site_name(&two));
        assert_eq!(site_name(&Route::Implicit("d.test".into())), "d.test");
    }

    #[test]
    fn rejects_bad_config() {
        let zero = DnsConfig {
            timeout: Duration::ZERO,
            ..DnsConfig::default()
        };
        assert!(matches!(
            MxResolver::new(&zero),
            Err(ConfigError::ZeroTimeout)
        ));
        let ttl = DnsConfig {
            min_ttl: Some(Duration::from_secs(10)),
            max_ttl: Some(Duration::from_secs(1)),
            ..DnsConfig::default()
        };
        assert!(matches!(
            MxResolver::new(&ttl),
            Err(ConfigError::TtlBounds { .. })
        ));
    }
}
