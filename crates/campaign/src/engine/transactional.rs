//! Transactional messages (SPEC §3.7, docs/transactional.md): versioned templates, calls
//! stored durably before they are acknowledged, and the outbox that hands them to the MTA.
//!
//! A call is checked in full before anything is stored (the recipient, every template field
//! personalized with its data), then stored with its idempotency key in one transaction per
//! batch. The outbox is the campaign sender run over the template versions that have Pending
//! calls: claims with leases, the row's idempotency key for the MTA, backoff while the MTA is
//! unavailable. So a call is handed over once, and a crash between the MTA's acknowledgement
//! and the row's update hands it over again under the same key, which the MTA answers with
//! the message it already has.

use super::send::{Job, worker};
use super::{Engine, EngineError};
use crate::analysis::{Analyzer, Candidate};
use crate::model::{
    AddressState, Delivery, DeliveryId, DeliveryKind, LogId, LogRow, LogStatus, UnixMillis,
};
use crate::render::MessageTemplate;
use crate::render::RenderError;
use crate::store::{CallOutcome, NewCall, NewDelivery, TxTemplate, TxVersion};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Compiled template versions kept in memory (all of them, short of a pathological number).
const MAX_CACHED_VERSIONS: usize = 1_000;
/// How long a node answers calls with the template version it read: a version put through
/// another node is in force here within this time (through this node: at once).
const TEMPLATE_TTL: std::time::Duration = std::time::Duration::from_secs(1);
/// Requests of at most this many calls are checked on the request's own task: a render is
/// bounded by the template fuel, and a hop to a blocking thread costs more than a few checks.
const INLINE_CHECKS: usize = 8;
/// Most calls one batch carries.
pub const MAX_BATCH: usize = 1_000;
/// Longest idempotency key, in bytes.
pub const MAX_KEY_BYTES: usize = 255;
/// How often the outbox looks for Pending calls without being woken (calls stored by another
/// process or node, claims whose lease ended).
const OUTBOX_POLL: Duration = Duration::from_secs(1);

/// One call: who, with which data, under which idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub recipient: String,
    pub data: Map<String, Value>,
    pub idempotency_key: Option<String>,
}

/// The answer to one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CallAccepted {
    pub id: LogId,
    /// The key was seen before with the same payload: this is the original call, and nothing
    /// new is sent.
    pub repeated: bool,
    pub version: u32,
    /// The call's status now: `pending` (queued for the MTA) or `ignored` (the address is in
    /// quarantine or denylisted); a repeat reports the original's status.
    pub status: LogStatus,
}

/// The transactional outbox: the calls waiting for the MTA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OutboxStatus {
    pub depth: u64,
    /// When the oldest waiting call was stored.
    pub oldest_at: Option<UnixMillis>,
    pub oldest_age_ms: Option<u64>,
    /// The oldest has waited longer than `[campaign] outbox_warn_age` (also logged as a warning).
    pub stale: bool,
}

/// Why call `index` of a request is refused.
#[derive(Debug, thiserror::Error)]
#[error("call {index}: {error}")]
pub struct CallError {
    pub index: usize,
    pub error: RenderError,
}

impl Engine {
    /// Adds a version to the template `name` (creating it) after compiling its content; it is
    /// in force for the calls that follow. `content`'s name and list are ignored.
    pub async fn put_tx_template(
        &self,
        name: &str,
        content: &NewDelivery,
    ) -> Result<TxVersion, EngineError> {
        check_template_name(name)?;
        if content.validity_ms == 0 {
            return Err(EngineError::Invalid("the validity must be positive".into()));
        }
        self.template_for(content)?;
        let version = self
            .store()
            .create_tx_version(name, content, self.now())
            .await?;
        // This node's next call gets the new version at once; another node's within
        // TEMPLATE_TTL.
        self.inner.tx_templates.lock().remove(name);
        Ok(version)
    }

    /// The template `name` with its version in force. Read at most once per [`TEMPLATE_TTL`]
    /// by a busy node: one query less per call.
    async fn tx_template(&self, name: &str) -> Result<TxTemplate, EngineError> {
        if let Some((t, at)) = self.inner.tx_templates.lock().get(name)
            && at.elapsed() < TEMPLATE_TTL
        {
            return Ok(t.clone());
        }
        let t = self
            .store()
            .tx_template(name)
            .await?
            .ok_or_else(|| EngineError::UnknownTemplate(name.to_string()))?;
        let mut cache = self.inner.tx_templates.lock();
        if cache.len() >= MAX_CACHED_VERSIONS {
            cache.clear();
        }
        cache.insert(name.to_string(), (t.clone(), std::time::Instant::now()));
        Ok(t)
    }

    /// A version's delivery and compiled content, compiled once per process: a version never
    /// changes (a new content is a new version).
    async fn tx_version(&self, id: DeliveryId) -> Result<(Delivery, MessageTemplate), EngineError> {
        if let Some(v) = self.inner.tx_versions.lock().get(&id) {
            return Ok(v.clone());
        }
        let delivery = self.delivery(id).await?;
        let compiled = self.template_for(&delivery)?;
        let mut cache = self.inner.tx_versions.lock();
        if cache.len() >= MAX_CACHED_VERSIONS {
            cache.clear();
        }
        cache.insert(id, (delivery.clone(), compiled.clone()));
        Ok((delivery, compiled))
    }

    /// Checks and stores calls of the template `name` (its version in force), in one
    /// transaction: every call is answered, or none is stored. Wakes the outbox.
    pub async fn send_transactional(
        &self,
        name: &str,
        calls: Vec<Call>,
    ) -> Result<Vec<CallAccepted>, EngineError> {
        if calls.is_empty() || calls.len() > MAX_BATCH {
            return Err(EngineError::Invalid(format!(
                "a request carries 1 to {MAX_BATCH} calls, not {}",
                calls.len()
            )));
        }
        for c in &calls {
            check_key(c.idempotency_key.as_deref())?;
        }
        let template = self.tx_template(name).await?;
        let (version, compiled) = self.tx_version(template.current.delivery).await?;
        let checks: Vec<(String, Map<String, Value>)> = calls
            .iter()
            .map(|c| (c.recipient.trim().to_string(), c.data.clone()))
            .collect();
        let check_all = move || {
            for (index, (to, data)) in checks.iter().enumerate() {
                if let Err(error) = compiled.check(to, data) {
                    return Err(CallError { index, error });
                }
            }
            Ok(())
        };
        let checked = if calls.len() <= INLINE_CHECKS {
            Ok(check_all())
        } else {
            tokio::task::spawn_blocking(check_all).await
        };
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(EngineError::Call(e)),
            Err(e) => {
                return Err(EngineError::Invalid(format!(
                    "checking the calls failed: {e}"
                )));
            }
        }
        // The rows are decided by the group writer, with the addresses' quarantine states read
        // once for every request of the group (tx_commit.rs).
        let new: Vec<NewCall> = calls
            .into_iter()
            .map(|c| NewCall {
                payload: payload(name, &c),
                row: undecided(&c.recipient, version.id),
                key: c.idempotency_key,
                attributes: c.data,
            })
            .collect();
        let (outcomes, rows) = self.commit_calls(template.clone(), new).await?;
        self.inner.outbox_wake.notify_one();
        self.answers(&template, &rows, &outcomes).await
    }

    /// A call's row: Pending, or Ignored with the reason analysis gives (no address, invalid,
    /// quarantine, denylisted; `states` holds the addresses' states by key). Each call is
    /// decided on its own: the same address twice is two messages.
    pub(super) fn decide_call(
        &self,
        now: UnixMillis,
        address: &str,
        version: DeliveryId,
        states: &BTreeMap<String, AddressState>,
    ) -> LogRow {
        let mut analyzer = Analyzer::new(now, &self.inner.cfg.quarantine);
        let candidate = Candidate {
            address: address.to_string(),
            attributes: (),
        };
        analyzer
            .decide(candidate, |k| states.get(k).cloned())
            .log_row(LogId(0), version, None)
    }

    /// The answers: a new call has the status it was stored with; a repeat, its original's.
    async fn answers(
        &self,
        template: &TxTemplate,
        new: &[LogStatus],
        outcomes: &[CallOutcome],
    ) -> Result<Vec<CallAccepted>, EngineError> {
        let repeats: Vec<LogId> = outcomes
            .iter()
            .filter_map(|o| match o {
                CallOutcome::Repeat(id) => Some(*id),
                CallOutcome::Created(_) => None,
            })
            .collect();
        let mut originals = HashMap::new();
        for id in repeats {
            if let Some(c) = self.store().tx_call(id).await? {
                originals.insert(id, (c.version, c.row.status));
            }
        }
        Ok(new
            .iter()
            .zip(outcomes)
            .map(|(status, outcome)| match outcome {
                CallOutcome::Created(id) => CallAccepted {
                    id: *id,
                    repeated: false,
                    version: template.current.version,
                    status: *status,
                },
                CallOutcome::Repeat(id) => {
                    let (version, status) = originals
                        .get(id)
                        .copied()
                        .unwrap_or((template.current.version, LogStatus::Pending));
                    CallAccepted {
                        id: *id,
                        repeated: true,
                        version,
                        status,
                    }
                }
            })
            .collect())
    }

    /// Hands Pending calls to the MTA until `stopped`: woken by every stored batch, and every
    /// second for what others stored. Template versions are served oldest first, a version's
    /// calls in the order they were stored.
    pub async fn run_outbox(&self, mut stopped: watch::Receiver<bool>) {
        let mut warned_at = None;
        loop {
            if *stopped.borrow() {
                return;
            }
            if let Err(e) = self.outbox_pass(&stopped).await {
                tracing::warn!(error = %e, "transactional outbox: cannot read the queue");
            }
            self.watch_outbox(&mut warned_at).await;
            tokio::select! {
                _ = self.inner.outbox_wake.notified() => {}
                _ = tokio::time::sleep(OUTBOX_POLL) => {}
                _ = stopped.changed() => {}
            }
        }
    }

    /// Publishes the outbox's depth and age (gauges `cartero_transactional_outbox_depth` and
    /// `cartero_transactional_outbox_oldest_age_seconds`) and warns, at most once a minute,
    /// while the oldest call has waited longer than `outbox_warn_age`.
    async fn watch_outbox(&self, warned_at: &mut Option<UnixMillis>) {
        let state = match self.outbox_status().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "transactional outbox: cannot read its depth");
                return;
            }
        };
        metrics::gauge!("cartero_transactional_outbox_depth").set(state.depth as f64);
        let age = state.oldest_age_ms.unwrap_or(0);
        metrics::gauge!("cartero_transactional_outbox_oldest_age_seconds").set(age as f64 / 1000.0);
        let now = self.now();
        if state.stale && warned_at.is_none_or(|at| now.saturating_sub(at) >= 60_000) {
            tracing::warn!(
                depth = state.depth,
                oldest_age_s = age / 1000,
                "transactional outbox: calls are waiting longer than outbox_warn_age \
                 (is the MTA reachable?)"
            );
            *warned_at = Some(now);
        }
    }

    /// The outbox as operators see it: depth, oldest call, its age, and whether that age is
    /// over `outbox_warn_age`.
    pub async fn outbox_status(&self) -> Result<OutboxStatus, EngineError> {
        let s = self.store().outbox_state().await?;
        let now = self.now();
        let oldest_age_ms = s.oldest_at.map(|at| now.saturating_sub(at));
        let warn = u64::try_from(self.inner.cfg.outbox_warn_age.as_millis()).unwrap_or(u64::MAX);
        Ok(OutboxStatus {
            depth: s.depth,
            oldest_at: s.oldest_at,
            oldest_age_ms,
            stale: oldest_age_ms.is_some_and(|a| a > warn),
        })
    }

    /// One pass of the outbox: every call Pending now is handed over (waiting out an MTA
    /// outage with backoff) before it returns, unless `stopped`.
    pub async fn drain_outbox(&self, stopped: watch::Receiver<bool>) -> Result<(), EngineError> {
        self.outbox_pass(&stopped).await
    }

    async fn outbox_pass(&self, stopped: &watch::Receiver<bool>) -> Result<(), EngineError> {
        for id in self.store().tx_pending_versions().await? {
            if let Some(job) = self.outbox_job(id).await {
                worker(self, &job, stopped.clone()).await;
            }
        }
        Ok(())
    }

    /// The sender's job for version `id` (compiled once, [`Engine::tx_version`]); `None`,
    /// logged, for a delivery that is not a transactional version or does not compile.
    async fn outbox_job(&self, id: DeliveryId) -> Option<Job> {
        match self.tx_version(id).await {
            Ok((delivery, template)) if delivery.kind == DeliveryKind::Transactional => Some(Job {
                delivery,
                template: Arc::new(template),
            }),
            Ok(_) => None,
            Err(e) => {
                tracing::error!(delivery = id.0, error = %e,
                    "transactional outbox: cannot compile the template version");
                None
            }
        }
    }
}

/// Names are what URLs and the CLI carry: letters, digits, `.`, `_`, `-`; `templates` and
/// `messages` are routes of the API.
fn check_template_name(name: &str) -> Result<(), EngineError> {
    let fine = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        && !matches!(name, "templates" | "messages" | "outbox");
    if fine {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "template name {name:?}: 1 to 100 letters, digits, '.', '_' or '-' \
             (and not templates, messages or outbox)"
        )))
    }
}

fn check_key(key: Option<&str>) -> Result<(), EngineError> {
    match key {
        Some(k)
            if k.is_empty()
                || k.len() > MAX_KEY_BYTES
                || !k.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(EngineError::Invalid(format!(
                "an idempotency key is 1 to {MAX_KEY_BYTES} printable ASCII characters"
            )))
        }
        _ => Ok(()),
    }
}

/// What identifies a call's payload under its key: the template, the recipient and the data.
/// `serde_json`'s maps are sorted by key, so the same data in another key order is the same
/// payload.
/// A call's row until the group writer decides it ([`Engine::decide_call`]): it reads only
/// the address, as given, and the version.
fn undecided(recipient: &str, version: DeliveryId) -> LogRow {
    LogRow {
        id: LogId(0),
        delivery: version,
        recipient: None,
        address: recipient.to_string(),
        domain: String::new(),
        status: LogStatus::Pending,
        failure: None,
        message_id: None,
        last_event_at: 0,
        attempts: Vec::new(),
        feedback: Default::default(),
    }
}

fn payload(template: &str, c: &Call) -> Vec<u8> {
    serde_json::to_vec(&(template, c.recipient.trim(), &c.data)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(data: &str) -> Call {
        Call {
            recipient: " ana@b.test".into(),
            data: serde_json::from_str(data).expect("test data is an object"),
            idempotency_key: Some("k".into()),
        }
    }

    #[test]
    fn the_payload_ignores_key_order_and_surrounding_spaces() {
        let a = payload("t", &call(r#"{"a":1,"b":{"y":2,"x":3}}"#));
        let b = payload("t", &call(r#"{"b":{"x":3,"y":2},"a":1}"#));
        assert_eq!(a, b);
        assert_ne!(a, payload("u", &call(r#"{"a":1,"b":{"y":2,"x":3}}"#)));
        assert_ne!(a, payload("t", &call(r#"{"a":2,"b":{"y":2,"x":3}}"#)));
    }

    #[test]
    fn names_and_keys_are_checked() {
        assert!(check_template_name("order-shipped.v2_x").is_ok());
        for bad in ["", "a/b", "a b", "templates", "messages", &"x".repeat(101)] {
            assert!(check_template_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_key(None).is_ok());
        assert!(check_key(Some("order-42:shipped")).is_ok());
        for bad in ["", "a b", "é", &"k".repeat(256)] {
            assert!(check_key(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
