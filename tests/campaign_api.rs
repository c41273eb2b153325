//! The campaign API against bad and hostile input, over HTTP to the binary: no token, unknown
//! fields, broken templates, hostile templates, broken CSV, verbs out of order, out-of-range
//! values. Each gets a clear 4xx with a JSON error naming the problem, and nothing is
//! half-applied.

mod support;

use serde_json::{Value, json};
use support::{ConfigBuilder, Serve};

struct Api {
    base: String,
    token: String,
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Api {
    fn new(mta: &Serve) -> Api {
        Api {
            base: format!("http://{}", mta.http),
            token: mta.token(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            http: reqwest::Client::new(),
        }
    }

    /// (status, JSON body or Null) of a request; `body` is JSON, or raw with its content type.
    fn call(&self, method: &str, path: &str, body: Option<Value>, auth: bool) -> (u16, Value) {
        self.raw(
            method,
            path,
            body.map(|b| (b.to_string().into_bytes(), "application/json")),
            auth,
        )
    }

    fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<(Vec<u8>, &str)>,
        auth: bool,
    ) -> (u16, Value) {
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method.parse().unwrap(), format!("{}{path}", self.base))
                .timeout(std::time::Duration::from_secs(60));
            if auth {
                req = req.bearer_auth(&self.token);
            }
            if let Some((b, ctype)) = body {
                req = req.header("content-type", ctype).body(b);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap_or_default();
            (status, serde_json::from_str(&text).unwrap_or(Value::Null))
        })
    }
}

fn error(v: &Value) -> String {
    v["error"].as_str().unwrap_or("").to_string()
}

fn delivery(list: &str) -> Value {
    json!({"name": "n", "from": "news@src.test", "subject": "Hi {{ first_name }}",
           "text": "Hello", "list": list})
}

#[test]
fn bad_input_to_the_campaign_api_gets_clear_errors_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = ConfigBuilder::new(&data).write(&dir.path().join("cartero.toml"));
    let mta = Serve::start(&config, &data);
    let api = Api::new(&mta);

    // No token: nothing, not even the list of deliveries.
    for (m, p) in [
        ("GET", "/api/v1/deliveries"),
        ("POST", "/api/v1/lists/x/import"),
        ("GET", "/api/v1/quarantine"),
    ] {
        assert_eq!(api.call(m, p, None, false).0, 401, "{m} {p}");
    }

    // Broken CSV: bad encoding, ragged rows, no e-mail column, a huge line. Nothing is kept.
    let csv = |b: &[u8]| Some((b.to_vec(), "text/csv"));
    let (s, v) = api.raw(
        "POST",
        "/api/v1/lists/l1/import",
        csv(b"email,name\na@x.test,\xff\xfe\n"),
        true,
    );
    assert_eq!(s, 422, "{v}");
    assert!(
        error(&v).contains("line 2") && error(&v).contains("UTF-8"),
        "{v}"
    );
    let (s, v) = api.raw(
        "POST",
        "/api/v1/lists/l1/import",
        csv(b"name,city\nA,B\n"),
        true,
    );
    assert!(s == 422 && error(&v).contains("email"), "{s} {v}");
    let mut huge = b"email,name\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 200_000));
    let (s, v) = api.raw("POST", "/api/v1/lists/l1/import", csv(&huge), true);
    assert!(s == 422 && error(&v).contains("longer than"), "{s} {v}");
    let (s, v) = api.raw(
        "POST",
        "/api/v1/lists/l1/import",
        csv(b"email,first_name\na@x.test,A\nb@x.test\n,C\n"),
        true,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["imported"].as_u64(), v["bad_rows"].as_u64()),
        (Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(
        v["bad"][0]["line"], 3,
        "ragged rows are reported with their line: {v}"
    );
    let (s, v) = api.raw(
        "POST",
        "/api/v1/lists/l1/import",
        csv(b"email\nc@x.test\n"),
        true,
    );
    assert_eq!(s, 409, "the name is taken: {v}");

    // Deliveries: unknown field, unknown list, broken template, hostile template, bad from.
    let mut d = delivery("l1");
    d["colour"] = json!("red");
    let (s, v) = api.call("POST", "/api/v1/deliveries", Some(d), true);
    assert!(s == 422 && error(&v).contains("colour"), "{s} {v}");
    let (s, v) = api.call("POST", "/api/v1/deliveries", Some(delivery("nope")), true);
    assert!(s == 422 && error(&v).contains("nope"), "{s} {v}");
    let mut d = delivery("l1");
    d["html"] = json!("<p>{% if %}</p>");
    let (s, v) = api.call("POST", "/api/v1/deliveries", Some(d), true);
    assert!(s == 422 && error(&v).contains("html"), "{s} {v}");
    let mut d = delivery("l1");
    d["from"] = json!("News <news@");
    let (s, v) = api.call("POST", "/api/v1/deliveries", Some(d), true);
    assert!(s == 422 && error(&v).contains("from"), "{s} {v}");
    let mut d = delivery("l1");
    d["text"] = json!("{% for i in range(100000000) %}{{ i }}{% endfor %}");
    let (s, v) = api.call("POST", "/api/v1/deliveries", Some(d), true);
    assert_eq!(s, 200, "compiles: {v}");
    let hostile = v["id"].as_i64().unwrap();
    let (s, v) = api.call(
        "POST",
        &format!("/api/v1/deliveries/{hostile}/analyze"),
        None,
        true,
    );
    assert!(
        s == 422 && v["total"] == 1,
        "an endless loop is an error per recipient: {s} {v}"
    );
    let st = api
        .call("GET", &format!("/api/v1/deliveries/{hostile}"), None, true)
        .1;
    assert_eq!(st["delivery"]["state"], "draft");
    assert_eq!(st["kpis"]["to_deliver"], 0, "nothing half-applied: {st}");

    // Verbs out of order, unknown ids and verbs, out-of-range values.
    let (_, v) = api.call("POST", "/api/v1/deliveries", Some(delivery("l1")), true);
    let id = v["id"].as_i64().unwrap();
    for verb in ["start", "pause", "resume"] {
        let (s, v) = api.call(
            "POST",
            &format!("/api/v1/deliveries/{id}/{verb}"),
            None,
            true,
        );
        assert!(s == 409 && error(&v).contains("draft"), "{verb}: {s} {v}");
    }
    let (s, _) = api.call("POST", "/api/v1/deliveries/999999/analyze", None, true);
    assert_eq!(s, 404);
    let (s, v) = api.call(
        "POST",
        &format!("/api/v1/deliveries/{id}/explode"),
        None,
        true,
    );
    assert!(s == 404 && error(&v).contains("explode"), "{s} {v}");
    let (s, _) = api.call(
        "GET",
        &format!("/api/v1/deliveries/{id}/throughput?hours=7"),
        None,
        true,
    );
    assert_eq!(s, 422);
    let (s, v) = api.call(
        "GET",
        &format!("/api/v1/deliveries/{id}/logs?reason=77"),
        None,
        true,
    );
    assert!(s == 422 && error(&v).contains("77"), "{s} {v}");
    let many: Vec<Value> = (0..10_001)
        .map(|i| json!({"email": format!("u{i}@x.test")}))
        .collect();
    let (s, v) = api.call(
        "POST",
        "/api/v1/lists/l2/recipients",
        Some(json!(many)),
        true,
    );
    assert!(s == 422 && error(&v).contains("10000"), "{s} {v}");
    let (s, v) = api.call(
        "POST",
        "/api/v1/quarantine/release",
        Some(json!({"actor": "", "why": "x", "filter": {}})),
        true,
    );
    assert!(s == 422 && error(&v).contains("actor"), "{s} {v}");
    let (s, v) = api.raw(
        "POST",
        "/api/v1/deliveries",
        Some((b"{not json".to_vec(), "application/json")),
        true,
    );
    assert!(s == 422 && error(&v).contains("JSON"), "{s} {v}");
}
