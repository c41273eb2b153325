//! Idempotent injection (SPEC §2.1): a recipient injected again with the same key within the
//! window gets its original id and is not sent twice — also after a restart, and also when the
//! key file missed the keys of mail spooled just before a crash.

mod support;

use cartero_events::EventType;
use cartero_mta::Injection;
use cartero_shaping::Scope;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use support::{Env, message};

fn keyed(to: &[&str], keys: &[Option<&str>]) -> impl FnOnce(&mut Injection) {
    let keys: Vec<Option<String>> = keys.iter().map(|k| k.map(str::to_string)).collect();
    let to0 = to[0].to_string();
    move |i| {
        i.idempotency_keys = keys;
        i.body = message(&to0, "keyed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_key_returns_the_original_id_and_the_recipient_is_sent_once() {
    let mut env = Env::start(vec![], |_| {}).await;
    let to = ["ana@example.test"];
    let first = env.inject_with(&to, keyed(&to, &[Some("order-1")])).await;
    assert_eq!(first.repeated, vec![false]);
    env.events.wait_for(EventType::Delivery, 1).await;
    let again = env.inject_with(&to, keyed(&to, &[Some("order-1")])).await;
    assert_eq!(again.repeated, vec![true]);
    assert_eq!(again.recipient_ids, first.recipient_ids);
    assert_eq!(again.message_id, first.message_id);
    // A different key is a different request.
    let other = env.inject_with(&to, keyed(&to, &[Some("order-2")])).await;
    assert_eq!(other.repeated, vec![false]);
    env.events.wait_for(EventType::Delivery, 2).await;
    env.mta.tick();
    assert_eq!(
        env.events.of(EventType::Reception).len(),
        2,
        "the repeat was not spooled"
    );
    assert_eq!(env.sink.wait_messages(2, support::WAIT).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_survive_a_restart_after_delivery_and_expire_after_the_window() {
    let mut env = Env::start(vec![], |c| {
        c.delivery.idempotency_window = Duration::from_secs(3600);
    })
    .await;
    let to = ["ben@example.test"];
    let first = env.inject_with(&to, keyed(&to, &[Some("k-restart")])).await;
    env.events.wait_for(EventType::Delivery, 1).await;
    env.restart().await;
    let again = env.inject_with(&to, keyed(&to, &[Some("k-restart")])).await;
    assert_eq!(again.repeated, vec![true]);
    assert_eq!(again.recipient_ids, first.recipient_ids);
    env.advance(Duration::from_secs(3601));
    let later = env.inject_with(&to, keyed(&to, &[Some("k-restart")])).await;
    assert_eq!(later.repeated, vec![false], "the window is over");
    assert_ne!(later.recipient_ids, first.recipient_ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_of_spooled_mail_are_recovered_from_the_envelope_when_the_key_file_lost_them() {
    let mut env = Env::start(vec![], |_| {}).await;
    let held = Scope::Domain("example.test".into());
    env.mta.suspend(held.clone(), None, "test".into()).await;
    let to = ["cleo@example.test"];
    let first = env.inject_with(&to, keyed(&to, &[Some("k-crash")])).await;
    env.mta.shutdown().await;
    // As if the process died after the spool's fsync and before the key file's.
    std::fs::remove_file(env.cfg.data_dir.join("idempotency-keys")).unwrap();
    env.restart().await;
    let again = env.inject_with(&to, keyed(&to, &[Some("k-crash")])).await;
    assert_eq!(again.repeated, vec![true]);
    assert_eq!(again.recipient_ids, first.recipient_ids);
    env.mta.resume(held).await;
    env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(env.sink.wait_messages(1, support::WAIT).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_recipients_carry_keys_and_a_mixed_request_spools_only_the_new_ones() {
    let mut env = Env::start(vec![], |_| {}).await;
    let url = format!("{}/api/v1/messages", env.http_base());
    let token = env.mta.api_token().to_string();
    let post = |body: Value| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let content = json!({"raw": "From: a@origin.test\r\nSubject: s\r\n\r\nbody\r\n"});
    let one = json!({"mail_from": "a@origin.test", "content": content,
        "recipients": [{"address": "dan@example.test", "idempotency_key": "h-1"}]});
    let r = post(one).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    let dan = v["recipients"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(v["recipients"][0]["repeated"], false);

    let mixed = json!({"mail_from": "a@origin.test", "content": content, "recipients": [
        {"address": "dan@example.test", "idempotency_key": "h-1"},
        {"address": "eve@example.test", "idempotency_key": "h-2"}]});
    let v: Value = post(mixed).await.json().await.unwrap();
    assert_eq!(v["recipients"][0]["id"], dan.as_str());
    assert_eq!(v["recipients"][0]["repeated"], true);
    assert_eq!(v["recipients"][1]["repeated"], false);
    env.events.wait_for(EventType::Delivery, 2).await;
    let received: Vec<String> = env
        .events
        .of(EventType::Reception)
        .iter()
        .filter_map(|e| e.rcpt_to.clone())
        .collect();
    assert_eq!(received, vec!["dan@example.test", "eve@example.test"]);

    let bad = json!({"mail_from": "a@origin.test", "content": content,
        "recipients": [{"address": "fay@example.test", "idempotency_key": ""}]});
    assert_eq!(post(bad).await.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// Regression: a caller that went away mid-injection (an HTTP client killed while its request
/// was being spooled) left the key claimed, and every retry got "in progress" forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injection_abandoned_by_its_caller_still_finishes_and_its_key_answers() {
    let mut env = Env::start(vec![], |_| {}).await;
    let to = ["dora@example.test"];
    let mut inj = Injection {
        sender: "sender@origin.test".into(),
        recipients: vec![to[0].into()],
        ..Injection::default()
    };
    keyed(&to, &[Some("k-abandoned")])(&mut inj);
    // Polled once (the key is claimed, the spool write starts), then dropped.
    tokio::select! {
        biased;
        _ = env.mta.inject(inj.clone()) => {}
        _ = std::future::ready(()) => {}
    }
    let deadline = tokio::time::Instant::now() + support::WAIT;
    let again = loop {
        match env.mta.inject(inj.clone()).await {
            Ok(r) => break r,
            Err(cartero_mta::InjectError::KeyInFlight(_)) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the abandoned injection never released or recorded its key"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(
        again.repeated,
        vec![true],
        "the abandoned injection was spooled once"
    );
    env.events.wait_for(EventType::Delivery, 1).await;
    env.mta.tick();
    assert_eq!(env.events.of(EventType::Reception).len(), 1);
}
