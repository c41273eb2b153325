//! The shaping API over a real socket: the view, operator suspensions with their end computed
//! from the MTA's clock, and configuration reload that keeps the running configuration when the
//! new one is bad.

mod support;

use cartero_clock::ManualClock;
use cartero_mta::shaping::Reloader;
use cartero_mta::{Mta, MtaConfig, StartOptions};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use support::T0;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(support::WAIT)
        .build()
        .unwrap()
}

/// An MTA on a manual clock that delivers nowhere: DNS and the remote port are dead loopback
/// ports, and these tests inject nothing.
struct Api {
    mta: Arc<Mta>,
    _dir: tempfile::TempDir,
    config_file: PathBuf,
}

impl Api {
    async fn start(reloader: impl FnOnce(&Path) -> Option<Reloader>) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let dead: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let cfg = support::test_config(dir.path(), dead, 9);
        let config_file = dir.path().join("cartero.toml");
        let opts = StartOptions {
            clock: Arc::new(ManualClock::new(T0)),
            reloader: reloader(&config_file),
            ..StartOptions::default()
        };
        let mta = Mta::start(cfg, opts).await.expect("MTA starts");
        Api {
            mta,
            _dir: dir,
            config_file,
        }
    }

    fn url(&self, path: &str) -> String {
        format!(
            "http://{}/api/v1/shaping{path}",
            self.mta.http_addr().unwrap()
        )
    }

    async fn get(&self) -> Value {
        let r = client()
            .get(self.url(""))
            .bearer_auth(self.mta.api_token())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = client()
            .post(self.url(path))
            .bearer_auth(self.mta.api_token());
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.json().await.unwrap())
    }
}

/// A reloader like the binary's: reads and parses the TOML file, errors name the line.
fn file_reloader(path: &Path) -> Option<Reloader> {
    let path = path.to_path_buf();
    Some(Arc::new(move || {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        toml::from_str::<MtaConfig>(&text).map_err(|e| format!("{}: {e}", path.display()).into())
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shaping_route_needs_the_token() {
    let api = Api::start(|_| None).await;
    let get = client().get(api.url("")).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::UNAUTHORIZED);
    for path in ["/suspend", "/resume", "/reload"] {
        let r = client()
            .post(api.url(path))
            .json(&json!({"scope": "domain:x.test"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // Nothing was suspended by the refused calls.
    assert_eq!(api.get().await["suspensions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_shows_in_the_view_and_resume_lifts_it_once() {
    let api = Api::start(|_| None).await;
    let v = api.get().await;
    assert_eq!(v["now"], T0, "{v}");
    assert_eq!(v["adaptive"], true, "{v}");

    let (st, action) = api
        .post(
            "/suspend",
            Some(json!({"scope": "domain:Example.TEST", "for": "2h", "reason": "maintenance"})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{action}");
    assert_eq!(action["action"], "suspend", "{action}");
    assert_eq!(action["cause"], "operator", "{action}");
    assert_eq!(
        action["scope"],
        json!({"scope": "domain", "name": "example.test"})
    );
    assert_eq!(action["until"], T0 + 2 * 3600 * 1000, "{action}");

    // Without "for" the suspension lasts until resumed.
    let (st, action) = api
        .post("/suspend", Some(json!({"scope": "source:default"})))
        .await;
    assert_eq!(st, StatusCode::OK, "{action}");
    assert!(action.get("until").is_none(), "{action}");

    let v = api.get().await;
    let s = v["suspensions"].as_array().unwrap();
    assert_eq!(s.len(), 2, "{v}");
    assert_eq!(s[0]["scope"], "domain:example.test", "{v}");
    assert_eq!(s[0]["reason"], "maintenance", "{v}");
    assert_eq!(s[0]["until"], T0 + 2 * 3600 * 1000, "{v}");
    assert_eq!(s[0]["since"], T0, "{v}");
    assert_eq!(s[1]["scope"], "source:default", "{v}");
    assert_eq!(s[1]["until"], Value::Null, "{v}");

    let (st, action) = api
        .post("/resume", Some(json!({"scope": "domain:example.test"})))
        .await;
    assert_eq!(st, StatusCode::OK, "{action}");
    assert_eq!(action["action"], "resume", "{action}");
    let (st, err) = api
        .post("/resume", Some(json!({"scope": "domain:example.test"})))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("not suspended"),
        "{err}"
    );
    let v = api.get().await;
    assert_eq!(v["suspensions"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["suspensions"][0]["scope"], "source:default", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_scopes_durations_and_bodies_get_a_400_that_says_why() {
    let api = Api::start(|_| None).await;
    let cases = [
        (json!({"scope": "planet:mars"}), "unknown scope"),
        (json!({"scope": "example.test"}), "expected domain:NAME"),
        (json!({"scope": "domain:"}), "empty name"),
        (
            json!({"scope": "domain:x.test", "for": "soon"}),
            "invalid duration",
        ),
        (
            json!({"scope": "domain:x.test", "for": "0s"}),
            "longer than zero",
        ),
        (
            json!({"scope": "domain:x.test", "until": "2h"}),
            "invalid JSON",
        ),
    ];
    for (body, want) in cases {
        let (st, err) = api.post("/suspend", Some(body.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} -> {err}");
        let msg = err["error"].as_str().unwrap_or("");
        assert!(msg.contains(want), "{body}: {msg:?} lacks {want:?}");
    }
    let (st, err) = api
        .post("/resume", Some(json!({"scope": "galaxy:x"})))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(api.get().await["suspensions"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_without_a_reloader_is_refused() {
    let api = Api::start(|_| None).await;
    let (st, err) = api.post("/reload", None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{err}");
    assert!(err["error"].as_str().unwrap().contains("--config"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_configuration_is_reported_and_the_running_one_stays() {
    let api = Api::start(file_reloader).await;
    std::fs::write(
        &api.config_file,
        "[shaping.adaptive]\nenabled = false\n[delivery\n",
    )
    .unwrap();
    let (st, err) = api.post("/reload", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    let msg = err["error"].as_str().unwrap();
    assert!(msg.contains("cartero.toml"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("keeping the running configuration"), "{msg}");
    assert_eq!(api.get().await["adaptive"], true);

    // A reloader that fails for another reason (the file is gone) is reported the same way.
    std::fs::remove_file(&api.config_file).unwrap();
    let (st, err) = api.post("/reload", None).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(api.get().await["adaptive"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_configuration_is_applied_by_reload() {
    let api = Api::start(file_reloader).await;
    assert_eq!(api.get().await["adaptive"], true);
    std::fs::write(&api.config_file, "[shaping.adaptive]\nenabled = false\n").unwrap();
    let (st, v) = api.post("/reload", None).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"reloaded": true}));
    assert_eq!(api.get().await["adaptive"], false);
}
