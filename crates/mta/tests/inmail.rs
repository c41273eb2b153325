//! inMail end to end, in process: a message goes out through the MTA to the sink with a signed
//! return path and headers; a DSN, an ARF report and unsubscribe requests built from what the sink
//! captured come back through the SMTP listener (from a client outside `relay_networks`) and the
//! HTTP endpoint, and become exactly the expected events. Forged tokens produce none.

mod support;

use cartero_dkim::{Algorithm, SigningKey};
use cartero_events::EventType;
use cartero_mta::MessageView;
use cartero_mta::config::SourceConfig;
use cartero_mta::inmail::source_tag;
use support::inmail::{
    BOUNCES, arf, arf_from, deliver, dsn, forge, header, http, inmail_config, key, send,
};
use support::{Env, RawClient, T0, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_mail_carries_a_signed_return_path_and_unsubscribe_headers() {
    let mut env = Env::start(vec![], inmail_config).await;
    let (id, m) = deliver(&mut env, "bob@example.test").await;
    let token = header(&m, "x-cartero-token").expect("token header");
    assert_eq!(m.sender, format!("b-{token}@{BOUNCES}"));
    let data = key(&env).verify(&token).expect("token verifies");
    assert_eq!(format!("{:016x}", data.message_id), id);
    assert_eq!(data.rcpt_index, 0);
    assert_eq!(
        header(&m, "list-unsubscribe").unwrap(),
        format!("<https://mail.origin.test/unsubscribe/{token}>, <mailto:unsub-{token}@{BOUNCES}>")
    );
    assert_eq!(
        header(&m, "list-unsubscribe-post").unwrap(),
        "List-Unsubscribe=One-Click"
    );
    // Non-bulk mail gets the token but no List-Unsubscribe.
    env.inject(&["carl@example.test"]).await;
    env.events
        .wait_rcpt(EventType::Delivery, "carl@example.test")
        .await;
    let m2 = env.sink.wait_messages(2, WAIT).await.pop().unwrap();
    assert!(header(&m2, "x-cartero-token").is_some());
    assert!(header(&m2, "list-unsubscribe").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_go_one_per_transaction_each_with_its_own_token() {
    let mut env = Env::start(vec![], inmail_config).await;
    let done = env.inject(&["a@example.test", "b@example.test"]).await;
    let msgs = env.sink.wait_messages(2, WAIT).await;
    let k = key(&env);
    let mut seen = Vec::new();
    for m in &msgs {
        assert_eq!(m.recipients.len(), 1);
        let t = k
            .verify(header(m, "x-cartero-token").as_deref().unwrap())
            .unwrap();
        assert_eq!(format!("{:016x}", t.message_id), done.message_id);
        let want_idx = if m.recipients[0] == "a@example.test" {
            0
        } else {
            1
        };
        assert_eq!(t.rcpt_index, want_idx);
        seen.push(t.rcpt_index);
    }
    seen.sort();
    assert_eq!(seen, [0, 1]);
    env.events.wait_for(EventType::Delivery, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dsn_becomes_one_out_of_band_event_and_a_forged_one_none() {
    let mut env = Env::start(vec![], inmail_config).await;
    let (id, m) = deliver(&mut env, "bob@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let (mut c, banner) = RawClient::connect(env.smtp_addr()).await;
    assert_eq!(banner.code, 220);
    c.ehlo().await;
    // Relaying is still refused to this client; unknown mailboxes at the bounce domain too.
    let m1 = c.cmd("MAIL FROM:<>").await.unwrap();
    assert_eq!(m1.code, 250);
    assert_eq!(c.cmd("RCPT TO:<x@example.test>").await.unwrap().code, 554);
    let unknown = c.cmd(&format!("RCPT TO:<nobody@{BOUNCES}>")).await.unwrap();
    assert_eq!(unknown.code, 550, "{unknown}");
    assert_eq!(c.cmd("RSET").await.unwrap().code, 250);

    let forged = forge(&token);
    let diag = "550 5.1.1 <bob@example.test>: Recipient address rejected: User unknown";
    let r = send(
        &mut c,
        &format!("b-{forged}@{BOUNCES}"),
        &dsn("bob@example.test", &forged, diag),
    )
    .await;
    assert!(r.starts_with("250"), "a forged token is not revealed: {r}");
    // Same connection, so by the time this reply arrives the forged one was fully handled.
    let r = send(
        &mut c,
        &format!("b-{token}@{BOUNCES}"),
        &dsn("bob@example.test", &token, diag),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let got = env.events.wait_for(EventType::OutOfBand, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    let e = &got[0];
    assert_eq!(e.message_id.as_deref(), Some(id.as_str()));
    assert_eq!(e.rcpt_to.as_deref(), Some("bob@example.test"));
    assert_eq!(e.bounce_class, Some(10));
    assert_eq!(e.raw_reason.as_deref(), Some(diag));
    assert_eq!(e.enhanced_code.as_deref(), Some("5.1.1"));
    assert_eq!(e.error_code, Some(550));
    assert_eq!(e.metadata["type"], "hard");
    assert_eq!(e.metadata["failure_reason"], "user_unknown");
    assert_eq!(e.metadata["recipient_id"], format!("{id}.0"));
    assert_eq!(e.metadata["decided_by"], "classifier");
    // The bounce was read, not queued for delivery anywhere.
    assert!(env.events.of(EventType::Reception).len() == 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_rules_win_over_the_classifier_and_arf_becomes_a_complaint() {
    let mut env = Env::start(vec![], inmail_config).await;
    let (id, m) = deliver(&mut env, "dora@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let diag = "550 5.2.1 The email account that you tried to reach is disabled";
    let r = send(
        &mut c,
        &format!("b-{token}@{BOUNCES}"),
        &dsn("dora@example.test", &token, diag),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let e = env.events.wait_for(EventType::OutOfBand, 1).await.remove(0);
    assert_eq!(e.reason.as_deref(), Some("disabled-account"));
    assert_eq!(e.metadata["decided_by"], "inbound_rule");
    assert_eq!(e.metadata["failure_reason"], "account_disabled");
    assert_eq!(e.metadata["type"], "hard");

    // An ARF report to the feedback-loop address: the token comes from the returned original.
    let forged = forge(&token);
    let r = send(
        &mut c,
        &format!("fbl@{BOUNCES}"),
        &arf("dora@example.test", &forged),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let r = send(
        &mut c,
        &format!("fbl@{BOUNCES}"),
        &arf("dora@example.test", &token),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let got = env.events.wait_for(EventType::SpamComplaint, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].message_id.as_deref(), Some(id.as_str()));
    assert_eq!(got[0].rcpt_to.as_deref(), Some("dora@example.test"));
    assert_eq!(got[0].metadata["feedback_type"], "abuse");
    assert_eq!(got[0].metadata["source_ip"], "192.0.2.10");
}

/// Waits until the queued recipients of message `id` are all scheduled for `at`.
async fn wait_scheduled_at(env: &Env, id: &str, at: u64) -> MessageView {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = env.mta.inspect(id.parse().unwrap()).await;
        if let Some(v) = v.as_ref().filter(|v| {
            !v.queued.is_empty()
                && v.queued
                    .iter()
                    .all(|r| r.state == "scheduled" && r.next_attempt == at)
        }) {
            return v.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "message {id} never waited until {at}: {v:#?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complaints_feed_the_sweep_of_the_source_that_sent_the_message() {
    let mut env = Env::start(vec![], |c| {
        inmail_config(c);
        c.delivery.sources = vec![SourceConfig {
            name: "s1".into(),
            ip: Some("127.0.0.1".parse().unwrap()),
            helo: None,
            warmup: false,
        }];
        c.shaping = toml::from_str(
            "[adaptive.sweep]\nmin_volume = 4\ncomplaint_throttle = 0.25\ncomplaint_suspend = 0.5\n",
        )
        .unwrap();
        // The reports' From: feedback@isp.example.
        c.inmail.fbl_sources = vec!["isp.example".into()];
    })
    .await;
    let mut sent = Vec::new();
    for i in 0..4 {
        sent.push(deliver(&mut env, &format!("u{i}@example.test")).await);
    }
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let fbl = format!("fbl@{BOUNCES}");

    // 1 of 4 delivered: the token names s1; throttle s1 towards example.test.
    let token = header(&sent[0].1, "x-cartero-token").unwrap();
    let r = send(&mut c, &fbl, &arf("u0@example.test", &token)).await;
    assert!(r.starts_with("250"), "{r}");
    let complaint = env
        .events
        .wait_for(EventType::SpamComplaint, 1)
        .await
        .remove(0);
    assert_eq!(complaint.metadata["source"], "s1", "{complaint:#?}");
    assert_eq!(complaint.metadata["fbl_source"], "isp.example");
    let shaping = env.events.wait_for(EventType::Shaping, 1).await.remove(0);
    let a = shaping.shaping.expect("shaping details");
    assert_eq!(a["action"], "throttle", "{a:#}");
    assert_eq!(a["cause"], "sweep:complaints", "{a:#}");
    assert_eq!(a["scope"]["scope"], "source_domain", "{a:#}");
    assert_eq!(a["scope"]["name"]["source"], "s1", "{a:#}");
    assert_eq!(a["scope"]["name"]["domain"], "example.test", "{a:#}");
    assert_eq!((&a["count"], &a["volume"]), (&1.into(), &4.into()), "{a:#}");

    // 2 of 4: suspend. The report's Source-IP is not ours: the token, not the reporter, says
    // which source sent the message.
    let token = header(&sent[1].1, "x-cartero-token").unwrap();
    let r = send(
        &mut c,
        &fbl,
        &arf_from("u1@example.test", &token, "192.0.2.99"),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    let complaints = env.events.wait_for(EventType::SpamComplaint, 2).await;
    assert_eq!(
        complaints[1].message_id.as_deref(),
        Some(sent[1].0.as_str())
    );
    assert_eq!(complaints[1].metadata["source"], "s1");
    let shaping = env.events.wait_for(EventType::Shaping, 2).await.remove(1);
    let a = shaping.shaping.expect("shaping details");
    assert_eq!(a["action"], "suspend", "{a:#}");
    assert_eq!(a["cause"], "sweep:complaints", "{a:#}");
    let until = a["until"].as_u64().expect("a suspension has an end");
    assert_eq!(until, T0 + 4 * 3_600_000);

    // Tokens minted before recipient tags (v1, v2) still give an event, but cannot prove the
    // recipient's domain: no rcpt_to, no sweep, even with our Source-IP.
    let k = key(&env);
    let id = |n: usize| u64::from_str_radix(&sent[n].0, 16).unwrap();
    let old = [k.mint_v1(id(2), 0), k.mint_v2(id(3), 0, source_tag("s1"))];
    for (n, t) in old.iter().enumerate() {
        let r = send(&mut c, &fbl, &arf_from("u2@example.test", t, "127.0.0.1")).await;
        assert!(r.starts_with("250"), "{r}");
        let complaints = env.events.wait_for(EventType::SpamComplaint, 3 + n).await;
        let e = &complaints[2 + n];
        assert_eq!(e.metadata["sweep"], "unproven_recipient", "{e:#?}");
        assert!(e.metadata.get("source").is_none());
        assert_eq!(e.rcpt_to, None);
        assert_eq!(e.metadata["recipient_id"], format!("{}.0", sent[2 + n].0));
    }
    // A v2 token for u2 names the recipient the v1 one did: a replay.
    let again = k.mint_v2(id(2), 0, source_tag("s1"));
    let r = send(
        &mut c,
        &fbl,
        &arf_from("u2@example.test", &again, "127.0.0.1"),
    )
    .await;
    assert!(r.starts_with("250"), "{r}");
    assert_eq!(env.events.of(EventType::SpamComplaint).len(), 4);

    // New mail from s1 to example.test waits for the suspension's end, without an attempt.
    let before = env.sink.messages().len();
    let held = env.inject(&["u9@example.test"]).await;
    let v = wait_scheduled_at(&env, &held.message_id, until).await;
    assert_eq!(v.queued[0].attempts, 0, "{v:#?}");
    assert_eq!(env.sink.messages().len(), before);
    assert!(
        env.mta
            .shaping_view()
            .suspensions
            .iter()
            .any(|s| s.scope == "source-domain:s1/example.test"),
        "{:#?}",
        env.mta.shaping_view()
    );
    assert_eq!(env.events.of(EventType::Shaping).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_click_unsubscribe_needs_a_valid_token_and_get_never_unsubscribes() {
    let mut env = Env::start(vec![], inmail_config).await;
    let (id, m) = deliver(&mut env, "eve@example.test").await;
    let token = header(&m, "x-cartero-token").unwrap();
    let url = |t: &str| format!("{}/unsubscribe/{t}", env.http_base());
    let forged = http()
        .post(url(&forge(&token)))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    let body: serde_json::Value = forged.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("invalid"),
        "{body}"
    );
    let page = http().get(url(&token)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("method=\"post\""), "{html}");
    assert_eq!(
        http()
            .get(url(&forge(&token)))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let ok = http()
        .post(url(&token))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let got = env.events.wait_for(EventType::ListUnsubscribe, 1).await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].message_id.as_deref(), Some(id.as_str()));
    assert_eq!(got[0].metadata["method"], "one_click");
    assert_eq!(got[0].metadata["recipient_id"], format!("{id}.0"));

    // The mailto address works too (for another recipient: eve's request counts once).
    let (id2, m2) = deliver(&mut env, "fred@example.test").await;
    let token2 = header(&m2, "x-cartero-token").unwrap();
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let mail = "From: fred@example.test\r\nSubject: unsubscribe\r\n\r\nunsubscribe\r\n";
    let r = send(&mut c, &format!("unsub-{token2}@{BOUNCES}"), mail).await;
    assert!(r.starts_with("250"), "{r}");
    let got = env.events.wait_for(EventType::ListUnsubscribe, 2).await;
    assert_eq!(got[1].metadata["method"], "mailto");
    assert_eq!(got[1].message_id.as_deref(), Some(id2.as_str()));
}

/// dkimpy's verdict, or `None` when it is not installed (a failure under CI=true).
fn dkimpy_verifies(message: &[u8], key: &SigningKey) -> Option<bool> {
    let python = cartero_dkim::testing::python_with_dkimpy()?;
    Some(cartero_dkim::testing::dkimpy_verifies(
        python,
        message,
        &[key],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dkim_signature_covers_the_per_recipient_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (signing_key, pem) =
        SigningKey::generate(Algorithm::Ed25519Sha256, "origin.test", "s1").unwrap();
    let key_file = dir.path().join("dkim.pem");
    std::fs::write(&key_file, pem).unwrap();
    let mut env = Env::start(vec![], |c| {
        inmail_config(c);
        c.dkim.keys = vec![cartero_mta::config::DkimKeyConfig {
            domain: "origin.test".into(),
            selector: "s1".into(),
            key_file: key_file.clone(),
        }];
    })
    .await;
    let (_, m) = deliver(&mut env, "fay@example.test").await;
    let sig = header(&m, "dkim-signature").expect("signed");
    let h = sig
        .split(';')
        .find_map(|t| t.trim().strip_prefix("h="))
        .unwrap()
        .replace([' ', '\t'], "")
        .to_ascii_lowercase();
    let names: Vec<&str> = h.split(':').collect();
    assert!(names.contains(&"list-unsubscribe"), "{h}");
    assert!(names.contains(&"list-unsubscribe-post"), "{h}");
    // The signature is the first field: it was made after the per-recipient fields were added.
    assert!(m.text().to_ascii_lowercase().starts_with("dkim-signature:"));
    if let Some(ok) = dkimpy_verifies(&m.data, &signing_key) {
        assert!(ok, "dkimpy rejected:\n{}", m.text());
        let tampered = m.text().replacen("/unsubscribe/", "/unsubscribe/x", 1);
        assert_eq!(
            dkimpy_verifies(tampered.as_bytes(), &signing_key),
            Some(false)
        );
    }
}
