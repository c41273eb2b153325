//! The campaign store, on SQLite and (when configured) on PostgreSQL.

mod common;

use cartero_bounce::{FailureType, Reason};
use cartero_campaign::model::*;
use cartero_campaign::store::*;
use common::{all_rows, failure};
use std::collections::{BTreeMap, BTreeSet};

const T0: UnixMillis = 1_700_000_000_000;

on_both_backends!(
    lists_and_recipients,
    delivery_state_changes_by_compare_and_set,
    log_rows_round_trip_and_are_counted,
    claimed_rows_are_never_claimed_twice,
    expired_claims_come_back_and_released_claims_too,
    mark_taken_moves_only_pending_rows,
    event_batch_applies_rows_counters_and_keys_together,
    failure_mid_event_batch_applies_nothing,
    an_event_that_changes_nothing_is_still_remembered,
    keyset_paging_with_filters_sees_each_row_once,
    listings_use_the_index_of_their_filter,
    processed_events_are_pruned_after_the_delivery_ends,
    update_rows_refuses_to_move_a_row_to_another_address,
);

fn row(delivery: DeliveryId, address: &str, status: LogStatus) -> LogRow {
    let domain = address.rsplit('@').next().unwrap_or("").to_lowercase();
    LogRow {
        id: LogId(0),
        delivery,
        recipient: Some(RecipientId(9)),
        address: address.into(),
        domain,
        status,
        failure: None,
        message_id: None,
        last_event_at: 0,
        attempts: Vec::new(),
        feedback: Feedback::default(),
    }
}

async fn delivery(store: &Store, name: &str) -> DeliveryId {
    let list = store.create_list(name, T0).await.unwrap();
    let d = NewDelivery {
        name: name.into(),
        from: "news@example.org".into(),
        subject: "Hello {{ first_name }}".into(),
        text_template: Some("Hi".into()),
        html_template: None,
        list,
        validity_ms: DEFAULT_VALIDITY_MS,
        pool: Some("warm".into()),
    };
    store.create_delivery(&d, T0).await.unwrap().id
}

/// `n` Pending rows to a@d0.test … spread over 3 domains.
async fn pending_rows(store: &Store, d: DeliveryId, n: usize) -> Vec<LogRow> {
    let rows: Vec<LogRow> = (0..n)
        .map(|i| {
            row(
                d,
                &format!("user{i:05}@d{}.test", i % 3),
                LogStatus::Pending,
            )
        })
        .collect();
    store.insert_log_rows(&rows).await.unwrap();
    all_rows(store, d).await
}

async fn lists_and_recipients(store: Store) {
    let list = store.create_list("spring", T0).await.unwrap();
    assert!(matches!(
        store.create_list("spring", T0).await,
        Err(StoreError::ListExists(_))
    ));
    assert_eq!(store.list_by_name("spring").await.unwrap(), Some(list));
    let mut attributes = serde_json::Map::new();
    attributes.insert("first_name".into(), "Zoë".into());
    let people: Vec<NewRecipient> = (0..1200)
        .map(|i| NewRecipient {
            email: format!("p{i}@example.org"),
            attributes: attributes.clone(),
        })
        .collect();
    store.add_recipients(list, &people, T0).await.unwrap();
    assert_eq!(store.count_recipients(list).await.unwrap(), 1200);
    let first = store.recipients_page(list, None, 1000).await.unwrap();
    let rest = store
        .recipients_page(list, Some(first.last().unwrap().id), 1000)
        .await
        .unwrap();
    assert_eq!((first.len(), rest.len()), (1000, 200));
    assert_eq!(first[0].email, "p0@example.org");
    assert_eq!(first[0].attributes["first_name"], "Zoë");
    assert!(matches!(
        store.add_recipients(ListId(9999), &people[..1], T0).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn delivery_state_changes_by_compare_and_set(store: Store) {
    let d = delivery(&store, "cas").await;
    let got = store.delivery(d).await.unwrap().unwrap();
    assert_eq!(got.state, DeliveryState::Draft);
    assert_eq!(got.pool.as_deref(), Some("warm"));
    use DeliveryState::*;
    store
        .set_delivery_state(d, &[Draft], Analyzed, T0 + 1)
        .await
        .unwrap();
    let err = store.set_delivery_state(d, &[Draft], Running, T0 + 2).await;
    assert!(matches!(
        err,
        Err(StoreError::StateConflict {
            actual: Analyzed,
            ..
        })
    ));
    store
        .set_delivery_state(d, &[Analyzed], Running, T0 + 3)
        .await
        .unwrap();
    store
        .set_delivery_state(d, &[Running], Paused, T0 + 4)
        .await
        .unwrap();
    store
        .set_delivery_state(d, &[Paused], Running, T0 + 5)
        .await
        .unwrap();
    assert_eq!(
        store.deliveries_in(&[Running, Paused]).await.unwrap().len(),
        1
    );
    store
        .set_delivery_state(d, &[Running], Finished, T0 + 6)
        .await
        .unwrap();
    let got = store.delivery(d).await.unwrap().unwrap();
    // Started once (the resume did not move it), ended at the finish.
    assert_eq!((got.started_at, got.ended_at), (Some(T0 + 3), Some(T0 + 6)));
    assert!(
        store
            .deliveries_in(&[Running, Paused])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn log_rows_round_trip_and_are_counted(store: Store) {
    let d = delivery(&store, "round").await;
    let mut failed = row(d, "Gone@Example.ORG", LogStatus::Failed);
    failed.domain = "example.org".into();
    failed.failure = Some(failure(
        Reason::UserUnknown,
        "550 5.1.1 <gone@example.org> unknown",
    ));
    failed.message_id = Some("0000000100000002".into());
    failed.last_event_at = T0 + 10;
    failed.feedback = Feedback {
        complained: true,
        unsubscribed: true,
    };
    failed.attempts = vec![
        Attempt {
            at: T0 + 5,
            kind: "delay".into(),
            text: "451 later".into(),
        },
        Attempt {
            at: T0 + 10,
            kind: "bounce".into(),
            text: "550 5.1.1 unknown".into(),
        },
    ];
    let mut dup = row(d, "x@example.org", LogStatus::Ignored);
    dup.failure = Some(FailureInfo {
        r#type: FailureType::Ignored,
        reason: Reason::Duplicate,
        class: None,
        text: "duplicate in this delivery".into(),
        rule: "analysis".into(),
    });
    let mut none = row(d, "", LogStatus::Ignored);
    none.failure = Some(failure(Reason::AddressNotSpecified, "no address"));
    let pending = row(d, "ok@other.test", LogStatus::Pending);
    let input = vec![failed.clone(), dup.clone(), none, pending];
    assert_eq!(store.insert_log_rows(&input).await.unwrap(), 4);
    let stored = all_rows(&store, d).await;
    assert_eq!(stored.len(), 4);
    let back = store.load_rows(&[stored[0].id]).await.unwrap();
    failed.id = stored[0].id;
    assert_eq!(back, vec![failed]);
    dup.id = stored[1].id;
    assert_eq!(stored[1], dup);
    let k = store.kpis(d).await.unwrap();
    // The counters are the rules' own sums over these rows.
    let mut want = Kpis::default();
    for r in &stored {
        cartero_campaign::kpi::add_row(&mut want, r);
    }
    assert_eq!(k, want);
    assert_eq!((k.hard_bounces, k.complaints, k.unsubscribes), (1, 1, 1));
    assert_eq!((k.to_deliver, k.pending, k.failed, k.ignored), (2, 1, 1, 2));
    assert_eq!(k.failed_by_reason, BTreeMap::from([(1, 1)]));
    assert_eq!(k.ignored_by_reason, BTreeMap::from([(7, 1), (10, 1)]));
    assert_eq!(
        k.failed_by_domain,
        BTreeMap::from([("example.org".to_string(), 1)])
    );
    assert_eq!(store.count_log_rows(d).await.unwrap(), [1, 0, 0, 1, 2]);
}

async fn claimed_rows_are_never_claimed_twice(store: Store) {
    let d = delivery(&store, "claims").await;
    pending_rows(&store, d, 1000).await;
    let mut workers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        workers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..100 {
                let batch = store.claim_pending(d, 37, T0, 60_000).await.unwrap();
                if batch.is_empty() {
                    break;
                }
                let taken: Vec<Taken> = batch
                    .iter()
                    .map(|r| Taken {
                        id: r.id,
                        message_id: format!("w{w}-{}", r.id.0),
                        at: T0,
                        bytes: 100,
                    })
                    .collect();
                assert_eq!(store.mark_taken(&taken).await.unwrap(), taken.len() as u64);
                mine.extend(batch.into_iter().map(|r| r.id));
            }
            mine
        }));
    }
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for w in workers {
        for id in w.await.unwrap() {
            total += 1;
            assert!(seen.insert(id), "row {id:?} was claimed twice");
        }
    }
    assert_eq!((total, seen.len()), (1000, 1000));
    let k = store.kpis(d).await.unwrap();
    assert_eq!((k.pending, k.taken, k.to_deliver), (0, 1000, 1000));
    assert!(
        store
            .claim_pending(d, 10, T0 + 120_000, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    if store.backend() == Backend::Sqlite {
        let plan = store.explain_claim().await.unwrap();
        assert!(
            plan.contains("log_by_status"),
            "a claim must not walk the delivery:\n{plan}"
        );
    }
}

async fn expired_claims_come_back_and_released_claims_too(store: Store) {
    let d = delivery(&store, "lease").await;
    let rows = pending_rows(&store, d, 10).await;
    let first = store.claim_pending(d, 4, T0, 1000).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.id).collect::<Vec<_>>(),
        rows[..4].iter().map(|r| r.id).collect::<Vec<_>>()
    );
    // Within the lease the claimed rows are skipped…
    let second = store.claim_pending(d, 10, T0 + 999, 1000).await.unwrap();
    assert_eq!(second.len(), 6);
    assert!(
        store
            .claim_pending(d, 10, T0 + 999, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    // …after it (a sender that crashed before marking them Taken) they come back.
    let again = store.claim_pending(d, 10, T0 + 1000, 1000).await.unwrap();
    assert_eq!(again.len(), 4);
    store.release_claims(&[again[0].id]).await.unwrap();
    let released = store.claim_pending(d, 10, T0 + 1001, 1000).await.unwrap();
    assert_eq!(
        released.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![again[0].id]
    );
}

async fn mark_taken_moves_only_pending_rows(store: Store) {
    let d = delivery(&store, "taken").await;
    let rows = pending_rows(&store, d, 3).await;
    let mut sent = rows[1].clone();
    sent.status = LogStatus::Sent;
    sent.last_event_at = T0;
    store.update_rows(&[sent]).await.unwrap();
    let taken: Vec<Taken> = rows
        .iter()
        .map(|r| Taken {
            id: r.id,
            message_id: format!("m{}", r.id.0),
            at: T0 + 60_000,
            bytes: 1000,
        })
        .collect();
    // The row an event already moved to Sent keeps Sent but learns its message id.
    assert_eq!(store.mark_taken(&taken).await.unwrap(), 2);
    assert_eq!(store.mark_taken(&taken).await.unwrap(), 0);
    let back = all_rows(&store, d).await;
    assert_eq!(
        back.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![LogStatus::Taken, LogStatus::Sent, LogStatus::Taken]
    );
    assert!(
        back.iter()
            .all(|r| r.message_id.as_deref() == Some(&format!("m{}", r.id.0)[..]))
    );
    let k = store.kpis(d).await.unwrap();
    assert_eq!((k.pending, k.taken, k.sent), (0, 2, 1));
    assert_eq!(
        k.sent_by_domain,
        BTreeMap::from([("d1.test".to_string(), 1)])
    );
    // Throughput: the Sent row in the minute of its event, the three relayed (once each,
    // though marked twice) in the minute the MTA took them.
    let points = store.throughput(d, T0, T0 + 120_000, 60_000).await.unwrap();
    let got: Vec<(u64, u64, u64)> = points
        .iter()
        .map(|p| (p.relayed, p.bytes, p.sent))
        .collect();
    // The range is rounded out to whole steps: T0 is not on a minute.
    assert_eq!(got, vec![(0, 0, 1), (3, 3000, 0), (0, 0, 0)]);
    assert!(points[0].at <= T0 && T0 < points[1].at);
    let hour = store
        .throughput(d, T0, T0 + 3_600_000, 3_600_000)
        .await
        .unwrap();
    assert_eq!((hour[0].relayed, hour[0].sent), (3, 1));
    assert!(
        store.throughput(d, 0, T0, 60_000).await.is_err(),
        "too many steps"
    );
}

fn key(row: LogId, event: &str) -> EventKey {
    EventKey {
        row,
        event_id: event.into(),
    }
}

/// The rules of the tests: every event delivers its row and counts a soft bounce, unless
/// already applied.
fn deliver_all(batch: EventBatch, keys: &[EventKey]) -> EventBatchChanges {
    let mut changes = EventBatchChanges::default();
    for k in keys {
        if batch.already_applied.contains(k) {
            continue;
        }
        let mut r = batch.rows[&k.row].clone();
        r.status = LogStatus::Sent;
        r.last_event_at = T0 + 50;
        r.attempts.push(Attempt {
            at: T0 + 50,
            kind: "delivery".into(),
            text: "250 ok".into(),
        });
        let mut state = cartero_campaign::quarantine::new_state(&r.address);
        if let Some(old) = batch.addresses.get(&r.address.to_lowercase()) {
            state.error_count = old.error_count;
        }
        changes.addresses.push(state);
        changes
            .counters
            .entry(r.delivery)
            .or_default()
            .new_quarantines += 1;
        changes.rows.push(r);
        changes.applied.push(k.clone());
    }
    changes
}

async fn event_batch_applies_rows_counters_and_keys_together(store: Store) {
    let d = delivery(&store, "events").await;
    let rows = pending_rows(&store, d, 4).await;
    let keys: Vec<EventKey> = rows[..3]
        .iter()
        .map(|r| key(r.id, &format!("e{}", r.id.0)))
        .collect();
    let k2 = keys.clone();
    store
        .apply_event_batch(&keys, move |b| deliver_all(b, &k2))
        .await
        .unwrap();
    let k = store.kpis(d).await.unwrap();
    assert_eq!((k.pending, k.sent, k.new_quarantines), (1, 3, 3));
    let back = store.load_rows(&[rows[0].id]).await.unwrap();
    assert_eq!(back[0].status, LogStatus::Sent);
    assert_eq!(back[0].attempts.len(), 1);
    assert!(
        store
            .address_state(&rows[0].address)
            .await
            .unwrap()
            .is_some()
    );
    // Replayed: the store says they were applied, nothing changes.
    let mut seen = BTreeSet::new();
    store
        .apply_event_batch(&keys, |b| {
            seen = b.already_applied.clone();
            EventBatchChanges::default()
        })
        .await
        .unwrap();
    assert_eq!(seen, keys.iter().cloned().collect());
    assert_eq!(store.kpis(d).await.unwrap(), k);
}

async fn failure_mid_event_batch_applies_nothing(store: Store) {
    let d = delivery(&store, "atomic").await;
    // More rows than one write statement takes, so that the failure comes after writes.
    let rows = pending_rows(&store, d, 700).await;
    let old = key(rows[0].id, "old");
    let o2 = old.clone();
    store
        .apply_event_batch(std::slice::from_ref(&old), move |b| deliver_all(b, &[o2]))
        .await
        .unwrap();
    let before_rows = all_rows(&store, d).await;
    let before_kpis = store.kpis(d).await.unwrap();
    let keys: Vec<EventKey> = rows[1..]
        .iter()
        .map(|r| key(r.id, &format!("e{}", r.id.0)))
        .collect();
    // Rules that change 699 rows and then one the batch never loaded: the first statements
    // ran, the last one fails, and all of it rolls back.
    let k2 = keys.clone();
    let ghost = rows[0].id.0 + 10_000;
    let err = store
        .apply_event_batch(&keys, move |b| {
            let mut changes = deliver_all(b, &k2);
            let mut r = changes.rows[0].clone();
            r.id = LogId(ghost);
            changes.rows.push(r);
            changes
        })
        .await;
    assert!(
        matches!(err, Err(StoreError::NotFound { id, .. }) if id == ghost),
        "{err:?}"
    );
    assert_eq!(all_rows(&store, d).await, before_rows);
    assert_eq!(store.kpis(d).await.unwrap(), before_kpis);
    assert!(
        store
            .address_state(&rows[1].address)
            .await
            .unwrap()
            .is_none()
    );
    // Rules that (wrongly) record an event already applied fail the batch the same way.
    let k3 = keys.clone();
    let err = store
        .apply_event_batch(&keys, move |b| {
            let mut changes = deliver_all(b, &k3);
            changes.applied.push(old);
            changes
        })
        .await;
    assert!(matches!(err, Err(StoreError::Invalid(_))), "{err:?}");
    assert_eq!(store.kpis(d).await.unwrap(), before_kpis);
    // The events were not marked applied: a retry applies them.
    let k4 = keys.clone();
    store
        .apply_event_batch(&keys, move |b| deliver_all(b, &k4))
        .await
        .unwrap();
    assert_eq!(store.kpis(d).await.unwrap().sent, 700);
    assert_eq!(store.count_log_rows(d).await.unwrap(), [0, 0, 700, 0, 0]);
}

async fn an_event_that_changes_nothing_is_still_remembered(store: Store) {
    let d = delivery(&store, "noop").await;
    let rows = pending_rows(&store, d, 1).await;
    let k = vec![key(rows[0].id, "late-delay")];
    let k2 = k.clone();
    store
        .apply_event_batch(&k, move |_| EventBatchChanges {
            applied: k2,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    store
        .apply_event_batch(&k, |b| {
            seen = b.already_applied;
            EventBatchChanges::default()
        })
        .await
        .unwrap();
    assert_eq!(seen, k.into_iter().collect());
    assert_eq!(
        store.load_rows(&[rows[0].id]).await.unwrap(),
        vec![rows[0].clone()]
    );
}

async fn pages(store: &Store, d: DeliveryId, filter: &LogFilter, size: u32) -> Vec<LogRow> {
    let mut out = Vec::new();
    let mut after: Option<LogCursor> = None;
    for _ in 0..1000 {
        let page = store
            .list_log_rows(d, filter, after.as_ref(), size)
            .await
            .unwrap();
        out.extend(page.rows);
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
    panic!("paging did not end");
}

/// A filter and what it must select.
type Case = (LogFilter, Box<dyn Fn(&LogRow) -> bool>);

/// 100 rows of delivery `a` (every 4th Failed, two reasons, three domains, two address
/// prefixes) interleaved with rows of another delivery.
async fn paging_fixture(store: &Store) -> DeliveryId {
    let a = delivery(store, "page-a").await;
    let b = delivery(store, "page-b").await;
    // Interleaved inserts: the deliveries' ids are mixed.
    for chunk in 0..5 {
        let mut rows_a = Vec::new();
        for i in 0..20 {
            let n = chunk * 20 + i;
            let mut r = row(
                a,
                &format!("{}{n:03}@d{}.test", ["ann", "bob"][n % 2], n % 3),
                LogStatus::Pending,
            );
            if n % 4 == 0 {
                r.status = LogStatus::Failed;
                r.failure = Some(failure(
                    if n % 8 == 0 {
                        Reason::UserUnknown
                    } else {
                        Reason::Refused
                    },
                    "550 no",
                ));
            }
            rows_a.push(r);
        }
        store.insert_log_rows(&rows_a).await.unwrap();
        store
            .insert_log_rows(&[row(b, "bob999@d0.test", LogStatus::Pending)])
            .await
            .unwrap();
    }
    a
}

async fn keyset_paging_with_filters_sees_each_row_once(store: Store) {
    let a = paging_fixture(&store).await;
    let all = pages(&store, a, &LogFilter::default(), 7).await;
    assert_eq!(all.len(), 100);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let cases: Vec<Case> = vec![
        (
            LogFilter {
                status: Some(LogStatus::Failed),
                ..Default::default()
            },
            Box::new(|r| r.status == LogStatus::Failed),
        ),
        (
            LogFilter {
                reason: Some(Reason::Refused),
                ..Default::default()
            },
            Box::new(|r| r.failure.as_ref().map(|f| f.reason) == Some(Reason::Refused)),
        ),
        (
            LogFilter {
                domain: Some("D1.test".into()),
                ..Default::default()
            },
            Box::new(|r| r.domain == "d1.test"),
        ),
        (
            LogFilter {
                address_prefix: Some("bob".into()),
                ..Default::default()
            },
            Box::new(|r| r.address.starts_with("bob")),
        ),
        (
            LogFilter {
                status: Some(LogStatus::Pending),
                domain: Some("d0.test".into()),
                address_prefix: Some("ann".into()),
                ..Default::default()
            },
            Box::new(|r| {
                r.status == LogStatus::Pending
                    && r.domain == "d0.test"
                    && r.address.starts_with("ann")
            }),
        ),
    ];
    for (filter, want) in cases {
        let got = pages(&store, a, &filter, 3).await;
        let mut expected: Vec<LogRow> = all.iter().filter(|r| want(r)).cloned().collect();
        if filter.address_prefix.is_some() {
            expected.sort_by(|x, y| (&x.address, x.id).cmp(&(&y.address, y.id)));
        }
        assert!(!expected.is_empty(), "{filter:?}");
        assert_eq!(got, expected, "{filter:?}");
    }
    let unknown = LogFilter {
        domain: Some("nowhere.test".into()),
        ..Default::default()
    };
    assert!(pages(&store, a, &unknown, 5).await.is_empty());
    assert!(matches!(
        store.list_log_rows(a, &LogFilter::default(), None, 0).await,
        Err(StoreError::Invalid(_))
    ));
}

async fn listings_use_the_index_of_their_filter(store: Store) {
    let a = paging_fixture(&store).await;
    if store.backend() != Backend::Sqlite {
        return;
    }
    let by = |f: fn(&mut LogFilter)| {
        let mut filter = LogFilter::default();
        f(&mut filter);
        filter
    };
    let cases = [
        (LogFilter::default(), "log_by_delivery"),
        (by(|f| f.status = Some(LogStatus::Pending)), "log_by_status"),
        (by(|f| f.status = Some(LogStatus::Sent)), "log_by_delivery"),
        (by(|f| f.reason = Some(Reason::Refused)), "log_by_reason"),
        (by(|f| f.domain = Some("d1.test".into())), "log_by_domain"),
        (
            by(|f| f.address_prefix = Some("bob".into())),
            "log_by_address",
        ),
    ];
    for (filter, index) in cases {
        let plan = store.explain_log_listing(a, &filter).await.unwrap();
        assert!(plan.contains(index), "{filter:?} uses:\n{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{filter:?} sorts:\n{plan}");
    }
}

async fn processed_events_are_pruned_after_the_delivery_ends(store: Store) {
    let d = delivery(&store, "prune").await;
    let rows = pending_rows(&store, d, 2).await;
    let keys = vec![key(rows[0].id, "x"), key(rows[1].id, "y")];
    let k2 = keys.clone();
    store
        .apply_event_batch(&keys, move |b| deliver_all(b, &k2))
        .await
        .unwrap();
    assert_eq!(
        store.prune_processed_events(T0 + 1_000_000).await.unwrap(),
        0,
        "still running"
    );
    use DeliveryState::*;
    store
        .set_delivery_state(d, &[Draft], Stopped, T0 + 100)
        .await
        .unwrap();
    assert_eq!(store.prune_processed_events(T0 + 100).await.unwrap(), 0);
    assert_eq!(store.prune_processed_events(T0 + 101).await.unwrap(), 2);
    let mut seen = BTreeSet::from([key(LogId(0), "")]);
    store
        .apply_event_batch(&keys, |b| {
            seen = b.already_applied;
            EventBatchChanges::default()
        })
        .await
        .unwrap();
    assert!(seen.is_empty());
}

async fn update_rows_refuses_to_move_a_row_to_another_address(store: Store) {
    let d = delivery(&store, "immutable").await;
    let rows = pending_rows(&store, d, 1).await;
    let mut moved = rows[0].clone();
    moved.address = "other@d0.test".into();
    assert!(matches!(
        store.update_rows(&[moved]).await,
        Err(StoreError::Invalid(_))
    ));
    let twice = vec![rows[0].clone(), rows[0].clone()];
    assert!(matches!(
        store.update_rows(&twice).await,
        Err(StoreError::Invalid(_))
    ));
    let mut ghost = rows[0].clone();
    ghost.id = LogId(rows[0].id.0 + 1000);
    assert!(matches!(
        store.update_rows(&[ghost]).await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(store.kpis(d).await.unwrap().pending, 1);
}
