//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`): the
//! W3C protocol is JSON over HTTP, so a few calls through reqwest are the whole client.
//!
//! Network safety: chromedriver listens on a loopback port, and Chromium runs with background
//! networking off and a host resolver that resolves nothing but 127.0.0.1, so pages can reach
//! only the loopback servers the tests start.

use super::{DEADLINE, free_port, missing};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The W3C key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    rt: tokio::runtime::Runtime,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.rt.block_on(self.http.delete(&self.session).send());
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// A browser with a 1280×800 window, or `None` (skipped, or failed under CI=true) when
    /// Chromium or its driver is not installed.
    pub fn start() -> Option<Browser> {
        if !Path::new(CHROMIUM).exists() || !Path::new(CHROMEDRIVER).exists() {
            missing("chromium and chromium-driver (headless browser tests)");
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let ready = super::wait_until(DEADLINE, || {
            rt.block_on(async { http.get(format!("{base}/status")).send().await })
                .is_ok_and(|r| r.status().is_success())
        });
        assert!(ready, "chromedriver did not start on {base}");
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-domain-reliability",
            "--no-first-run",
            "--no-proxy-server",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--window-size=1280,800",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let r: Value = rt.block_on(async {
            let r = http
                .post(format!("{base}/session"))
                .json(&caps)
                .timeout(DEADLINE)
                .send()
                .await
                .unwrap();
            r.json().await.unwrap()
        });
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_string();
        Some(Browser {
            rt,
            http,
            session: format!("{base}/session/{id}"),
            driver,
            _profile: profile,
        })
    }

    /// One WebDriver command; answers its `value`, panicking on a WebDriver error.
    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let v = self.try_cmd(method, path, body);
        if let Some(e) = v.get("error") {
            panic!("WebDriver {method} {path}: {e} {}", v["message"]);
        }
        v
    }

    fn try_cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.rt.block_on(async {
            let mut req = self
                .http
                .request(method.parse().unwrap(), format!("{}{path}", self.session))
                .timeout(DEADLINE);
            if let Some(b) = body {
                req = req.json(&b);
            } else if method == "POST" {
                req = req.json(&json!({}));
            }
            let r: Value = req.send().await.unwrap().json().await.unwrap();
            r["value"].clone()
        })
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// The element `css` selects, once it exists (waits for the page's script to build it).
    pub fn find(&self, css: &str) -> String {
        let mut found = None;
        let ok = super::wait_until(DEADLINE, || {
            let v = self.try_cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            found = v.get(ELEMENT).and_then(Value::as_str).map(str::to_string);
            found.is_some()
        });
        if !ok {
            let source = self.try_cmd("GET", "/source", None);
            let last = self.try_cmd(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            );
            panic!("no element {css:?} on {} ({last}):\n{source}", self.url());
        }
        found.unwrap_or_default()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/click"), None);
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.cmd("POST", &format!("/element/{e}/clear"), None);
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Runs `body` (a function body: `return …`) in the page with `args`.
    pub fn script(&self, body: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": body, "args": args})),
        )
    }

    /// Runs an async script: `body` ends by calling `arguments[arguments.length - 1](value)`.
    pub fn script_async(&self, body: &str, args: Value) -> Value {
        self.cmd(
            "POST",
            "/execute/async",
            Some(json!({"script": body, "args": args})),
        )
    }

    /// Polls `predicate` (a function body answering a value) until it answers something truthy;
    /// answers that value. Panics with `what` after the deadline.
    pub fn wait_for(&self, what: &str, predicate: &str, args: Value) -> Value {
        let end = Instant::now() + DEADLINE;
        loop {
            let v = self.try_cmd(
                "POST",
                "/execute/sync",
                Some(json!({"script": predicate, "args": args})),
            );
            let truthy = !(v.is_null()
                || v == Value::Bool(false)
                || v.get("error").is_some()
                || v == json!(""));
            if truthy {
                return v;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The trimmed text of the element `css` selects.
    pub fn text(&self, css: &str) -> String {
        let e = self.find(css);
        let v = self.cmd("GET", &format!("/element/{e}/text"), None);
        v.as_str().unwrap_or("").trim().to_string()
    }

    pub fn delete_cookies(&self) {
        self.cmd("DELETE", "/cookie", None);
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.cmd(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    /// Opens a new tab and switches to it; answers its handle.
    pub fn new_tab(&self) -> String {
        let v = self.cmd("POST", "/window/new", Some(json!({"type": "tab"})));
        let handle = v["handle"].as_str().unwrap_or("").to_string();
        self.switch_to(&handle);
        handle
    }

    pub fn window(&self) -> String {
        self.cmd("GET", "/window", None)
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    pub fn switch_to(&self, handle: &str) {
        self.cmd("POST", "/window", Some(json!({ "handle": handle })));
    }

    /// Writes a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or(""))
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}
