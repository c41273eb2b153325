//! `cartero transactional`: templates, calls and the outbox of a running `cartero serve`, over
//! its HTTP API (docs/transactional.md).

use super::campaign::{enc, print, read};
use super::remote::{Client, RemoteArgs};
use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum TransactionalCmd {
    /// Templates: add a version (`put`), show one, list them.
    #[command(subcommand)]
    Template(TemplateCmd),
    /// Send one message with a template's version in force; prints the call's id once it is
    /// stored (the outbox hands it to the MTA).
    Send {
        template: String,
        #[arg(long)]
        to: String,
        /// The data, a JSON object (e.g. '{"order": 42}').
        #[arg(long, default_value = "{}")]
        data: String,
        /// The idempotency key: the same key again within the window answers with this call.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// A call by id: its status, template version and log row.
    Status {
        id: i64,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Calls in id order, filtered.
    List {
        #[arg(long)]
        template: Option<String>,
        /// pending, taken, sent, failed or ignored.
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        to: Option<String>,
        /// The `next` of the previous page.
        #[arg(long)]
        after: Option<i64>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// The calls waiting for the MTA: how many, and the oldest one's age.
    Outbox(RemoteArgs),
}

#[derive(Subcommand)]
pub enum TemplateCmd {
    /// Add a version (creating the template); calls made from now on use it.
    Put {
        name: String,
        /// The From header: `Name <address>` or an address.
        #[arg(long)]
        from: String,
        /// Subject template, e.g. "Order {{ order }} shipped".
        #[arg(long)]
        subject: String,
        /// Text body template file.
        #[arg(long)]
        text: Option<PathBuf>,
        /// HTML body template file.
        #[arg(long)]
        html: Option<PathBuf>,
        /// e.g. "1day" (default 5 days); the MTA caps each message at its own maximum.
        #[arg(long)]
        validity: Option<String>,
        #[arg(long)]
        pool: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    Show {
        name: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    List(RemoteArgs),
}

pub async fn run(config: Option<&Path>, cmd: TransactionalCmd) -> anyhow::Result<()> {
    let (remote, method, path, body) = match cmd {
        TransactionalCmd::Template(t) => template(t)?,
        TransactionalCmd::Send {
            template,
            to,
            data,
            key,
            remote,
        } => {
            let data: Value = serde_json::from_str(&data).context("--data is not JSON")?;
            anyhow::ensure!(data.is_object(), "--data must be a JSON object");
            let body = json!({ "recipient": to, "data": data, "idempotency_key": key });
            let path = format!("/api/v1/transactional/{}", enc(&template));
            (remote, Method::POST, path, Some(body))
        }
        TransactionalCmd::Status { id, remote } => (
            remote,
            Method::GET,
            format!("/api/v1/transactional/messages/{id}"),
            None,
        ),
        TransactionalCmd::List {
            template,
            status,
            to,
            after,
            limit,
            remote,
        } => {
            let mut path = format!("/api/v1/transactional/messages?limit={limit}");
            let filters = [("template", template), ("status", status), ("address", to)];
            for (name, value) in filters {
                if let Some(v) = value {
                    path.push_str(&format!("&{name}={}", enc(&v)));
                }
            }
            if let Some(a) = after {
                path.push_str(&format!("&after={a}"));
            }
            (remote, Method::GET, path, None)
        }
        TransactionalCmd::Outbox(r) => {
            (r, Method::GET, "/api/v1/transactional/outbox".into(), None)
        }
    };
    let v = Client::new(config, &remote)?
        .call(method, &path, body)
        .await?;
    if remote.json {
        print(&v);
    } else {
        print_human(&v);
    }
    Ok(())
}

type Request = (RemoteArgs, Method, String, Option<Value>);

fn template(cmd: TemplateCmd) -> anyhow::Result<Request> {
    Ok(match cmd {
        TemplateCmd::Put {
            name,
            from,
            subject,
            text,
            html,
            validity,
            pool,
            remote,
        } => {
            let body = json!({
                "from": from, "subject": subject, "text": read(&text)?, "html": read(&html)?,
                "validity": validity, "pool": pool,
            });
            let path = format!("/api/v1/transactional/templates/{}", enc(&name));
            (remote, Method::PUT, path, Some(body))
        }
        TemplateCmd::Show { name, remote } => (
            remote,
            Method::GET,
            format!("/api/v1/transactional/templates/{}", enc(&name)),
            None,
        ),
        TemplateCmd::List(r) => (
            r,
            Method::GET,
            "/api/v1/transactional/templates".into(),
            None,
        ),
    })
}

/// One line per answer the operator reads most: a call, a page of calls, a version.
fn print_human(v: &Value) {
    let line = |c: &Value| {
        format!(
            "call {} {} v{} to {}: {}",
            c["id"],
            c["template"].as_str().unwrap_or("?"),
            c["version"],
            c["row"]["address"].as_str().unwrap_or("?"),
            c["status"].as_str().unwrap_or("?")
        )
    };
    if let Some(calls) = v["messages"].as_array() {
        for c in calls {
            println!("{}", line(c));
        }
        if let Some(next) = v["next"].as_i64() {
            println!("more: --after {next}");
        }
    } else if v.get("row").is_some() {
        println!("{}", line(v));
        if let Some(f) = v["row"]["failure"].get("text").and_then(Value::as_str) {
            println!("  last reply: {f}");
        }
    } else if v.get("repeated").is_some() {
        let again = if v["repeated"] == json!(true) {
            " (repeat of a stored call: nothing new is sent)"
        } else {
            ""
        };
        println!(
            "call {} v{}: {}{again}",
            v["id"],
            v["version"],
            v["status"].as_str().unwrap_or("?")
        );
    } else {
        print(v);
    }
}
