//! The HTTP API over a real socket with reqwest: injection with per-recipient metadata, token
//! checks, JSON errors and queue operations.

mod support;

use cartero_events::EventType;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Env, Rules};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(support::WAIT)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injection_returns_an_id_per_recipient_and_events_carry_the_metadata() {
    let mut env = Env::start(vec![], |_| {}).await;
    let body = json!({
        "recipients": [
            {"address": "ana@example.test", "metadata": {"delivery_id": "d-1"},
             "substitution_data": {"name": "Ana"}},
            {"address": "ben@example.test", "metadata": {"delivery_id": "d-2", "campaign_id": "c-override"}}
        ],
        "content": {"from": "News <news@origin.test>", "subject": "Hi {{name}}", "text": "Hello {{name}}"},
        "metadata": {"campaign_id": "c-7"}
    });
    let r = client()
        .post(format!("{}/api/v1/messages", env.http_base()))
        .bearer_auth(env.mta.api_token())
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["total_accepted_recipients"], 2);
    let rcpts = v["recipients"].as_array().unwrap();
    assert_eq!(rcpts[0]["address"], "ana@example.test");
    assert_eq!(rcpts[1]["address"], "ben@example.test");
    let ids: Vec<&str> = rcpts.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_ne!(ids[0], ids[1]);

    let ana = env
        .events
        .wait_rcpt(EventType::Delivery, "ana@example.test")
        .await;
    let ben = env
        .events
        .wait_rcpt(EventType::Delivery, "ben@example.test")
        .await;
    assert_eq!(ana.delivery_id.as_deref(), Some("d-1"));
    assert_eq!(ana.campaign_id.as_deref(), Some("c-7"));
    assert_eq!(ben.delivery_id.as_deref(), Some("d-2"));
    assert_eq!(ben.campaign_id.as_deref(), Some("c-override"));
    // The per-recipient id is `<message id>.<index>` of the message that carried it.
    let ana_msg = ana.message_id.unwrap();
    assert!(
        ids[0].starts_with(&format!("{ana_msg}.")),
        "{ids:?} vs {ana_msg}"
    );
    let reception = env.events.of(EventType::Reception);
    assert!(
        reception
            .iter()
            .any(|e| e.delivery_id.as_deref() == Some("d-1"))
    );

    let texts: Vec<String> = env.sink.messages().iter().map(|m| m.text()).collect();
    assert!(texts.iter().any(|t| t.contains("Hello Ana")), "{texts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_wrong_tokens_get_401_and_bad_json_gets_a_json_400() {
    let env = Env::start(vec![], |_| {}).await;
    let url = format!("{}/api/v1/messages", env.http_base());
    let body = json!({"mail_from": "s@origin.test", "recipients": ["x@example.test"],
                      "content": {"raw": "Subject: x\n\nbody\n"}});
    let none = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap(),
        "Bearer"
    );
    let v: Value = none.json().await.unwrap();
    assert!(v["error"].is_string(), "{v}");
    let wrong = client()
        .post(&url)
        .bearer_auth(format!("{}x", env.mta.api_token()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let q = client()
        .get(format!("{}/api/v1/queue", env.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        q.status(),
        StatusCode::UNAUTHORIZED,
        "the queue needs a token too"
    );

    let bad = client()
        .post(&url)
        .bearer_auth(env.mta.api_token())
        .header("content-type", "application/json")
        .body("{\"recipients\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(
        bad.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let v: Value = bad.json().await.unwrap();
    assert!(v["error"].as_str().unwrap().contains("invalid JSON"), "{v}");
    // Nothing was accepted by any of these.
    assert_eq!(env.mta.spool_stats().live_messages, 0);
    let health = client()
        .get(format!("{}/healthz", env.http_base()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_inspect_flush_and_drain_work_over_http() {
    let mut env = Env::start(vec![], |_| {}).await;
    let inj = env.inject(&["defer-q@example.test"]).await;
    env.events.wait_for(EventType::Delay, 1).await;
    let token = env.mta.api_token().to_string();
    let base = env.http_base();

    let q: Value = client()
        .get(format!("{base}/api/v1/queue"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(q["recipients"], 1, "{q}");
    assert_eq!(q["domains"][0]["domain"], "example.test");
    assert!(
        q["domains"][0]["last_reply"]
            .as_str()
            .unwrap()
            .starts_with("451")
    );

    let m = client()
        .get(format!("{base}/api/v1/messages/{}", inj.message_id))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), StatusCode::OK);
    let m: Value = m.json().await.unwrap();
    assert_eq!(m["queued"][0]["address"], "defer-q@example.test");
    assert_eq!(m["queued"][0]["attempts"], 1);
    let bad_id = client()
        .get(format!("{base}/api/v1/messages/not-an-id"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);

    env.sink.set_rules(Rules::AcceptAll);
    let f: Value = client()
        .post(format!("{base}/api/v1/queue/flush"))
        .bearer_auth(&token)
        .json(&json!({"domain": "EXAMPLE.test"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(f["flushed"], 1, "{f}");
    env.events.wait_for(EventType::Delivery, 1).await;

    env.sink.set_rules(Rules::ByPrefix);
    env.inject(&["defer-z@example.test"]).await;
    env.events.wait_for(EventType::Delay, 2).await;
    let d = client()
        .post(format!("{base}/api/v1/queue/drain"))
        .bearer_auth(&token)
        .json(&json!({"domain": "example.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), StatusCode::OK);
    let d: Value = d.json().await.unwrap();
    assert_eq!(d["drained"], 1, "{d}");
    let b = env
        .events
        .wait_rcpt(EventType::Bounce, "defer-z@example.test")
        .await;
    assert_eq!(b.bounce_class, Some(25));
    let no_domain = client()
        .post(format!("{base}/api/v1/queue/drain"))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_domain.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// Slow-header clients (slowloris) are cut off after `http.header_timeout`, and connections above
/// `http.max_connections` are closed at accept, so the public unsubscribe endpoint cannot be starved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_cut_off_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Long enough that the slow client still holds the only slot when the second connection is
    // accepted even if the server stalls in between; short of the 10 s the test waits for it.
    let env = Env::start(vec![], |c| {
        c.http.header_timeout = std::time::Duration::from_secs(2);
        c.http.max_connections = 1;
    })
    .await;
    let addr = env.mta.http_addr().unwrap();
    let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // While the slow client holds the only slot, another connection is closed without an answer.
    let mut other = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        other.read_to_end(&mut buf),
    )
    .await
    .expect("the extra connection is closed")
    .unwrap_or(0);
    assert_eq!(n, 0, "over the cap: {}", String::from_utf8_lossy(&buf));
    // The slow client is dropped by the header timeout (a 408 or a plain close).
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        slow.read_to_end(&mut buf),
    )
    .await
    .expect("the slow client is cut off")
    .ok();
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    // With the slot free again, a normal request works.
    let base = env.http_base();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/healthz")).await
            && r.status() == 200
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "listener never recovered"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
