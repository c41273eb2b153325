//! inMail (SPEC §2.8): signed return paths and headers on outgoing mail, and the handler for what
//! comes back to the bounce domains — DSNs and other bounces become `out_of_band`, ARF reports
//! `spam_complaint`, mail to `unsub-<token>@` and one-click POSTs `list_unsubscribe`.
//!
//! A token is the only credential: an invalid or forged one produces no event (logged at info and
//! counted in `cartero_inmail_rejected_total`), but the SMTP reply does not tell the sender. A
//! valid token only proves that its holder received the message: the recipient of a report is the
//! token's, a report naming another steers nothing, each (recipient, event kind) counts once
//! (`seen.rs`), and only configured feedback-loop sources charge the complaint sweep (`trust.rs`).

mod handle;
mod seen;
pub mod token;
mod trust;

use crate::config::{InMailConfig, InboundRule, ListUnsubscribeConfig, SourceConfig};
use cartero_bounce::Classifier;
use cartero_clock::SharedClock;
use cartero_events::EventSink;
pub(crate) use handle::Unsubscribed;
use regex::Regex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
pub use token::{Named, TokenData, TokenKey, source_tag};
pub(crate) use trust::Origin;

/// Local parts accepted at a bounce domain besides `b-<token>` and `unsub-<token>`: feedback loops
/// are registered with a fixed address, and RFC 5321 requires `postmaster`.
const MAILBOXES: &[&str] = &["fbl", "abuse", "postmaster"];
/// Shortest accepted HMAC secret.
const MIN_SECRET: usize = 16;

/// Why inMail could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum InMailError {
    #[error("inmail secret file {path}: {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("inmail secret file {0}: shorter than {MIN_SECRET} bytes")]
    ShortSecret(PathBuf),
    #[error("inmail rule {name:?}: invalid pattern: {detail}")]
    Rule { name: String, detail: String },
    #[error("delivery.sources {0:?} and {1:?} have the same inMail source tag: rename one of them")]
    SourceTag(String, String),
    #[error(
        "inmail.fbl_sources entry {0:?}: expected an IP, a network (192.0.2.0/24), an address or a domain"
    )]
    FblSource(String),
    #[error("inmail.replay_horizon must be at least one day")]
    Horizon,
    #[error("inmail replay record file {path}: {source}")]
    Seen {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where a complaint goes besides the event stream: the shaping sweep of the source that sent
/// the message and the recipient's domain (through the scheduler, which applies what it decides).
pub(crate) trait ComplaintFeed: Send + Sync {
    fn complaint(&self, source: &str, domain: &str);
}

/// What inMail needs from the rest of the MTA.
pub(crate) struct InMailDeps {
    pub classifier: Arc<dyn Classifier>,
    pub qualifier: cartero_bounce::Qualifier,
    pub events: Arc<dyn EventSink>,
    pub clock: SharedClock,
    pub complaints: Arc<dyn ComplaintFeed>,
    /// Where inMail events are made durable before the report is acknowledged.
    pub outbox: crate::outbox::Outbox,
}

/// The configured egress sources, found by the tag in a token. (Not by a report's `Source-IP`:
/// the reporter writes that field.)
#[derive(Debug, Default)]
struct Sources {
    by_tag: HashMap<u32, Arc<str>>,
}

impl Sources {
    fn new(sources: &[SourceConfig]) -> Result<Self, InMailError> {
        let mut s = Sources::default();
        for c in sources {
            let name: Arc<str> = c.name.as_str().into();
            if let Some(other) = s.by_tag.insert(source_tag(&c.name), name.clone())
                && *other != *name
            {
                return Err(InMailError::SourceTag(other.to_string(), c.name.clone()));
            }
        }
        Ok(s)
    }
}

/// What a local part at a bounce domain is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Local<'a> {
    Bounce(&'a str),
    Unsubscribe(&'a str),
    Mailbox,
}

/// The per-recipient header fields and return path of one outgoing transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outgoing {
    pub sender: String,
    pub headers: String,
}

/// The running inMail service.
pub(crate) struct InMail {
    key: TokenKey,
    /// Lowercase; the first one is used in return paths.
    domains: Vec<String>,
    rules: Vec<(InboundRule, Regex)>,
    unsub: ListUnsubscribeConfig,
    sources: Sources,
    fbl: trust::FblSources,
    seen: seen::Seen,
    /// `inmail.replay_horizon` in ms.
    horizon_ms: u64,
    classifier: Arc<dyn Classifier>,
    qualifier: cartero_bounce::Qualifier,
    events: Arc<dyn EventSink>,
    clock: SharedClock,
    complaints: Arc<dyn ComplaintFeed>,
    outbox: crate::outbox::Outbox,
}

/// Reads the HMAC key, generating it into `data_dir/inmail-secret` at first start.
fn load_secret(cfg: &InMailConfig, data_dir: &Path) -> Result<Vec<u8>, InMailError> {
    let path = cfg
        .secret_file
        .clone()
        .unwrap_or_else(|| data_dir.join("inmail-secret"));
    let err = |source| InMailError::Secret {
        path: path.clone(),
        source,
    };
    let secret = match std::fs::read(&path) {
        Ok(s) => s.trim_ascii().to_vec(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cfg.secret_file.is_none() => {
            let mut raw = [0u8; 32];
            aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut raw)
                .map_err(|_| err(std::io::Error::other("system RNG failed")))?;
            let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            crate::tls::write_secret_file(&path, hex.as_bytes()).map_err(err)?;
            tracing::info!(path = %path.display(), "generated the inMail token secret");
            hex.into_bytes()
        }
        Err(e) => return Err(err(e)),
    };
    if secret.len() < MIN_SECRET {
        return Err(InMailError::ShortSecret(path));
    }
    Ok(secret)
}

impl InMail {
    /// `None` when `bounce_domains` is empty (inMail off).
    pub fn load(
        cfg: &InMailConfig,
        data_dir: &Path,
        sources: &[SourceConfig],
        deps: InMailDeps,
    ) -> Result<Option<Arc<InMail>>, InMailError> {
        if cfg.bounce_domains.is_empty() {
            return Ok(None);
        }
        let horizon_ms = u64::try_from(cfg.replay_horizon.as_millis()).unwrap_or(u64::MAX);
        if horizon_ms < 86_400_000 {
            return Err(InMailError::Horizon);
        }
        let key = TokenKey::new(&load_secret(cfg, data_dir)?);
        let seen_path = data_dir.join("inmail-seen");
        let seen =
            seen::Seen::open(&seen_path, horizon_ms, deps.clock.now_ms()).map_err(|source| {
                InMailError::Seen {
                    path: seen_path.clone(),
                    source,
                }
            })?;
        let mut rules = Vec::new();
        for r in &cfg.rules {
            let re = Regex::new(&r.pattern).map_err(|e| InMailError::Rule {
                name: r.name.clone(),
                detail: e.to_string(),
            })?;
            rules.push((r.clone(), re));
        }
        Ok(Some(Arc::new(InMail {
            key,
            domains: cfg
                .bounce_domains
                .iter()
                .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            rules,
            unsub: cfg.list_unsubscribe.clone(),
            sources: Sources::new(sources)?,
            fbl: trust::FblSources::new(&cfg.fbl_sources, cfg.fbl_rate)?,
            seen,
            horizon_ms,
            classifier: deps.classifier,
            qualifier: deps.qualifier,
            events: deps.events,
            clock: deps.clock,
            complaints: deps.complaints,
            outbox: deps.outbox,
        })))
    }

    fn bounce_domain(&self) -> &str {
        self.domains.first().map_or("", String::as_str)
    }

    /// True when `address` is at one of the bounce domains.
    pub fn is_local(&self, address: &str) -> bool {
        let domain = crate::queue::domain_of(address);
        self.domains.contains(&domain)
    }

    /// What the local part of a bounce-domain address means; `None` for unknown mailboxes.
    pub fn local_part<'a>(&self, address: &'a str) -> Option<Local<'a>> {
        let (local, _) = address.rsplit_once('@')?;
        let lower = local.to_ascii_lowercase();
        let after = |p: &str| local.get(p.len()..).filter(|_| lower.starts_with(p));
        if let Some(t) = after("b-") {
            return Some(Local::Bounce(t));
        }
        if let Some(t) = after("unsub-") {
            return Some(Local::Unsubscribe(t));
        }
        MAILBOXES
            .contains(&lower.as_str())
            .then_some(Local::Mailbox)
    }

    /// The return path and header fields for recipient `idx` (address `rcpt`) of message `id`,
    /// sent from egress source `source`. `headers` is the stored message's header section, so an
    /// injector's own List-Unsubscribe is kept, not doubled.
    pub fn outgoing(
        &self,
        id: u64,
        idx: u32,
        rcpt: &str,
        source: &str,
        bulk: bool,
        headers: &[u8],
    ) -> Outgoing {
        let now = self.clock.now_ms();
        let token = self.key.mint(id, idx, source_tag(source), rcpt, now);
        let domain = self.bounce_domain();
        let mut h = format!("X-Cartero-Token: {token}\r\n");
        if bulk && self.unsub.enabled && !crate::inject::has_header(headers, b"list-unsubscribe") {
            let mut uris = Vec::new();
            let base = self.unsub.url_base.trim_end_matches('/');
            if !base.is_empty() {
                uris.push(format!("<{base}/unsubscribe/{token}>"));
            }
            if self.unsub.mailto {
                uris.push(format!("<mailto:unsub-{token}@{domain}>"));
            }
            if !uris.is_empty() {
                h.push_str(&format!("List-Unsubscribe: {}\r\n", uris.join(", ")));
            }
            // RFC 8058 §3.1: one-click needs an HTTPS URI to POST to.
            if !base.is_empty() {
                h.push_str("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
            }
        }
        Outgoing {
            sender: format!("b-{token}@{domain}"),
            headers: h,
        }
    }

    /// What a token identifies, without counting a rejection (for display only).
    pub(crate) fn check(&self, token: &str) -> Option<TokenData> {
        self.key.verify(token)
    }

    /// Verifies a token, counting and logging a rejection.
    pub(crate) fn verify(&self, token: &str, origin: &str) -> Option<TokenData> {
        let v = self.key.verify(token);
        if v.is_none() {
            metrics::counter!("cartero_inmail_rejected_total").increment(1);
            tracing::info!(origin, "inMail: invalid or forged token, no event");
        }
        v
    }
}
