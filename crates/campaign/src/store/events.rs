//! Applying a batch of MTA events: one transaction loads the rows and address states the events
//! concern, tells which events were already applied, lets the caller's pure rules compute the
//! new state, and writes rows, address states, counters and the applied event keys together.
//! A failure anywhere rolls all of it back, so a retried batch starts from the same state.

use super::codec::fnv1a;
use super::kpis::KpiChanges;
use super::logs::{fetch_rows, write_rows};
use super::{Store, StoreError, Tx, values_list};
use crate::model::{AddressState, DeliveryId, LogId, LogRow, UnixMillis};
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One event as it concerns one row: events are idempotent by (row, event id).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventKey {
    pub row: LogId,
    pub event_id: String,
}

impl EventKey {
    fn hash(&self) -> i64 {
        fnv1a(&[self.event_id.as_bytes()])
    }
}

/// Counter changes that follow from events rather than from row statuses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounters {
    pub hard_bounces: i64,
    pub soft_bounces: i64,
    pub complaints: i64,
    pub unsubscribes: i64,
    pub new_quarantines: i64,
}

/// What the rules see: the rows the events name (as stored, locked on PostgreSQL), the address
/// states of their addresses (lower-cased keys; absent means never seen), and the events of
/// the batch that were already applied.
#[derive(Debug, Clone, Default)]
pub struct EventBatch {
    pub rows: BTreeMap<LogId, LogRow>,
    pub addresses: BTreeMap<String, AddressState>,
    pub already_applied: BTreeSet<EventKey>,
}

/// What the rules decided. Rows and address states are written as given; the per-status
/// counters and breakdowns follow from the rows' old and new statuses; `counters` adds the
/// event-driven ones; `applied` are the keys to remember (an already applied key here fails
/// the whole batch).
#[derive(Debug, Clone, Default)]
pub struct EventBatchChanges {
    pub rows: Vec<LogRow>,
    pub addresses: Vec<AddressState>,
    pub counters: BTreeMap<DeliveryId, EventCounters>,
    pub applied: Vec<EventKey>,
}

impl Store {
    /// Applies a batch of events atomically (see the module doc). `keys` name the events of
    /// the batch and so the rows to load; `rules` computes the changes.
    pub async fn apply_event_batch<F>(&self, keys: &[EventKey], rules: F) -> Result<(), StoreError>
    where
        F: FnOnce(EventBatch) -> EventBatchChanges,
    {
        let mut tx = self.begin().await?;
        let mut ids: Vec<i64> = keys.iter().map(|k| k.row.0).collect();
        ids.sort_unstable();
        ids.dedup();
        let stored = fetch_rows(&mut tx, &ids, self.lock_log_rows()).await?;
        let mut addresses: Vec<String> = stored
            .iter()
            .map(|s| s.row.address.to_lowercase())
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let batch = EventBatch {
            rows: stored.iter().map(|s| (s.row.id, s.row.clone())).collect(),
            addresses: self.address_states_in(&mut tx, &addresses).await?,
            already_applied: applied_among(&mut tx, keys).await?,
        };
        let changes = rules(batch);
        let before: HashMap<i64, _> = stored.into_iter().map(|s| (s.row.id.0, s)).collect();
        let mut kpi = KpiChanges::default();
        write_rows(&mut tx, &before, &changes.rows, &mut kpi).await?;
        for (delivery, c) in &changes.counters {
            kpi.events(delivery.0, c);
        }
        kpi.apply(&mut tx).await?;
        self.write_address_states(&mut tx, &changes.addresses)
            .await?;
        remember(&mut tx, &changes.applied).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the applied-event keys of deliveries that ended before `ended_before`: an event
    /// replayed later is applied again (the log rules still never let it undo a newer final
    /// state). Returns how many keys went.
    pub async fn prune_processed_events(
        &self,
        ended_before: UnixMillis,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM processed_event WHERE log_id IN (SELECT l.id FROM log_row l \
             JOIN delivery d ON d.id = l.delivery_id \
             WHERE d.ended_at IS NOT NULL AND d.ended_at < $1)",
        )
        .bind(super::codec::ms(ended_before))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

/// Which of `keys` are recorded as applied.
async fn applied_among(tx: &mut Tx, keys: &[EventKey]) -> Result<BTreeSet<EventKey>, StoreError> {
    let by_pair: HashMap<(i64, i64), &EventKey> =
        keys.iter().map(|k| ((k.row.0, k.hash()), k)).collect();
    let pairs: Vec<(i64, i64)> = by_pair.keys().copied().collect();
    let mut out = BTreeSet::new();
    for chunk in pairs.chunks(250) {
        let sql = format!(
            "WITH k(log_id, event_hash) AS (VALUES {}) SELECT p.log_id, p.event_hash \
             FROM processed_event p JOIN k ON k.log_id = p.log_id AND k.event_hash = p.event_hash",
            values_list(1, chunk.len(), 2)
        );
        let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
        for (row, hash) in chunk {
            q = q.bind(*row).bind(*hash);
        }
        for pair in q.fetch_all(&mut **tx).await? {
            if let Some(k) = by_pair.get(&pair) {
                out.insert((*k).clone());
            }
        }
    }
    Ok(out)
}

/// Records keys as applied; a key already there (or twice in the batch: the rules must fold
/// duplicates within a batch) is a unique violation that fails the batch.
async fn remember(tx: &mut Tx, keys: &[EventKey]) -> Result<(), StoreError> {
    for chunk in keys.chunks(250) {
        let sql = format!(
            "INSERT INTO processed_event (log_id, event_hash) VALUES {}",
            values_list(1, chunk.len(), 2)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for k in chunk {
            q = q.bind(k.row.0).bind(k.hash());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
