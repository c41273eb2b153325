//! The OpenAPI document served at `/api/v1/openapi.json`: OpenAPI 3, the bearer scheme, the
//! token required, and the document given in `StartOptions::openapi` served instead of the MTA's.

mod support;

use cartero_clock::ManualClock;
use cartero_mta::{Mta, StartOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Env, T0, WAIT};

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

async fn document(base: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = client().get(format!("{base}/api/v1/openapi.json"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let is_json = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    assert!(is_json, "{status}: {:?}", r.headers());
    (status, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_document_is_openapi_3_with_the_bearer_scheme_and_needs_the_token() {
    let env = Env::start(vec![], |_| {}).await;
    let base = env.http_base();

    let (status, body) = document(&base, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "missing or invalid API token");
    let (status, _) = document(&base, Some("wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, doc) = document(&base, Some(env.mta.api_token())).await;
    assert_eq!(status, StatusCode::OK);
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi = {version:?}");
    let scheme = &doc["components"]["securitySchemes"][cartero_mta::api::BEARER];
    assert_eq!(
        (&scheme["type"], &scheme["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(doc["security"], json!([{ (cartero_mta::api::BEARER): [] }]));
    // Without a document of its own from the embedding program, the MTA serves its own.
    assert_eq!(
        doc,
        serde_json::to_value(cartero_mta::api::openapi()).unwrap()
    );
    let ops = &doc["paths"]["/api/v1/openapi.json"]["get"];
    assert!(ops["responses"]["401"].is_object(), "{ops}");
    let open = &doc["paths"]["/healthz"]["get"];
    assert_eq!(open["security"], json!([{}]), "{open}");
    assert!(open["responses"]["401"].is_null(), "{open}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedding_programs_document_is_served_instead() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = support::test_config(dir.path(), "127.0.0.1:1".parse().unwrap(), 1);
    let mut given = cartero_mta::api::openapi();
    given.info.title = "embedder".into();
    let opts = StartOptions {
        clock: std::sync::Arc::new(ManualClock::new(T0)),
        openapi: Some(given),
        ..StartOptions::default()
    };
    let mta = Mta::start(cfg, opts).await.expect("MTA starts");
    let base = format!("http://{}", mta.http_addr().unwrap());
    let (status, doc) = document(&base, Some(mta.api_token())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["info"]["title"], "embedder");
    mta.shutdown().await;
}
