//! `cartero events tail`: a running instance's events as they happen.

use super::remote::{Client, RemoteArgs};
use clap::Subcommand;
use serde_json::Value;
use std::path::Path;

#[derive(Subcommand)]
pub enum EventsCmd {
    /// Follow the events of a running `cartero serve` (Ctrl-C to stop).
    Tail {
        /// Event types to show, comma-separated (e.g. `delivery,bounce`).
        #[arg(long = "type")]
        types: Option<String>,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

pub async fn run(config: Option<&Path>, cmd: EventsCmd) -> anyhow::Result<()> {
    let EventsCmd::Tail { types, remote } = cmd;
    let mut path = "/api/v1/events/tail".to_string();
    if let Some(t) = types {
        path.push_str(&format!("?type={}", super::campaign::enc(&t)));
    }
    let json = remote.json;
    Client::new(config, &remote)?
        .stream_lines(&path, |line| {
            if json {
                println!("{line}");
            } else {
                println!("{}", human(line));
            }
        })
        .await
}

/// `TIME TYPE RECIPIENT CLASS REPLY` for an event line; other lines as they are.
fn human(line: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(line) else {
        return line.to_string();
    };
    if let Some(n) = v.get("lagged") {
        return format!("… {n} events missed (too slow a reader)");
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
    let class = v
        .get("bounce_class")
        .and_then(Value::as_u64)
        .map_or("-".into(), |c| c.to_string());
    format!(
        "{} {:<16} {} {} {}",
        s("timestamp"),
        s("type"),
        s("rcpt_to"),
        class,
        v.get("raw_reason").and_then(Value::as_str).unwrap_or("")
    )
}
