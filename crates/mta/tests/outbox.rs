//! The durable event outbox seen from the MTA: reception and outcome events written with the
//! spool state, inMail events before the report is acknowledged, `spool:lost` bounces at start;
//! all read again after a restart until acknowledged.

mod support;

use std::time::Duration;

use cartero_events::{Event, EventType};
use cartero_mta::{EventOutbox, OutboxEvent};
use cartero_shaping::Scope;
use support::inmail::{BOUNCES, deliver, dsn, header, http, inmail_config, send};
use support::{Env, RawClient, WAIT, message};

const CONSUMER: &str = "campaign";

async fn start(tweak: impl FnOnce(&mut cartero_mta::MtaConfig)) -> Env {
    Env::start_with_outbox(vec![CONSUMER.to_string()], tweak).await
}

fn reader(env: &Env) -> EventOutbox {
    env.mta.event_outbox(CONSUMER).expect("outbox consumer")
}

/// Reads until `done` holds for what was read, failing after [`WAIT`] with what came.
async fn read_until(
    r: &mut EventOutbox,
    done: impl Fn(&[OutboxEvent]) -> bool,
) -> Vec<OutboxEvent> {
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    while !done(&got) {
        match tokio::time::timeout_at(deadline, r.next_batch(16)).await {
            Ok(batch) => got.extend(batch.expect("outbox readable")),
            Err(_) => panic!("outbox gave only {:#?}", kinds(&got)),
        }
    }
    got
}

fn count(got: &[OutboxEvent], kind: EventType) -> usize {
    got.iter().filter(|e| e.event.r#type == kind).count()
}

fn kinds(got: &[OutboxEvent]) -> Vec<(EventType, Option<String>)> {
    got.iter()
        .map(|e| (e.event.r#type, e.event.rcpt_to.clone()))
        .collect()
}

fn ids(events: &[Event]) -> Vec<String> {
    let mut v: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    v.sort();
    v
}

async fn assert_nothing(r: &mut EventOutbox) {
    let got = tokio::time::timeout(Duration::from_millis(300), r.next_batch(16)).await;
    if let Ok(b) = got {
        panic!("unexpected outbox events: {:#?}", kinds(&b.unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reception_and_delivery_events_come_again_after_restart_until_acked() {
    let mut env = start(|_| {}).await;
    let to = ["ann@example.test", "bob@example.test"];
    env.inject(&to).await;
    let delivered = env.events.wait_for(EventType::Delivery, 2).await;
    let mut emitted = delivered.clone();
    emitted.extend(env.events.of(EventType::Reception));

    let mut r = reader(&env);
    let want = |g: &[OutboxEvent]| count(g, EventType::Delivery) == 2;
    let got = read_until(&mut r, want).await;
    assert_eq!(got.len(), 4, "{:#?}", kinds(&got));
    let events: Vec<Event> = got.iter().map(|e| e.event.clone()).collect();
    // The very events the in-memory sinks got, with their ids.
    assert_eq!(ids(&events), ids(&emitted));
    for rcpt in to {
        let at = |kind| {
            got.iter()
                .position(|e| e.event.r#type == kind && e.event.rcpt_to.as_deref() == Some(rcpt))
                .unwrap_or_else(|| panic!("no {kind:?} for {rcpt}"))
        };
        assert!(
            at(EventType::Reception) < at(EventType::Delivery),
            "commit order"
        );
    }
    assert!(events.iter().all(|e| e.message_id.is_some()));
    drop(r);

    // Not acknowledged: all of them again after a restart.
    env.restart().await;
    let mut r = reader(&env);
    let again = read_until(&mut r, |g| g.len() >= 4).await;
    let again_events: Vec<Event> = again.iter().map(|e| e.event.clone()).collect();
    assert_eq!(ids(&again_events), ids(&emitted));
    r.ack(again[3].position).await.unwrap();
    drop(r);

    // Acknowledged: nothing old after the next restart, new events still come.
    env.restart().await;
    let mut r = reader(&env);
    assert_nothing(&mut r).await;
    env.inject(&["cid@example.test"]).await;
    let fresh = read_until(&mut r, |g| count(g, EventType::Delivery) == 1).await;
    assert_eq!(fresh.len(), 2, "{:#?}", kinds(&fresh));
    assert!(
        fresh
            .iter()
            .all(|e| e.event.rcpt_to.as_deref() == Some("cid@example.test"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_is_off_unless_named_and_a_consumer_reads_alone() {
    let env = Env::start(vec![], |_| {}).await;
    assert!(env.mta.event_outbox(CONSUMER).is_err());
    assert!(!env.cfg.data_dir.join("spool/outbox").exists());
    let env = start(|_| {}).await;
    let r = reader(&env);
    assert!(
        env.mta.event_outbox(CONSUMER).is_err(),
        "one reader at a time"
    );
    assert!(env.mta.event_outbox("other").is_err());
    drop(r);
    assert!(env.mta.event_outbox(CONSUMER).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inmail_events_are_in_the_outbox_when_the_report_is_acknowledged() {
    let mut env = start(inmail_config).await;
    let (id, m) = deliver(&mut env, "dora@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let (mut c, banner) = RawClient::connect(env.smtp_addr()).await;
    assert_eq!(banner.code, 220);
    c.ehlo().await;
    let diag = "550 5.1.1 <dora@example.test>: Recipient address rejected: User unknown";
    let r = send(
        &mut c,
        &format!("b-{token}@{BOUNCES}"),
        &dsn("dora@example.test", &token, diag),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let url = format!("{}/unsubscribe/{token}", env.http_base());
    let resp = http()
        .post(&url)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Restarted without reading: the events were durable when the 250 and the 200 were sent.
    env.restart().await;
    let mut r = reader(&env);
    let got = read_until(&mut r, |g| {
        count(g, EventType::OutOfBand) == 1 && count(g, EventType::ListUnsubscribe) == 1
    })
    .await;
    let oob = got
        .iter()
        .find(|e| e.event.r#type == EventType::OutOfBand)
        .unwrap();
    assert_eq!(oob.event.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(oob.event.raw_reason.as_deref(), Some(diag));
    assert!(got.iter().all(|e| e.event.r#type != EventType::Shaping));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_lost_bounces_at_start_are_in_the_outbox() {
    let mut env = start(|_| {}).await;
    let held = Scope::Domain("example.test".into());
    env.mta.suspend(held.clone(), None, "test".into()).await;
    let mut lost_id = String::new();
    // The damaged one in the middle: damage in the last record looks like a torn write.
    for n in 0..3 {
        let to = format!("user{n}@example.test");
        let injected = env
            .inject_with(&[to.as_str()], |i| {
                i.body = message(&to, &format!("damaged-{n}"));
            })
            .await;
        if n == 1 {
            lost_id = injected.message_id;
        }
    }
    env.mta.shutdown().await;
    let segments = env.cfg.data_dir.join("spool").join("segments");
    let seg = std::fs::read_dir(&segments)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .expect("a segment file");
    let mut data = std::fs::read(&seg).unwrap();
    let needle = b"Subject: damaged-1";
    let at = data
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("message 1 in the segment");
    data[at + 3] ^= 0x20;
    std::fs::write(&seg, &data).unwrap();

    env.restart().await;
    let mut r = reader(&env);
    let got = read_until(&mut r, |g| count(g, EventType::Bounce) == 1).await;
    let lost = got
        .iter()
        .find(|e| e.event.r#type == EventType::Bounce)
        .unwrap();
    assert_eq!(lost.event.message_id.as_deref(), Some(lost_id.as_str()));
    assert_eq!(lost.event.reason.as_deref(), Some("spool:lost"));
    // Only the receptions came before it; the held messages were not delivered.
    assert_eq!(count(&got, EventType::Reception), 3, "{:#?}", kinds(&got));
}
