//! Deliveries and their state. The state changes by compare-and-set, so that two callers
//! (an operator's pause and the sender finishing) can never both win.

use super::codec::{delivery_state_code, delivery_state_from, ms, ms_from};
use super::{Backend, Marks, Store, StoreError, Tx, in_list};
use crate::model::{Delivery, DeliveryId, DeliveryKind, DeliveryState, ListId, UnixMillis};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

/// What a new delivery is made of; it starts as a Draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub name: String,
    pub from: String,
    pub subject: String,
    pub text_template: Option<String>,
    pub html_template: Option<String>,
    pub list: ListId,
    pub validity_ms: u64,
    pub pool: Option<String>,
}

pub(super) const COLUMNS: &str = "id, name, from_addr, subject, text_template, html_template, list_id, \
                       validity_ms, pool, state, kind, created_at, updated_at, started_at, ended_at";

impl Store {
    /// Creates a Draft delivery and its (zero) counters.
    pub async fn create_delivery(
        &self,
        d: &NewDelivery,
        now: UnixMillis,
    ) -> Result<Delivery, StoreError> {
        self.ready_list(d.list).await?;
        let mut tx = self.begin().await?;
        let id = insert_delivery(&mut tx, d, DeliveryKind::Campaign, now).await?;
        tx.commit().await?;
        self.delivery(DeliveryId(id))
            .await?
            .ok_or(StoreError::NotFound {
                what: "delivery",
                id,
            })
    }

    pub async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM delivery WHERE id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| delivery_from_row(&r)).transpose()
    }

    /// Every delivery, newest first.
    pub async fn deliveries(&self) -> Result<Vec<Delivery>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM delivery ORDER BY id DESC");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Campaign deliveries (not transactional templates) in one of `states`: what a restart
    /// resumes and the validity tick checks.
    pub async fn deliveries_in(
        &self,
        states: &[DeliveryState],
    ) -> Result<Vec<Delivery>, StoreError> {
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT {COLUMNS} FROM delivery WHERE kind = 0 AND state IN ({}) ORDER BY id",
            in_list(self.marks(), 1, states.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for s in states {
            q = q.bind(delivery_state_code(*s));
        }
        let rows = q.fetch_all(&self.read).await?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Moves a delivery to `to` if it is in one of `from`; [`StoreError::StateConflict`]
    /// otherwise. Going Running stamps `started_at` (once); Finished and Stopped stamp
    /// `ended_at`.
    pub async fn set_delivery_state(
        &self,
        id: DeliveryId,
        from: &[DeliveryState],
        to: DeliveryState,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let started = (to == DeliveryState::Running).then_some(ms(now));
        let ended =
            matches!(to, DeliveryState::Finished | DeliveryState::Stopped).then_some(ms(now));
        let sql = format!(
            "UPDATE delivery SET state = $1, updated_at = $2, \
             started_at = COALESCE(started_at, $3), ended_at = COALESCE($4, ended_at) \
             WHERE id = $5 AND state IN ({})",
            in_list(Marks::Numbered, 6, from.len().max(1))
        );
        let mut q = sqlx::query(AssertSqlSafe(sql))
            .bind(delivery_state_code(to))
            .bind(ms(now))
            .bind(started)
            .bind(ended)
            .bind(id.0);
        if from.is_empty() {
            q = q.bind(-1_i64);
        }
        for s in from {
            q = q.bind(delivery_state_code(*s));
        }
        if q.execute(&self.write).await?.rows_affected() == 1 {
            if to == DeliveryState::Analyzed && self.backend == Backend::Postgres {
                // The claims of a delivery pick its Pending rows through log_by_status in id
                // order only when the planner knows the rows the analysis just wrote: with
                // the statistics of before (autovacuum gathers new ones a minute or more
                // later) it read and sorted every Pending row of the delivery at each claim
                // (measured: 30 ms a claim at 100,000 rows, growing with the delivery). The
                // state has changed: a failure here only leaves the old statistics.
                if let Err(e) = sqlx::query("ANALYZE log_row").execute(&self.write).await {
                    tracing::warn!(error = %e, "campaign: ANALYZE log_row failed");
                }
            }
            return Ok(());
        }
        let actual = self.delivery(id).await?.ok_or(StoreError::NotFound {
            what: "delivery",
            id: id.0,
        })?;
        Err(StoreError::StateConflict {
            id: id.0,
            expected: from.to_vec(),
            actual: actual.state,
        })
    }
}

/// Inserts a delivery and its (zero) counters: a campaign as a Draft, a transactional
/// template's version Running from now on.
pub(super) async fn insert_delivery(
    tx: &mut Tx,
    d: &NewDelivery,
    kind: DeliveryKind,
    now: UnixMillis,
) -> Result<i64, StoreError> {
    let (state, started) = match kind {
        DeliveryKind::Campaign => (DeliveryState::Draft, None),
        DeliveryKind::Transactional => (DeliveryState::Running, Some(ms(now))),
    };
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO delivery (name, from_addr, subject, text_template, html_template, \
         list_id, validity_ms, pool, state, kind, created_at, updated_at, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) RETURNING id",
    )
    .bind(d.name.as_str())
    .bind(d.from.as_str())
    .bind(d.subject.as_str())
    .bind(d.text_template.as_deref())
    .bind(d.html_template.as_deref())
    .bind(d.list.0)
    .bind(ms(d.validity_ms))
    .bind(d.pool.as_deref())
    .bind(delivery_state_code(state))
    .bind(kind.code())
    .bind(ms(now))
    .bind(started)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO kpi (delivery_id) VALUES ($1)")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(id)
}

fn kind_from(v: i64) -> Result<DeliveryKind, StoreError> {
    DeliveryKind::from_code(v).ok_or(StoreError::Corrupt {
        column: "delivery.kind",
        value: v.to_string(),
    })
}

pub(super) fn delivery_from_row(r: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: DeliveryId(r.try_get("id")?),
        name: r.try_get("name")?,
        from: r.try_get("from_addr")?,
        subject: r.try_get("subject")?,
        text_template: r.try_get("text_template")?,
        html_template: r.try_get("html_template")?,
        list: ListId(r.try_get("list_id")?),
        validity_ms: ms_from(r.try_get("validity_ms")?),
        pool: r.try_get("pool")?,
        state: delivery_state_from(r.try_get("state")?)?,
        kind: kind_from(r.try_get("kind")?)?,
        created_at: ms_from(r.try_get("created_at")?),
        updated_at: ms_from(r.try_get("updated_at")?),
        started_at: r.try_get::<Option<i64>, _>("started_at")?.map(ms_from),
        ended_at: r.try_get::<Option<i64>, _>("ended_at")?.map(ms_from),
    })
}
