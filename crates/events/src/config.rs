//! Configuration of the event outputs. Durations are humantime strings (`"500ms"`, `"5m"`).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{EventsError, Result};

/// All event outputs of one process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// JSON-lines log files; absent means no file output.
    #[serde(default)]
    pub file: Option<JsonlFileConfig>,
    /// Webhooks; each needs its own `spool_dir`.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
}

/// The JSON-lines file output: `DIR/events.jsonl`, rotated by size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlFileConfig {
    /// Directory holding `events.jsonl` and its rotated files.
    #[serde(default = "default_file_dir")]
    pub dir: PathBuf,
    /// Size at which the file is rotated. A line is never split: a file is rotated before the line
    /// that would push it past this size (a single longer line gets a file of its own).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
    /// Rotated files kept (`events.jsonl.1` newest ... `events.jsonl.N` oldest); 0 keeps none.
    #[serde(default = "default_max_files")]
    pub max_files: usize,
    /// Events queued for the writer thread before new ones are dropped (and counted).
    #[serde(default = "default_file_queue")]
    pub queue_capacity: usize,
}

fn default_file_dir() -> PathBuf {
    PathBuf::from("events")
}
fn default_max_bytes() -> u64 {
    100 * 1024 * 1024
}
fn default_max_files() -> usize {
    10
}
fn default_file_queue() -> usize {
    65_536
}

impl Default for JsonlFileConfig {
    fn default() -> Self {
        Self {
            dir: default_file_dir(),
            max_bytes: default_max_bytes(),
            max_files: default_max_files(),
            queue_capacity: default_file_queue(),
        }
    }
}

impl JsonlFileConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        if self.max_bytes == 0 {
            return Err(EventsError::Config("file.max_bytes must be > 0".into()));
        }
        if self.queue_capacity == 0 {
            return Err(EventsError::Config(
                "file.queue_capacity must be > 0".into(),
            ));
        }
        Ok(())
    }
}

/// One HTTP webhook: batches of events POSTed as a JSON array.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `http://` or `https://` URL receiving the POSTs.
    pub url: String,
    /// Value of the `Authorization` header, e.g. `Bearer s3cret`. A secret: never logged or printed.
    #[serde(default)]
    pub auth_header: Option<String>,
    /// Most events per POST.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Longest time the first event of a batch waits for the batch to fill.
    #[serde(default = "default_batch_delay", with = "humantime_serde")]
    pub batch_delay: Duration,
    /// Directory of batch files waiting for delivery; must not be shared by two webhooks.
    #[serde(default = "default_spool_dir")]
    pub spool_dir: PathBuf,
    /// Events held in memory before they reach a batch file; beyond this, new events are dropped
    /// and counted. Batches already on disk do not count: they wait there, not in memory.
    #[serde(default = "default_max_pending")]
    pub max_pending_events: usize,
    /// First retry delay.
    #[serde(default = "default_retry_base", with = "humantime_serde")]
    pub retry_base: Duration,
    /// Longest retry delay (the doubling stops here).
    #[serde(default = "default_retry_max", with = "humantime_serde")]
    pub retry_max: Duration,
    /// Fraction (0..=1) of each delay that is randomized, so many senders do not retry in step.
    #[serde(default = "default_retry_jitter")]
    pub retry_jitter: f64,
    /// Whole-request timeout of one POST.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// TCP/TLS connect timeout of one POST.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// PEM file of certificates trusted for an `https://` URL besides the system's roots: the
    /// private CA (or the self-signed certificate) of the receiving server.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_batch_size() -> usize {
    100
}
fn default_batch_delay() -> Duration {
    Duration::from_secs(1)
}
fn default_spool_dir() -> PathBuf {
    PathBuf::from("webhook-spool")
}
fn default_max_pending() -> usize {
    10_000
}
fn default_retry_base() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(300)
}
fn default_retry_jitter() -> f64 {
    0.2
}
fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for WebhookConfig {
    /// Defaults for every field; `url` is empty and must be set before use.
    fn default() -> Self {
        Self {
            url: String::new(),
            auth_header: None,
            batch_size: default_batch_size(),
            batch_delay: default_batch_delay(),
            spool_dir: default_spool_dir(),
            max_pending_events: default_max_pending(),
            retry_base: default_retry_base(),
            retry_max: default_retry_max(),
            retry_jitter: default_retry_jitter(),
            request_timeout: default_request_timeout(),
            connect_timeout: default_connect_timeout(),
            ca_file: None,
        }
    }
}

impl fmt::Debug for WebhookConfig {
    // Hand-written so the Authorization secret never reaches a log line or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field(
                "auth_header",
                &self.auth_header.as_ref().map(|_| "<redacted>"),
            )
            .field("batch_size", &self.batch_size)
            .field("batch_delay", &self.batch_delay)
            .field("spool_dir", &self.spool_dir)
            .field("max_pending_events", &self.max_pending_events)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("retry_jitter", &self.retry_jitter)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl WebhookConfig {
    /// Rejects settings that cannot work.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: &str| Err(EventsError::Config(format!("webhook {}: {msg}", self.url)));
        let lower = self.url.to_ascii_lowercase();
        if !(lower.starts_with("http://") || lower.starts_with("https://")) {
            return bad("url must start with http:// or https://");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be > 0");
        }
        if self.max_pending_events == 0 {
            return bad("max_pending_events must be > 0");
        }
        if !(0.0..=1.0).contains(&self.retry_jitter) {
            return bad("retry_jitter must be within 0..=1");
        }
        if self.retry_base.is_zero() || self.retry_max < self.retry_base {
            return bad("retry_base must be > 0 and <= retry_max");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_parses_humantime_and_fills_defaults() {
        let cfg: WebhookConfig = serde_json::from_str(
            r#"{"url":"https://hooks.example/ev","auth_header":"Bearer x","batch_delay":"250ms","retry_max":"2m"}"#,
        )
        .unwrap();
        assert_eq!(cfg.batch_delay, Duration::from_millis(250));
        assert_eq!(cfg.retry_max, Duration::from_secs(120));
        assert_eq!(cfg.batch_size, 100);
        assert_eq!(cfg.auth_header.as_deref(), Some("Bearer x"));
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<WebhookConfig>(r#"{"url":"http://x","batchsize":3}"#);
        assert!(err.is_err());
        let err = serde_json::from_str::<JsonlFileConfig>(r#"{"max_byte":3}"#);
        assert!(err.is_err());
    }

    #[test]
    fn file_defaults() {
        let cfg: JsonlFileConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, JsonlFileConfig::default());
        assert_eq!(cfg.max_bytes, 100 * 1024 * 1024);
        let all: EventsConfig = serde_json::from_str(r#"{"file":{"dir":"/tmp/ev"}}"#).unwrap();
        assert_eq!(all.file.unwrap().dir, PathBuf::from("/tmp/ev"));
    }

    #[test]
    fn debug_redacts_the_secret() {
        let cfg = WebhookConfig {
            url: "http://127.0.0.1:1/".into(),
            auth_header: Some("Bearer TOPSECRET".into()),
            ..WebhookConfig::default()
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("TOPSECRET"), "{dbg}");
        assert!(dbg.contains("<redacted>"));
    }

    #[test]
    fn validation_catches_bad_settings() {
        let ok = WebhookConfig {
            url: "http://127.0.0.1:9/".into(),
            ..WebhookConfig::default()
        };
        ok.validate().unwrap();
        assert!(WebhookConfig::default().validate().is_err());
        let zero = WebhookConfig {
            batch_size: 0,
            ..ok.clone()
        };
        assert!(zero.validate().is_err());
        let jitter = WebhookConfig {
            retry_jitter: 1.5,
            ..ok
        };
        assert!(jitter.validate().is_err());
    }
}
