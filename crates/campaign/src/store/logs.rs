//! Delivery log rows: insertion (analysis output), claiming Pending rows to send, marking them
//! Taken, reading them back, and writing changed rows with their counter changes.

use super::codec::{
    FailureIds, MAX_EVENTS_KEPT, decode_attempts, decode_events, domain_ids, encode_attempts,
    encode_events, failure_from_row, join_message_id, ms, ms_from, split_message_id, status_from,
};
use super::kpis::KpiChanges;
use super::{
    Backend, Marks, Param, Store, StoreError, Tx, check_limit, in_list, rows_per_statement,
    statement_chunks, values_list, wire_len,
};
use crate::model::{DeliveryId, Feedback, LogId, LogRow, RecipientId, UnixMillis};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// Ids per `IN` list: as many as [`MAX_PARAMS`](super::MAX_PARAMS) allows (8-byte integers stay
/// under PostgreSQL's byte bound): a claim of 500 rows reads them back in one statement.
const ID_CHUNK: usize = rows_per_statement(1);

/// The row as the model has it, joined with its domain and failure.
pub(super) const SELECT_ROWS: &str = "SELECT l.id, l.delivery_id, l.recipient_id, l.status, l.feedback, l.domain_id, \
     l.last_event_at, l.address, l.mta_id, l.message_id, l.attempts, l.events, l.failure_id, \
     d.name AS domain, \
     f.ftype, f.reason AS freason, f.class, f.text, f.rule \
     FROM log_row l JOIN domain d ON d.id = l.domain_id LEFT JOIN failure f ON f.id = l.failure_id";

/// The insert of new rows, before its `VALUES`: [`bind_new_row`] binds one row's 12 values.
pub(super) const INSERT_ROWS: &str = "INSERT INTO log_row (delivery_id, recipient_id, status, \
     feedback, reason, domain_id, failure_id, last_event_at, address, mta_id, message_id, attempts)";

/// [`INSERT_ROWS`] with the id first, for rows whose ids were reserved: bind the id, then
/// [`bind_new_row`].
pub(super) const INSERT_ROWS_WITH_ID: &str = "INSERT INTO log_row (id, delivery_id, recipient_id, \
     status, feedback, reason, domain_id, failure_id, last_event_at, address, mta_id, message_id, \
     attempts)";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds a new row's values in the order of [`INSERT_ROWS`].
pub(super) fn bind_new_row<'q>(
    q: AnyQuery<'q>,
    r: &'q LogRow,
    domain_id: i64,
    failure_id: Option<i64>,
    attempts: Option<Vec<u8>>,
) -> AnyQuery<'q> {
    let (mta_id, message_id) = split_message_id(r.message_id.as_deref());
    q.bind(r.delivery.0)
        .bind(r.recipient.map(|id| id.0))
        .bind(i64::from(r.status.as_u8()))
        .bind(i64::from(r.feedback.bits()))
        .bind(r.failure.as_ref().map(|f| i64::from(f.reason.value())))
        .bind(domain_id)
        .bind(failure_id)
        .bind(ms(r.last_event_at))
        .bind(r.address.as_str())
        .bind(mta_id)
        .bind(message_id)
        .bind(attempts)
}

/// Which Pending rows a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Unclaimed, or whose lease ended.
    Free,
    /// Claimed, whatever the lease.
    Interrupted,
}

/// A claimed batch, in id order, and when each transactional call among it was made (read in
/// the claim's own transaction, so the sender needs no second query per batch).
#[derive(Debug, Default)]
pub struct Claimed {
    pub rows: Vec<LogRow>,
    /// Calls only, and only when the claim asked for them.
    pub made: HashMap<LogId, UnixMillis>,
}

/// A row the MTA took, with the message id it gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub id: LogId,
    pub message_id: String,
    /// When the MTA took it, and the message's size: the relayed throughput (SPEC §3.6).
    pub at: UnixMillis,
    pub bytes: u64,
}

/// A row as stored: the model's row plus what the counters need.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    pub row: LogRow,
    pub domain_id: i64,
    /// The `failure` id of its last failure.
    pub failure_id: Option<i64>,
    /// Hashes of the events applied to the row, oldest first.
    pub events: Vec<i64>,
}

impl Store {
    /// Inserts rows (analysis output) and counts them, in one transaction. Ids are assigned by
    /// the database: the rows' `id` fields are ignored. Returns how many were inserted.
    pub async fn insert_log_rows(&self, rows: &[LogRow]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let names: Vec<&str> = rows.iter().map(|r| r.domain.as_str()).collect();
        let domains = domain_ids(&mut tx, &names).await?;
        let mut failures = FailureIds::default();
        let mut kpi = KpiChanges::default();
        let encoded: Vec<(&LogRow, Option<Vec<u8>>)> = rows
            .iter()
            .map(|r| (r, encode_attempts(&r.attempts, r.last_event_at)))
            .collect();
        let bytes = |(r, attempts): &(&LogRow, Option<Vec<u8>>)| {
            row_bytes(r, 12) + attempts.as_ref().map_or(0, Vec::len)
        };
        for chunk in statement_chunks(self.backend, &encoded, 12, bytes) {
            let wanted: Vec<_> = chunk.iter().map(|(r, _)| r.failure.as_ref()).collect();
            let failure_ids = failures.ids(&mut tx, &wanted).await?;
            let sql = format!(
                "{INSERT_ROWS} VALUES {}",
                values_list(Marks::of(&tx), chunk.len(), 12)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for ((r, attempts), failure_id) in chunk.iter().zip(failure_ids) {
                let domain_id = domains.get(r.domain.as_str()).copied().unwrap_or_default();
                kpi.row(r, domain_id, 1);
                kpi.failure(r.delivery.0, failure_id, 1);
                q = bind_new_row(q, r, domain_id, failure_id, attempts.clone());
            }
            q.execute(&mut *tx).await?;
        }
        kpi.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }

    /// Claims up to `limit` Pending rows of a delivery to hand to the MTA, in id order, with a
    /// lease until `now + lease_ms`: another claim skips them until the lease ends, which is
    /// how rows claimed by a sender that crashed before marking them Taken come back. On
    /// PostgreSQL the candidates are locked with `FOR UPDATE SKIP LOCKED`, so concurrent
    /// claimers on several nodes never wait on nor take the same rows; on SQLite the single
    /// writer serializes claims.
    pub async fn claim_pending(
        &self,
        delivery: DeliveryId,
        limit: u32,
        now: UnixMillis,
        lease_ms: u64,
    ) -> Result<Vec<LogRow>, StoreError> {
        self.claim(Claim::Free, delivery, limit, now, lease_ms)
            .await
    }

    /// Claims Pending rows that carry a claim, expired or not: rows a sender claimed and may
    /// have handed to the MTA before it stopped (a crash, a stop). Only for a delivery no
    /// sender works on any more (a stopped one), whose interrupted hand-overs are finished
    /// before the rest is cancelled.
    pub async fn claim_interrupted(
        &self,
        delivery: DeliveryId,
        limit: u32,
        now: UnixMillis,
        lease_ms: u64,
    ) -> Result<Vec<LogRow>, StoreError> {
        self.claim(Claim::Interrupted, delivery, limit, now, lease_ms)
            .await
    }

    /// Claims as [`Store::claim_pending`] or [`Store::claim_interrupted`] do, and with `calls`
    /// also reads when each claimed transactional call was made: a call's validity counts from
    /// then, however long it waited in the outbox.
    pub async fn claim_to_send(
        &self,
        which: Claim,
        delivery: DeliveryId,
        batch: ClaimBatch,
        calls: bool,
    ) -> Result<Claimed, StoreError> {
        let mut tx = self.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(self.claim_sql(which)))
            .bind(ms(batch.now.saturating_add(batch.lease_ms)))
            .bind(delivery.0)
            .bind(ms(batch.now))
            .bind(check_limit(batch.limit)?)
            .fetch_all(&mut *tx)
            .await?;
        let mut rows = fetch_rows(&mut tx, &ids, "").await?;
        let made = if calls {
            call_times(&mut tx, &ids).await?
        } else {
            HashMap::new()
        };
        tx.commit().await?;
        rows.sort_by_key(|s| s.row.id);
        Ok(Claimed {
            rows: rows.into_iter().map(|s| s.row).collect(),
            made,
        })
    }

    async fn claim(
        &self,
        which: Claim,
        delivery: DeliveryId,
        limit: u32,
        now: UnixMillis,
        lease_ms: u64,
    ) -> Result<Vec<LogRow>, StoreError> {
        let batch = ClaimBatch {
            limit,
            now,
            lease_ms,
        };
        Ok(self
            .claim_to_send(which, delivery, batch, false)
            .await?
            .rows)
    }

    /// Forgets every claim: on SQLite one process owns the database, so at its start no
    /// sender is running and claims left by a crash can be taken again at once instead of
    /// after their lease. Returns how many rows were claimed.
    pub async fn release_all_claims(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE log_row SET claim_until = NULL WHERE status = 0 AND status <> 2 \
             AND claim_until IS NOT NULL",
        )
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }

    /// Deletes a delivery's rows and zeroes its counters: a new analysis replaces the last
    /// (or the part a crash left).
    pub async fn reset_log(&self, delivery: DeliveryId) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for sql in [
            "DELETE FROM log_row WHERE delivery_id = $1",
            "DELETE FROM kpi_breakdown WHERE delivery_id = $1",
            "DELETE FROM kpi_minute WHERE delivery_id = $1",
            "DELETE FROM kpi WHERE delivery_id = $1",
            "INSERT INTO kpi (delivery_id) VALUES ($1)",
        ] {
            sqlx::query(sql).bind(delivery.0).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// SQLite: `status <> 2` repeats what `status = 0` implies so that SQLite sees that the
    /// partial index log_by_status applies (without it the claim walks every row of the
    /// delivery).
    ///
    /// PostgreSQL: `status < 1` (Pending, the lowest code) ordered by `status, id` is the same
    /// claim in a form only log_by_status serves without a sort. With `status = 0 ... ORDER BY
    /// id` the planner walked the primary key (or log_by_delivery) and filtered, which costs
    /// nothing while the delivery is all Pending, as its statistics say after the analysis,
    /// and then every Sent row before the first Pending one at each claim (measured: 30 ms a
    /// claim halfway through 100,000 rows). `= ANY(ARRAY(…))` keeps the outer update on the
    /// primary key: with `IN (…)` it hashed the 500 ids and scanned the whole table.
    fn claim_sql(&self, which: Claim) -> String {
        // $3 is bound either way so both forms take the same parameters.
        let claimable = match which {
            Claim::Free => "(claim_until IS NULL OR claim_until <= $3)",
            Claim::Interrupted => "claim_until IS NOT NULL AND $3 = $3",
        };
        match self.backend {
            Backend::Sqlite => format!(
                "UPDATE log_row SET claim_until = $1 WHERE id IN (SELECT id FROM log_row \
                 WHERE delivery_id = $2 AND status = 0 AND status <> 2 AND {claimable} \
                 ORDER BY id LIMIT $4) RETURNING id"
            ),
            Backend::Postgres => format!(
                "UPDATE log_row SET claim_until = $1 WHERE id = ANY(ARRAY(SELECT id FROM log_row \
                 WHERE delivery_id = $2 AND status < 1 AND {claimable} \
                 ORDER BY status, id LIMIT $4 FOR UPDATE SKIP LOCKED)) RETURNING id"
            ),
        }
    }

    /// SQLite's plan for a claim, as [`Store::explain_log_listing`] gives it for listings.
    #[doc(hidden)]
    pub async fn explain_claim(&self) -> Result<String, StoreError> {
        let params = [Param::Int(0), Param::Int(1), Param::Int(0), Param::Int(10)];
        self.explain(&self.claim_sql(Claim::Free), &params).await
    }

    /// Gives claimed rows back before their lease ends (the MTA refused them for now).
    pub async fn release_claims(&self, ids: &[LogId]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for chunk in ids.chunks(ID_CHUNK) {
            let sql = format!(
                "UPDATE log_row SET claim_until = NULL WHERE status = 0 AND id IN ({})",
                in_list(Marks::of(&tx), 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.0);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the MTA's message ids; rows still Pending become Taken (counted). A row an
    /// event already moved further only gets its message id. Returns how many became Taken.
    pub async fn mark_taken(&self, taken: &[Taken]) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let mut kpi = KpiChanges::default();
        let mut moved = 0;
        let bytes = |t: &Taken| 3 * wire_len(8) + t.message_id.len();
        for chunk in statement_chunks(self.backend, taken, 3, bytes) {
            let with = format!(
                "WITH v(id, mta_id, message_id) AS (VALUES {})",
                values_list(Marks::of(&tx), chunk.len(), 3)
            );
            let by_id: HashMap<i64, &Taken> = chunk.iter().map(|t| (t.id.0, t)).collect();
            let sql = format!(
                "{with} UPDATE log_row SET status = 1, mta_id = v.mta_id, \
                 message_id = v.message_id, claim_until = NULL \
                 FROM v WHERE log_row.id = v.id AND log_row.status = 0 \
                 RETURNING log_row.id, delivery_id"
            );
            let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
            for t in chunk {
                let (mta_id, text) = split_message_id(Some(&t.message_id));
                q = q.bind(t.id.0).bind(mta_id).bind(text);
            }
            for (id, delivery) in q.fetch_all(&mut *tx).await? {
                moved += 1;
                kpi.taken(delivery);
                if let Some(t) = by_id.get(&id) {
                    kpi.relayed(delivery, t.at, t.bytes);
                }
            }
            // Rows an event moved on before the MTA's answer was recorded: relayed all the same.
            let sql = format!(
                "{with} UPDATE log_row SET mta_id = v.mta_id, message_id = v.message_id FROM v \
                 WHERE log_row.id = v.id AND log_row.mta_id IS NULL \
                 AND log_row.message_id IS NULL RETURNING log_row.id, delivery_id"
            );
            let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
            for t in chunk {
                let (mta_id, text) = split_message_id(Some(&t.message_id));
                q = q.bind(t.id.0).bind(mta_id).bind(text);
            }
            for (id, delivery) in q.fetch_all(&mut *tx).await? {
                if let Some(t) = by_id.get(&id) {
                    kpi.relayed(delivery, t.at, t.bytes);
                }
            }
        }
        kpi.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// The rows the MTA took under these message ids (the MTA's 16-hex-digit form; other ids
    /// find nothing), as (message id, row id) pairs. Reports that carry only the message id
    /// (inMail) find their row through this; the campaign injects one recipient per message.
    pub async fn rows_by_message(
        &self,
        message_ids: &[&str],
    ) -> Result<Vec<(String, LogId)>, StoreError> {
        let numbers: Vec<i64> = message_ids
            .iter()
            .filter_map(|m| split_message_id(Some(m)).0)
            .collect();
        let mut out = Vec::with_capacity(numbers.len());
        for chunk in numbers.chunks(ID_CHUNK) {
            let sql = format!(
                "SELECT id, mta_id FROM log_row WHERE mta_id IN ({})",
                in_list(self.marks(), 1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
            for n in chunk {
                q = q.bind(*n);
            }
            for (id, mta_id) in q.fetch_all(&self.read).await? {
                if let Some(m) = join_message_id(Some(mta_id), None) {
                    out.push((m, LogId(id)));
                }
            }
        }
        Ok(out)
    }

    /// The rows with these ids (those that exist), in id order.
    pub async fn load_rows(&self, ids: &[LogId]) -> Result<Vec<LogRow>, StoreError> {
        let raw: Vec<i64> = ids.iter().map(|i| i.0).collect();
        let mut conn = self.read.acquire().await?;
        let mut rows = fetch_rows(&mut conn, &raw, "").await?;
        rows.sort_by_key(|s| s.row.id);
        Ok(rows.into_iter().map(|s| s.row).collect())
    }

    /// Writes changed rows (a stop that cancels Pending rows, an injection the MTA refused)
    /// with their counter changes, in one transaction. Event ingestion uses
    /// [`Store::apply_event_batch`] instead.
    pub async fn update_rows(&self, rows: &[LogRow]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id.0).collect();
        let lock = self.lock_log_rows();
        let before: HashMap<i64, Stored> = fetch_rows(&mut tx, &ids, lock)
            .await?
            .into_iter()
            .map(|s| (s.row.id.0, s))
            .collect();
        let mut kpi = KpiChanges::default();
        write_rows(&mut tx, &before, rows, &HashMap::new(), &mut kpi).await?;
        kpi.apply(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The lock clause for reading log rows one is about to change.
    pub(super) fn lock_log_rows(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE OF l",
        }
    }
}

/// Rows by id (chunked `IN` lists), with `lock` appended to each query.
/// How many rows a claim takes, at what time, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct ClaimBatch {
    pub limit: u32,
    pub now: UnixMillis,
    pub lease_ms: u64,
}

/// When each of these calls was made (calls only; other rows are left out).
async fn call_times(
    conn: &mut AnyConnection,
    ids: &[i64],
) -> Result<HashMap<LogId, UnixMillis>, StoreError> {
    let mut out = HashMap::with_capacity(ids.len());
    let sql =
        |list: &str| format!("SELECT log_id, created_at FROM tx_call WHERE log_id IN ({list})");
    select_by_ids(conn, ids, sql, |r| {
        out.insert(
            LogId(r.try_get("log_id")?),
            ms_from(r.try_get("created_at")?),
        );
        Ok(())
    })
    .await?;
    Ok(out)
}

pub(super) async fn fetch_rows(
    conn: &mut AnyConnection,
    ids: &[i64],
    lock: &str,
) -> Result<Vec<Stored>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    let sql = |list: &str| format!("{SELECT_ROWS} WHERE l.id IN ({list}){lock}");
    select_by_ids(conn, ids, sql, |r| {
        out.push(stored_from_row(r)?);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Runs the select `sql` makes around an `IN` list of placeholders over `ids`, as many
/// statements as the parameter bound needs, and hands each row to `each`.
async fn select_by_ids(
    conn: &mut AnyConnection,
    ids: &[i64],
    sql: impl Fn(&str) -> String,
    mut each: impl FnMut(&AnyRow) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for chunk in ids.chunks(ID_CHUNK) {
        let sql = sql(&in_list(Marks::of(conn), 1, chunk.len()));
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut *conn).await? {
            each(&row)?;
        }
    }
    Ok(())
}

pub(super) fn stored_from_row(r: &AnyRow) -> Result<Stored, StoreError> {
    let last_event_at = ms_from(r.try_get("last_event_at")?);
    let attempts: Option<Vec<u8>> = r.try_get("attempts")?;
    let events: Option<Vec<u8>> = r.try_get("events")?;
    Ok(Stored {
        row: LogRow {
            id: LogId(r.try_get("id")?),
            delivery: DeliveryId(r.try_get("delivery_id")?),
            recipient: r
                .try_get::<Option<i64>, _>("recipient_id")?
                .map(RecipientId),
            address: r.try_get("address")?,
            domain: r.try_get("domain")?,
            status: status_from(r.try_get("status")?)?,
            failure: failure_from_row(r)?,
            message_id: join_message_id(r.try_get("mta_id")?, r.try_get("message_id")?),
            last_event_at,
            attempts: decode_attempts(attempts.as_deref(), last_event_at)?,
            feedback: Feedback::from_bits(
                u8::try_from(r.try_get::<i64, _>("feedback")?).unwrap_or_default(),
            ),
        },
        domain_id: r.try_get("domain_id")?,
        failure_id: r.try_get("failure_id")?,
        events: decode_events(events.as_deref())?,
    })
}

/// Writes `after` over the stored `before` rows, appends `new_events` (hashes by row id) to
/// the rows' applied events, and adds the counter changes to `kpi`. A row keeps its delivery,
/// address and domain: changing them is refused.
pub(super) async fn write_rows(
    tx: &mut Tx,
    before: &HashMap<i64, Stored>,
    after: &[LogRow],
    new_events: &HashMap<i64, Vec<i64>>,
    kpi: &mut KpiChanges,
) -> Result<(), StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(after.len());
    if let Some(dup) = after.iter().find(|r| !seen.insert(r.id)) {
        // Counting a row's old status out twice would make the counters drift.
        return Err(StoreError::Invalid(format!(
            "log row {} is written twice in one batch",
            dup.id.0
        )));
    }
    // Counted and encoded first: the statements are cut by the size of what they bind.
    let mut encoded = Vec::with_capacity(after.len());
    for r in after {
        let old = unchanged_identity(before, r)?;
        kpi.row(&old.row, old.domain_id, -1);
        kpi.failure(old.row.delivery.0, old.failure_id, -1);
        kpi.row(r, old.domain_id, 1);
        kpi.flow(&old.row, r);
        let mut events = old.events.clone();
        events.extend(new_events.get(&r.id.0).into_iter().flatten());
        let keep_from = events.len().saturating_sub(MAX_EVENTS_KEPT);
        let attempts = encode_attempts(&r.attempts, r.last_event_at);
        encoded.push((r, encode_events(&events[keep_from..]), attempts));
    }
    let bytes = |(r, events, attempts): &Encoded| {
        row_bytes(r, 10)
            + events.as_ref().map_or(0, Vec::len)
            + attempts.as_ref().map_or(0, Vec::len)
    };
    let mut failures = FailureIds::default();
    for chunk in statement_chunks(Backend::of(tx), &encoded, 10, bytes) {
        let wanted: Vec<_> = chunk.iter().map(|(r, _, _)| r.failure.as_ref()).collect();
        let failure_ids = failures.ids(tx, &wanted).await?;
        let sql = format!(
            "WITH v(id, status, feedback, reason, failure_id, mta_id, message_id, last_event_at, \
             attempts, events) AS (VALUES {}) UPDATE log_row SET status = v.status, \
             feedback = v.feedback, reason = v.reason, \
             failure_id = v.failure_id, mta_id = v.mta_id, message_id = v.message_id, \
             last_event_at = v.last_event_at, attempts = v.attempts, events = v.events, \
             claim_until = CASE WHEN v.status = 0 THEN log_row.claim_until END \
             FROM v WHERE log_row.id = v.id",
            values_list(Marks::of(tx), chunk.len(), 10)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for ((r, events, attempts), failure_id) in chunk.iter().zip(failure_ids) {
            kpi.failure(r.delivery.0, failure_id, 1);
            let (mta_id, message_id) = split_message_id(r.message_id.as_deref());
            q = q
                .bind(r.id.0)
                .bind(i64::from(r.status.as_u8()))
                .bind(i64::from(r.feedback.bits()))
                .bind(r.failure.as_ref().map(|f| i64::from(f.reason.value())))
                .bind(failure_id)
                .bind(mta_id)
                .bind(message_id)
                .bind(ms(r.last_event_at))
                .bind(attempts.clone())
                .bind(events.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A row to write with its applied events and attempts encoded.
type Encoded<'a> = (&'a LogRow, Option<Vec<u8>>, Option<Vec<u8>>);

/// What a row's `cols` bound values take on the wire, blobs aside (the caller adds them):
/// integers count 8 bytes, texts their length.
fn row_bytes(r: &LogRow, cols: usize) -> usize {
    cols * wire_len(8) + r.address.len() + r.message_id.as_ref().map_or(0, String::len)
}

/// The stored row `r` replaces, provided `r` keeps its delivery, address and domain.
fn unchanged_identity<'a>(
    before: &'a HashMap<i64, Stored>,
    r: &LogRow,
) -> Result<&'a Stored, StoreError> {
    let old = before.get(&r.id.0).ok_or(StoreError::NotFound {
        what: "log row",
        id: r.id.0,
    })?;
    if old.row.delivery != r.delivery || old.row.address != r.address || old.row.domain != r.domain
    {
        return Err(StoreError::Invalid(format!(
            "log row {} cannot change its delivery, address or domain",
            r.id.0
        )));
    }
    Ok(old)
}
