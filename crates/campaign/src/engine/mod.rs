//! The campaign engine: deliveries from draft to finished (SPEC §3.1–3.3). It joins the store,
//! the rules and an [`Injector`]; every operator verb (CLI, API) is one method here, and the
//! work that runs on its own — the senders of running deliveries and the event intake — is
//! spawned from here too.
//!
//! * [`Engine::analyze`] builds the log (`analyze.rs`).
//! * [`Engine::start`] / [`Engine::resume`] spawn the delivery's sender (`send.rs`), which
//!   claims Pending rows, renders and hands them over until none is left or the state
//!   changes. [`Engine::pause`] and [`Engine::stop`] change the state and wait for the sender
//!   to finish the batch it is handing over, so a row is never half handed over.
//! * [`Engine::apply_events`] feeds MTA events to the log (`intake.rs`) and finishes the
//!   deliveries that have nothing left on the way.
//! * [`Engine::recover`] at start resumes what a crash interrupted.

mod analyze;
pub mod intake;
mod send;
mod transactional;
mod tx_commit;

pub use analyze::{AnalysisError, RecipientError};
pub use intake::IntakeReport;
pub use transactional::{Call, CallAccepted, CallError, MAX_BATCH, MAX_KEY_BYTES, OutboxStatus};

use crate::inject::Injector;
use crate::kpi::{self, EfsView, LegacyView};
use crate::model::{Delivery, DeliveryId, DeliveryKind, DeliveryState, Kpis, UnixMillis};
use crate::quarantine::QuarantineConfig;
use crate::render::{MessageTemplate, RenderLimits, TemplateError};
use crate::store::{NewDelivery, Store, StoreError};
use cartero_bounce::Qualifier;
use cartero_clock::SharedClock;
use cartero_events::Event;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How the engine works (`[campaign]` in the configuration).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Rows claimed, rendered and handed to the MTA together.
    pub batch: u32,
    /// Batches of one delivery handed over at the same time.
    pub senders: usize,
    /// How long a claim holds rows for the sender that claimed them.
    pub lease: Duration,
    /// Waits between hand-over attempts while the MTA is unavailable: doubles from `min` to
    /// `max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// Recipients read per analysis page.
    pub analysis_page: u32,
    /// Template errors listed when an analysis is refused (all are counted).
    pub max_reported_errors: usize,
    /// How long a transactional call's idempotency key answers with the original call.
    pub idempotency_window: Duration,
    /// A transactional call waiting for the MTA longer than this is warned about.
    pub outbox_warn_age: Duration,
    pub quarantine: QuarantineConfig,
    pub render: RenderLimits,
    pub qualifier: Qualifier,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            senders: 4,
            lease: Duration::from_secs(60),
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(30),
            analysis_page: 2_000,
            max_reported_errors: 100,
            idempotency_window: Duration::from_secs(24 * 3600),
            outbox_warn_age: Duration::from_secs(300),
            quarantine: QuarantineConfig::default(),
            render: RenderLimits::default(),
            qualifier: Qualifier::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("delivery {0} not found")]
    NotFound(i64),
    #[error("delivery {id} is {}: it cannot be {verb}", state_name(*.state))]
    State {
        id: i64,
        state: DeliveryState,
        verb: &'static str,
    },
    #[error("template: {0}")]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Analysis(#[from] AnalysisError),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("no transactional template {0:?}")]
    UnknownTemplate(String),
    /// A transactional call that cannot be personalized (or has a bad recipient).
    #[error(transparent)]
    Call(#[from] CallError),
}

/// A delivery with its figures (SPEC §3.3), as `delivery status` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryStatus {
    pub delivery: Delivery,
    pub kpis: Kpis,
    pub efs: EfsView,
    pub legacy: LegacyView,
    /// Every row reached a final status, or the validity ended.
    pub r#final: bool,
    /// While an analysis runs: how far it is.
    pub analysis: Option<AnalysisProgress>,
}

/// An analysis under way: the counts so far and the size of the target list.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct AnalysisProgress {
    pub counts: crate::analysis::Counts,
    pub recipients: u64,
}

struct Sender {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// See the module documentation. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    clock: SharedClock,
    injector: Arc<dyn Injector>,
    cfg: EngineConfig,
    senders: Mutex<HashMap<DeliveryId, Sender>>,
    analyzing: Mutex<HashSet<DeliveryId>>,
    progress: Mutex<HashMap<DeliveryId, AnalysisProgress>>,
    /// Told when transactional calls are stored.
    outbox_wake: tokio::sync::Notify,
    /// Transactional template versions, compiled (`transactional.rs`).
    tx_versions: Mutex<HashMap<DeliveryId, (Delivery, MessageTemplate)>>,
    /// Transactional templates by name, as read at the instant kept with them (`transactional.rs`).
    tx_templates: Mutex<HashMap<String, (crate::store::TxTemplate, std::time::Instant)>>,
    /// Transactional calls waiting for their group commit (`tx_commit.rs`).
    tx_queue: Mutex<tx_commit::CallQueue>,
}

impl Engine {
    pub fn new(
        store: Store,
        clock: SharedClock,
        injector: Arc<dyn Injector>,
        cfg: EngineConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock,
                injector,
                cfg,
                senders: Mutex::new(HashMap::new()),
                analyzing: Mutex::new(HashSet::new()),
                progress: Mutex::new(HashMap::new()),
                outbox_wake: tokio::sync::Notify::new(),
                tx_versions: Mutex::new(HashMap::new()),
                tx_templates: Mutex::new(HashMap::new()),
                tx_queue: Mutex::new(tx_commit::CallQueue::default()),
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    fn now(&self) -> UnixMillis {
        self.inner.clock.now_ms()
    }

    /// Creates a Draft delivery after checking its sender and compiling its templates.
    pub async fn create_delivery(&self, d: &NewDelivery) -> Result<Delivery, EngineError> {
        if d.validity_ms == 0 {
            return Err(EngineError::Invalid("the validity must be positive".into()));
        }
        self.template_for(d)?;
        Ok(self.inner.store.create_delivery(d, self.now()).await?)
    }

    /// Compiles a delivery's (or a new one's) content under the configured limits.
    fn template_for(&self, d: &impl Content) -> Result<MessageTemplate, TemplateError> {
        let (from, subject, text, html) = d.content();
        MessageTemplate::compile(
            from,
            subject,
            text,
            html,
            self.inner.cfg.render,
            self.inner.clock.clone(),
        )
    }

    pub async fn delivery(&self, id: DeliveryId) -> Result<Delivery, EngineError> {
        self.inner
            .store
            .delivery(id)
            .await?
            .ok_or(EngineError::NotFound(id.0))
    }

    pub async fn status(&self, id: DeliveryId) -> Result<DeliveryStatus, EngineError> {
        let delivery = self.delivery(id).await?;
        let kpis = self.inner.store.kpis(id).await?;
        let now = self.now();
        let end = validity_end(&delivery);
        Ok(DeliveryStatus {
            efs: kpi::efs(&kpis, now, end),
            legacy: kpi::legacy(&kpis, now, end),
            r#final: kpi::is_final(&kpis, now, end),
            analysis: self.inner.progress.lock().get(&id).copied(),
            delivery,
            kpis,
        })
    }

    /// Analyzed → Running: the sender starts.
    pub async fn start(&self, id: DeliveryId) -> Result<(), EngineError> {
        self.transition(
            id,
            &[DeliveryState::Analyzed],
            DeliveryState::Running,
            "started",
        )
        .await?;
        self.spawn_sender(id).await
    }

    /// Running → Paused. Returns once the sender handed over its last batch: from then on
    /// nothing of this delivery goes to the MTA until it is resumed.
    pub async fn pause(&self, id: DeliveryId) -> Result<(), EngineError> {
        self.campaign_only(id, "paused").await?;
        self.transition(
            id,
            &[DeliveryState::Running],
            DeliveryState::Paused,
            "paused",
        )
        .await?;
        self.stop_sender(id).await;
        Ok(())
    }

    /// Paused → Running: the sender goes on with the rows still Pending.
    pub async fn resume(&self, id: DeliveryId) -> Result<(), EngineError> {
        self.transition(
            id,
            &[DeliveryState::Paused],
            DeliveryState::Running,
            "resumed",
        )
        .await?;
        self.spawn_sender(id).await
    }

    /// Analyzed, Running or Paused → Stopped: what the MTA has not taken is cancelled (its
    /// rows fail as "delivery stopped", not charged to the addresses).
    pub async fn stop(&self, id: DeliveryId) -> Result<(), EngineError> {
        use DeliveryState::*;
        self.campaign_only(id, "stopped").await?;
        self.transition(id, &[Analyzed, Running, Paused], Stopped, "stopped")
            .await?;
        self.stop_sender(id).await;
        send::cancel_rest(self, id).await
    }

    /// Refuses the campaign verbs on a transactional template's version, which is always
    /// Running.
    async fn campaign_only(&self, id: DeliveryId, verb: &str) -> Result<(), EngineError> {
        if self.delivery(id).await?.kind == DeliveryKind::Transactional {
            return Err(EngineError::Invalid(format!(
                "delivery {} is a version of a transactional template: it cannot be {verb}",
                id.0
            )));
        }
        Ok(())
    }

    async fn transition(
        &self,
        id: DeliveryId,
        from: &[DeliveryState],
        to: DeliveryState,
        verb: &'static str,
    ) -> Result<(), EngineError> {
        match self
            .inner
            .store
            .set_delivery_state(id, from, to, self.now())
            .await
        {
            Ok(()) => Ok(()),
            Err(StoreError::StateConflict { id, actual, .. }) => Err(EngineError::State {
                id,
                state: actual,
                verb,
            }),
            Err(StoreError::NotFound { id, .. }) => Err(EngineError::NotFound(id)),
            Err(e) => Err(e.into()),
        }
    }

    async fn spawn_sender(&self, id: DeliveryId) -> Result<(), EngineError> {
        let delivery = self.delivery(id).await?;
        let template = self.template_for(&delivery)?;
        let (stop, stopped) = watch::channel(false);
        let engine = self.clone();
        let task = tokio::spawn(async move {
            send::run(&engine, delivery, template, stopped).await;
        });
        let old = self.inner.senders.lock().insert(id, Sender { stop, task });
        if let Some(old) = old {
            // A previous sender of this delivery (a pause that raced a resume): let it end.
            let _ = old.stop.send(true);
        }
        Ok(())
    }

    async fn stop_sender(&self, id: DeliveryId) {
        let sender = self.inner.senders.lock().remove(&id);
        if let Some(s) = sender {
            let _ = s.stop.send(true);
            if let Err(e) = s.task.await {
                tracing::error!(delivery = id.0, error = %e, "campaign sender task failed");
            }
        }
    }

    /// Waits for the sender of `id`, if any, to end on its own (every row handed over).
    pub async fn wait_sender(&self, id: DeliveryId) {
        let task = self.inner.senders.lock().remove(&id);
        if let Some(s) = task {
            let _ = s.task.await;
        }
    }

    /// Applies MTA events to the logs, then finishes the deliveries they completed.
    pub async fn apply_events(&self, events: &[Event]) -> Result<IntakeReport, EngineError> {
        let cfg = &self.inner.cfg;
        let report = intake::apply_events(
            &self.inner.store,
            events,
            &cfg.qualifier,
            &cfg.quarantine,
            self.now(),
        )
        .await?;
        for id in &report.deliveries {
            self.finish_if_done(*id).await?;
        }
        Ok(report)
    }

    /// Running → Finished when no row is Pending or Taken any more, or when the validity
    /// ended (rows still in the MTA then end with its expiry events). Returns whether it did.
    pub async fn finish_if_done(&self, id: DeliveryId) -> Result<bool, EngineError> {
        let delivery = self.delivery(id).await?;
        if delivery.state != DeliveryState::Running || delivery.kind != DeliveryKind::Campaign {
            return Ok(false);
        }
        let k = self.inner.store.counters(id).await?;
        if !kpi::is_final(&k, self.now(), validity_end(&delivery)) {
            return Ok(false);
        }
        match self
            .transition(
                id,
                &[DeliveryState::Running],
                DeliveryState::Finished,
                "finished",
            )
            .await
        {
            Ok(()) => Ok(true),
            // An operator paused or stopped it meanwhile: theirs wins.
            Err(EngineError::State { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Checks every running delivery for the end of its validity.
    pub async fn tick(&self) -> Result<(), EngineError> {
        for d in self
            .inner
            .store
            .deliveries_in(&[DeliveryState::Running])
            .await?
        {
            self.finish_if_done(d.id).await?;
        }
        Ok(())
    }

    /// At start: claims a crash left are taken back (SQLite: this process is the only one),
    /// stopped deliveries finish their cancellation, running ones get their sender again. A
    /// delivery that cannot resume (its templates no longer compile under the configured
    /// limits) is logged and left as it is: it does not keep the others, or the MTA, from
    /// starting.
    pub async fn recover(&self) -> Result<(), EngineError> {
        let store = &self.inner.store;
        for d in store.deliveries_in(&[DeliveryState::Stopped]).await? {
            if let Err(e) = send::cancel_rest(self, d.id).await {
                tracing::error!(delivery = d.id.0, error = %e, "campaign: cannot finish the stop");
            }
        }
        if store.backend() == crate::store::Backend::Sqlite {
            let n = store.release_all_claims().await?;
            if n > 0 {
                tracing::info!(rows = n, "campaign: claims of the last run released");
            }
        }
        for d in store.deliveries_in(&[DeliveryState::Running]).await? {
            if let Err(e) = self.spawn_sender(d.id).await {
                tracing::error!(delivery = d.id.0, error = %e, "campaign: cannot resume sending");
            }
        }
        Ok(())
    }

    /// Stops every sender (each finishes the batch it is handing over).
    pub async fn shutdown(&self) {
        let ids: Vec<DeliveryId> = self.inner.senders.lock().keys().copied().collect();
        for id in ids {
            self.stop_sender(id).await;
        }
    }
}

/// What a message is made of: From, subject, text and HTML templates.
trait Content {
    fn content(&self) -> (&str, &str, Option<&str>, Option<&str>);
}

impl Content for Delivery {
    fn content(&self) -> (&str, &str, Option<&str>, Option<&str>) {
        (
            &self.from,
            &self.subject,
            self.text_template.as_deref(),
            self.html_template.as_deref(),
        )
    }
}

impl Content for NewDelivery {
    fn content(&self) -> (&str, &str, Option<&str>, Option<&str>) {
        (
            &self.from,
            &self.subject,
            self.text_template.as_deref(),
            self.html_template.as_deref(),
        )
    }
}

/// A state as the API spells it.
pub fn state_name(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Draft => "draft",
        DeliveryState::Analyzed => "analyzed",
        DeliveryState::Running => "running",
        DeliveryState::Paused => "paused",
        DeliveryState::Finished => "finished",
        DeliveryState::Stopped => "stopped",
    }
}

/// When a delivery's validity ends: its start plus its validity.
pub fn validity_end(d: &Delivery) -> Option<UnixMillis> {
    d.started_at.map(|s| s.saturating_add(d.validity_ms))
}
