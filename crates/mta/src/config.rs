//! The MTA's configuration tree. Every option has a default here, in one place; `cartero config
//! defaults` prints this tree and docs/config.md explains each option.

pub use crate::auth_limit::AuthLimitConfig;
use crate::retry::RetryConfig;
use cartero_shaping::ShapingConfig;
use cartero_smtp::io::Timeouts;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// The whole MTA configuration (the `cartero serve` config file, minus the binary's own keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MtaConfig {
    /// Name used in the SMTP greeting, Received headers and as default HELO name.
    pub hostname: String,
    /// Spool, generated TLS certificate, API token and event files live here.
    pub data_dir: PathBuf,
    pub smtp: SmtpConfig,
    pub tls: TlsConfig,
    pub http: HttpConfig,
    pub delivery: DeliveryConfig,
    pub dkim: DkimConfig,
    pub events: EventsConfig,
    pub shaping: ShapingConfig,
    pub inmail: InMailConfig,
    pub bounce: BounceConfig,
}

impl Default for MtaConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            data_dir: PathBuf::from("cartero-data"),
            smtp: SmtpConfig::default(),
            tls: TlsConfig::default(),
            http: HttpConfig::default(),
            delivery: DeliveryConfig::default(),
            dkim: DkimConfig::default(),
            events: EventsConfig::default(),
            shaping: ShapingConfig::default(),
            inmail: InMailConfig::default(),
            bounce: BounceConfig::default(),
        }
    }
}

/// `[smtp]`: the injection listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Addresses to listen on. Loopback by default: exposing the listener is a deliberate act.
    pub listen: Vec<SocketAddr>,
    /// Largest accepted message in bytes (SIZE); larger ones get 552 5.3.4.
    pub max_message_size: usize,
    /// Recipients per message; more get 452 4.5.3.
    pub max_recipients: usize,
    /// Simultaneous client connections in total; more get 421 4.7.0.
    pub max_connections: usize,
    /// Simultaneous connections from one client IP; more get 421 4.7.0.
    pub max_connections_per_ip: usize,
    /// Time allowed for one command, from the end of the previous reply to the command's line
    /// end (idle time plus a slow command), before the session is closed with 421.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// Idle time allowed while receiving message data.
    #[serde(with = "humantime_serde")]
    pub data_timeout: Duration,
    /// Bad commands tolerated in one session before it is closed.
    pub max_errors: u32,
    /// Offer AUTH only after STARTTLS.
    pub auth_requires_tls: bool,
    /// Clients in these networks may relay without authenticating.
    pub relay_networks: Vec<IpNet>,
    /// Accounts allowed to authenticate (and so to relay).
    pub users: Vec<SmtpUser>,
    /// Back-off for failed AUTH attempts.
    pub auth_limit: AuthLimitConfig,
    /// Where mail to `<postmaster>` (no domain, RFC 5321 §4.5.1) goes, accepted from any client.
    /// Empty: `postmaster@` the first bounce domain with inMail on, else `postmaster@hostname`.
    pub postmaster: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            max_message_size: 50 * 1024 * 1024,
            max_recipients: 1000,
            max_connections: 1000,
            max_connections_per_ip: 100,
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
            max_errors: 20,
            auth_requires_tls: true,
            // Built from constants: a parse fallback here could only ever widen relaying.
            relay_networks: vec![
                IpNet::V4(ipnet::Ipv4Net::new_assert(
                    std::net::Ipv4Addr::new(127, 0, 0, 0),
                    8,
                )),
                IpNet::V6(ipnet::Ipv6Net::new_assert(
                    std::net::Ipv6Addr::LOCALHOST,
                    128,
                )),
            ],
            users: Vec::new(),
            auth_limit: AuthLimitConfig::default(),
            postmaster: String::new(),
        }
    }
}

/// One SMTP AUTH account. The password is stored as a PBKDF2 hash made by `cartero passwd`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpUser {
    pub username: String,
    /// `pbkdf2-sha256$ITERATIONS$SALT_B64$HASH_B64`.
    pub password_hash: String,
}

/// `[tls]`: certificate for every listener (SMTP STARTTLS, HTTPS later). When unset, a
/// self-signed certificate for `hostname` is generated under `data_dir/tls/` at first start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// `[http]`: the API and metrics listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Bearer tokens accepted by the API. When empty, one is generated at first start and written to
    /// `data_dir/api-token` (mode 0600); its value is never logged.
    pub tokens: Vec<String>,
    /// Largest accepted request body in bytes.
    pub max_body: usize,
    /// Time a client has to send a request's headers (slow-header clients are cut off).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// HTTP connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// Keys of one recipient's `metadata` (the request's merged with its own).
    pub max_metadata_keys: usize,
    /// Bytes of one recipient's `metadata`, as compact JSON. Every event repeats it.
    pub max_metadata_bytes: usize,
    /// Keys of one recipient's `substitution_data` (the request's merged with its own).
    pub max_substitution_keys: usize,
    /// Bytes of one recipient's `substitution_data`, as compact JSON.
    pub max_substitution_bytes: usize,
    /// Bytes of `metadata` and `substitution_data` over all recipients of one request.
    pub max_request_data_bytes: usize,
    /// Bytes of the messages one request renders to (per-recipient content is built in memory
    /// before anything is spooled).
    pub max_rendered_bytes: usize,
    /// Serve HTTPS instead of HTTP, with the `[tls]` certificate (the generated self-signed one
    /// when none is configured).
    pub tls: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8025)),
            tokens: Vec::new(),
            max_body: 60 * 1024 * 1024,
            header_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_metadata_keys: 64,
            max_metadata_bytes: 8 * 1024,
            max_substitution_keys: 256,
            max_substitution_bytes: 64 * 1024,
            max_request_data_bytes: 16 * 1024 * 1024,
            max_rendered_bytes: 256 * 1024 * 1024,
            tls: false,
        }
    }
}

/// An egress source: a local address to send from and the name to say in EHLO.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    /// Local IP to bind outgoing connections to; `None` lets the kernel choose.
    pub ip: Option<IpAddr>,
    /// EHLO name; defaults to `hostname`.
    pub helo: Option<String>,
    /// A new IP in warm-up: daily caps per provider follow `[shaping.warmup]`.
    #[serde(default)]
    pub warmup: bool,
}

/// `[[delivery.pools]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub name: String,
    pub sources: Vec<PoolMember>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolMember {
    pub source: String,
    /// Relative share of the pool's traffic (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// `[[delivery.pool_rules]]`: the first rule whose conditions all match picks the pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolRule {
    /// Envelope sender domain (exact, case-insensitive).
    #[serde(default)]
    pub sender_domain: Option<String>,
    /// Recipient domain (exact, case-insensitive).
    #[serde(default)]
    pub recipient_domain: Option<String>,
    pub pool: String,
}

/// `[delivery]`: outbound behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Validity when the injector gives none.
    #[serde(with = "humantime_serde")]
    pub default_validity: Duration,
    /// Upper bound of any validity (SPEC: 3.5 days).
    #[serde(with = "humantime_serde")]
    pub max_validity: Duration,
    /// How long an injected recipient's idempotency key is remembered (SPEC §2.1).
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    pub retry: RetryConfig,
    /// Per SMTP phase (RFC 5321 §4.5.3.2 values by default), and the idle time of a kept
    /// connection. The type (and so its defaults) is the SMTP client's own, which shaping layers
    /// override phase by phase.
    pub timeouts: Timeouts,
    /// TCP port of remote MX hosts.
    pub port: u16,
    /// Egress sources (local IP + HELO name).
    pub sources: Vec<SourceConfig>,
    /// Weighted pools of sources. Without any, every source is in the pool `default`, equally.
    pub pools: Vec<PoolConfig>,
    /// Pool of messages that name none and match no rule (default: `default`).
    pub default_pool: Option<String>,
    /// Rules choosing a pool by sender or recipient domain.
    pub pool_rules: Vec<PoolRule>,
    /// Static routes: domain → `host:port` (or `[ip]:port`), bypassing MX lookup. The key `"*"`
    /// is a smart host for every domain without a route of its own.
    pub routes: BTreeMap<String, String>,
    pub dns: cartero_dns::DnsConfig,
    /// How long a domain's route is reused before it is resolved again (DNS TTLs still apply below).
    #[serde(with = "humantime_serde")]
    pub route_cache: Duration,
    /// Outbound connections open at once, over all destinations.
    pub max_connections: u32,
    /// How long to wait for in-flight transactions at shutdown.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        let validity = Duration::from_secs(84 * 3600);
        Self {
            default_validity: validity,
            max_validity: validity,
            idempotency_window: Duration::from_secs(24 * 3600),
            retry: RetryConfig::default(),
            timeouts: Timeouts::default(),
            port: 25,
            sources: vec![SourceConfig {
                name: "default".into(),
                ip: None,
                helo: None,
                warmup: false,
            }],
            pools: Vec::new(),
            default_pool: None,
            pool_rules: Vec::new(),
            routes: BTreeMap::new(),
            dns: cartero_dns::DnsConfig::default(),
            route_cache: Duration::from_secs(60),
            max_connections: 1000,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `[dkim]`: signing keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    pub keys: Vec<DkimKeyConfig>,
}

/// One signing key: messages whose From domain is `domain` (or a subdomain) are signed with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKeyConfig {
    pub domain: String,
    pub selector: String,
    /// PEM file (RSA PKCS#1/PKCS#8 or Ed25519 PKCS#8), e.g. from `cartero dkim keygen`.
    pub key_file: PathBuf,
}

/// `[events]`: where events go besides in-process subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Write JSON lines under `data_dir/events/`.
    pub log_file: bool,
    /// Rotation of the JSON lines files; `dir` is relative to `data_dir`.
    pub file: cartero_events::JsonlFileConfig,
    /// Each webhook's `spool_dir` is relative to `data_dir`.
    pub webhooks: Vec<cartero_events::WebhookConfig>,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            log_file: true,
            file: cartero_events::JsonlFileConfig::default(),
            webhooks: Vec::new(),
        }
    }
}

/// `[inmail]`: receiving bounces, complaints and unsubscribe requests (SPEC §2.8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InMailConfig {
    /// Domains the MTA receives mail for. Empty turns inMail off. When set, every recipient's
    /// return path becomes `b-<token>@<first domain>` (one recipient per transaction) and the
    /// listener accepts mail for these domains from any client (it never relays to them).
    pub bounce_domains: Vec<String>,
    /// HMAC key for tokens. When unset, 32 random bytes are generated at first start into
    /// `data_dir/inmail-secret` (mode 0600). Changing the key invalidates tokens already sent.
    pub secret_file: Option<PathBuf>,
    /// Operator rules applied to bounces before the classifier; the first match wins.
    pub rules: Vec<InboundRule>,
    pub list_unsubscribe: ListUnsubscribeConfig,
    /// Who may charge a spam complaint to the complaint sweep: IPs or networks of the connecting
    /// client (`192.0.2.0/24`), report sender addresses (`fbl@provider.example`) or domains
    /// (`provider.example`), matched against the envelope sender and the report's `From`.
    /// Empty: complaints are still recorded as events but steer no sweep.
    pub fbl_sources: Vec<String>,
    /// Most sweep charges per `fbl_sources` entry (a token bucket of this size and refill).
    pub fbl_rate: cartero_shaping::Rate,
    /// How long a (recipient, event type) already reported is remembered, so that a replay is
    /// ignored; tokens older than this no longer charge a sweep.
    #[serde(with = "humantime_serde")]
    pub replay_horizon: Duration,
}

impl Default for InMailConfig {
    fn default() -> Self {
        Self {
            bounce_domains: Vec::new(),
            secret_file: None,
            rules: Vec::new(),
            list_unsubscribe: ListUnsubscribeConfig::default(),
            fbl_sources: Vec::new(),
            fbl_rate: cartero_shaping::Rate {
                count: 60,
                per_ms: 60_000,
            },
            replay_horizon: Duration::from_secs(30 * 86_400),
        }
    }
}

/// One inbound rule: a regex over a bounce's diagnostic, status and subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundRule {
    /// Recorded as the event's `reason`.
    pub name: String,
    /// Regular expression (Rust `regex` syntax; `(?i)` for case-insensitive).
    pub pattern: String,
    pub r#type: cartero_bounce::FailureType,
    pub reason: cartero_bounce::Reason,
}

/// `[inmail.list_unsubscribe]`: RFC 8058 headers on messages injected with `"bulk": true`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListUnsubscribeConfig {
    pub enabled: bool,
    /// Public base of the HTTP listener, e.g. `https://mail.example.com`; the header points to
    /// `<url_base>/unsubscribe/<token>`. Empty: no URL (and so no one-click header).
    pub url_base: String,
    /// Also offer `mailto:unsub-<token>@<first bounce domain>`.
    pub mailto: bool,
}

impl Default for ListUnsubscribeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            url_base: String::new(),
            mailto: true,
        }
    }
}

/// `[bounce]`: classification of failures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BounceConfig {
    /// Operator rule files (TOML, the format of the shipped rules); tried before the built-in
    /// rules, so they extend and override them. A bad file stops the start with its name, rule
    /// and reason.
    pub rules_files: Vec<PathBuf>,
    /// Per-class overrides of the campaign qualification: `"52" = { type = "hard", reason = "refused" }`.
    pub qualification: cartero_bounce::Qualifier,
}
