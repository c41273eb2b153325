//! Campaign verbs (SPEC §4) against a running `cartero serve`, over its HTTP API.

use super::remote::{Client, RemoteArgs};
use anyhow::Context;
use cartero_campaign::model::Kpis;
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum RecipientsCmd {
    /// Import a CSV file (header row = attributes) into a new list, or append to one.
    Import {
        file: PathBuf,
        #[arg(long)]
        list: String,
        /// The header of the e-mail column.
        #[arg(long, default_value = "email")]
        email_column: String,
        /// Append to the existing list instead of creating it.
        #[arg(long)]
        append: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    /// The From header: `Name <address>` or an address.
    #[arg(long)]
    from: String,
    /// Subject template, e.g. "Hello {{ first_name }}".
    #[arg(long)]
    subject: String,
    /// Text body template file.
    #[arg(long)]
    text: Option<PathBuf>,
    /// HTML body template file.
    #[arg(long)]
    html: Option<PathBuf>,
    /// The target list, by name.
    #[arg(long)]
    list: String,
    /// e.g. "5days" (the default); the MTA caps each message at its own maximum.
    #[arg(long)]
    validity: Option<String>,
    #[arg(long)]
    pool: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Subcommand)]
pub enum DeliveryCmd {
    /// Create a Draft delivery.
    Create(CreateArgs),
    /// List deliveries.
    List(RemoteArgs),
    /// Build the send list: exclusions are logged as Ignored with their reason.
    Analyze(IdArgs),
    Start(IdArgs),
    Pause(IdArgs),
    Resume(IdArgs),
    /// Stop: what the MTA has not taken is cancelled.
    Stop(IdArgs),
    /// State and KPIs (SPEC §3.3).
    Status(IdArgs),
    /// Log rows, filtered.
    Logs {
        id: i64,
        /// pending, taken, sent, failed or ignored.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Args)]
pub struct IdArgs {
    id: i64,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Subcommand)]
pub enum AddressCmd {
    /// The quality record of an address.
    Show {
        address: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Release an address from quarantine or the denylist (audited).
    Release {
        address: String,
        #[arg(long)]
        why: String,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

#[derive(Subcommand)]
pub enum QuarantineCmd {
    /// Addresses in quarantine (or denylisted with --status denylisted).
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        reason: Option<u8>,
        #[arg(long)]
        domain: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Bulk release by filter (audited); --dry-run counts only.
    Release {
        #[arg(long)]
        why: String,
        #[arg(long, env = "USER", default_value = "operator")]
        actor: String,
        #[arg(long)]
        reason: Option<u8>,
        #[arg(long)]
        domain: Option<String>,
        /// A piece of the last error's text.
        #[arg(long)]
        text: Option<String>,
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// The contents of an optional template file.
pub(super) fn read(p: &Option<PathBuf>) -> anyhow::Result<Option<String>> {
    p.as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display())))
        .transpose()
}

pub(super) fn print(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

pub(super) fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub async fn recipients(config: Option<&Path>, cmd: RecipientsCmd) -> anyhow::Result<()> {
    let RecipientsCmd::Import {
        file,
        list,
        email_column,
        append,
        remote,
    } = cmd;
    let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let path = format!(
        "/api/v1/lists/{}/import?email_column={}&append={append}",
        enc(&list),
        enc(&email_column)
    );
    let spinner = progress(remote.json, 0);
    spinner.set_message(format!(
        "importing {} ({:.1} MB)",
        file.display(),
        bytes.len() as f64 / 1e6
    ));
    let v = Client::new(config, &remote)?
        .send_bytes(Method::POST, &path, bytes, "text/csv")
        .await;
    spinner.finish_and_clear();
    let v = v?;
    if remote.json {
        print(&v);
        return Ok(());
    }
    println!(
        "list {}: {} rows read, {} imported, {} bad",
        v["list"], v["rows_read"], v["imported"], v["bad_rows"]
    );
    for b in v["bad"].as_array().into_iter().flatten().take(20) {
        println!("  line {}: {}", b["line"], b["problem"]);
    }
    Ok(())
}

pub async fn delivery(config: Option<&Path>, cmd: DeliveryCmd) -> anyhow::Result<()> {
    let (remote, method, path, body) = match cmd {
        DeliveryCmd::Create(a) => {
            let body = json!({
                "name": a.name, "from": a.from, "subject": a.subject,
                "text": read(&a.text)?, "html": read(&a.html)?, "list": a.list,
                "validity": a.validity, "pool": a.pool,
            });
            (
                a.remote,
                Method::POST,
                "/api/v1/deliveries".to_string(),
                Some(body),
            )
        }
        DeliveryCmd::List(r) => (r, Method::GET, "/api/v1/deliveries".into(), None),
        DeliveryCmd::Status(a) => (
            a.remote,
            Method::GET,
            format!("/api/v1/deliveries/{}", a.id),
            None,
        ),
        DeliveryCmd::Analyze(a) => {
            let client = Client::new(config, &a.remote)?;
            let v = analyze(&client, a.id, a.remote.json).await?;
            print(&v);
            return Ok(());
        }
        DeliveryCmd::Start(a) => verb(a, "start"),
        DeliveryCmd::Pause(a) => verb(a, "pause"),
        DeliveryCmd::Resume(a) => verb(a, "resume"),
        DeliveryCmd::Stop(a) => verb(a, "stop"),
        DeliveryCmd::Logs {
            id,
            status,
            domain,
            limit,
            remote,
        } => {
            let mut path = format!("/api/v1/deliveries/{id}/logs?limit={limit}");
            if let Some(s) = status {
                path.push_str(&format!("&status={}", enc(&s)));
            }
            if let Some(d) = domain {
                path.push_str(&format!("&domain={}", enc(&d)));
            }
            (remote, Method::GET, path, None)
        }
    };
    let v = Client::new(config, &remote)?
        .call(method, &path, body)
        .await?;
    if remote.json || v.get("kpis").is_none() {
        print(&v);
    } else {
        print_status(&v);
    }
    Ok(())
}

fn verb(a: IdArgs, verb: &str) -> (RemoteArgs, Method, String, Option<Value>) {
    (
        a.remote,
        Method::POST,
        format!("/api/v1/deliveries/{}/{verb}", a.id),
        None,
    )
}

fn print_status(v: &Value) {
    let d = &v["delivery"];
    let k = &v["kpis"];
    println!(
        "delivery {} {:?}: {}{}",
        d["id"],
        d["name"].as_str().unwrap_or(""),
        d["state"].as_str().unwrap_or("?"),
        if v["final"] == json!(true) {
            " (final)"
        } else {
            ""
        }
    );
    for key in Kpis::COUNTERS {
        println!("  {key:<16} {}", k[key]);
    }
    if let Some(s) = v["efs"]["success"]["rate"].as_f64() {
        println!("  success          {:.1}%", s * 100.0);
    }
}

pub async fn address(config: Option<&Path>, cmd: AddressCmd) -> anyhow::Result<()> {
    let (remote, method, path, body) = match cmd {
        AddressCmd::Show { address, remote } => (
            remote,
            Method::GET,
            format!("/api/v1/addresses/{}", enc(&address)),
            None,
        ),
        AddressCmd::Release {
            address,
            why,
            actor,
            remote,
        } => (
            remote,
            Method::POST,
            format!("/api/v1/addresses/{}/release", enc(&address)),
            Some(json!({ "actor": actor, "why": why })),
        ),
    };
    print(
        &Client::new(config, &remote)?
            .call(method, &path, body)
            .await?,
    );
    Ok(())
}

pub async fn quarantine(config: Option<&Path>, cmd: QuarantineCmd) -> anyhow::Result<()> {
    let (remote, method, path, body) = match cmd {
        QuarantineCmd::List {
            status,
            reason,
            domain,
            remote,
        } => {
            let mut q = vec!["limit=1000".to_string()];
            q.extend(status.map(|s| format!("status={}", enc(&s))));
            q.extend(reason.map(|r| format!("reason={r}")));
            q.extend(domain.map(|d| format!("domain={}", enc(&d))));
            (
                remote,
                Method::GET,
                format!("/api/v1/quarantine?{}", q.join("&")),
                None,
            )
        }
        QuarantineCmd::Release {
            why,
            actor,
            reason,
            domain,
            text,
            dry_run,
            remote,
        } => {
            let filter = json!({ "reason": reason.and_then(reason_name), "domain": domain, "text_contains": text });
            let body = json!({ "actor": actor, "why": why, "filter": filter, "dry_run": dry_run });
            (
                remote,
                Method::POST,
                "/api/v1/quarantine/release".into(),
                Some(body),
            )
        }
    };
    print(
        &Client::new(config, &remote)?
            .call(method, &path, body)
            .await?,
    );
    Ok(())
}

/// The serde name of a reason value, as the release filter takes it.
fn reason_name(v: u8) -> Option<Value> {
    let r = cartero_bounce::Reason::from_value(v)?;
    serde_json::to_value(r).ok()
}

/// A bar on standard error (hidden with `--json` or when stderr is not a terminal); length 0
/// makes it a spinner.
fn progress(json: bool, len: u64) -> indicatif::ProgressBar {
    if json {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        0 => indicatif::ProgressBar::new_spinner(),
        n => indicatif::ProgressBar::new(n),
    };
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

/// Runs the analysis while a bar shows how far it is (read from the delivery's status).
async fn analyze(client: &Client, id: i64, json: bool) -> anyhow::Result<Value> {
    let path = format!("/api/v1/deliveries/{id}/analyze");
    let call = client.call(Method::POST, &path, None);
    tokio::pin!(call);
    let bar = progress(json, 0);
    bar.set_message("analyzing");
    let status = format!("/api/v1/deliveries/{id}");
    loop {
        tokio::select! {
            done = &mut call => {
                bar.finish_and_clear();
                return done;
            }
            _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
        }
        let Ok(st) = client.call(Method::GET, &status, None).await else {
            continue;
        };
        let a = &st["analysis"];
        if let (Some(total), Some(done)) =
            (a["recipients"].as_u64(), a["counts"]["candidates"].as_u64())
        {
            if bar.length() != Some(total) {
                bar.set_length(total);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{msg} [{bar:40}] {pos}/{len} recipients ({per_sec}, {eta} left)",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            bar.set_position(done);
        }
    }
}
