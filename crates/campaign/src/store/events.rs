//! Applying a batch of MTA events: one transaction loads the rows and address states the events
//! concern, tells which events were already applied, lets the caller's pure rules compute the
//! new state, and writes rows, address states, counters and the applied event keys together.
//! A failure anywhere rolls all of it back, so a retried batch starts from the same state.
//!
//! Applied events are remembered in the row itself, as 64-bit hashes of their ids (the last
//! [`MAX_EVENTS_KEPT`](super::codec::MAX_EVENTS_KEPT)): 8 bytes an event, read with the row at
//! no extra query, and gone with the row. A hash collision would have to happen between two
//! events of the same row.

use super::codec::{fnv1a, ms};
use super::kpis::KpiChanges;
use super::logs::{Stored, fetch_rows, write_rows};
use super::{Store, StoreError};
use crate::model::{AddressState, DeliveryId, LogId, LogRow, UnixMillis};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

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

/// Counter changes that follow from events rather than from rows: every other counter is a sum
/// over the rows' states (docs/campaign.md, "KPIs") and follows the rows written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounters {
    /// Addresses this delivery's events put in Quarantine or Denylisted.
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

/// What the rules decided. Rows and address states are written as given; the counters follow
/// from the rows' old and new states; `counters` adds the event-driven ones; `applied` are the keys to remember (an already applied key here fails
/// the whole batch: the rules must skip [`EventBatch::already_applied`] and fold duplicates
/// within a batch).
#[derive(Debug, Clone, Default)]
pub struct EventBatchChanges {
    pub rows: Vec<LogRow>,
    pub addresses: Vec<AddressState>,
    pub counters: BTreeMap<DeliveryId, EventCounters>,
    pub applied: Vec<EventKey>,
}

impl Store {
    /// Applies a batch of events atomically (see the module doc). `keys` name the events of
    /// the batch and so the rows to load; `rules` computes the changes. A key in
    /// [`EventBatchChanges::applied`] that was already applied (or is there twice) fails the
    /// batch with [`StoreError::Invalid`], as does a key or row the batch did not load.
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
        let before: HashMap<i64, Stored> = stored.into_iter().map(|s| (s.row.id.0, s)).collect();
        let batch = EventBatch {
            rows: before.values().map(|s| (s.row.id, s.row.clone())).collect(),
            addresses: self.address_states_in(&mut tx, &addresses).await?,
            already_applied: keys
                .iter()
                .filter(|k| {
                    before
                        .get(&k.row.0)
                        .is_some_and(|s| s.events.contains(&k.hash()))
                })
                .cloned()
                .collect(),
        };
        let changes = rules(batch);
        let new_events = new_event_hashes(&before, &changes.applied)?;
        // A row whose event changed nothing is still written: it must remember the event.
        let mut rows = changes.rows;
        let changed: HashSet<i64> = rows.iter().map(|r| r.id.0).collect();
        for id in new_events.keys().filter(|id| !changed.contains(id)) {
            rows.extend(before.get(id).map(|s| s.row.clone()));
        }
        let mut kpi = KpiChanges::default();
        write_rows(&mut tx, &before, &rows, &new_events, &mut kpi).await?;
        for (delivery, c) in &changes.counters {
            kpi.events(delivery.0, c);
        }
        kpi.apply(&mut tx).await?;
        self.write_address_states(&mut tx, &changes.addresses)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the applied events of deliveries that ended before `ended_before`: an event
    /// replayed later is applied again (the log rules still never let it undo a newer final
    /// state). Returns how many rows forgot theirs.
    pub async fn prune_processed_events(
        &self,
        ended_before: UnixMillis,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE log_row SET events = NULL WHERE events IS NOT NULL AND delivery_id IN \
             (SELECT id FROM delivery WHERE ended_at IS NOT NULL AND ended_at < $1)",
        )
        .bind(ms(ended_before))
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected())
    }
}

/// The hashes `applied` adds, by row; refuses keys already applied, twice in the batch, or for
/// rows the batch did not load.
fn new_event_hashes(
    before: &HashMap<i64, Stored>,
    applied: &[EventKey],
) -> Result<HashMap<i64, Vec<i64>>, StoreError> {
    let mut out: HashMap<i64, Vec<i64>> = HashMap::new();
    for k in applied {
        let old = before.get(&k.row.0).ok_or_else(|| {
            StoreError::Invalid(format!(
                "event {} names row {}, not in the batch",
                k.event_id, k.row.0
            ))
        })?;
        let hash = k.hash();
        let added = out.entry(k.row.0).or_default();
        if old.events.contains(&hash) || added.contains(&hash) {
            return Err(StoreError::Invalid(format!(
                "event {} of row {} is already applied",
                k.event_id, k.row.0
            )));
        }
        added.push(hash);
    }
    Ok(out)
}
