//! The campaign engine end to end over a scripted injector (an MTA that answers as told) and
//! hand-built MTA events, on SQLite and (when configured) on PostgreSQL. The whole path through
//! the real MTA is in the binary's tests; these pin the engine's own rules: analysis, the
//! state machine, never twice and never skipped, stop, MTA outages, event intake.

mod common;

use cartero_bounce::Reason;
use cartero_campaign::engine::{Engine, EngineConfig, EngineError};
use cartero_campaign::inject::Outgoing;
use cartero_campaign::model::*;
use cartero_campaign::quarantine;
use cartero_campaign::store::*;
use cartero_clock::{Clock, ManualClock};
use cartero_events::{Event, EventType};
use parking_lot::Mutex;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

const T0: UnixMillis = 1_700_000_000_000;

on_both_backends!(
    a_delivery_goes_from_analysis_to_finished,
    pause_and_resume_never_send_twice_nor_skip,
    stop_cancels_what_the_mta_has_not_taken,
    rows_wait_while_the_mta_is_unavailable,
    a_lost_acknowledgement_is_handed_over_again_with_the_same_key,
    an_async_bounce_named_by_message_id_fails_a_sent_row,
    template_errors_are_reported_before_anything_is_sent,
    analysis_progress_shows_in_the_status_while_it_runs,
    a_paged_analysis_keeps_list_order_and_counts_every_error,
    a_delivery_that_cannot_resume_does_not_stop_the_others,
    a_replay_of_100k_events_counts_nothing_twice,
);

use common::scripted::ScriptedMta;

struct World {
    engine: Engine,
    mta: Arc<ScriptedMta>,
    clock: Arc<ManualClock>,
}

fn config() -> EngineConfig {
    EngineConfig {
        batch: 10,
        senders: 1,
        retry_min: Duration::from_millis(1),
        retry_max: Duration::from_millis(5),
        ..EngineConfig::default()
    }
}

fn world(store: Store, mta: ScriptedMta) -> World {
    let clock = Arc::new(ManualClock::new(T0));
    let mta = Arc::new(mta);
    let engine = Engine::new(store, clock.clone(), mta.clone(), config());
    World { engine, mta, clock }
}

fn new_delivery(
    name: &str,
    from: &str,
    subject: &str,
    text: impl Into<String>,
    list: ListId,
) -> NewDelivery {
    NewDelivery {
        name: name.into(),
        from: from.into(),
        subject: subject.into(),
        text_template: Some(text.into()),
        html_template: None,
        list,
        validity_ms: DEFAULT_VALIDITY_MS,
        pool: None,
    }
}

/// A ready list of `emails`, each with a `first_name` attribute.
async fn list(store: &Store, emails: &[&str]) -> ListId {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("target-{}", N.fetch_add(1, Ordering::SeqCst));
    let id = store.create_list(&name, T0).await.unwrap();
    let recipients: Vec<NewRecipient> = emails
        .iter()
        .enumerate()
        .map(|(i, e)| NewRecipient {
            email: e.to_string(),
            attributes: serde_json::json!({ "first_name": format!("n{i}") })
                .as_object()
                .unwrap()
                .clone(),
        })
        .collect();
    store.add_recipients(id, &recipients, T0).await.unwrap();
    id
}

async fn analyzed(w: &World, emails: &[&str]) -> DeliveryId {
    let list = list(w.engine.store(), emails).await;
    let d = w
        .engine
        .create_delivery(&new_delivery(
            "news",
            "News <news@sender.test>",
            "Hello {{ first_name }}",
            "Hi {{ first_name }}",
            list,
        ))
        .await
        .unwrap();
    w.engine.analyze(d.id, &|_| {}).await.unwrap();
    d.id
}

/// A Draft delivery of `list` whose subject needs `first_name`.
async fn news(w: &World, list: ListId) -> DeliveryId {
    let new = new_delivery(
        "news",
        "news@sender.test",
        "Hello {{ first_name }}",
        "Hi",
        list,
    );
    w.engine.create_delivery(&new).await.unwrap().id
}

fn emails(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("user{i}@d{}.test", i % 3)).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// An MTA event about a message the scripted MTA took.
fn event(w: &World, kind: EventType, o: &Outgoing, message_id: &str) -> Event {
    let mut e = Event::new(kind, w.clock.as_ref());
    e.message_id = Some(message_id.into());
    e.rcpt_to = Some(o.recipient.clone());
    e.delivery_id = Some(o.delivery.0.to_string());
    e.metadata = o.metadata();
    e
}

fn failed(mut e: Event, class: u16, reply: &str) -> Event {
    e.bounce_class = Some(class);
    e.raw_reason = Some(reply.into());
    e.reason = Some("rule".into());
    e
}

async fn a_delivery_goes_from_analysis_to_finished(store: Store) {
    let w = world(store, ScriptedMta::default());
    let s = w.engine.store();
    let mut q = quarantine::new_state("held@d.test");
    q.status = AddressStatus::Quarantine;
    q.since = Some(T0 - 1000);
    q.reason = Some(Reason::UserUnknown);
    s.upsert_address_states(&[q]).await.unwrap();
    let list = list(
        s,
        &[
            "a@d.test",
            "b@d.test",
            "bad-address",
            "a@D.TEST",
            "held@d.test",
            "c@d.test",
            "e@d.test",
        ],
    )
    .await;
    let d = news(&w, list).await;
    let seen = Mutex::new(Vec::new());
    let counts = w
        .engine
        .analyze(d, &|c| seen.lock().push(c.candidates))
        .await
        .unwrap();
    assert_eq!(
        (counts.candidates, counts.to_deliver, counts.invalid_syntax),
        (7, 4, 1)
    );
    assert_eq!((counts.duplicate, counts.quarantine), (1, 1));
    assert_eq!(seen.lock().last(), Some(&7));
    assert_eq!(
        w.engine.delivery(d).await.unwrap().state,
        DeliveryState::Analyzed
    );

    w.engine.start(d).await.unwrap();
    w.engine.wait_sender(d).await;
    assert_eq!((w.mta.handed(), w.mta.distinct()), (4, 4));
    let st = w.engine.status(d).await.unwrap();
    assert_eq!((st.kpis.taken, st.kpis.pending, st.kpis.ignored), (4, 0, 3));
    assert_eq!(st.efs.success.count, 0);
    assert_eq!(st.delivery.state, DeliveryState::Running);

    let by_addr = |a: &str| {
        let calls = w.mta.calls.lock();
        calls.iter().find(|o| o.recipient == a).cloned().unwrap()
    };
    let id = |o: &Outgoing| w.mta.keys.lock()[&o.idempotency_key()].clone();
    let (a, b, c, e) = (
        by_addr("a@d.test"),
        by_addr("b@d.test"),
        by_addr("c@d.test"),
        by_addr("e@d.test"),
    );
    let body = String::from_utf8(a.body.clone()).unwrap();
    assert!(body.contains("Hello n0"), "{body}");
    // The MTA sends nothing after the delivery's validity, however late a row is handed over.
    let started = st.delivery.started_at.expect("started");
    assert_eq!(a.expires_at, Some(started + DEFAULT_VALIDITY_MS));
    w.clock.advance(Duration::from_secs(10));
    let mut events = vec![
        event(&w, EventType::Delivery, &a, &id(&a)),
        event(&w, EventType::Delivery, &b, &id(&b)),
        failed(
            event(&w, EventType::Bounce, &c, &id(&c)),
            10,
            "550 5.1.1 no such user",
        ),
        failed(
            event(&w, EventType::Delay, &e, &id(&e)),
            20,
            "452 4.2.2 mailbox full",
        ),
    ];
    let report = w.engine.apply_events(&events).await.unwrap();
    assert_eq!(report.applied, 4);
    let st = w.engine.status(d).await.unwrap();
    assert_eq!((st.kpis.sent, st.kpis.failed, st.kpis.taken), (2, 1, 1));
    assert_eq!(st.kpis.new_quarantines, 1);
    assert_eq!(
        st.delivery.state,
        DeliveryState::Running,
        "e is still on its way"
    );
    let c_state = s.address_state("c@d.test").await.unwrap().unwrap();
    assert_eq!(c_state.status, AddressStatus::Quarantine);

    w.clock.advance(Duration::from_secs(10));
    events.push(failed(
        event(&w, EventType::Expiration, &e, &id(&e)),
        20,
        "452 4.2.2 mailbox full",
    ));
    let report = w.engine.apply_events(&events).await.unwrap();
    assert_eq!(
        (report.applied, report.duplicates),
        (1, 4),
        "a replay counts nothing twice"
    );
    let st = w.engine.status(d).await.unwrap();
    assert_eq!((st.kpis.sent, st.kpis.failed, st.kpis.taken), (2, 2, 0));
    assert_eq!(st.kpis.new_quarantines, 1);
    assert!(st.r#final);
    assert_eq!(st.delivery.state, DeliveryState::Finished);

    // Reports (SPEC §3.6): the four relayed at T0, the outcomes in their own minutes.
    let tp = s.throughput(d, T0, T0 + 180_000, 60_000).await.unwrap();
    let sum = |f: fn(&ThroughputPoint) -> u64| tp.iter().map(f).sum::<u64>();
    assert_eq!(
        (sum(|p| p.relayed), sum(|p| p.sent), sum(|p| p.failed)),
        (4, 2, 2)
    );
    assert_eq!(tp[0].relayed, 4);
    assert!(sum(|p| p.bytes) > 4 * 100);
    let table = s.qualification_table(d, 20).await.unwrap();
    let user_unknown = table
        .iter()
        .find(|l| l.text == "550 5.1.1 no such user")
        .unwrap_or_else(|| panic!("{table:#?}"));
    assert_eq!(
        (user_unknown.r#type, user_unknown.reason, user_unknown.rows),
        (cartero_bounce::FailureType::Hard, Reason::UserUnknown, 1)
    );
    assert!(
        table
            .iter()
            .any(|l| l.rule == "analysis:duplicate" && l.rows == 1)
    );
    // The table is read from counters kept with the rows: a row whose failure changed (the
    // soft bounces of c, then its expiry) counts once, under its last failure.
    let rows = s
        .list_log_rows(d, &LogFilter::default(), None, 1000)
        .await
        .unwrap()
        .rows;
    let with_failure = rows.iter().filter(|r| r.failure.is_some()).count() as u64;
    assert_eq!(
        table.iter().map(|l| l.rows).sum::<u64>(),
        with_failure,
        "{table:#?}"
    );
    let c = rows.iter().find(|r| r.address == "c@d.test").unwrap();
    let c_text = &c.failure.as_ref().unwrap().text;
    assert!(
        table
            .iter()
            .any(|l| c_text.starts_with(&l.text[..4]) && l.rows >= 1)
    );
}

/// Waits (bounded) until `f` holds.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Waits (bounded) until the delivery is in `want`.
async fn until_state(engine: &Engine, d: DeliveryId, want: DeliveryState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while engine.delivery(d).await.unwrap().state != want {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

async fn pause_and_resume_never_send_twice_nor_skip(store: Store) {
    let w = world(store, ScriptedMta::gated());
    let all = emails(45);
    let d = analyzed(&w, &refs(&all)).await;
    w.engine.start(d).await.unwrap();
    let gate = w.mta.gate.as_ref().unwrap();
    gate.add_permits(1);
    until("second batch in the MTA", || {
        w.mta.entered.load(Ordering::SeqCst) == 2
    })
    .await;
    assert_eq!(w.mta.handed(), 10);
    // The sender is waiting in the MTA with its second batch: pause waits for it.
    let pause = {
        let e = w.engine.clone();
        tokio::spawn(async move { e.pause(d).await })
    };
    until_state(&w.engine, d, DeliveryState::Paused).await;
    gate.add_permits(1);
    pause.await.unwrap().unwrap();
    assert_eq!(
        w.mta.handed(),
        20,
        "the batch in the MTA's hands was finished"
    );
    let st = w.engine.status(d).await.unwrap();
    assert_eq!((st.kpis.taken, st.kpis.pending), (20, 25));
    assert_eq!(st.delivery.state, DeliveryState::Paused);
    assert!(matches!(
        w.engine.start(d).await,
        Err(EngineError::State { .. })
    ));

    gate.add_permits(100);
    w.engine.resume(d).await.unwrap();
    w.engine.wait_sender(d).await;
    assert_eq!((w.mta.handed(), w.mta.distinct()), (45, 45));
    let st = w.engine.status(d).await.unwrap();
    assert_eq!((st.kpis.taken, st.kpis.pending), (45, 0));
    let mut sent: Vec<String> = w
        .mta
        .calls
        .lock()
        .iter()
        .map(|o| o.recipient.clone())
        .collect();
    sent.sort();
    let mut want = all.clone();
    want.sort();
    assert_eq!(sent, want, "each recipient once");
}

async fn stop_cancels_what_the_mta_has_not_taken(store: Store) {
    let w = world(store, ScriptedMta::gated());
    let d = analyzed(&w, &refs(&emails(30))).await;
    w.engine.start(d).await.unwrap();
    let gate = w.mta.gate.as_ref().unwrap();
    gate.add_permits(1);
    until("second batch in the MTA", || {
        w.mta.entered.load(Ordering::SeqCst) == 2
    })
    .await;
    let stop = {
        let e = w.engine.clone();
        tokio::spawn(async move { e.stop(d).await })
    };
    until_state(&w.engine, d, DeliveryState::Stopped).await;
    gate.add_permits(1);
    stop.await.unwrap().unwrap();
    let st = w.engine.status(d).await.unwrap();
    assert_eq!(st.delivery.state, DeliveryState::Stopped);
    assert_eq!(
        (st.kpis.taken, st.kpis.failed, st.kpis.pending),
        (20, 10, 0)
    );
    let rows = common::all_rows(w.engine.store(), d).await;
    let cancelled: Vec<&LogRow> = rows
        .iter()
        .filter(|r| r.status == LogStatus::Failed)
        .collect();
    assert_eq!(cancelled.len(), 10);
    for r in cancelled {
        let f = r.failure.as_ref().unwrap();
        assert_eq!(f.rule, "delivery:stopped");
        assert!(
            w.mta.message_of(r.id).is_none(),
            "a cancelled row was not handed over"
        );
    }
    assert!(
        w.engine
            .store()
            .address_state(&rows[29].address)
            .await
            .unwrap()
            .is_none(),
        "a cancelled row charges nothing to its address"
    );
}

async fn rows_wait_while_the_mta_is_unavailable(store: Store) {
    let w = world(store, ScriptedMta::default());
    w.mta.unavailable.store(true, Ordering::SeqCst);
    let d = analyzed(&w, &refs(&emails(25))).await;
    w.engine.start(d).await.unwrap();
    // The sender keeps retrying; the rows stay Pending and unclaimed meanwhile.
    let store = w.engine.store().clone();
    for _ in 0..3 {
        let st = w.engine.status(d).await.unwrap();
        assert_eq!((st.kpis.pending, st.kpis.taken), (25, 0));
    }
    w.mta.unavailable.store(false, Ordering::SeqCst);
    w.engine.wait_sender(d).await;
    let k = store.kpis(d).await.unwrap();
    assert_eq!((k.pending, k.taken), (0, 25));
    assert_eq!(w.mta.distinct(), 25);
}

async fn a_lost_acknowledgement_is_handed_over_again_with_the_same_key(store: Store) {
    let w = world(store, ScriptedMta::default());
    w.mta.lose_answers.store(true, Ordering::SeqCst);
    let d = analyzed(&w, &refs(&emails(15))).await;
    w.engine.start(d).await.unwrap();
    w.engine.wait_sender(d).await;
    // The first batch reached the MTA twice; its key made the second one a repeat.
    assert_eq!((w.mta.handed(), w.mta.distinct()), (25, 15));
    let rows = common::all_rows(w.engine.store(), d).await;
    let keys = w.mta.keys.lock().clone();
    for r in &rows {
        let key = format!("cartero-campaign:{}:{}", d.0, r.id.0);
        assert_eq!(r.status, LogStatus::Taken);
        assert_eq!(r.message_id.as_ref(), Some(&keys[&key]));
    }

    // A sender that crashed holding claims: at the next start they are taken back at once.
    let d2 = analyzed(&w, &refs(&emails(5))).await;
    w.engine
        .store()
        .set_delivery_state(d2, &[DeliveryState::Analyzed], DeliveryState::Running, T0)
        .await
        .unwrap();
    let claimed = w
        .engine
        .store()
        .claim_pending(d2, 100, w.clock.now_ms(), 3_600_000)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5);
    w.engine.recover().await.unwrap();
    w.engine.wait_sender(d2).await;
    let k = w.engine.store().kpis(d2).await.unwrap();
    if w.engine.store().backend() == Backend::Sqlite {
        assert_eq!((k.pending, k.taken), (0, 5));
    } else {
        // Another node may hold PostgreSQL claims: they come back when their lease ends.
        assert_eq!((k.pending, k.taken), (5, 0));
    }
}

async fn an_async_bounce_named_by_message_id_fails_a_sent_row(store: Store) {
    let w = world(store, ScriptedMta::default());
    let d = analyzed(&w, &refs(&emails(3))).await;
    w.engine.start(d).await.unwrap();
    w.engine.wait_sender(d).await;
    let row = common::all_rows(w.engine.store(), d).await.remove(1);
    let o = w.mta.message_of(row.id).unwrap();
    assert!(o.bulk, "campaign mail is bulk (List-Unsubscribe)");
    let mid = row.message_id.clone().unwrap();
    w.clock.advance(Duration::from_secs(5));
    w.engine
        .apply_events(&[event(&w, EventType::Delivery, &o, &mid)])
        .await
        .unwrap();
    w.clock.advance(Duration::from_secs(3600));
    // inMail knows only the message id and the proven recipient.
    let mut oob = Event::new(EventType::OutOfBand, w.clock.as_ref());
    oob.message_id = Some(mid.clone());
    oob.rcpt_to = Some(row.address.clone());
    let oob = failed(oob, 10, "5.1.1 user unknown (async)");
    let mut stray = oob.clone();
    stray.event_id = "0190000000000000000000000000000f".into();
    stray.message_id = Some("00000000deadbeef".into());
    let r = w.engine.apply_events(&[oob, stray]).await.unwrap();
    assert_eq!((r.applied, r.unmatched), (1, 1));
    let k = w.engine.store().kpis(d).await.unwrap();
    assert_eq!((k.sent, k.failed), (0, 1));
    let after = w.engine.store().load_rows(&[row.id]).await.unwrap();
    assert_eq!(after[0].status, LogStatus::Failed);
}

async fn template_errors_are_reported_before_anything_is_sent(store: Store) {
    let w = world(store, ScriptedMta::default());
    let s = w.engine.store();
    let list = list(s, &["a@d.test", "b@d.test"]).await;
    s.add_recipients(
        list,
        &[NewRecipient {
            email: "nameless@d.test".into(),
            attributes: serde_json::Map::new(),
        }],
        T0,
    )
    .await
    .unwrap();
    let d = news(&w, list).await;
    let e = w.engine.analyze(d, &|_| {}).await.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("nameless@d.test") && text.contains("first_name") && text.contains("subject"),
        "{text}"
    );
    match e {
        EngineError::Analysis(cartero_campaign::engine::AnalysisError::Templates {
            total,
            errors,
        }) => {
            assert_eq!((total, errors.len()), (1, 1));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        w.engine.delivery(d).await.unwrap().state,
        DeliveryState::Draft
    );
    assert_eq!(
        s.count_log_rows(d).await.unwrap(),
        [0; 5],
        "nothing half-applied"
    );
    assert!(matches!(
        w.engine.start(d).await,
        Err(EngineError::State { .. })
    ));
    assert_eq!(w.mta.handed(), 0);
    // A bad template is refused when the delivery is created.
    let bad = w
        .engine
        .create_delivery(&new_delivery(
            "broken",
            "news@sender.test",
            "Hello {{ first_name",
            "Hi",
            list,
        ))
        .await
        .unwrap_err();
    assert!(matches!(bad, EngineError::Template(_)), "{bad:?}");
}

async fn analysis_progress_shows_in_the_status_while_it_runs(store: Store) {
    let clock = Arc::new(ManualClock::new(T0));
    let cfg = EngineConfig {
        analysis_page: 3,
        ..config()
    };
    let engine = Engine::new(store, clock.clone(), Arc::new(ScriptedMta::default()), cfg);
    let list = list(engine.store(), &refs(&emails(8))).await;
    let d = engine
        .create_delivery(&new_delivery("p", "news@sender.test", "Hi", "Hi", list))
        .await
        .unwrap()
        .id;
    // The callback runs before the page's progress is published: it sees the page before.
    let seen = Mutex::new(Vec::new());
    let e2 = engine.clone();
    engine
        .analyze(d, &|_| {
            let st = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(e2.status(d))
            })
            .unwrap();
            seen.lock()
                .push(st.analysis.map(|a| (a.counts.candidates, a.recipients)));
        })
        .await
        .unwrap();
    assert_eq!(*seen.lock(), vec![None, Some((3, 8)), Some((6, 8))]);
    assert!(
        engine.status(d).await.unwrap().analysis.is_none(),
        "gone once done"
    );
}

async fn a_delivery_that_cannot_resume_does_not_stop_the_others(store: Store) {
    let w = world(store.clone(), ScriptedMta::default());
    let good = analyzed(&w, &refs(&emails(4))).await;
    let list = list(w.engine.store(), &["x@d.test"]).await;
    let big = w
        .engine
        .create_delivery(&new_delivery(
            "big",
            "news@sender.test",
            "Hi",
            "x".repeat(5_000),
            list,
        ))
        .await
        .unwrap()
        .id;
    w.engine.analyze(big, &|_| {}).await.unwrap();
    for d in [good, big] {
        store
            .set_delivery_state(d, &[DeliveryState::Analyzed], DeliveryState::Running, T0)
            .await
            .unwrap();
    }
    // A restart with a lower template limit: the big one cannot compile any more.
    let mut cfg = config();
    cfg.render.max_template_bytes = 1_000;
    let mta = Arc::new(ScriptedMta::default());
    let engine = Engine::new(store, w.clock.clone(), mta.clone(), cfg);
    engine.recover().await.unwrap();
    engine.wait_sender(good).await;
    assert_eq!(engine.store().kpis(good).await.unwrap().taken, 4);
    assert_eq!(
        engine.store().kpis(big).await.unwrap().pending,
        1,
        "left as it was"
    );
    assert_eq!(mta.handed(), 4);
}

/// The analysis reads, checks and writes pages at once: the log must still follow the list, and
/// the errors be counted over every page and listed in list order.
async fn a_paged_analysis_keeps_list_order_and_counts_every_error(store: Store) {
    let cfg = EngineConfig {
        analysis_page: 4,
        max_reported_errors: 3,
        ..config()
    };
    let engine = Engine::new(
        store,
        Arc::new(ManualClock::new(T0)),
        Arc::new(ScriptedMta::default()),
        cfg,
    );
    let s = engine.store();
    let id = s.create_list("paged", T0).await.unwrap();
    // 23 recipients; every fifth from the third has no first name; the 21st repeats the 1st.
    let recipients: Vec<NewRecipient> = (0..23)
        .map(|i| {
            let email = if i == 20 {
                "u0@d.test".to_string()
            } else {
                format!("u{i}@d.test")
            };
            let attributes = if i % 5 == 2 {
                serde_json::Map::new()
            } else {
                serde_json::json!({ "first_name": format!("n{i}") })
                    .as_object()
                    .unwrap()
                    .clone()
            };
            NewRecipient { email, attributes }
        })
        .collect();
    s.add_recipients(id, &recipients, T0).await.unwrap();
    let create = |subject: &str| new_delivery("paged", "news@sender.test", subject, "Hi", id);
    let d = engine
        .create_delivery(&create("Hello {{ first_name }}"))
        .await
        .unwrap()
        .id;
    match engine.analyze(d, &|_| {}).await.unwrap_err() {
        EngineError::Analysis(cartero_campaign::engine::AnalysisError::Templates {
            total,
            errors,
        }) => {
            assert_eq!(total, 5, "u2, u7, u12, u17, u22");
            let shown: Vec<&str> = errors.iter().map(|e| e.address.as_str()).collect();
            assert_eq!(shown, ["u2@d.test", "u7@d.test", "u12@d.test"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.count_log_rows(d).await.unwrap(),
        [0; 5],
        "nothing half-applied"
    );
    let d = engine.create_delivery(&create("Hello")).await.unwrap().id;
    let counts = engine.analyze(d, &|_| {}).await.unwrap();
    assert_eq!(
        (counts.candidates, counts.to_deliver, counts.duplicate),
        (23, 22, 1)
    );
    let rows = common::all_rows(s, d).await;
    let addresses: Vec<String> = rows.iter().map(|r| r.address.clone()).collect();
    let listed: Vec<String> = recipients.iter().map(|r| r.email.clone()).collect();
    assert_eq!(addresses, listed, "one row per recipient, in list order");
    assert!(
        rows.windows(2)
            .all(|w| w[0].recipient < w[1].recipient && w[0].id < w[1].id)
    );
    assert_eq!(rows[20].status, LogStatus::Ignored);
}

/// The event intake's promise for a webhook that delivers at least once: a replayed event,
/// however often, changes no row, no KPI and no address record (issue 10: a replay of 100k
/// events with no double counting).
async fn a_replay_of_100k_events_counts_nothing_twice(store: Store) {
    let w = world(store, ScriptedMta::default());
    let d = analyzed(&w, &refs(&emails(300))).await;
    w.engine.start(d).await.unwrap();
    w.engine.wait_sender(d).await;
    let calls = w.mta.calls.lock().clone();
    let keys = w.mta.keys.lock().clone();
    let id = |o: &Outgoing| keys[&o.idempotency_key()].clone();
    w.clock.advance(Duration::from_secs(10));
    let mut events = Vec::new();
    for (i, o) in calls.iter().enumerate() {
        events.push(match i % 6 {
            0 => failed(
                event(&w, EventType::Bounce, o, &id(o)),
                10,
                "550 5.1.1 no such user",
            ),
            1 => failed(
                event(&w, EventType::Delay, o, &id(o)),
                20,
                "452 4.2.2 mailbox full",
            ),
            _ => event(&w, EventType::Delivery, o, &id(o)),
        });
        if i % 6 == 2 {
            events.push(event(&w, EventType::SpamComplaint, o, &id(o)));
        }
    }
    let first = w.engine.apply_events(&events).await.unwrap();
    assert_eq!(first.applied, events.len() as u64);
    let kpis = w.engine.store().kpis(d).await.unwrap();
    assert_eq!((kpis.sent, kpis.failed, kpis.taken), (200, 50, 50));
    assert_eq!(
        (kpis.complaints, kpis.new_quarantines),
        (50, 100),
        "{kpis:?}"
    );
    let addresses: Vec<String> = calls.iter().map(|o| o.recipient.to_lowercase()).collect();
    let states = w.engine.store().address_states(&addresses).await.unwrap();
    let rows = common::all_rows(w.engine.store(), d).await;

    let rounds = 100_000_usize.div_ceil(events.len());
    let mut replay = Vec::with_capacity(1000);
    let (mut replayed, mut duplicates) = (0_u64, 0_u64);
    for _ in 0..rounds {
        for e in &events {
            replay.push(e.clone());
            if replay.len() == 1000 {
                duplicates += w.engine.apply_events(&replay).await.unwrap().duplicates;
                replayed += replay.len() as u64;
                replay.clear();
            }
        }
    }
    duplicates += w.engine.apply_events(&replay).await.unwrap().duplicates;
    replayed += replay.len() as u64;
    assert!(replayed >= 100_000);
    assert_eq!(
        duplicates, replayed,
        "every replayed event is known as applied"
    );
    assert_eq!(w.engine.store().kpis(d).await.unwrap(), kpis);
    assert_eq!(
        w.engine.store().address_states(&addresses).await.unwrap(),
        states
    );
    assert_eq!(common::all_rows(w.engine.store(), d).await, rows);
}
