//! The sender of a running delivery: claim Pending rows, render them, hand them to the MTA,
//! mark them Taken. Several batches of one delivery are on their way at once
//! ([`EngineConfig::senders`](super::EngineConfig)); claims keep them apart.
//!
//! Never twice, never skipped: a row leaves Pending only through the MTA's answer (Taken or
//! refused) or a stop. A crash between the MTA's acknowledgement and `mark_taken` leaves the
//! row Pending and claimed; it is handed over again with the same idempotency key, and the MTA
//! answers with the message it already has.

use super::{Engine, EngineError};
use crate::inject::{Handed, Outgoing, Unavailable};
use crate::model::{
    Delivery, DeliveryId, DeliveryKind, FailureInfo, LogId, LogRow, LogStatus, Recipient,
    RecipientId, UnixMillis,
};
use crate::render::MessageTemplate;
use crate::store::{Claim, ClaimBatch, Claimed, Taken};
use cartero_bounce::{FailureType, Reason};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// What is known about a delivery while its rows are handed over.
pub(super) struct Job {
    pub(super) delivery: Delivery,
    /// Its compiled templates; the From address is the envelope sender.
    pub(super) template: Arc<MessageTemplate>,
}

/// Runs until every row is handed over or `stopped` says so.
pub(super) async fn run(
    engine: &Engine,
    delivery: Delivery,
    template: MessageTemplate,
    stopped: watch::Receiver<bool>,
) {
    let job = Arc::new(Job {
        delivery,
        template: Arc::new(template),
    });
    let mut workers = JoinSet::new();
    for _ in 0..engine.inner.cfg.senders.max(1) {
        let (engine, job, stopped) = (engine.clone(), job.clone(), stopped.clone());
        workers.spawn(async move { worker(&engine, &job, stopped).await });
    }
    while let Some(done) = workers.join_next().await {
        if let Err(e) = done {
            tracing::error!(delivery = job.delivery.id.0, error = %e, "campaign sender failed");
        }
    }
    let id = job.delivery.id;
    if !*stopped.borrow()
        && let Err(e) = engine.finish_if_done(id).await
    {
        tracing::warn!(delivery = id.0, error = %e, "campaign: finish check failed");
    }
}

/// Claims and hands over batches until no row is left to claim or `stopped` says so.
pub(super) async fn worker(engine: &Engine, job: &Job, mut stopped: watch::Receiver<bool>) {
    let cfg = &engine.inner.cfg;
    let mut backoff = cfg.retry_min;
    let lease = ms(cfg.lease);
    loop {
        if *stopped.borrow() {
            return;
        }
        let claimed = claim(engine, job, Claim::Free, lease).await;
        let result = match claimed {
            Ok(c) if c.rows.is_empty() => return,
            Ok(c) => hand_over(engine, job, c).await,
            Err(e) => Err(Stalled::Store(e.to_string())),
        };
        match result {
            Ok(()) => backoff = cfg.retry_min,
            Err(why) => {
                tracing::warn!(delivery = job.delivery.id.0, %why, wait = ?backoff,
                    "campaign: hand-over failed, retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => {}
                }
                backoff = (backoff * 2).min(cfg.retry_max);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum Stalled {
    #[error("{0}")]
    Mta(#[from] Unavailable),
    #[error("campaign database: {0}")]
    Store(String),
}

impl From<crate::store::StoreError> for Stalled {
    fn from(e: crate::store::StoreError) -> Self {
        Stalled::Store(e.to_string())
    }
}

/// Renders and hands over one claimed batch, then records the MTA's answers. When the MTA is
/// unavailable the claims are given back and the rows stay Pending.
async fn hand_over(engine: &Engine, job: &Job, claimed: Claimed) -> Result<(), Stalled> {
    let store = engine.store();
    let Claimed { rows, made } = claimed;
    let ids: Vec<RecipientId> = rows.iter().filter_map(|r| r.recipient).collect();
    let profiles = store.recipients_by_id(&ids).await?;
    let ends = validity_ends(job, made);
    let (pairs, mut failed) = render_batch(job, rows, profiles, ends).await;
    let (outgoing, kept): (Vec<Outgoing>, Vec<LogRow>) = pairs.into_iter().unzip();
    let mut taken = Vec::with_capacity(outgoing.len());
    if !outgoing.is_empty() {
        // The messages move into the injector; what the answers need is kept aside.
        let sizes: Vec<u64> = outgoing.iter().map(|o| o.body.len() as u64).collect();
        let answers = match engine.inner.injector.inject(outgoing).await {
            Ok(a) => a,
            Err(e) => {
                let claimed: Vec<_> = kept.iter().map(|r| r.id).collect();
                store.release_claims(&claimed).await?;
                return Err(e.into());
            }
        };
        for ((row, bytes), answer) in kept.into_iter().zip(sizes).zip(answers) {
            match answer {
                Handed::Taken { message_id } => taken.push(Taken {
                    id: row.id,
                    message_id,
                    at: engine.now(),
                    bytes,
                }),
                Handed::Refused { reason } => {
                    failed.push(fail(row, Reason::Refused, "mta:refused", &reason))
                }
                Handed::Expired { reason } => {
                    failed.push(fail(row, Reason::NotDefined, "mta:expired", &reason))
                }
            }
        }
    }
    store.mark_taken(&taken).await?;
    if !failed.is_empty() {
        store.update_rows(&failed).await?;
    }
    Ok(())
}

type Rendered = (Vec<(Outgoing, LogRow)>, Vec<LogRow>);

/// When the validity of each row of a batch ends: a campaign's at its start plus its
/// validity, a transactional call's at the call's time plus its version's validity.
enum Ends {
    Delivery(Option<UnixMillis>),
    Calls {
        made: HashMap<LogId, UnixMillis>,
        validity_ms: u64,
    },
}

impl Ends {
    fn of(&self, row: LogId) -> Option<UnixMillis> {
        match self {
            Ends::Delivery(end) => *end,
            Ends::Calls { made, validity_ms } => {
                made.get(&row).map(|t| t.saturating_add(*validity_ms))
            }
        }
    }
}

fn validity_ends(job: &Job, made: HashMap<LogId, UnixMillis>) -> Ends {
    let d = &job.delivery;
    if d.kind != DeliveryKind::Transactional {
        return Ends::Delivery(super::validity_end(d));
    }
    Ends::Calls {
        made,
        validity_ms: d.validity_ms,
    }
}

/// Claims the job's next batch; a transactional job's claim also reads its calls' times.
async fn claim(
    engine: &Engine,
    job: &Job,
    which: Claim,
    lease_ms: u64,
) -> Result<Claimed, crate::store::StoreError> {
    let batch = ClaimBatch {
        limit: engine.inner.cfg.batch,
        now: engine.now(),
        lease_ms,
    };
    let calls = job.delivery.kind == DeliveryKind::Transactional;
    engine
        .store()
        .claim_to_send(which, job.delivery.id, batch, calls)
        .await
}

/// Renders off the async threads (templates are CPU work). A row whose rendering fails —
/// analysis checked every row, so only a profile changed since — fails with the error.
async fn render_batch(
    job: &Job,
    rows: Vec<LogRow>,
    profiles: Vec<Recipient>,
    ends: Ends,
) -> Rendered {
    let template = job.template.clone();
    let delivery = job.delivery.clone();
    let work = move || {
        let by_id: HashMap<RecipientId, Recipient> =
            profiles.into_iter().map(|p| (p.id, p)).collect();
        let empty = serde_json::Map::new();
        let mut out = Vec::with_capacity(rows.len());
        let mut failed = Vec::new();
        for row in rows {
            let attrs = row
                .recipient
                .and_then(|id| by_id.get(&id))
                .map_or(&empty, |p| &p.attributes);
            match template.render(&row.address, attrs, &[]) {
                Ok(body) => {
                    let mut o = outgoing(&delivery, template.sender(), &row, body);
                    o.expires_at = ends.of(row.id);
                    out.push((o, row))
                }
                Err(e) => failed.push(fail(row, Reason::NotDefined, "render", &e.to_string())),
            }
        }
        (out, failed)
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) => {
            // Only a panic in rendering gets here; the rows keep their claim and come back
            // after the lease.
            tracing::error!(delivery = job.delivery.id.0, error = %e, "campaign: render task failed");
            (Vec::new(), Vec::new())
        }
    }
}

fn outgoing(d: &Delivery, sender: &str, row: &LogRow, body: Vec<u8>) -> Outgoing {
    Outgoing {
        delivery: d.id,
        row: row.id,
        sender: sender.to_string(),
        recipient: row.address.clone(),
        body,
        validity: Duration::from_millis(d.validity_ms),
        expires_at: None,
        pool: d.pool.clone(),
        bulk: d.kind == DeliveryKind::Campaign,
    }
}

fn fail(mut row: LogRow, reason: Reason, rule: &str, text: &str) -> LogRow {
    row.status = LogStatus::Failed;
    row.failure = Some(FailureInfo {
        r#type: FailureType::Ignored,
        reason,
        class: None,
        text: crate::observe::clip(text, crate::observe::MAX_TEXT),
        rule: rule.to_string(),
    });
    row
}

/// After a stop: hand-overs a crash interrupted (claimed rows, which the MTA may hold) are
/// finished first, with their idempotency keys; every other Pending row fails as "delivery
/// stopped". When the MTA is unavailable nothing is cancelled yet: the next start retries, so
/// a row the MTA may have is never marked as not sent.
pub(super) async fn cancel_rest(engine: &Engine, id: DeliveryId) -> Result<(), EngineError> {
    let store = engine.store();
    let cfg = &engine.inner.cfg;
    let delivery = engine.delivery(id).await?;
    let lease = ms(cfg.lease);
    let job = Job {
        template: Arc::new(engine.template_for(&delivery)?),
        delivery,
    };
    loop {
        let claimed = claim(engine, &job, Claim::Interrupted, lease).await?;
        if claimed.rows.is_empty() {
            break;
        }
        if let Err(e) = hand_over(engine, &job, claimed).await {
            tracing::warn!(delivery = id.0, error = %e,
                "campaign: stop could not finish interrupted hand-overs; retried at next start");
            return Ok(());
        }
    }
    loop {
        let rows = store
            .claim_pending(id, cfg.batch, engine.now(), lease)
            .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let cancelled: Vec<LogRow> = rows
            .into_iter()
            .map(|r| {
                fail(
                    r,
                    Reason::NotDefined,
                    "delivery:stopped",
                    "delivery stopped before the MTA took it",
                )
            })
            .collect();
        store.update_rows(&cancelled).await?;
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
