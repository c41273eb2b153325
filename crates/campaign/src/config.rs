//! `[campaign]`: the campaign layer's configuration (docs/config.md, "[campaign]").

use crate::engine::EngineConfig;
use crate::quarantine::QuarantineConfig;
use crate::render::RenderLimits;
use crate::store::MAX_PAGE;
use cartero_bounce::Qualifier;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CampaignConfig {
    /// Run the campaign layer inside `cartero serve`. Default true.
    pub enabled: bool,
    /// `postgres://user:password@host/db` for PostgreSQL; empty (the default) for the embedded
    /// SQLite file `campaign.sqlite` under `data_dir/campaign`.
    pub database_url: String,
    /// Remote MTA mode: the API base URL of the cartero that sends (`http://mta-host:8025`).
    /// Empty (the default): the MTA of this process. See docs/transactional.md.
    pub mta: String,
    /// The file holding the remote MTA's API token (one line). Required with `mta`.
    pub mta_token_file: String,
    /// PEM file of certificates trusted for an `https://` `mta` besides the system's roots:
    /// the MTA node's private CA, or its self-signed certificate. Empty (the default): none.
    pub mta_ca_file: String,
    /// Rows claimed, rendered and handed to the MTA together. Default 500.
    pub batch: u32,
    /// Batches of one delivery on their way at the same time. Default 4.
    pub senders: usize,
    /// How long a claim holds rows for the sender that claimed them (rows a dead node held
    /// come back after it). Default `60s`.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// First wait before handing over again when the MTA is unavailable; doubles up to
    /// `retry_max`. Defaults `1s` and `30s`.
    #[serde(with = "humantime_serde")]
    pub retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Recipients read per analysis page. Default 2000.
    pub analysis_page: u32,
    /// Events applied to the logs per transaction. Default 1000.
    pub event_batch: usize,
    /// How long a transactional call's idempotency key answers with the original call
    /// (1 s to 30 days). Default `24h`.
    #[serde(with = "humantime_serde")]
    pub idempotency_window: Duration,
    /// A transactional call waiting for the MTA longer than this is logged as a warning (once
    /// a minute) and flagged `stale` at `/api/v1/transactional/outbox`. Default `5m`.
    #[serde(with = "humantime_serde")]
    pub outbox_warn_age: Duration,
    pub quarantine: QuarantineConfig,
    pub templates: RenderLimits,
}

impl Default for CampaignConfig {
    fn default() -> Self {
        let e = EngineConfig::default();
        Self {
            enabled: true,
            database_url: String::new(),
            mta: String::new(),
            mta_ca_file: String::new(),
            mta_token_file: String::new(),
            batch: e.batch,
            senders: e.senders,
            lease: e.lease,
            retry_min: e.retry_min,
            retry_max: e.retry_max,
            analysis_page: e.analysis_page,
            event_batch: 1000,
            idempotency_window: e.idempotency_window,
            outbox_warn_age: e.outbox_warn_age,
            quarantine: QuarantineConfig::default(),
            templates: RenderLimits::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("[campaign] {0}")]
pub struct CampaignConfigError(String);

impl CampaignConfig {
    pub fn validate(&self) -> Result<(), CampaignConfigError> {
        let bad = |m: String| Err(CampaignConfigError(m));
        let page = 1..=MAX_PAGE;
        if !page.contains(&self.batch) || !page.contains(&self.analysis_page) {
            return bad(format!("batch and analysis_page must be 1 to {MAX_PAGE}"));
        }
        if !(1..=64).contains(&self.senders) {
            return bad("senders must be 1 to 64".into());
        }
        if !(1..=100_000).contains(&self.event_batch) {
            return bad("event_batch must be 1 to 100000".into());
        }
        if self.lease < Duration::from_secs(1) {
            return bad("lease must be at least 1s".into());
        }
        let window = Duration::from_secs(1)..=Duration::from_secs(30 * 24 * 3600);
        if !window.contains(&self.idempotency_window) {
            return bad("idempotency_window must be 1s to 30days".into());
        }
        if self.outbox_warn_age < Duration::from_secs(1) {
            return bad("outbox_warn_age must be at least 1s".into());
        }
        if self.retry_min.is_zero() || self.retry_min > self.retry_max {
            return bad("retry_min must be positive and at most retry_max".into());
        }
        if !self.database_url.is_empty() && !self.database_url.starts_with("postgres") {
            return bad("database_url must be postgres://… (or empty for SQLite)".into());
        }
        if !self.mta.is_empty() {
            if !(self.mta.starts_with("http://") || self.mta.starts_with("https://")) {
                return bad(
                    "mta must be an http:// or https:// URL (or empty for this process's MTA)"
                        .into(),
                );
            }
            if self.mta_token_file.is_empty() {
                return bad("mta_token_file is required with mta".into());
            }
        } else if !self.mta_ca_file.is_empty() {
            return bad("mta_ca_file is for a remote mta; set mta too, or remove it".into());
        }
        let t = &self.templates;
        if t.fuel == 0 || t.max_output_bytes == 0 || t.max_template_bytes == 0 {
            return bad(
                "templates: fuel, max_output_bytes and max_template_bytes must be positive".into(),
            );
        }
        self.quarantine
            .validate()
            .map_err(|e| CampaignConfigError(format!("quarantine: {e}")))
    }

    /// The engine's settings; `qualifier` is the MTA's `[bounce.qualification]`.
    pub fn engine(&self, qualifier: Qualifier) -> EngineConfig {
        EngineConfig {
            batch: self.batch,
            senders: self.senders,
            lease: self.lease,
            retry_min: self.retry_min,
            retry_max: self.retry_max,
            analysis_page: self.analysis_page,
            idempotency_window: self.idempotency_window,
            outbox_warn_age: self.outbox_warn_age,
            quarantine: self.quarantine.clone(),
            render: self.templates,
            qualifier,
            ..EngineConfig::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_out_of_range_values_are_named() {
        assert_eq!(CampaignConfig::default().validate(), Ok(()));
        type Change = fn(&mut CampaignConfig);
        let cases: [(Change, &str); 10] = [
            (|c| c.mta = "mta-host:8025".into(), "mta must"),
            (|c| c.mta_ca_file = "/etc/ca.pem".into(), "mta_ca_file"),
            (|c| c.mta = "http://mta-host:8025".into(), "mta_token_file"),
            (
                |c| c.idempotency_window = Duration::ZERO,
                "idempotency_window",
            ),
            (|c| c.templates.fuel = 0, "templates"),
            (|c| c.batch = 0, "batch"),
            (|c| c.senders = 0, "senders"),
            (|c| c.lease = Duration::ZERO, "lease"),
            (|c| c.retry_min = Duration::from_secs(60), "retry_min"),
            (|c| c.database_url = "mysql://x".into(), "database_url"),
        ];
        for (change, field) in cases {
            let mut c = CampaignConfig::default();
            change(&mut c);
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }
}
