//! Failures: permanent replies, DNS failures, expiry, a refusing banner and operator drain, each
//! checked through the events the MTA emits.

mod support;

use cartero_dns::testing::Zone;
use cartero_events::EventType;
use cartero_shaping::Scope;
use cartero_smtp::Reply;
use std::time::Duration;
use support::{Env, Rules};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_550_5_1_1_is_a_hard_bounce_with_the_exact_reply() {
    let mut env = Env::start(vec![], |_| {}).await;
    env.inject(&["reject-1@example.test"]).await;
    let b = env.events.wait_for(EventType::Bounce, 1).await;
    let b = &b[0];
    assert_eq!(b.rcpt_to.as_deref(), Some("reject-1@example.test"));
    assert_eq!(b.bounce_class, Some(10));
    assert_eq!(b.error_code, Some(550));
    assert_eq!(b.enhanced_code.as_deref(), Some("5.1.1"));
    assert_eq!(b.raw_reason.as_deref(), Some("550 5.1.1 No such user here"));
    assert_eq!(b.mx_host.as_deref(), Some("mx.example.test"));
    assert_eq!(b.num_retries, Some(0));
    assert!(env.events.of(EventType::Delay).is_empty());
    assert_eq!(env.mta.queue_summary().await.unwrap().recipients, 0);
    assert!(env.sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_replies_in_one_transaction_settle_each_recipient_on_its_own() {
    let mut env = Env::start(vec![], |_| {}).await;
    env.inject(&[
        "ok@example.test",
        "reject-2@example.test",
        "full-2@example.test",
    ])
    .await;
    let d = env
        .events
        .wait_rcpt(EventType::Delivery, "ok@example.test")
        .await;
    let b = env
        .events
        .wait_rcpt(EventType::Bounce, "reject-2@example.test")
        .await;
    let t = env
        .events
        .wait_rcpt(EventType::Delay, "full-2@example.test")
        .await;
    assert_eq!(d.message_id, b.message_id);
    assert_eq!(t.bounce_class, Some(22), "452 4.2.2 is a full mailbox");
    assert_eq!(t.error_code, Some(452));
    let msgs = env.sink.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].recipients, vec!["ok@example.test".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_mx_and_nxdomain_bounce_with_class_21_and_servfail_is_retried() {
    let zones = vec![
        Zone::new("nullmx.test").null_mx("nullmx.test"),
        Zone::new("broken.test").servfail("broken.test"),
    ];
    let mut env = Env::start(zones, |_| {}).await;
    env.inject(&["u@nullmx.test"]).await;
    // A name under a served zone that owns no records: NXDOMAIN.
    env.inject(&["u@nosuch.example.test"]).await;
    env.inject(&["u@broken.test"]).await;

    let null = env
        .events
        .wait_rcpt(EventType::Bounce, "u@nullmx.test")
        .await;
    assert_eq!(null.bounce_class, Some(21));
    assert_eq!(null.routing_domain.as_deref(), Some("nullmx.test"));
    let nx = env
        .events
        .wait_rcpt(EventType::Bounce, "u@nosuch.example.test")
        .await;
    assert_eq!(nx.bounce_class, Some(21));
    let sf = env
        .events
        .wait_rcpt(EventType::Delay, "u@broken.test")
        .await;
    assert_ne!(sf.bounce_class, None);
    assert!(
        env.events
            .of(EventType::Bounce)
            .iter()
            .all(|e| e.rcpt_to.as_deref() != Some("u@broken.test")),
        "SERVFAIL is transient"
    );
    let q = env.mta.queue_summary().await.unwrap();
    assert_eq!(q.recipients, 1);
    assert_eq!(q.domains[0].domain, "broken.test");
    assert!(env.sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_fails_with_the_class_of_the_last_transient_failure() {
    let mut env = Env::start(vec![], |_| {}).await;
    let inj = env
        .inject_with(&["slow-e@example.test"], |i| {
            i.validity = Some(Duration::from_secs(3600));
        })
        .await;
    let delay = env.events.wait_for(EventType::Delay, 1).await;
    assert_eq!(delay[0].bounce_class, Some(20));
    env.advance(Duration::from_secs(3600 + 60));
    let exp = env.events.wait_for(EventType::Expiration, 1).await;
    let exp = &exp[0];
    assert_eq!(exp.message_id.as_deref(), Some(inj.message_id.as_str()));
    assert_eq!(exp.bounce_class, Some(20));
    assert!(
        exp.raw_reason.as_deref().unwrap().contains("450 4.2.1"),
        "{:?}",
        exp.raw_reason
    );
    assert!(env.events.of(EventType::Delivery).is_empty());
    assert!(env.sink.messages().is_empty());
    assert_eq!(env.mta.queue_summary().await.unwrap().recipients, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_421_banner_defers_and_the_next_attempt_delivers() {
    let mut env = Env::start(vec![], |_| {}).await;
    env.sink.set_banner_421(true);
    env.inject(&["dora@example.test"]).await;
    let d = env.events.wait_for(EventType::Delay, 1).await;
    assert!(d[0].raw_reason.as_deref().unwrap().contains("421"), "{d:?}");
    env.sink.set_banner_421(false);
    env.advance(Duration::from_secs(3600));
    let ok = env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(ok[0].num_retries, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_fails_queued_recipients_of_a_domain_with_admin_class() {
    let zone = Zone::new("other.test")
        .mx("other.test", 10, "mx.other.test")
        .a("mx.other.test", "127.0.0.1");
    let mut env = Env::start(vec![zone], |_| {}).await;
    env.inject(&["defer-a@example.test", "defer-b@example.test"])
        .await;
    env.inject(&["defer-c@example.test"]).await;
    env.inject(&["defer-k@other.test"]).await;
    env.events.wait_for(EventType::Delay, 4).await;

    assert_eq!(env.mta.drain("example.test".into()).await, 3);
    let bounces = env.events.wait_for(EventType::Bounce, 3).await;
    assert!(
        bounces.iter().all(|b| b.bounce_class == Some(25)),
        "{bounces:?}"
    );
    assert!(
        bounces
            .iter()
            .all(|b| b.routing_domain.as_deref() == Some("example.test"))
    );
    let q = env.mta.queue_summary().await.unwrap();
    assert_eq!(q.recipients, 1, "other domains are untouched");
    assert_eq!(q.domains[0].domain, "other.test");
    assert_eq!(env.mta.drain("example.test".into()).await, 0);

    // Drained recipients are final: a later flush does not send them.
    env.sink
        .set_rules(Rules::Always(Reply::with_code(250, (2, 0, 0), "ok")));
    assert_eq!(env.mta.flush(None).await, 1);
    let d = env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(d[0].rcpt_to.as_deref(), Some("defer-k@other.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_layer_banner_timeout_overrides_the_delivery_default() {
    // A server that accepts and never greets. The global banner timeout (2 min) is far beyond
    // the event wait; only the per-domain one (300 ms) can produce the delay in time.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let mut env = Env::start(vec![], |cfg| {
        cfg.delivery.timeouts.banner = Duration::from_secs(120);
        cfg.delivery
            .routes
            .insert("silent.test".into(), addr.to_string());
        let layer: cartero_shaping::LimitsSpec =
            toml::from_str("timeouts = { banner = \"300ms\" }").unwrap();
        cfg.shaping.domains.insert("silent.test".into(), layer);
    })
    .await;
    env.inject(&["mute@silent.test"]).await;
    let d = env.events.wait_for(EventType::Delay, 1).await;
    assert_eq!(d[0].bounce_class, Some(24), "{d:?}");
    assert!(
        d[0].raw_reason.as_deref().unwrap_or("").contains("banner"),
        "{d:?}"
    );
    hold.abort();
}

/// Regression: a connection refused at the banner was fed to the response rules once for the
/// connection and again for every recipient that waited for it, so a `count` rule fired on the
/// first refusal of a busy queue. It must count connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_rule_counts_a_refused_connection_once_not_once_per_waiting_recipient() {
    let mut env = Env::start(vec![], |c| {
        c.shaping = toml::from_str(
            r#"
[default]
max_connections = 1
[adaptive]
throttle_patterns = []
[[adaptive.rules]]
name = "busy-twice"
pattern = '^421 4\.3\.2'
trigger = { type = "count", n = 2, within = "1h" }
action = { type = "suspend", for = "1h" }
"#,
        )
        .expect("test shaping config");
    })
    .await;
    env.sink.set_banner_421(true);
    // Five recipients ready at once, so one connection is tried for all of them.
    let backlog = Scope::Domain("example.test".into());
    env.mta
        .suspend(backlog.clone(), None, "backlog".into())
        .await
        .expect("suspend answered");
    for i in 0..5 {
        env.inject(&[&format!("w{i}@example.test")]).await;
    }
    assert!(env.mta.resume(backlog).await.is_some());
    let delays = env.events.wait_for(EventType::Delay, 5).await;
    assert!(
        delays.iter().all(|d| d.num_retries == Some(1)),
        "{delays:#?}"
    );
    let rule_fired = |env: &mut Env| {
        env.events
            .of(EventType::Shaping)
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("rule:busy-twice"))
            .count()
    };
    assert_eq!(rule_fired(&mut env), 0, "one refusal is one count");

    // The retry meets a second refusal: now the rule fires, and the recipients that waited for
    // that connection wait for the suspension without using another attempt.
    assert_eq!(env.mta.flush(None).await, 5);
    let delays = env.events.wait_for(EventType::Delay, 10).await;
    assert_eq!(rule_fired(&mut env), 1);
    for d in &delays[5..] {
        assert_eq!(d.num_retries, Some(1), "held, not charged: {d:#?}");
    }
    assert!(
        env.mta
            .shaping_view()
            .suspensions
            .iter()
            .any(|s| s.scope.starts_with("queue:default/")),
        "{:#?}",
        env.mta.shaping_view()
    );
    assert!(env.sink.messages().is_empty());
}
