//! Errors of MX routing and resolver construction.

/// Why a domain or host could not be routed.
///
/// The split between permanent and transient follows SPEC §2.3: a permanent error fails the
/// message now (bounce class 21, "invalid domain"), a transient one defers it for a retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The domain does not exist (authoritative NXDOMAIN).
    #[error("domain {domain} does not exist (NXDOMAIN)")]
    NxDomain {
        /// The queried name, normalized.
        domain: String,
    },
    /// The domain publishes a Null MX (RFC 7505): it accepts no mail.
    #[error("domain {domain} does not accept mail (null MX, RFC 7505)")]
    NullMx {
        /// The queried name, normalized.
        domain: String,
    },
    /// The name exists but has neither MX nor A/AAAA records (or the host has no address).
    #[error("{domain} has no MX and no A/AAAA records")]
    NoAddress {
        /// The queried name, normalized.
        domain: String,
    },
    /// The lookup failed in a way that may heal: SERVFAIL, REFUSED, timeout, network error.
    #[error("temporary DNS failure for {domain}: {detail}")]
    Transient {
        /// The queried name, normalized when it could be.
        domain: String,
        /// What the resolver reported.
        detail: String,
    },
    /// The name is not a syntactically valid mail domain or host name; nothing was queried.
    #[error("invalid domain {domain:?}: {reason}")]
    InvalidDomain {
        /// The name as given by the caller.
        domain: String,
        /// Which rule it broke.
        reason: String,
    },
}

impl DnsError {
    /// `true` when retrying later cannot help (NXDOMAIN, Null MX, no address, invalid name).
    pub fn is_permanent(&self) -> bool {
        !matches!(self, Self::Transient { .. })
    }

    /// The domain or host the error is about.
    pub fn domain(&self) -> &str {
        match self {
            Self::NxDomain { domain }
            | Self::NullMx { domain }
            | Self::NoAddress { domain }
            | Self::Transient { domain, .. }
            | Self::InvalidDomain { domain, .. } => domain,
        }
    }
}

/// Why an [`MxResolver`](crate::MxResolver) could not be built from its configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `timeout` was zero: every query would fail at once.
    #[error("dns.timeout must be greater than zero")]
    ZeroTimeout,
    /// `min_ttl` is larger than `max_ttl`.
    #[error("dns.min_ttl ({min:?}) is larger than dns.max_ttl ({max:?})")]
    TtlBounds {
        /// Configured minimum.
        min: std::time::Duration,
        /// Configured maximum.
        max: std::time::Duration,
    },
    /// No nameserver was configured and the system configuration (/etc/resolv.conf) was unusable.
    #[error("cannot read the system DNS configuration: {0}")]
    SystemConfig(String),
    /// The resolver rejected the configuration.
    #[error("cannot build the DNS resolver: {0}")]
    Build(String),
}
