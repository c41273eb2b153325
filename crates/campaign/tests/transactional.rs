//! Transactional calls (SPEC §3.7) over a scripted MTA, on SQLite and (when configured)
//! PostgreSQL: stored before they are answered, idempotent by key within the window, checked
//! in full before anything is stored, queued while the MTA is away and handed over once, in
//! order, followed to their final status by the same events as delivery logs.

mod common;

use cartero_bounce::Reason;
use cartero_campaign::engine::{Call, CallAccepted, Engine, EngineConfig, EngineError};
use cartero_campaign::model::*;
use cartero_campaign::quarantine;
use cartero_campaign::render::{Field, RenderError, TemplateErrorKind};
use cartero_campaign::store::*;
use cartero_clock::ManualClock;
use cartero_events::{Event, EventType};
use common::scripted::ScriptedMta;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;

const T0: UnixMillis = 1_700_000_000_000;
const HOUR: u64 = 3_600_000;

on_both_backends!(
    a_call_is_stored_sent_once_and_followed_to_sent,
    a_key_answers_with_its_call_within_the_window_only,
    bad_calls_name_the_call_and_field_and_store_nothing,
    calls_wait_while_the_mta_is_away_then_go_once_in_order,
    later_calls_use_the_new_version_and_earlier_ones_keep_theirs,
    excluded_addresses_are_ignored_and_bounces_count_against_them,
    calls_are_listed_by_filter_and_the_outbox_shows_its_depth,
    calls_stored_before_a_restart_are_sent_after_it,
    concurrent_calls_share_commits_and_keep_their_own_answers,
    a_call_past_its_validity_fails_unless_the_mta_already_had_it,
);

struct World {
    engine: Engine,
    mta: Arc<ScriptedMta>,
    clock: Arc<ManualClock>,
}

fn world(store: Store) -> World {
    world_with(store, ScriptedMta::default())
}

/// A world whose MTA is `mta`, on the world's clock.
fn world_with(store: Store, mta: ScriptedMta) -> World {
    let clock = Arc::new(ManualClock::new(T0));
    let mta = Arc::new(ScriptedMta {
        clock: Some(clock.as_ref().clone()),
        ..mta
    });
    let cfg = EngineConfig {
        batch: 4,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        ..EngineConfig::default()
    };
    let engine = Engine::new(store, clock.clone(), mta.clone(), cfg);
    World { engine, mta, clock }
}

fn content(subject: &str) -> NewDelivery {
    NewDelivery {
        name: String::new(),
        from: "Shop <orders@shop.test>".into(),
        subject: subject.into(),
        text_template: Some("Order {{ order }} for {{ name }}".into()),
        html_template: None,
        list: ListId(0),
        validity_ms: DEFAULT_VALIDITY_MS,
        pool: None,
    }
}

fn call(to: &str, name: &str, order: u32, key: Option<&str>) -> Call {
    Call {
        recipient: to.into(),
        data: json!({ "name": name, "order": order })
            .as_object()
            .unwrap()
            .clone(),
        idempotency_key: key.map(String::from),
    }
}

async fn send_one(w: &World, template: &str, c: Call) -> CallAccepted {
    let mut a = w
        .engine
        .send_transactional(template, vec![c])
        .await
        .unwrap();
    assert_eq!(a.len(), 1);
    a.pop().unwrap()
}

/// Hands over every Pending call now (the outbox's pass, run here rather than in the
/// background so the test knows when it is done).
/// Every call stored (at most 100).
async fn stored_calls(w: &World) -> Vec<TxCall> {
    w.engine
        .store()
        .list_tx_calls(&TxFilter::default(), None, 100)
        .await
        .unwrap()
}

async fn drain(w: &World) {
    let (_keep, stopped) = watch::channel(false);
    w.engine.drain_outbox(stopped).await.unwrap();
}

async fn status(w: &World, id: LogId) -> LogStatus {
    w.engine
        .store()
        .tx_call(id)
        .await
        .unwrap()
        .unwrap()
        .row
        .status
}

fn subject_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .unwrap_or_default()
        .to_string()
}

fn mta_event(w: &World, kind: EventType, id: LogId) -> Event {
    let o = w.mta.message_of(id).expect("the MTA has the message");
    let mut e = Event::new(kind, w.clock.as_ref());
    e.message_id = Some(w.mta.keys.lock()[&o.idempotency_key()].clone());
    e.rcpt_to = Some(o.recipient.clone());
    e.delivery_id = Some(o.delivery.0.to_string());
    e.metadata = o.metadata();
    e
}

async fn a_call_is_stored_sent_once_and_followed_to_sent(store: Store) {
    let w = world(store);
    let v1 = w
        .engine
        .put_tx_template("order-shipped", &content("Shipped: {{ order }}"))
        .await
        .unwrap();
    assert_eq!((v1.template.as_str(), v1.version), ("order-shipped", 1));
    let a = send_one(
        &w,
        "order-shipped",
        call("ana@b.test", "Ana", 42, Some("o-42")),
    )
    .await;
    assert_eq!(
        (a.repeated, a.version, a.status),
        (false, 1, LogStatus::Pending)
    );
    // Stored before anything was handed over.
    assert_eq!(w.mta.handed(), 0);
    let stored = w.engine.store().tx_call(a.id).await.unwrap().unwrap();
    assert_eq!(stored.idempotency_key.as_deref(), Some("o-42"));
    assert_eq!(
        (stored.template.as_str(), stored.version),
        ("order-shipped", 1)
    );
    assert_eq!(stored.row.address, "ana@b.test");

    drain(&w).await;
    assert_eq!(w.mta.handed(), 1);
    let o = w.mta.message_of(a.id).unwrap();
    assert_eq!(
        (o.recipient.as_str(), o.sender.as_str()),
        ("ana@b.test", "orders@shop.test")
    );
    assert_eq!(subject_of(&o.body), "Shipped: 42");
    assert!(
        !o.bulk,
        "a transactional message is not bulk mail (no List-Unsubscribe)"
    );
    assert!(String::from_utf8_lossy(&o.body).contains("Order 42 for Ana"));
    assert_eq!(status(&w, a.id).await, LogStatus::Taken);

    // The MTA's events drive the status, as for delivery logs.
    w.engine
        .apply_events(&[mta_event(&w, EventType::Delivery, a.id)])
        .await
        .unwrap();
    assert_eq!(status(&w, a.id).await, LogStatus::Sent);
    let k = w.engine.store().kpis(v1.delivery).await.unwrap();
    assert_eq!((k.to_deliver, k.sent, k.pending), (1, 1, 0));

    // The version is never finished, and the campaign verbs refuse it.
    w.engine.tick().await.unwrap();
    let d = w.engine.delivery(v1.delivery).await.unwrap();
    assert_eq!(
        (d.state, d.kind),
        (DeliveryState::Running, DeliveryKind::Transactional)
    );
    for r in [
        w.engine.pause(v1.delivery).await,
        w.engine.stop(v1.delivery).await,
    ] {
        assert!(matches!(r, Err(EngineError::Invalid(_))), "{r:?}");
    }

    // A repeat answers with the original, its status, and sends nothing.
    let again = send_one(
        &w,
        "order-shipped",
        call("ana@b.test", "Ana", 42, Some("o-42")),
    )
    .await;
    assert_eq!(
        (again.id, again.repeated, again.status),
        (a.id, true, LogStatus::Sent)
    );
    drain(&w).await;
    assert_eq!(w.mta.handed(), 1);
}

async fn a_key_answers_with_its_call_within_the_window_only(store: Store) {
    let w = world(store);
    w.engine.put_tx_template("t", &content("Hi")).await.unwrap();
    let first = send_one(&w, "t", call("ana@b.test", "Ana", 1, Some("k"))).await;
    // The same data in another key order is the same payload.
    let mut same = call("ana@b.test", "Ana", 1, Some("k"));
    same.data = json!({ "order": 1, "name": "Ana" })
        .as_object()
        .unwrap()
        .clone();
    let repeat = send_one(&w, "t", same).await;
    assert_eq!((repeat.id, repeat.repeated), (first.id, true));

    // Another payload under the key: refused, nothing stored.
    let r = w
        .engine
        .send_transactional("t", vec![call("ana@b.test", "Ana", 2, Some("k"))])
        .await;
    match r {
        Err(EngineError::Store(StoreError::KeyConflict { index, id, .. })) => {
            assert_eq!((index, id), (0, first.id.0));
        }
        other => panic!("expected a key conflict, got {other:?}"),
    }
    // Calls without a key are always new.
    let a = send_one(&w, "t", call("ana@b.test", "Ana", 1, None)).await;
    let b = send_one(&w, "t", call("ana@b.test", "Ana", 1, None)).await;
    assert!(a.id != b.id && !a.repeated && !b.repeated);

    // Just inside the 24 h window the key still answers; past it the key starts a new call.
    w.clock.advance(Duration::from_millis(24 * HOUR));
    let inside = send_one(&w, "t", call("ana@b.test", "Ana", 1, Some("k"))).await;
    assert_eq!(inside.id, first.id);
    w.clock.advance(Duration::from_millis(1));
    let after = send_one(&w, "t", call("ana@b.test", "Ana", 2, Some("k"))).await;
    assert!(!after.repeated && after.id != first.id);
    let old = w.engine.store().tx_call(first.id).await.unwrap().unwrap();
    assert_eq!(old.idempotency_key, None, "the key moved to the new call");
    let calls = stored_calls(&w).await;
    assert_eq!(calls.len(), 4);

    // A key twice in one request: the second is a repeat of the first (the keys of a request
    // are read together, then its own new keys count); with another payload the request is
    // refused naming the second call, and nothing of it is stored.
    let two = vec![
        call("bo@b.test", "Bo", 1, Some("k2")),
        call("bo@b.test", "Bo", 1, Some("k2")),
    ];
    let r = w.engine.send_transactional("t", two).await.unwrap();
    assert_eq!(
        (r[1].id, r[0].repeated, r[1].repeated),
        (r[0].id, false, true)
    );
    let clash = vec![
        call("cy@b.test", "Cy", 1, Some("k3")),
        call("cy@b.test", "Cy", 2, Some("k3")),
    ];
    match w.engine.send_transactional("t", clash).await {
        Err(EngineError::Store(StoreError::KeyConflict { index, .. })) => assert_eq!(index, 1),
        other => panic!("expected a key conflict, got {other:?}"),
    }
    let calls = stored_calls(&w).await;
    assert_eq!(calls.len(), 5, "one call for k2, none for k3");
}

async fn bad_calls_name_the_call_and_field_and_store_nothing(store: Store) {
    let w = world(store);
    w.engine
        .put_tx_template("t", &content("Hello {{ name }}"))
        .await
        .unwrap();
    let mut no_name = call("b@b.test", "", 2, Some("k2"));
    no_name.data.remove("name");
    let batch = vec![
        call("a@b.test", "A", 1, Some("k1")),
        no_name,
        call("c@b.test", "C", 3, Some("k3")),
    ];
    match w.engine.send_transactional("t", batch).await {
        Err(EngineError::Call(e)) => {
            assert_eq!(e.index, 1);
            match e.error {
                RenderError::Template(t) => {
                    assert_eq!(t.field, Field::Subject);
                    assert_eq!(t.kind, TemplateErrorKind::Undefined("name".into()));
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("expected a call error, got {other:?}"),
    }
    let r = w
        .engine
        .send_transactional("t", vec![call("not an address", "A", 1, None)])
        .await;
    assert!(
        matches!(&r, Err(EngineError::Call(e)) if matches!(e.error, RenderError::Recipient { .. })),
        "{r:?}"
    );
    let r = w
        .engine
        .send_transactional("nope", vec![call("a@b.test", "A", 1, None)])
        .await;
    assert!(matches!(r, Err(EngineError::UnknownTemplate(_))), "{r:?}");
    for bad in [vec![], vec![call("a@b.test", "A", 1, Some("a key"))]] {
        let r = w.engine.send_transactional("t", bad).await;
        assert!(matches!(r, Err(EngineError::Invalid(_))), "{r:?}");
    }
    let r = w.engine.put_tx_template("t", &content("{{ broken")).await;
    assert!(matches!(r, Err(EngineError::Template(_))), "{r:?}");
    let r = w.engine.put_tx_template("a/b", &content("x")).await;
    assert!(matches!(r, Err(EngineError::Invalid(_))), "{r:?}");

    let store = w.engine.store();
    assert!(
        store
            .list_tx_calls(&TxFilter::default(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // The batch left no key behind: k1 is still free.
    let a = send_one(&w, "t", call("a@b.test", "A", 9, Some("k1"))).await;
    assert!(!a.repeated);
    let t = store.tx_template("t").await.unwrap().unwrap();
    assert_eq!(t.versions.len(), 1, "the broken version was not added");
}

async fn calls_wait_while_the_mta_is_away_then_go_once_in_order(store: Store) {
    let w = world(store);
    w.engine.put_tx_template("t", &content("Hi")).await.unwrap();
    w.mta.unavailable.store(true, Ordering::SeqCst);
    let (stop, stopped) = watch::channel(false);
    let engine = w.engine.clone();
    let outbox = tokio::spawn(async move { engine.run_outbox(stopped).await });

    let mut ids = Vec::new();
    for i in 0..10 {
        let key = format!("k{i}");
        let a = send_one(&w, "t", call(&format!("u{i}@b.test"), "U", i, Some(&key))).await;
        ids.push(a.id);
        if i % 3 == 0 {
            let again = send_one(&w, "t", call(&format!("u{i}@b.test"), "U", i, Some(&key))).await;
            assert_eq!((again.id, again.repeated), (a.id, true));
        }
    }
    let batch: Vec<Call> = (10..20)
        .map(|i| call(&format!("u{i}@b.test"), "U", i, Some(&format!("k{i}"))))
        .collect();
    let answers = w.engine.send_transactional("t", batch).await.unwrap();
    ids.extend(answers.iter().map(|a| a.id));
    w.mta
        .wait_until("the outbox retried", |m| {
            m.entered.load(Ordering::SeqCst) >= 3
        })
        .await;
    assert_eq!(w.mta.handed(), 0);
    for id in &ids {
        assert_eq!(status(&w, *id).await, LogStatus::Pending);
    }
    let depth = w.engine.store().outbox_state().await.unwrap();
    assert_eq!((depth.depth, depth.oldest_at), (20, Some(T0)));

    w.mta.unavailable.store(false, Ordering::SeqCst);
    w.mta
        .wait_until("every call was handed over", |m| m.handed() >= 20)
        .await;
    stop.send(true).unwrap();
    outbox.await.unwrap();
    assert_eq!((w.mta.handed(), w.mta.distinct()), (20, 20));
    let order: Vec<LogId> = w.mta.calls.lock().iter().map(|o| o.row).collect();
    assert_eq!(order, ids, "handed over in the order the calls were stored");
    for id in &ids {
        assert_eq!(status(&w, *id).await, LogStatus::Taken);
    }
    assert_eq!(w.engine.store().outbox_state().await.unwrap().depth, 0);
}

async fn later_calls_use_the_new_version_and_earlier_ones_keep_theirs(store: Store) {
    let w = world(store);
    w.engine
        .put_tx_template("t", &content("First"))
        .await
        .unwrap();
    let a = send_one(&w, "t", call("a@b.test", "A", 1, None)).await;
    let v2 = w
        .engine
        .put_tx_template("t", &content("Second"))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let b = send_one(&w, "t", call("b@b.test", "B", 2, None)).await;
    assert_eq!((a.version, b.version), (1, 2));
    drain(&w).await;
    assert_eq!(subject_of(&w.mta.message_of(a.id).unwrap().body), "First");
    assert_eq!(subject_of(&w.mta.message_of(b.id).unwrap().body), "Second");
    let t = w.engine.store().tx_template("t").await.unwrap().unwrap();
    assert_eq!(t.current.version, 2);
    assert_eq!(
        t.versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(
        w.engine
            .store()
            .tx_call(a.id)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    assert_eq!(w.engine.store().tx_templates().await.unwrap().len(), 1);
}

async fn excluded_addresses_are_ignored_and_bounces_count_against_them(store: Store) {
    let w = world(store);
    let s = w.engine.store();
    let mut held = quarantine::new_state("held@b.test");
    held.status = AddressStatus::Denylisted;
    held.since = Some(T0 - 1);
    held.reason = Some(Reason::Denylisted);
    s.upsert_address_states(&[held]).await.unwrap();
    let v = w.engine.put_tx_template("t", &content("Hi")).await.unwrap();
    let ignored = send_one(&w, "t", call("held@b.test", "H", 1, None)).await;
    assert_eq!(ignored.status, LogStatus::Ignored);
    let sent = send_one(&w, "t", call("gone@b.test", "G", 2, None)).await;
    drain(&w).await;
    assert_eq!(w.mta.handed(), 1, "the denylisted address got nothing");

    let mut bounce = mta_event(&w, EventType::Bounce, sent.id);
    bounce.bounce_class = Some(10);
    bounce.raw_reason = Some("550 5.1.1 user unknown".into());
    bounce.reason = Some("rule".into());
    w.engine.apply_events(&[bounce]).await.unwrap();
    assert_eq!(status(&w, sent.id).await, LogStatus::Failed);
    let state = s.address_state("gone@b.test").await.unwrap().unwrap();
    assert_eq!(state.status, AddressStatus::Quarantine);
    let k = s.kpis(v.delivery).await.unwrap();
    assert_eq!(
        (k.to_deliver, k.failed, k.ignored, k.hard_bounces),
        (1, 1, 1, 1)
    );
    // The next call to it is ignored too.
    let next = send_one(&w, "t", call("gone@b.test", "G", 3, None)).await;
    assert_eq!(next.status, LogStatus::Ignored);
}

async fn calls_are_listed_by_filter_and_the_outbox_shows_its_depth(store: Store) {
    let w = world(store);
    w.engine.put_tx_template("a", &content("A")).await.unwrap();
    w.engine.put_tx_template("b", &content("B")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            send_one(&w, "a", call(&format!("x{i}@b.test"), "X", i, None))
                .await
                .id,
        );
        w.clock.advance(Duration::from_millis(10));
    }
    let b = send_one(&w, "b", call("x0@b.test", "X", 9, None)).await;
    let store = w.engine.store();
    let only = |template: Option<&str>, status, address: Option<&str>| TxFilter {
        template: template.map(String::from),
        status,
        address: address.map(String::from),
    };
    let page1 = store
        .list_tx_calls(&only(Some("a"), None, None), None, 3)
        .await
        .unwrap();
    let page2 = store
        .list_tx_calls(&only(Some("a"), None, None), Some(page1[2].row.id), 3)
        .await
        .unwrap();
    let listed: Vec<LogId> = page1.iter().chain(&page2).map(|c| c.row.id).collect();
    assert_eq!(listed, ids);
    let to_x0 = store
        .list_tx_calls(&only(None, None, Some("x0@b.test")), None, 10)
        .await
        .unwrap();
    assert_eq!(
        to_x0.iter().map(|c| c.row.id).collect::<Vec<_>>(),
        [ids[0], b.id]
    );
    let state = store.outbox_state().await.unwrap();
    assert_eq!((state.depth, state.oldest_at), (6, Some(T0)));
    // The outbox is flagged stale once its oldest call waited longer than outbox_warn_age (5m).
    let status = w.engine.outbox_status().await.unwrap();
    assert_eq!((status.oldest_age_ms, status.stale), (Some(50), false));
    w.clock.advance(Duration::from_millis(300_000 - 50));
    assert!(
        !w.engine.outbox_status().await.unwrap().stale,
        "exactly 5m is not over"
    );
    w.clock.advance(Duration::from_millis(1));
    let status = w.engine.outbox_status().await.unwrap();
    assert_eq!(
        (status.depth, status.oldest_age_ms, status.stale),
        (6, Some(300_001), true)
    );

    drain(&w).await;
    let taken = store
        .list_tx_calls(&only(None, Some(LogStatus::Taken), None), None, 10)
        .await
        .unwrap();
    assert_eq!(taken.len(), 6);
    let pending = store
        .list_tx_calls(&only(None, Some(LogStatus::Pending), None), None, 10)
        .await
        .unwrap();
    assert!(pending.is_empty());
    assert_eq!(store.outbox_state().await.unwrap(), OutboxState::default());
    assert!(!w.engine.outbox_status().await.unwrap().stale);
    assert!(
        store
            .list_tx_calls(&TxFilter::default(), None, 0)
            .await
            .is_err()
    );
}

async fn calls_stored_before_a_restart_are_sent_after_it(store: Store) {
    let w = world(store.clone());
    w.engine.put_tx_template("t", &content("Hi")).await.unwrap();
    let a = send_one(&w, "t", call("a@b.test", "A", 1, Some("k"))).await;
    drop(w);
    // A new process over the same database: the call is there, and is handed over once.
    let w = world(store);
    w.engine.recover().await.unwrap();
    let again = send_one(&w, "t", call("a@b.test", "A", 1, Some("k"))).await;
    assert_eq!((again.id, again.repeated), (a.id, true));
    drain(&w).await;
    assert_eq!((w.mta.handed(), w.mta.distinct()), (1, 1));
    assert_eq!(status(&w, a.id).await, LogStatus::Taken);
}

/// Calls arriving together are committed together (tx_commit.rs); each request still gets its
/// own answer: a repeat its original, a conflict its 409, and a conflict does not refuse the
/// calls it shared a transaction with.
async fn concurrent_calls_share_commits_and_keep_their_own_answers(store: Store) {
    let w = world(store);
    let v = w.engine.put_tx_template("t", &content("Hi")).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60_u32 {
        let engine = w.engine.clone();
        tasks.spawn(async move {
            // 0..40 distinct; 40..50 repeat key "same" with one payload; 50..60 use key
            // "same" with another payload.
            let c = match i {
                0..40 => call(&format!("u{i}@b.test"), "U", i, Some(&format!("k{i}"))),
                40..50 => call("s@b.test", "S", 1, Some("same")),
                _ => call("s@b.test", "S", 2, Some("same")),
            };
            (i, engine.send_transactional("t", vec![c]).await)
        });
    }
    let mut distinct = std::collections::BTreeSet::new();
    let (mut same_ids, mut conflicts, mut repeats) = (Vec::new(), 0, 0);
    while let Some(done) = tasks.join_next().await {
        let (i, r) = done.unwrap();
        match r {
            Ok(mut a) => {
                let a = a.pop().unwrap();
                if i < 40 {
                    assert!(!a.repeated);
                    assert!(distinct.insert(a.id), "ids are distinct");
                } else {
                    same_ids.push(a.id);
                    repeats += usize::from(a.repeated);
                }
            }
            Err(EngineError::Store(StoreError::KeyConflict { .. })) => conflicts += 1,
            Err(e) => panic!("call {i}: {e:?}"),
        }
    }
    // Whichever payload took the key first, its ten calls share one id and the other ten are
    // refused.
    assert_eq!((same_ids.len(), conflicts), (10, 10));
    assert!(same_ids.iter().all(|id| *id == same_ids[0]));
    assert_eq!(repeats, 9);
    assert!(!distinct.contains(&same_ids[0]));
    let k = w.engine.store().kpis(v.delivery).await.unwrap();
    assert_eq!((k.to_deliver, k.pending), (41, 41));
    drain(&w).await;
    assert_eq!((w.mta.handed(), w.mta.distinct()), (41, 41));
}

/// A call's validity counts from the call, not from the hand-over: one that waited in the
/// outbox past it fails without being sent; one the MTA took before (its answer lost, so the
/// row stayed Pending) is answered as the repeat it is and keeps going.
async fn a_call_past_its_validity_fails_unless_the_mta_already_had_it(store: Store) {
    let w = world_with(store, ScriptedMta::gated());
    let mut short = content("Hi");
    short.validity_ms = 60_000;
    w.engine.put_tx_template("t", &short).await.unwrap();
    // Taken by the MTA, but the answer was lost: Pending, with the MTA holding it.
    let had = send_one(&w, "t", call("had@b.test", "H", 1, Some("k-had"))).await;
    w.mta.lose_answers.store(true, Ordering::SeqCst);
    let (_keep, stopped) = watch::channel(false);
    let engine = w.engine.clone();
    let pass = tokio::spawn(async move { engine.drain_outbox(stopped).await });
    let gate = w.mta.gate.as_ref().unwrap();
    gate.add_permits(1);
    w.mta
        .wait_until("the first hand-over", |m| m.handed() >= 1)
        .await;
    // The retry waits at the MTA's door; ten seconds on, a second call comes in behind it.
    w.mta
        .wait_until("the retry", |m| m.entered.load(Ordering::SeqCst) >= 2)
        .await;
    assert_eq!(status(&w, had.id).await, LogStatus::Pending);
    w.clock.advance(Duration::from_secs(10));
    let late = send_one(&w, "t", call("late@b.test", "L", 2, Some("k-late"))).await;
    // The MTA answers again two minutes on: both calls are past their minute.
    w.clock.advance(Duration::from_secs(120));
    gate.add_permits(100);
    pass.await.unwrap().unwrap();
    let late_out = w.mta.message_of(late.id).expect("handed over");
    assert_eq!(
        late_out.expires_at,
        Some(T0 + 10_000 + 60_000),
        "the call's time + validity"
    );
    assert_eq!(
        w.mta.message_of(had.id).unwrap().expires_at,
        Some(T0 + 60_000)
    );
    assert_eq!(status(&w, had.id).await, LogStatus::Taken, "the MTA had it");
    let row = w
        .engine
        .store()
        .tx_call(late.id)
        .await
        .unwrap()
        .unwrap()
        .row;
    assert_eq!(row.status, LogStatus::Failed);
    let f = row.failure.expect("a failure");
    assert_eq!(
        (f.reason, f.rule.as_str()),
        (Reason::NotDefined, "mta:expired")
    );
    assert!(f.text.contains("expired"), "{}", f.text);
    assert_eq!(
        w.mta.distinct(),
        1,
        "the expired call never reached the MTA's spool"
    );
    assert_eq!(w.engine.store().outbox_state().await.unwrap().depth, 0);
}
