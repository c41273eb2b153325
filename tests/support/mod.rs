//! Shared helpers for the outside-in tests: run the `cartero` binary with a generated config, find
//! the real peers (swaks, Postfix tools, aiosmtpd), and a small in-process SMTP sink.
//!
//! Every peer check follows one rule: a missing peer skips the test with a printed
//! `SKIPPED: ...` line, except under `CI=true`, where it fails the test.
#![allow(dead_code)]

pub mod browser;
pub mod client;
pub mod peers;
pub mod reports;
pub mod sink;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound for anything a test waits on; generous because CI machines are slow.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// True when missing peers must fail the test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports a missing peer: panics in CI, prints the skip line otherwise. Returns false so
/// callers can write `if !support::require(...) { return; }`.
pub fn missing(what: &str) -> bool {
    assert!(!in_ci(), "CI=true but {what} is not available");
    println!("SKIPPED: {what} not installed");
    false
}

/// A free loopback TCP port. The port is released before use, so another process could take it
/// in between; only used for peers that cannot report the port they bound themselves.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// Polls `check` until it returns true or `limit` passes. Returns whether it succeeded.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Builds a cartero config file: listeners on free loopback ports, DNS pointed at a dead
/// loopback port (so no test can ever reach real DNS), static routes for every test domain.
pub struct ConfigBuilder {
    data_dir: PathBuf,
    routes: Vec<(String, String)>,
    smtp: Vec<String>,
    delivery: Vec<String>,
    raw: Vec<String>,
    http: String,
    http_lines: Vec<String>,
}

impl ConfigBuilder {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            routes: Vec::new(),
            smtp: Vec::new(),
            delivery: Vec::new(),
            raw: Vec::new(),
            http: "127.0.0.1:0".into(),
            http_lines: Vec::new(),
        }
    }

    /// Static route for `domain` to `addr`.
    pub fn route(mut self, domain: &str, addr: SocketAddr) -> Self {
        self.routes.push((domain.into(), addr.to_string()));
        self
    }

    /// A `key = value` line under `[smtp]`.
    pub fn smtp(mut self, line: &str) -> Self {
        self.smtp.push(line.into());
        self
    }

    /// A `key = value` line under `[delivery]`.
    pub fn delivery(mut self, line: &str) -> Self {
        self.delivery.push(line.into());
        self
    }

    /// The HTTP listener's address, for a config that must name it before the start (the
    /// default, port 0, is known only from the log).
    pub fn http(mut self, addr: SocketAddr) -> Self {
        self.http = addr.to_string();
        self
    }

    /// A `key = value` line under `[http]`.
    pub fn http_line(mut self, line: &str) -> Self {
        self.http_lines.push(line.into());
        self
    }

    /// Whole sections appended at the end (e.g. `[[smtp.users]]`, `[shaping.default]`).
    pub fn raw(mut self, text: &str) -> Self {
        self.raw.push(text.into());
        self
    }

    pub fn text(&self) -> String {
        let mut t = format!(
            "hostname = \"cartero.test\"\ndata_dir = {:?}\n\n[smtp]\nlisten = [\"127.0.0.1:0\"]\n",
            self.data_dir.display().to_string()
        );
        for l in &self.smtp {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str(&format!("\n[http]\nlisten = {:?}\n", self.http));
        for l in &self.http_lines {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[delivery]\n");
        for l in &self.delivery {
            t.push_str(l);
            t.push('\n');
        }
        t.push_str("\n[delivery.dns]\nnameservers = [\"127.0.0.1:1\"]\ntimeout = \"1s\"\n");
        t.push_str("\n[delivery.routes]\n");
        for (d, a) in &self.routes {
            t.push_str(&format!("{d:?} = {a:?}\n"));
        }
        for r in &self.raw {
            t.push('\n');
            t.push_str(r);
            t.push('\n');
        }
        t
    }

    /// Writes the config next to the data dir and returns its path.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.text()).unwrap();
        path.to_path_buf()
    }
}

/// The `cartero` binary under test.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_cartero"));
    c.env_remove("CARTERO_CONFIG")
        .env_remove("CARTERO_API")
        .env_remove("CARTERO_TOKEN");
    c
}

/// Runs `cartero ARGS` to completion with optional stdin; returns (exit code, stdout, stderr).
pub fn run(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `cartero serve`. Dropping it kills the process.
pub struct Serve {
    child: Option<Child>,
    pub smtp: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    /// Starts `cartero serve -c CONFIG` and waits until it logged its listeners and "ready".
    pub fn start(config: &Path, data_dir: &Path) -> Serve {
        let mut child = bin()
            .args(["serve", "-c"])
            .arg(config)
            .env("CARTERO_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || read_log(stderr, tx, log2));
        let mut smtp = None;
        let mut http = None;
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(LogLine::Smtp(a)) => smtp = Some(a),
                Ok(LogLine::Http(a)) => http = Some(a),
                Ok(LogLine::Ready) => break,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "cartero serve did not start:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
        }
        let Some(http) = http else {
            // Not left running behind a failed test.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no HTTP listener logged:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Serve {
            child: Some(child),
            // A campaign-only node (remote MTA mode) has no SMTP listener.
            smtp: smtp.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
            http,
            data_dir: data_dir.to_path_buf(),
            config: config.to_path_buf(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// The process log so far (JSON lines), for failure messages.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL: the crash case. Waits until the process is gone.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            let status = c.wait().unwrap();
            assert!(
                status.code().is_none(),
                "expected death by signal, got {status}"
            );
        }
    }

    /// SIGTERM through /bin/kill, then waits (bounded) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("already stopped");
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill -TERM failed");
        let end = Instant::now() + limit;
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > end {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "cartero did not exit within {limit:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The API token the instance generated.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("api-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Events of one type from `data_dir/events/events.jsonl`.
    pub fn events(&self, kind: &str) -> Vec<serde_json::Value> {
        events(&self.data_dir, kind)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Events of one type in a data dir's JSON lines log (partial last lines are ignored).
pub fn events(data_dir: &Path, kind: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(data_dir.join("events/events.jsonl")).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == kind)
        .collect()
}

enum LogLine {
    Smtp(SocketAddr),
    Http(SocketAddr),
    Ready,
}

fn read_log(
    stderr: std::process::ChildStderr,
    tx: mpsc::Sender<LogLine>,
    log: Arc<Mutex<Vec<String>>>,
) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            let f = &v["fields"];
            let addr = f["addr"].as_str().and_then(|a| a.parse().ok());
            let msg = match (f["message"].as_str(), addr) {
                (Some("SMTP listening"), Some(a)) => Some(LogLine::Smtp(a)),
                (Some("HTTP API listening"), Some(a)) => Some(LogLine::Http(a)),
                (Some("ready"), _) => Some(LogLine::Ready),
                _ => None,
            };
            if let Some(m) = msg {
                let _ = tx.send(m);
            }
        }
        log.lock().unwrap().push(line);
    }
}

/// Runs a campaign verb with `--json` against a running `serve` (its config for the token, its
/// logged API address) and returns the JSON it printed; panics with the output on failure.
pub fn campaign_json(mta: &Serve, args: &[&str]) -> serde_json::Value {
    let api = format!("http://{}", mta.http);
    let config = mta.config.to_string_lossy().into_owned();
    let mut all = args.to_vec();
    all.extend_from_slice(&["--config", &config, "--api", &api, "--json"]);
    let (code, out, err) = run(&all, None);
    assert_eq!(code, 0, "cartero {args:?}:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Writes a CSV of `n` recipients `user{i}@{domain}` with a `first_name` column.
pub fn recipients_csv(path: &Path, n: usize, domain: &str) {
    let mut csv = String::from("email,first_name\n");
    for i in 0..n {
        csv.push_str(&format!("user{i}@{domain},Ana{i}\n"));
    }
    std::fs::write(path, csv).unwrap();
}

/// One JSON request to a running `serve`: (status, JSON body or Null). `token` is the bearer
/// token (none: unauthenticated), `key` an `Idempotency-Key` header.
pub fn http_json(
    node: &Serve,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
    token: Option<&str>,
    key: Option<&str>,
) -> (u16, serde_json::Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new()
            .request(
                method.parse().unwrap(),
                format!("http://{}{path}", node.http),
            )
            .timeout(Duration::from_secs(60));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    })
}
