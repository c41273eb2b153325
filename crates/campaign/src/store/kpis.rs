//! A delivery's counters (model::Kpis), stored. The store changes them in the same transaction
//! as the rows they count, and from the rows themselves: a written row is uncounted as it was
//! and counted as it is, with the rules' own definition of what a row contributes
//! ([`kpi::add_row`]), so the stored counters cannot drift from the rows. Only new quarantines
//! come from the caller ([`super::EventCounters`]). A read is two small queries whatever the
//! number of rows.

use super::codec::{ms_from, reason_from};
use super::events::EventCounters;
use super::{Marks, Store, StoreError, Tx, rows_per_statement, values_list};
use crate::kpi;
use crate::model::{DeliveryId, Kpis, LogRow, LogStatus, UnixMillis};
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

// Column names are the counters' names.
const SCALARS: [&str; 11] = Kpis::COUNTERS;
const PENDING: usize = 1;
const TAKEN: usize = 2;
const NEW_QUARANTINES: usize = 10;

const FAILED_BY_REASON: i64 = 0;
const IGNORED_BY_REASON: i64 = 1;
const FAILED_BY_DOMAIN: i64 = 2;
const SENT_BY_DOMAIN: i64 = 3;
/// Rows whose last failure is `item` (a `failure` id): the qualification table, read without
/// grouping the rows.
pub(super) const BY_FAILURE: i64 = 4;

#[derive(Default)]
struct DeliveryDelta {
    scalars: [i64; SCALARS.len()],
    /// (kind, reason value or domain id) → change.
    breakdown: BTreeMap<(i64, i64), i64>,
}

/// The counter changes of one transaction, by delivery, and its throughput by (delivery,
/// minute): relayed, sent, failed, bytes relayed.
#[derive(Default)]
pub(crate) struct KpiChanges(BTreeMap<i64, DeliveryDelta>, BTreeMap<(i64, i64), [i64; 4]>);

/// The step of the stored throughput (table kpi_minute).
pub(super) const MINUTE_MS: u64 = 60_000;

fn minute(at: UnixMillis) -> i64 {
    i64::try_from(at / MINUTE_MS).unwrap_or(i64::MAX)
}

impl KpiChanges {
    /// Counts a row as it now is (`sign` 1) or uncounts it as it was (`sign` -1);
    /// `domain_id` is the dictionary id of the row's domain.
    pub(crate) fn row(&mut self, row: &LogRow, domain_id: i64, sign: i64) {
        let mut k = Kpis::default();
        kpi::add_row(&mut k, row);
        let d = self.0.entry(row.delivery.0).or_default();
        let values = [
            k.to_deliver,
            k.pending,
            k.taken,
            k.sent,
            k.failed,
            k.ignored,
            k.hard_bounces,
            k.soft_bounces,
            k.complaints,
            k.unsubscribes,
            k.new_quarantines,
        ];
        for (slot, v) in d.scalars.iter_mut().zip(values) {
            *slot += sign * i64::try_from(v).unwrap_or(0);
        }
        let mut add = |kind, item, n: u64| {
            *d.breakdown.entry((kind, item)).or_insert(0) += sign * i64::try_from(n).unwrap_or(0);
        };
        for (reason, n) in k.failed_by_reason {
            add(FAILED_BY_REASON, i64::from(reason), n);
        }
        for (reason, n) in k.ignored_by_reason {
            add(IGNORED_BY_REASON, i64::from(reason), n);
        }
        // A row has one domain: whatever these maps hold is about `domain_id`.
        for n in k.failed_by_domain.into_values() {
            add(FAILED_BY_DOMAIN, domain_id, n);
        }
        for n in k.sent_by_domain.into_values() {
            add(SENT_BY_DOMAIN, domain_id, n);
        }
    }

    /// Counts a row under its last failure (`sign` 1), or uncounts it (-1); nothing for a row
    /// without one.
    pub(crate) fn failure(&mut self, delivery: i64, failure_id: Option<i64>, sign: i64) {
        if let Some(id) = failure_id {
            let d = self.0.entry(delivery).or_default();
            *d.breakdown.entry((BY_FAILURE, id)).or_insert(0) += sign;
        }
    }

    /// Pending rows that became Taken and changed nothing else (what `mark_taken` does).
    pub(crate) fn taken(&mut self, delivery: i64) {
        let d = self.0.entry(delivery).or_default();
        d.scalars[PENDING] -= 1;
        d.scalars[TAKEN] += 1;
    }

    /// A message the MTA took at `at` (or whose id it recorded after an event already moved
    /// the row on): relayed in that minute.
    pub(crate) fn relayed(&mut self, delivery: i64, at: UnixMillis, bytes: u64) {
        let m = self.1.entry((delivery, minute(at))).or_default();
        m[0] += 1;
        m[3] += i64::try_from(bytes).unwrap_or(i64::MAX);
    }

    /// A row that became Sent or Failed: counted in the minute of the event that did it. A
    /// Sent row failed later by an asynchronous bounce counts in both minutes: these are
    /// flows, not states.
    pub(crate) fn flow(&mut self, before: &LogRow, after: &LogRow) {
        let slot = match after.status {
            s if s == before.status => return,
            LogStatus::Sent => 1,
            LogStatus::Failed => 2,
            _ => return,
        };
        let at = minute(after.last_event_at);
        self.1.entry((after.delivery.0, at)).or_default()[slot] += 1;
    }

    pub(crate) fn events(&mut self, delivery: i64, c: &EventCounters) {
        self.0.entry(delivery).or_default().scalars[NEW_QUARANTINES] += c.new_quarantines;
    }

    /// Writes the changes (nothing for a delivery whose changes cancel out): one statement
    /// per delivery for its scalars, and multi-row upserts for the minutes and the breakdown
    /// (a batch of events touches a breakdown line per recipient domain: one statement each
    /// was a round trip each).
    pub(crate) async fn apply(&self, tx: &mut Tx) -> Result<(), StoreError> {
        let minutes: Vec<[i64; 6]> = self
            .1
            .iter()
            .map(|(&(delivery, minute), v)| [delivery, minute, v[0], v[1], v[2], v[3]])
            .collect();
        upsert(
            tx,
            "INSERT INTO kpi_minute (delivery_id, minute, relayed, sent, failed, bytes) VALUES",
            "ON CONFLICT (delivery_id, minute) DO UPDATE SET \
             relayed = kpi_minute.relayed + excluded.relayed, \
             sent = kpi_minute.sent + excluded.sent, \
             failed = kpi_minute.failed + excluded.failed, \
             bytes = kpi_minute.bytes + excluded.bytes",
            &minutes,
        )
        .await?;
        let mut lines: Vec<[i64; 4]> = Vec::new();
        for (delivery, d) in &self.0 {
            let changed: Vec<usize> = (0..SCALARS.len()).filter(|&i| d.scalars[i] != 0).collect();
            if !changed.is_empty() {
                let sets: Vec<String> = changed
                    .iter()
                    .enumerate()
                    .map(|(n, &i)| format!("{0} = {0} + ${1}", SCALARS[i], n + 2))
                    .collect();
                let sql = format!("UPDATE kpi SET {} WHERE delivery_id = $1", sets.join(", "));
                let mut q = sqlx::query(AssertSqlSafe(sql)).bind(*delivery);
                for &i in &changed {
                    q = q.bind(d.scalars[i]);
                }
                q.execute(&mut **tx).await?;
            }
            lines.extend(
                d.breakdown
                    .iter()
                    .filter(|(_, change)| **change != 0)
                    .map(|(&(kind, item), &change)| [*delivery, kind, item, change]),
            );
        }
        upsert(
            tx,
            "INSERT INTO kpi_breakdown (delivery_id, kind, item, count) VALUES",
            "ON CONFLICT (delivery_id, kind, item) \
             DO UPDATE SET count = kpi_breakdown.count + excluded.count",
            &lines,
        )
        .await
    }
}

/// `insert VALUES (…),(…) conflict` over `rows`, in runs of a few hundred parameters. The keys
/// of `rows` are distinct (PostgreSQL refuses a statement that updates a row twice) and in
/// key order, so that concurrent transactions lock the counters they share in the same order.
async fn upsert<const N: usize>(
    tx: &mut Tx,
    insert: &str,
    conflict: &str,
    rows: &[[i64; N]],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(rows_per_statement(N)) {
        let sql = format!(
            "{insert} {} {conflict}",
            values_list(Marks::of(tx), chunk.len(), N)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for v in chunk.iter().flatten() {
            q = q.bind(*v);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// The counters of a delivery, with the by-reason and by-domain breakdowns.
    pub async fn kpis(&self, delivery: DeliveryId) -> Result<Kpis, StoreError> {
        let mut k = self.counters(delivery).await?;
        self.read_breakdown(delivery, &mut k).await?;
        Ok(k)
    }

    /// The scalar counters only (breakdowns left empty): what the finish check after each
    /// event batch needs, without the breakdown join.
    pub async fn counters(&self, delivery: DeliveryId) -> Result<Kpis, StoreError> {
        let sql = format!(
            "SELECT {} FROM kpi WHERE delivery_id = $1",
            SCALARS.join(", ")
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(delivery.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(StoreError::NotFound {
                what: "delivery",
                id: delivery.0,
            })?;
        let mut v = [0_u64; SCALARS.len()];
        for (i, slot) in v.iter_mut().enumerate() {
            *slot = ms_from(row.try_get(i)?);
        }
        Ok(Kpis {
            to_deliver: v[0],
            pending: v[1],
            taken: v[2],
            sent: v[3],
            failed: v[4],
            ignored: v[5],
            hard_bounces: v[6],
            soft_bounces: v[7],
            complaints: v[8],
            unsubscribes: v[9],
            new_quarantines: v[10],
            ..Kpis::default()
        })
    }

    async fn read_breakdown(&self, delivery: DeliveryId, k: &mut Kpis) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT b.kind, b.item, b.count, d.name FROM kpi_breakdown b \
             LEFT JOIN domain d ON d.id = b.item AND b.kind IN (2, 3) \
             WHERE b.delivery_id = $1 AND b.kind < 4 AND b.count > 0",
        )
        .bind(delivery.0)
        .fetch_all(&self.read)
        .await?;
        for row in rows {
            let kind: i64 = row.try_get("kind")?;
            let item: i64 = row.try_get("item")?;
            let count = ms_from(row.try_get("count")?);
            let domain = || -> Result<String, StoreError> {
                Ok(row
                    .try_get::<Option<String>, _>("name")?
                    .unwrap_or_default())
            };
            match kind {
                FAILED_BY_REASON => {
                    k.failed_by_reason.insert(reason_from(item)?.value(), count);
                }
                IGNORED_BY_REASON => {
                    k.ignored_by_reason
                        .insert(reason_from(item)?.value(), count);
                }
                FAILED_BY_DOMAIN => {
                    k.failed_by_domain.insert(domain()?, count);
                }
                SENT_BY_DOMAIN => {
                    k.sent_by_domain.insert(domain()?, count);
                }
                other => {
                    return Err(StoreError::Corrupt {
                        column: "kpi_breakdown.kind",
                        value: other.to_string(),
                    });
                }
            }
        }
        Ok(())
    }
}
