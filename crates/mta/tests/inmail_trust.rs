//! inMail under hostile input (SPEC §2.8 "Trust"), in process over real SMTP and HTTP: whoever
//! received one message holds a valid token, so a report is evidence, never a command. A report
//! that names another address than its token's steers nothing, each (recipient, event type)
//! counts once even across a restart, and only configured feedback-loop sources charge the
//! complaint sweep, at a capped rate.

mod support;

use cartero_dns::testing::Zone;
use cartero_events::EventType;
use cartero_mta::MtaConfig;
use cartero_mta::config::SourceConfig;
use std::time::Duration;
use support::inmail::{
    BOUNCES, arf, deliver, dsn, header, http, inmail_config, key, send, send_from,
};
use support::{Env, RawClient};

fn other_zone() -> Zone {
    Zone::new("other.test")
        .mx("other.test", 10, "mx.other.test")
        .a("mx.other.test", "127.0.0.1")
}

/// One source `s1`, a complaint sweep that suspends at the first complaint, and the test's
/// reports (From: feedback@isp.example) counted as a feedback loop's.
fn sweep_config(c: &mut MtaConfig) {
    inmail_config(c);
    c.inmail.fbl_sources = vec!["feedback@isp.example".into()];
    c.delivery.sources = vec![SourceConfig {
        name: "s1".into(),
        ip: Some("127.0.0.1".parse().unwrap()),
        helo: None,
        warmup: false,
    }];
    c.shaping = toml::from_str("[adaptive.sweep]\nmin_volume = 1\n").unwrap();
}

/// Scopes of the suspensions the shaping engine holds now.
fn suspended(env: &Env) -> Vec<String> {
    let mut s: Vec<String> = env
        .mta
        .shaping_view()
        .suspensions
        .into_iter()
        .map(|s| s.scope)
        .collect();
    s.sort();
    s
}

/// Waits until the scheduler handled every command sent before this call (complaints reach the
/// sweep through it), so what they did is visible.
async fn settle(env: &Env) {
    env.mta.queue_summary().await.expect("scheduler answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_complaint_naming_another_domain_is_counted_once_and_steers_no_sweep() {
    let mut env = Env::start(vec![other_zone()], sweep_config).await;
    let (id, m) = deliver(&mut env, "u0@example.test").await;
    // other.test has traffic from s1 too, so a complaint charged to it would move its sweep.
    deliver(&mut env, "v0@other.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let fbl = format!("fbl@{BOUNCES}");
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;

    // The attacker received u0's message and reports it, naming a victim at another domain.
    let r = send(&mut c, &fbl, &arf("victim@other.test", &token)).await;
    assert!(r.starts_with("250"), "{r}");
    settle(&env).await;
    assert_eq!(env.events.of(EventType::SpamComplaint), vec![]);
    assert_eq!(env.events.of(EventType::Shaping), vec![]);
    assert_eq!(suspended(&env), Vec::<String>::new());

    // The genuine report counts, once: the replays on the same connection are ignored.
    for _ in 0..3 {
        let r = send(&mut c, &fbl, &arf("u0@example.test", &token)).await;
        assert!(r.starts_with("250"), "{r}");
    }
    settle(&env).await;
    let got = env.events.of(EventType::SpamComplaint);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].message_id.as_deref(), Some(id.as_str()));
    assert_eq!(got[0].rcpt_to.as_deref(), Some("u0@example.test"));
    assert_eq!(env.events.of(EventType::Shaping).len(), 1);
    assert_eq!(suspended(&env), ["source-domain:s1/example.test"]);

    // After a restart the replay is still recognised.
    env.restart().await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let r = send(&mut c, &fbl, &arf("u0@example.test", &token)).await;
    assert!(r.starts_with("250"), "{r}");
    settle(&env).await;
    assert_eq!(env.events.of(EventType::SpamComplaint), vec![]);
    assert_eq!(env.events.of(EventType::Shaping), vec![]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsn_with_a_valid_token_naming_another_address_fails_nobody() {
    let mut env = Env::start(vec![], inmail_config).await;
    let (id, m) = deliver(&mut env, "bob@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let to = format!("b-{token}@{BOUNCES}");
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let diag = |a: &str| format!("550 5.1.1 <{a}>: Recipient address rejected: User unknown");

    let victim = "victim@example.test";
    let r = send(&mut c, &to, &dsn(victim, &token, &diag(victim))).await;
    assert!(r.starts_with("250"), "{r}");
    // Handled before its reply: nothing for the victim, nor for bob.
    assert_eq!(env.events.of(EventType::OutOfBand), vec![]);

    // The genuine DSN still counts (the forged one took nothing from it), once.
    for _ in 0..2 {
        let bob = "bob@example.test";
        let r = send(&mut c, &to, &dsn(bob, &token, &diag(bob))).await;
        assert!(r.starts_with("250"), "{r}");
    }
    let got = env.events.of(EventType::OutOfBand);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].message_id.as_deref(), Some(id.as_str()));
    assert_eq!(got[0].rcpt_to.as_deref(), Some("bob@example.test"));
    assert_eq!(got[0].bounce_class, Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auto_reply_from_another_address_names_nobody_and_fails_nobody() {
    let mut env = Env::start(vec![], inmail_config).await;
    let (id, m) = deliver(&mut env, "bob@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let reply = format!(
        "From: Bob's assistant <assistant@elsewhere.test>\r\nTo: <b-{token}@{BOUNCES}>\r\n\
Subject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nBob is away until Monday.\r\n"
    );
    let r = send(&mut c, &format!("b-{token}@{BOUNCES}"), &reply).await;
    assert!(r.starts_with("250"), "{r}");
    let got = env.events.of(EventType::OutOfBand);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].bounce_class, Some(60));
    assert_eq!(got[0].rcpt_to, None);
    assert_eq!(got[0].metadata["recipient_id"], format!("{id}.0"));
    // Counted apart from bounces: Bob's bounce still counts after his auto-reply.
    let bob = "bob@example.test";
    let diag = format!("550 5.1.1 <{bob}>: user unknown");
    let r = send(
        &mut c,
        &format!("b-{token}@{BOUNCES}"),
        &dsn(bob, &token, &diag),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let got = env.events.of(EventType::OutOfBand);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[1].bounce_class, Some(10));
    assert_eq!(got[1].rcpt_to.as_deref(), Some(bob));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replayed_one_click_unsubscribe_emits_one_event() {
    let mut env = Env::start(vec![], inmail_config).await;
    let (id, m) = deliver(&mut env, "eve@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let post = |env: &Env| {
        http()
            .post(format!("{}/unsubscribe/{token}", env.http_base()))
            .body("List-Unsubscribe=One-Click")
            .send()
    };
    for _ in 0..3 {
        let r = post(&env).await.unwrap();
        // Asking twice is not an error: the answer stays "unsubscribed".
        assert_eq!(r.status(), 200);
    }
    let got = env.events.of(EventType::ListUnsubscribe);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].message_id.as_deref(), Some(id.as_str()));

    // Neither the mailto address nor a restart make it count again.
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let mail = "From: eve@example.test\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n";
    let r = send(&mut c, &format!("unsub-{token}@{BOUNCES}"), mail).await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(env.events.of(EventType::ListUnsubscribe).len(), 1);
    env.restart().await;
    assert_eq!(post(&env).await.unwrap().status(), 200);
    assert_eq!(env.events.of(EventType::ListUnsubscribe), vec![]);
}

/// An ARF report for `token` whose original went to `rcpt_to`, without `Original-Rcpt-To`.
fn arf_to(rcpt_to: &str, token: &str) -> String {
    arf("x@x.test", token)
        .replace("Original-Rcpt-To: <x@x.test>\r\n", "")
        .replace("To: x@x.test\r\n", &format!("To: {rcpt_to}\r\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_charge_a_sweep_only_from_a_configured_feedback_loop_source() {
    let mut env = Env::start(vec![], |c| {
        sweep_config(c);
        c.inmail.fbl_sources = vec!["arf@provider.example".into()];
    })
    .await;
    let t0 = header(
        &deliver(&mut env, "u0@example.test").await.1,
        "x-cartero-token",
    )
    .unwrap();
    let t1 = header(
        &deliver(&mut env, "u1@example.test").await.1,
        "x-cartero-token",
    )
    .unwrap();
    let fbl = format!("fbl@{BOUNCES}");
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;

    // Not from the configured source: recorded (the campaign layer denylists on it), no sweep.
    let r = send(&mut c, &fbl, &arf("u0@example.test", &t0)).await;
    assert!(r.starts_with("250"), "{r}");
    settle(&env).await;
    let got = env.events.of(EventType::SpamComplaint);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].rcpt_to.as_deref(), Some("u0@example.test"));
    assert_eq!(got[0].metadata["sweep"], "not_fbl_source");
    assert_eq!(env.events.of(EventType::Shaping), vec![]);

    // From it (envelope sender): charged.
    let r = send_from(
        &mut c,
        "arf@provider.example",
        &fbl,
        &arf("u1@example.test", &t1),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    settle(&env).await;
    let got = env.events.of(EventType::SpamComplaint);
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(got[1].metadata["source"], "s1");
    assert_eq!(got[1].metadata["fbl_source"], "arf@provider.example");
    assert_eq!(suspended(&env), ["source-domain:s1/example.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_feedback_loop_source_charges_sweeps_at_a_capped_rate() {
    let mut env = Env::start(vec![], |c| {
        sweep_config(c);
        // By the client's address, which a remote sender cannot choose.
        c.inmail.fbl_sources = vec!["127.0.0.0/8".into()];
        c.inmail.fbl_rate = "1/min".parse().unwrap();
    })
    .await;
    let mut tokens = Vec::new();
    for i in 0..3 {
        let m = deliver(&mut env, &format!("u{i}@example.test")).await.1;
        tokens.push(header(&m, "x-cartero-token").unwrap());
    }
    let fbl = format!("fbl@{BOUNCES}");
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let mut complain = async |i: usize| {
        let r = send(
            &mut c,
            &fbl,
            &arf(&format!("u{i}@example.test"), &tokens[i]),
        )
        .await;
        assert!(r.starts_with("250"), "{r}");
    };
    complain(0).await;
    complain(1).await;
    env.advance(Duration::from_secs(60));
    complain(2).await;
    let got = env.events.of(EventType::SpamComplaint);
    assert_eq!(got.len(), 3, "{got:#?}");
    assert_eq!(got[0].metadata["fbl_source"], "127.0.0.0/8");
    assert_eq!(got[1].metadata["sweep"], "rate_limited");
    assert!(got[1].metadata.get("source").is_none());
    assert_eq!(got[2].metadata["source"], "s1", "refilled after a minute");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redacted_complaint_is_charged_to_the_token_s_domain_and_names_nobody() {
    let mut env = Env::start(vec![other_zone()], sweep_config).await;
    let (id, m) = deliver(&mut env, "u0@example.test").await;
    deliver(&mut env, "v0@other.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    // RFC 6590 redaction keeps the domain; no Original-Rcpt-To, the original's To is read.
    let r = send(
        &mut c,
        &format!("fbl@{BOUNCES}"),
        &arf_to("xxxxxxxx@example.test", &token),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    settle(&env).await;
    let got = env.events.of(EventType::SpamComplaint);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].rcpt_to, None);
    assert_eq!(got[0].metadata["recipient_id"], format!("{id}.0"));
    assert_eq!(got[0].metadata["source"], "s1");
    assert_eq!(suspended(&env), ["source-domain:s1/example.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_older_than_the_replay_horizon_charges_no_sweep() {
    let mut env = Env::start(vec![], |c| {
        sweep_config(c);
        c.inmail.replay_horizon = Duration::from_secs(2 * 86_400);
    })
    .await;
    let (_, m) = deliver(&mut env, "u0@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    assert!(key(&env).verify(&token).unwrap().recipient.is_some());
    env.advance(Duration::from_secs(3 * 86_400));
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let r = send(
        &mut c,
        &format!("fbl@{BOUNCES}"),
        &arf("u0@example.test", &token),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    settle(&env).await;
    let got = env.events.of(EventType::SpamComplaint);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].metadata["sweep"], "token_too_old");
    assert_eq!(suspended(&env), Vec::<String>::new());
}
