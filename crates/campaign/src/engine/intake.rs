//! Event intake: a batch of MTA events becomes row transitions, address changes and counter
//! changes, applied in one store transaction (SPEC §3.3–3.5). At least once is enough: events
//! are idempotent by (row, event id), and the row rules never let an older event undo a newer
//! final state.

use crate::log::{self, Effect};
use crate::model::{AddressState, DeliveryId, LogId, UnixMillis};
use crate::observe::{self, Kind, Observation, RowRef, Skip};
use crate::quarantine::{self, QuarantineConfig};
use crate::store::{EventBatch, EventBatchChanges, EventKey, Store, StoreError};
use cartero_bounce::Qualifier;
use cartero_events::Event;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a batch did, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeReport {
    /// Events that changed a row (at least its history).
    pub applied: u64,
    /// Events already applied before (or twice in the batch).
    pub duplicates: u64,
    /// Events that are not about a campaign row (another injector's, shaping, ...).
    pub skipped: u64,
    /// Events naming a row that does not exist (any more), or refused by the row (another
    /// message id or recipient).
    pub unmatched: u64,
    /// The deliveries whose rows changed: candidates for Finished.
    pub deliveries: BTreeSet<DeliveryId>,
}

/// Applies `events` (see the module doc). `now` is when the address time rules are read.
pub async fn apply_events(
    store: &Store,
    events: &[Event],
    qualifier: &Qualifier,
    quarantine: &QuarantineConfig,
    now: UnixMillis,
) -> Result<IntakeReport, StoreError> {
    let mut report = IntakeReport::default();
    let mut observed = Vec::with_capacity(events.len());
    for e in events {
        match observe::observe(e, qualifier) {
            // The MTA's answer to the injection marks the row Taken with the same message id,
            // earlier: applying `reception` too would double the rows written per message and
            // add an attempt that is not one (a row's history is of delivery attempts).
            Ok(o) if o.kind == Kind::Reception => report.skipped += 1,
            Ok(o) => observed.push(o),
            Err(skip) => {
                if matches!(skip, Skip::Unreadable(_)) {
                    tracing::debug!(event_id = %e.event_id, %skip, "campaign: event skipped");
                }
                report.skipped += 1;
            }
        }
    }
    let located = locate(store, observed, &mut report).await?;
    if located.is_empty() {
        return Ok(report);
    }
    let keys: Vec<EventKey> = located
        .iter()
        .map(|(row, o)| EventKey {
            row: *row,
            event_id: o.event_id.clone(),
        })
        .collect();
    let mut outcome = Folded::default();
    store
        .apply_event_batch(&keys, |batch| {
            fold(batch, &located, quarantine, now, &mut outcome)
        })
        .await?;
    report.applied += outcome.applied;
    report.duplicates += outcome.duplicates;
    report.unmatched += outcome.unmatched;
    report.deliveries.extend(outcome.deliveries);
    Ok(report)
}

/// The row of each observation: named by the metadata, or found by the MTA's message id.
async fn locate(
    store: &Store,
    observed: Vec<Observation>,
    report: &mut IntakeReport,
) -> Result<Vec<(LogId, Observation)>, StoreError> {
    let by_message: Vec<&str> = observed
        .iter()
        .filter_map(|o| match &o.row {
            RowRef::Message { message_id } => Some(message_id.as_str()),
            RowRef::Log { .. } => None,
        })
        .collect();
    let found: HashMap<String, LogId> = if by_message.is_empty() {
        HashMap::new()
    } else {
        store
            .rows_by_message(&by_message)
            .await?
            .into_iter()
            .collect()
    };
    let mut out = Vec::with_capacity(observed.len());
    for o in observed {
        let row = match &o.row {
            RowRef::Log { log, .. } => Some(*log),
            RowRef::Message { message_id } => found.get(message_id).copied(),
        };
        match row {
            Some(r) => out.push((r, o)),
            None => report.unmatched += 1,
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct Folded {
    applied: u64,
    duplicates: u64,
    unmatched: u64,
    deliveries: BTreeSet<DeliveryId>,
}

/// The pure part: the batch's rows and addresses as stored, the observations in order, and
/// what to write.
fn fold(
    mut batch: EventBatch,
    located: &[(LogId, Observation)],
    cfg: &QuarantineConfig,
    now: UnixMillis,
    out: &mut Folded,
) -> EventBatchChanges {
    let mut changes = EventBatchChanges::default();
    let mut rows_changed = BTreeSet::new();
    let mut addresses: BTreeMap<String, AddressState> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for (id, obs) in located {
        let key = EventKey {
            row: *id,
            event_id: obs.event_id.clone(),
        };
        if batch.already_applied.contains(&key) || !seen.insert(key.clone()) {
            out.duplicates += 1;
            continue;
        }
        let Some(row) = batch.rows.get_mut(id) else {
            out.unmatched += 1;
            continue;
        };
        let t = log::apply(row, obs);
        changes.applied.push(key);
        match t.effect {
            Effect::Applied => {
                out.applied += 1;
                rows_changed.insert(*id);
                out.deliveries.insert(row.delivery);
            }
            Effect::Duplicate => out.duplicates += 1,
            Effect::RowIgnored => {}
            Effect::Mismatch(_) => out.unmatched += 1,
        }
        if matches!(t.signal, quarantine::Signal::None) {
            continue;
        }
        let k = quarantine::address_key(&row.address);
        let state = addresses.entry(k.clone()).or_insert_with(|| {
            batch
                .addresses
                .remove(&k)
                .unwrap_or_else(|| quarantine::new_state(&k))
        });
        let change = quarantine::apply(state, &t.signal, now, cfg);
        if change.entered.is_some() {
            changes
                .counters
                .entry(row.delivery)
                .or_default()
                .new_quarantines += 1;
        }
    }
    changes.rows = rows_changed
        .iter()
        .filter_map(|id| batch.rows.get(id).cloned())
        .collect();
    changes.addresses = addresses.into_values().collect();
    changes
}
