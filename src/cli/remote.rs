//! Operator commands that talk to a running instance over its HTTP API.

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Args, Clone)]
pub struct RemoteArgs {
    /// API base URL; default from the config's `http.listen`.
    #[arg(long, env = "CARTERO_API")]
    api: Option<String>,
    /// API token; default from `data_dir/api-token` or the config's first token.
    #[arg(long, env = "CARTERO_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Args)]
pub struct InjectArgs {
    /// RFC 5322 message file (`-` for standard input).
    file: PathBuf,
    #[arg(long)]
    from: String,
    #[arg(long = "to", required = true)]
    to: Vec<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub(super) struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

/// The HTTP client of the operator commands. With `[http] tls` it also trusts the listener's
/// own certificate (configured, or the self-signed one `serve` generated), so a local HTTPS
/// API works without installing that certificate anywhere.
fn api_client(cfg: &cartero_mta::MtaConfig) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder();
    if cfg.http.tls {
        let path = cfg
            .tls
            .cert
            .clone()
            .unwrap_or_else(|| cfg.data_dir.join("tls").join("cert.pem"));
        if path.exists() {
            b = cartero_events::trust_pem_file(b, &path).map_err(|e| anyhow::anyhow!(e))?;
        }
    }
    b.build().context("building the HTTP client")
}

impl Client {
    pub(super) fn new(config: Option<&Path>, r: &RemoteArgs) -> anyhow::Result<Self> {
        let cfg = super::config::load(config)?;
        let scheme = if cfg.http.tls { "https" } else { "http" };
        let base = r
            .api
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", cfg.http.listen));
        let token = match (&r.token, cfg.http.tokens.first()) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => t.clone(),
            (None, None) => {
                let p = cfg.data_dir.join("api-token");
                std::fs::read_to_string(&p)
                    .with_context(|| {
                        format!(
                            "reading the API token from {} (or pass --token)",
                            p.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Ok(Self {
            base,
            token,
            http: api_client(&cfg)?,
        })
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.send(req).await
    }

    /// A request with a raw body (a CSV upload).
    pub(super) async fn send_bytes(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> anyhow::Result<Value> {
        let req = self
            .request(method, path)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        self.send(req).await
    }

    /// GETs a stream of lines (JSON lines) and hands each to `line` until the server ends it.
    pub(super) async fn stream_lines(
        &self,
        path: &str,
        mut line: impl FnMut(&str),
    ) -> anyhow::Result<()> {
        let mut resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let v: Value = resp.json().await.unwrap_or(Value::Null);
            bail!(
                "{status}: {}",
                v["error"].as_str().unwrap_or("request failed")
            );
        }
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = resp.chunk().await.context("reading the event stream")? {
            buf.extend_from_slice(&chunk);
            while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                let text: Vec<u8> = buf.drain(..=end).collect();
                line(String::from_utf8_lossy(&text).trim_end());
            }
            // A line never grows without bound: events are small, so a huge one is garbage.
            anyhow::ensure!(buf.len() <= 16 << 20, "an event line over 16 MiB");
        }
        Ok(())
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("calling {}", self.base))?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{status}: {}",
                v.get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("request failed")
            );
        }
        Ok(v)
    }
}

fn fmt_time(ms: Option<u64>) -> String {
    ms.and_then(relative_time).unwrap_or_else(|| "-".into())
}

fn relative_time(ms: u64) -> Option<String> {
    let secs = ms / 1000;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(if secs >= now {
        format!("in {}s", secs - now)
    } else {
        format!("{}s ago", now - secs)
    })
}

pub async fn queue(config: Option<&Path>, r: RemoteArgs) -> anyhow::Result<()> {
    let v = Client::new(config, &r)?
        .call(reqwest::Method::GET, "/api/v1/queue", None)
        .await?;
    if r.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{} queued recipients", v["recipients"]);
    println!(
        "{:<32} {:>8} {:>12} {:>12}  LAST REPLY",
        "DOMAIN", "RCPTS", "OLDEST", "NEXT"
    );
    for d in v["domains"].as_array().into_iter().flatten() {
        println!(
            "{:<32} {:>8} {:>12} {:>12}  {}",
            d["domain"].as_str().unwrap_or(""),
            d["recipients"],
            fmt_time(d["oldest"].as_u64()),
            fmt_time(d["next_attempt"].as_u64()),
            d["last_reply"].as_str().unwrap_or("-")
        );
    }
    println!(
        "\n{:<12} {:<40} {:>8} {:>6}  HOSTS",
        "SOURCE", "SITE", "READY", "CONNS"
    );
    for s in v["sites"].as_array().into_iter().flatten() {
        println!(
            "{:<12} {:<40} {:>8} {:>6}  {}",
            s["source"].as_str().unwrap_or(""),
            s["site"].as_str().unwrap_or(""),
            s["ready"],
            s["connections"],
            s["hosts"]
        );
    }
    Ok(())
}

pub async fn message(config: Option<&Path>, r: RemoteArgs, id: &str) -> anyhow::Result<()> {
    let v = Client::new(config, &r)?
        .call(
            reqwest::Method::GET,
            &format!("/api/v1/messages/{id}"),
            None,
        )
        .await?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

pub async fn flush(
    config: Option<&Path>,
    r: RemoteArgs,
    domain: Option<String>,
) -> anyhow::Result<()> {
    let v = Client::new(config, &r)?
        .call(
            reqwest::Method::POST,
            "/api/v1/queue/flush",
            Some(json!({ "domain": domain })),
        )
        .await?;
    println!("{} recipients made due now", v["flushed"]);
    Ok(())
}

pub async fn drain(config: Option<&Path>, r: RemoteArgs, domain: &str) -> anyhow::Result<()> {
    let v = Client::new(config, &r)?
        .call(
            reqwest::Method::POST,
            "/api/v1/queue/drain",
            Some(json!({ "domain": domain })),
        )
        .await?;
    println!("{} recipients failed", v["drained"]);
    Ok(())
}

pub async fn inject(config: Option<&Path>, a: InjectArgs) -> anyhow::Result<()> {
    let raw = if a.file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading stdin")?;
        s
    } else {
        std::fs::read_to_string(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let body = json!({ "mail_from": a.from, "recipients": a.to, "content": { "raw": raw } });
    let v = Client::new(config, &a.remote)?
        .call(reqwest::Method::POST, "/api/v1/messages", Some(body))
        .await?;
    for r in v["recipients"].as_array().into_iter().flatten() {
        println!(
            "{} {}",
            r["id"].as_str().unwrap_or(""),
            r["address"].as_str().unwrap_or("")
        );
    }
    Ok(())
}
