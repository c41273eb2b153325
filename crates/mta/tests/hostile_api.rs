//! Hostile requests against the HTTP API: memory amplification through metadata, over-size
//! bodies, header injection through the content fields, over-long raw lines, unknown pools and the
//! case of the Authorization scheme. Every refusal must leave the spool untouched.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::Env;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(support::WAIT)
        .build()
        .unwrap()
}

/// POSTs `body` (JSON text) to the injection endpoint; returns the status and the JSON reply.
async fn post(env: &Env, body: String) -> (StatusCode, Value) {
    let r = client()
        .post(format!("{}/api/v1/messages", env.http_base()))
        .bearer_auth(env.mta.api_token())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{status}: {ct}");
    (status, r.json().await.unwrap())
}

/// Asserts a 422 whose message contains every one of `words`, and that nothing was spooled.
async fn refused(env: &Env, body: Value, words: &[&str]) {
    let (status, v) = post(env, body.to_string()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let e = v["error"].as_str().unwrap();
    for w in words {
        assert!(e.contains(w), "{w:?} not in {e:?}");
    }
    assert_eq!(env.mta.spool_stats().live_messages, 0, "spooled after {e}");
}

fn object_of(keys: usize, prefix: &str) -> String {
    let fields: Vec<String> = (0..keys).map(|i| format!("\"{prefix}{i}\":0")).collect();
    format!("{{{}}}", fields.join(","))
}

/// Regression: one 58 MB POST with 900k `metadata` keys took the RSS to 856 MB, was accepted, and
/// every event repeated the metadata. It is refused with 422 naming the field, unparsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_with_900k_keys_is_refused_with_422_and_nothing_is_spooled() {
    let mut env = Env::start(vec![], |_| {}).await;
    let body = format!(
        r#"{{"mail_from":"s@origin.test","recipients":["x@example.test"],
            "content":{{"raw":"Subject: x\n\nbody\n"}},"metadata":{}}}"#,
        object_of(900_000, "k")
    );
    let (status, v) = post(&env, body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let e = v["error"].as_str().unwrap();
    assert!(e.starts_with("metadata is "), "{e}");
    assert!(e.contains("at most 8192"), "{e}");
    assert_eq!(env.mta.spool_stats().live_messages, 0);
    assert!(
        env.events.all().is_empty(),
        "no event for a refused request"
    );
}

/// The per-recipient budgets apply to each recipient's own maps and to the merge with the
/// request's, and the request as a whole has its own budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_recipient_and_per_request_data_budgets_are_enforced() {
    let env = Env::start(vec![], |c| c.http.max_request_data_bytes = 4_000).await;
    let raw = json!({"raw": "Subject: x\n\nbody\n"});
    let own: Value = serde_json::from_str(&object_of(65, "k")).unwrap();
    refused(
        &env,
        json!({"mail_from": "s@origin.test", "content": raw,
               "recipients": [{"address": "x@example.test", "metadata": own}]}),
        &["recipients[0].metadata has 65 keys", "at most 64"],
    )
    .await;
    let half: Value = serde_json::from_str(&object_of(40, "a")).unwrap();
    let other: Value = serde_json::from_str(&object_of(40, "b")).unwrap();
    refused(
        &env,
        json!({"mail_from": "s@origin.test", "content": raw, "metadata": half,
               "recipients": ["ok@example.test", {"address": "x@example.test", "metadata": other}]}),
        &["recipients[1].metadata merged with the request's metadata has 80 keys"],
    )
    .await;
    refused(
        &env,
        json!({"mail_from": "s@origin.test", "content": raw, "recipients": ["x@example.test"],
               "substitution_data": {"blob": "x".repeat(70_000)}}),
        &["substitution_data is", "at most 65536"],
    )
    .await;
    // 30 recipients with 200 bytes each: every one within budget, the request over its 4000.
    let recipients: Vec<Value> = (0..30)
        .map(|i| json!({"address": format!("r{i}@example.test"), "metadata": {"pad": "p".repeat(190)}}))
        .collect();
    refused(
        &env,
        json!({"mail_from": "s@origin.test", "content": raw, "recipients": recipients}),
        &["exceed 4000 bytes per request"],
    )
    .await;
}

/// Regression: an over-size body got axum's plain-text 413; every API error is JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_size_body_gets_a_json_413_and_nothing_is_spooled() {
    let env = Env::start(vec![], |c| c.http.max_body = 64 * 1024).await;
    let body = json!({"mail_from": "s@origin.test", "recipients": ["x@example.test"],
                      "content": {"raw": format!("Subject: x\n\n{}\n", "y".repeat(100_000))}});
    let (status, v) = post(&env, body.to_string()).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("http.max_body"),
        "{v}"
    );
    assert_eq!(env.mta.spool_stats().live_messages, 0);
}

/// Regression: `Authorization: bearer …` got 401; the scheme is case-insensitive (RFC 9110 §11.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lowercase_bearer_scheme_is_accepted() {
    let env = Env::start(vec![], |_| {}).await;
    let url = format!("{}/api/v1/queue", env.http_base());
    let token = env.mta.api_token();
    for (value, want) in [
        (format!("bearer {token}"), StatusCode::OK),
        (format!("BEARER  {token}"), StatusCode::OK),
        (format!("Bearer {token}"), StatusCode::OK),
        (format!("Basic {token}"), StatusCode::UNAUTHORIZED),
        (format!("bearer{token}"), StatusCode::UNAUTHORIZED),
        ("bearer ".to_string(), StatusCode::UNAUTHORIZED),
    ] {
        let r = client()
            .get(&url)
            .header("authorization", &value)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{value:?}");
    }
}

fn parts(extra: Value) -> Value {
    let mut content = json!({"from": "News <news@origin.test>", "subject": "s", "text": "t"});
    for (k, v) in extra.as_object().unwrap() {
        content[k] = v.clone();
    }
    json!({"recipients": ["x@example.test"], "content": content})
}

/// Regression: CR/LF in `from`/`reply_to` were mangled into one address instead of a 422.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cr_lf_in_from_or_reply_to_gets_422_and_nothing_is_spooled() {
    let env = Env::start(vec![], |_| {}).await;
    let evil = "News <news@origin.test>\r\nBcc: victim@example.test";
    refused(
        &env,
        parts(json!({"from": evil})),
        &["content.from", "one line"],
    )
    .await;
    refused(
        &env,
        parts(json!({"reply_to": evil})),
        &["content.reply_to", "one line"],
    )
    .await;
    refused(
        &env,
        parts(json!({"reply_to": "nobody"})),
        &["content.reply_to", "invalid address"],
    )
    .await;
}

/// Regression: `headers` could add a second From:/To: (or a header with CR/LF in it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_duplicating_structural_fields_get_422_and_nothing_is_spooled() {
    let env = Env::start(vec![], |_| {}).await;
    for name in [
        "From",
        "to",
        "CC",
        "Subject",
        "Date",
        "Message-ID",
        "Reply-To",
        "MIME-Version",
        "Content-Type",
        "content-transfer-encoding",
    ] {
        let headers = json!({ name: "x@evil.test" });
        refused(
            &env,
            parts(json!({ "headers": headers })),
            &[name, "cannot be added"],
        )
        .await;
    }
    refused(
        &env,
        parts(json!({"headers": {"X-Ok": "a\r\nBcc: victim@example.test"}})),
        &["X-Ok", "CR or LF"],
    )
    .await;
    refused(
        &env,
        parts(json!({"headers": {"X-Bad\r\nBcc": "v"}})),
        &["invalid header name"],
    )
    .await;
    // An ordinary extra header still goes through.
    let (status, v) = post(
        &env,
        parts(json!({"headers": {"X-Campaign": "c1"}})).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// Regression: raw lines over 998 characters (RFC 5322 §2.1.1) were relayed as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_lines_over_998_bytes_get_422_naming_the_line() {
    let env = Env::start(vec![], |_| {}).await;
    let raw = format!("Subject: x\n\nshort\n{}\n", "z".repeat(999));
    refused(
        &env,
        json!({"mail_from": "s@origin.test", "recipients": ["x@example.test"], "content": {"raw": raw}}),
        &["content.raw line 4 is 999 bytes", "998"],
    )
    .await;
    let ok = format!("Subject: x\n\n{}\n", "z".repeat(998));
    let body = json!({"mail_from": "s@origin.test", "recipients": ["x@example.test"], "content": {"raw": ok}});
    let (status, v) = post(&env, body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}

/// Regression: an unknown `pool` was accepted (and its messages silently sent from the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_pool_gets_422_naming_the_pool() {
    let env = Env::start(vec![], |_| {}).await;
    let mut body = parts(json!({}));
    body["pool"] = json!("no-such-pool");
    refused(
        &env,
        body.clone(),
        &["unknown pool \"no-such-pool\"", "\"default\""],
    )
    .await;
    body["pool"] = json!("default");
    let (status, v) = post(&env, body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{v}");
}
