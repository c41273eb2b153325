//! MX routing for cartero (SPEC §2.3).
//!
//! [`MxResolver::route`] turns a recipient domain into a [`Route`]: its MX hosts in preference
//! order, or the domain itself when it has no MX but has addresses (implicit MX, RFC 5321
//! §5.1). Failures are classified for the queue: NXDOMAIN, Null MX (RFC 7505), "no MX and no
//! address" and malformed names are permanent; SERVFAIL, REFUSED and timeouts are transient
//! ([`DnsError::is_permanent`]).
//!
//! Lookups go through hickory's resolver, whose cache honours record TTLs (bounded by
//! [`DnsConfig::min_ttl`]/[`DnsConfig::max_ttl`]) and also keeps negative answers for the
//! SOA's negative TTL.
//!
//! A *site* ([`site_name`]) is the set of MX hosts of a domain: domains hosted by the same
//! provider share one site, so per-site limits apply to all of them together.
//!
//! Names: callers may pass U-labels; they are converted to A-labels (UTS #46) before any
//! query, and every name in results is ASCII, lowercase, without the trailing dot.
//!
//! With the `testing` feature, [`testing`] offers an in-process DNS server for tests.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod config;
mod domain;
mod error;
mod resolver;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::{DnsConfig, parse_nameserver};
pub use error::{ConfigError, DnsError};
pub use resolver::{MxHost, MxResolver, Route, site_name};
