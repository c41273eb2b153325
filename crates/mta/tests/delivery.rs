//! End-to-end delivery: SMTP injection → MX lookup through the test DNS → the scripted sink;
//! retries on the manual clock, next MX, batching, connection reuse and limits, restart.

mod support;

use cartero_dns::testing::Zone;
use cartero_events::EventType;
use cartero_mta::retry::RetryConfig;
use cartero_smtp::io::{ClientConfig, Connection, TlsMode};
use std::time::Duration;
use support::{Env, Rules};

fn minutes(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn header_value<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let head = msg.split("\r\n\r\n").next().unwrap_or("");
    head.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_injection_is_routed_by_mx_and_delivered_with_trace_headers() {
    let mut env = Env::start(vec![], |_| {}).await;
    let cfg = ClientConfig {
        tls: TlsMode::Disabled,
        ..ClientConfig::new("client.test")
    };
    let mut conn = Connection::connect(env.smtp_addr(), "mta.test", &cfg)
        .await
        .unwrap();
    let body = b"From: <sender@origin.test>\r\nTo: <alice@example.test>\r\nSubject: hi\r\n\r\nHello Alice\r\n";
    let res = conn
        .send("sender@origin.test", &["alice@example.test".into()], body)
        .await
        .unwrap();
    let accepted = res.data.expect("a reply to the data");
    assert_eq!(accepted.code, 250, "{accepted}");
    conn.quit().await;

    let reception = env.events.wait_for(EventType::Reception, 1).await;
    let delivery = env.events.wait_for(EventType::Delivery, 1).await;
    let (r, d) = (&reception[0], &delivery[0]);
    assert!(r.message_id.is_some());
    assert_eq!(r.rcpt_to.as_deref(), Some("alice@example.test"));
    assert!(
        accepted.text.contains(r.message_id.as_deref().unwrap()),
        "the 250 names the queue id: {accepted}"
    );
    assert_eq!(d.message_id, r.message_id);
    assert_eq!(d.rcpt_to.as_deref(), Some("alice@example.test"));
    assert_eq!(d.mx_host.as_deref(), Some("mx.example.test"));
    assert_eq!(d.routing_domain.as_deref(), Some("example.test"));
    assert_eq!(d.num_retries, Some(0));
    assert!(env.dns.queries_for("example.test") >= 1, "MX looked up");

    let msgs = env.sink.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.sender, "sender@origin.test");
    assert_eq!(m.recipients, vec!["alice@example.test".to_string()]);
    let text = m.text();
    assert!(
        text.starts_with("Received: from client.test ([127.0.0.1])"),
        "{text}"
    );
    assert!(text.contains("by mta.test with ESMTP"), "{text}");
    let mid = header_value(&text, "Message-ID").expect("Message-ID added");
    assert!(mid.starts_with('<') && mid.ends_with("@mta.test>"), "{mid}");
    let date = header_value(&text, "Date").expect("Date added");
    assert!(date.ends_with("+0000"), "{date}");
    assert!(text.ends_with("\r\nHello Alice\r\n"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_id_and_date_given_by_the_client_are_kept() {
    let mut env = Env::start(vec![], |_| {}).await;
    env.inject_with(&["bob@example.test"], |inj| {
        inj.body = b"Message-ID: <own@origin.test>\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nSubject: x\r\n\r\nbody\r\n".to_vec();
    })
    .await;
    env.events.wait_for(EventType::Delivery, 1).await;
    let text = env.sink.messages()[0].text();
    assert_eq!(text.matches("Message-ID:").count(), 1, "{text}");
    assert_eq!(text.matches("Date:").count(), 1, "{text}");
    assert!(text.contains("<own@origin.test>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_replies_are_retried_on_schedule_and_delivered_later() {
    let mut env = Env::start(vec![], |_| {}).await;
    let grey = env.inject(&["defer-1@example.test"]).await;
    let soft = env.inject(&["slow-1@example.test"]).await;
    let delays = env.events.wait_for(EventType::Delay, 2).await;
    let retry = RetryConfig::default();
    for (inj, rcpt) in [
        (&grey, "defer-1@example.test"),
        (&soft, "slow-1@example.test"),
    ] {
        let e = delays
            .iter()
            .find(|e| e.rcpt_to.as_deref() == Some(rcpt))
            .unwrap();
        let class = e.bounce_class.expect("a delay carries its bounce class");
        assert_eq!(e.num_retries, Some(1));
        let view = env
            .mta
            .inspect(inj.message_id.parse().unwrap())
            .await
            .expect("still queued");
        let next = view.queued[0].next_attempt;
        // The window of the first retry for this class, jitter included.
        let lo = retry
            .delay(1, cartero_bounce::BounceClass(class), 0.0)
            .as_millis() as u64;
        let hi = retry
            .delay(1, cartero_bounce::BounceClass(class), 1.0)
            .as_millis() as u64;
        assert!(
            (support::T0 + lo..=support::T0 + hi).contains(&next),
            "{rcpt}: class {class}, next attempt +{} ms not in [{lo}, {hi}]",
            next - support::T0
        );
    }
    let classes: Vec<_> = ["defer-1@example.test", "slow-1@example.test"]
        .iter()
        .map(|r| {
            delays
                .iter()
                .find(|e| e.rcpt_to.as_deref() == Some(*r))
                .unwrap()
                .bounce_class
        })
        .collect();
    // 451 4.7.1 looks like greylisting (70: 5–10 min first); 450 4.2.1 is a soft bounce (20: ~20 min).
    assert_eq!(classes, vec![Some(70), Some(20)]);
    let soft_next = env.mta.inspect(soft.message_id.parse().unwrap()).await;
    let soft_next = soft_next.unwrap().queued[0].next_attempt - support::T0;
    assert!(
        (18 * 60_000..=22 * 60_000).contains(&soft_next),
        "{soft_next}"
    );
    assert!(env.sink.messages().is_empty());

    env.sink.set_rules(Rules::AcceptAll);
    env.advance(minutes(25));
    let delivered = env.events.wait_for(EventType::Delivery, 2).await;
    assert!(delivered.iter().all(|e| e.num_retries == Some(1)));
    // The clock stood still since the advance: queue time is exactly the 25 minutes.
    assert!(delivered.iter().all(|e| e.queue_time == Some(25 * 60_000)));
    assert_eq!(env.sink.messages().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failure_on_first_mx_falls_back_to_the_next_one() {
    let zone = Zone::new("twomx.test")
        .mx("twomx.test", 10, "dead.twomx.test")
        .mx("twomx.test", 20, "live.twomx.test")
        // Nothing listens on 127.0.0.2 at the sink's port: the connection is refused.
        .a("dead.twomx.test", "127.0.0.2")
        .a("live.twomx.test", "127.0.0.1");
    let mut env = Env::start(vec![zone], |_| {}).await;
    env.inject(&["carol@twomx.test"]).await;
    let d = env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(d[0].mx_host.as_deref(), Some("live.twomx.test"));
    assert!(
        env.dns.queries_for("dead.twomx.test") >= 1,
        "first MX tried"
    );
    assert!(env.events.of(EventType::Delay).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_without_mx_is_delivered_to_its_address_record() {
    let zone = Zone::new("amx.test").a("amx.test", "127.0.0.1");
    let mut env = Env::start(vec![zone], |_| {}).await;
    env.inject(&["dan@amx.test"]).await;
    let d = env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(d[0].mx_host.as_deref(), Some("amx.test"));
    assert_eq!(env.sink.messages().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_of_one_message_share_a_transaction_and_connections_are_reused() {
    let mut env = Env::start(vec![], |_| {}).await;
    let rcpts = ["a@example.test", "b@example.test", "c@example.test"];
    env.inject(&rcpts).await;
    env.events.wait_for(EventType::Delivery, 3).await;
    let msgs = env.sink.messages();
    assert_eq!(msgs.len(), 1, "one transaction for three recipients");
    assert_eq!(msgs[0].recipients, rcpts.map(String::from).to_vec());

    for i in 0..20 {
        env.inject(&[&format!("user{i}@example.test")]).await;
    }
    env.events.wait_for(EventType::Delivery, 23).await;
    assert_eq!(env.sink.messages().len(), 21);
    let conns = env.sink.total_connections();
    assert!(conns < 20, "20 messages took {conns} connections");
}

/// Defers `n` messages to `domain` by keeping the sink down, then brings it back and makes them
/// all due at once, so the scheduler faces one burst it may spread over many connections.
async fn burst_after_outage(env: &mut Env, domain: &str, n: usize) {
    env.sink.stop();
    for i in 0..n {
        env.inject(&[&format!("user{i}@{domain}")]).await;
    }
    env.events.wait_for(EventType::Delay, n).await;
    env.sink.restart();
    env.advance(minutes(30));
    env.events.wait_for(EventType::Delivery, n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_connection_limit_of_one_is_never_exceeded() {
    let zone = Zone::new("x.test")
        .mx("x.test", 10, "mx.x.test")
        .a("mx.x.test", "127.0.0.1");
    let mut env = Env::start(vec![zone], |cfg| {
        let limit = cartero_shaping::LimitsSpec {
            max_connections: Some(1),
            ..Default::default()
        };
        cfg.shaping.domains.insert("x.test".into(), limit);
    })
    .await;
    burst_after_outage(&mut env, "x.test", 20).await;
    assert_eq!(env.sink.messages().len(), 20);
    assert_eq!(env.sink.max_concurrent(), 1);
}

/// The control for the test above: the same burst without a limit does open several connections,
/// so a max of 1 there is the limit's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_limit_a_burst_opens_several_connections() {
    let mut env = Env::start(vec![], |_| {}).await;
    burst_after_outage(&mut env, "example.test", 20).await;
    assert_eq!(env.sink.messages().len(), 20);
    assert!(
        env.sink.max_concurrent() > 1,
        "{}",
        env.sink.max_concurrent()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_recipients_survive_a_restart_and_are_delivered_exactly_once() {
    let mut env = Env::start(vec![], |_| {}).await;
    let inj = env.inject(&["defer-r@example.test"]).await;
    env.events.wait_for(EventType::Delay, 1).await;
    env.restart().await;

    let summary = env.mta.queue_summary().await.unwrap();
    assert_eq!(summary.recipients, 1);
    assert_eq!(summary.domains[0].domain, "example.test");
    let view = env.mta.inspect(inj.message_id.parse().unwrap()).await;
    let view = view.expect("the message is queued after restart");
    assert_eq!(view.queued[0].attempts, 1);
    assert!(
        view.queued[0]
            .last_reply
            .as_deref()
            .unwrap()
            .starts_with("451 4.7.1")
    );

    env.sink.set_rules(Rules::AcceptAll);
    assert_eq!(env.mta.flush(None).await, 1);
    let d = env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(d[0].message_id.as_deref(), Some(inj.message_id.as_str()));
    assert_eq!(d[0].num_retries, Some(1));
    assert_eq!(env.mta.flush(None).await, 0);

    // Delivered is final, also across the next restart.
    env.restart().await;
    assert_eq!(env.mta.queue_summary().await.unwrap().recipients, 0);
    assert_eq!(env.mta.flush(None).await, 0);
    let got = env.sink.messages();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].recipients, vec!["defer-r@example.test".to_string()]);
}

/// Regression: recipients recovered from the spool had a message size of 0, so events and
/// `inspect` after a restart reported `msg_size: 0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_message_size_was_zero_after_restart() {
    let mut env = Env::start(vec![], |_| {}).await;
    let inj = env.inject(&["defer-s@example.test"]).await;
    let before = env.events.wait_for(EventType::Delay, 1).await[0].msg_size;
    assert!(before.unwrap_or(0) > 0, "{before:?}");
    env.restart().await;
    let view = env.mta.inspect(inj.message_id.parse().unwrap()).await;
    assert_eq!(Some(view.unwrap().size), before);
    env.sink.set_rules(Rules::AcceptAll);
    env.mta.flush(None).await;
    let d = env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(d[0].msg_size, before);
}
