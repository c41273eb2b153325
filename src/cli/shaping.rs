//! `cartero shaping`, `suspend`, `resume`: the shaping state of a running instance and the
//! operator's levers on it, over the HTTP API.

use super::remote::{Client, RemoteArgs};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};
use std::path::Path;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ShapingArgs {
    #[command(subcommand)]
    cmd: Option<ShapingCmd>,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Subcommand)]
enum ShapingCmd {
    /// Re-read the configuration file of the running instance and apply its `[shaping]` section;
    /// a bad file is reported (file, line, reason) and the running configuration stays.
    Reload(RemoteArgs),
}

#[derive(Args)]
pub struct SuspendArgs {
    /// `domain:NAME`, `site:NAME` or `source:NAME`.
    scope: String,
    /// How long, e.g. `2h`, `30m`; without it, until `cartero resume`.
    #[arg(long = "for", value_name = "DURATION")]
    for_: Option<String>,
    /// Why, shown by `cartero shaping` and in the `shaping` event.
    #[arg(long)]
    reason: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

#[derive(Args)]
pub struct ResumeArgs {
    /// The suspended scope, as given to `cartero suspend`.
    scope: String,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub async fn run(config: Option<&Path>, a: ShapingArgs) -> anyhow::Result<()> {
    match a.cmd {
        Some(ShapingCmd::Reload(r)) => reload(config, r).await,
        None => show(config, a.remote).await,
    }
}

async fn show(config: Option<&Path>, r: RemoteArgs) -> anyhow::Result<()> {
    let v = Client::new(config, &r)?
        .call(Method::GET, "/api/v1/shaping", None)
        .await?;
    if r.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    print!("{}", render(&v));
    Ok(())
}

pub async fn suspend(config: Option<&Path>, a: SuspendArgs) -> anyhow::Result<()> {
    let body = json!({ "scope": a.scope, "for": a.for_, "reason": a.reason });
    let v = Client::new(config, &a.remote)?
        .call(Method::POST, "/api/v1/shaping/suspend", Some(body))
        .await?;
    if a.remote.json {
        println!("{v}");
    } else {
        println!("suspended {} {}", a.scope, until(&v["until"]));
    }
    Ok(())
}

pub async fn resume(config: Option<&Path>, a: ResumeArgs) -> anyhow::Result<()> {
    let body = json!({ "scope": a.scope });
    let v = Client::new(config, &a.remote)?
        .call(Method::POST, "/api/v1/shaping/resume", Some(body))
        .await?;
    if a.remote.json {
        println!("{v}");
    } else {
        println!("resumed {}", a.scope);
    }
    Ok(())
}

async fn reload(config: Option<&Path>, r: RemoteArgs) -> anyhow::Result<()> {
    let v = Client::new(config, &r)?
        .call(Method::POST, "/api/v1/shaping/reload", None)
        .await?;
    if r.json {
        println!("{v}");
    } else {
        println!("shaping configuration reloaded");
    }
    Ok(())
}

/// RFC 3339 in UTC to the second: operators read these, milliseconds are noise.
fn time(ms: u64) -> String {
    let t = cartero_events::format_timestamp(ms - ms % 1000);
    t.strip_suffix(".000Z")
        .map_or_else(|| t.clone(), |s| format!("{s}Z"))
}

fn until(v: &Value) -> String {
    v.as_u64().map_or_else(
        || "until resumed".into(),
        |ms| format!("until {}", time(ms)),
    )
}

fn rate(v: &Value) -> String {
    match v.as_f64() {
        None => "unlimited".into(),
        Some(r) if r.fract() == 0.0 || r >= 100.0 => format!("{r:.0}"),
        Some(r) => format!("{r:.2}"),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or("-").to_string()
}

/// What limits a queue beyond its configuration: a rule's throttle and/or source avoidance.
fn throttled(q: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(by) = q["throttled_by"].as_str() {
        let end = q["throttled_until"]
            .as_u64()
            .map_or(String::new(), |ms| format!(" until {}", time(ms)));
        parts.push(format!("{by}{end}"));
    }
    if let Some(ms) = q["avoided_until"].as_u64() {
        parts.push(format!("source avoided until {}", time(ms)));
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join("; ")
    }
}

fn queue_row(q: &Value) -> Vec<String> {
    let (c, l) = (&q["configured"], &q["live"]);
    vec![
        text(&q["source"]),
        text(&q["site"]),
        text(&q["provider"]),
        format!("{}/{}", c["max_connections"], l["max_connections"]),
        format!(
            "{}/{}",
            rate(&c["max_message_rate_per_hour"]),
            rate(&l["max_message_rate_per_hour"])
        ),
        q["open_connections"].to_string(),
        throttled(q),
    ]
}

fn warmup_row(w: &Value) -> Vec<String> {
    let stage = match w["cap"].as_u64() {
        Some(cap) => format!("stage {} ({cap}/day)", w["stage"]),
        None => format!("stage {} (warmed up)", w["stage"]),
    };
    vec![
        text(&w["source"]),
        text(&w["provider"]),
        stage,
        w["taken_today"].to_string(),
        w["delivered_today"].to_string(),
    ]
}

/// The whole view as text: limits per queue, then suspensions, then warm-up.
fn render(v: &Value) -> String {
    let list = |k: &str| v[k].as_array().cloned().unwrap_or_default();
    let on = if v["adaptive"].as_bool() == Some(true) {
        "on"
    } else {
        "off"
    };
    let mut out = format!("adaptive shaping: {on}\n\n");
    let queues: Vec<_> = list("queues").iter().map(queue_row).collect();
    let head = [
        "SOURCE",
        "SITE",
        "PROVIDER",
        "CONNS CFG/LIVE",
        "RATE/H CFG/LIVE",
        "OPEN",
        "THROTTLED",
    ];
    out.push_str(&table(&head, &queues, "no active queues"));
    let suspensions: Vec<_> = list("suspensions")
        .iter()
        .map(|s| vec![text(&s["scope"]), until(&s["until"]), text(&s["reason"])])
        .collect();
    out.push_str("\nSuspensions\n");
    out.push_str(&table(&["SCOPE", "UNTIL", "REASON"], &suspensions, "none"));
    let warmup: Vec<_> = list("warmup").iter().map(warmup_row).collect();
    out.push_str("\nWarm-up\n");
    out.push_str(&table(
        &[
            "SOURCE",
            "PROVIDER",
            "STAGE",
            "TAKEN TODAY",
            "DELIVERED TODAY",
        ],
        &warmup,
        "none",
    ));
    out
}

/// Left-aligned columns as wide as their widest cell; `empty` stands in for no rows.
fn table(head: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("{empty}\n");
    }
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(head.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_shows_limits_suspensions_and_warmup() {
        let v = json!({
            "now": 1_700_000_000_000u64,
            "adaptive": true,
            "queues": [{
                "source": "ip1", "site": "mx.example.test", "domain": "example.test",
                "provider": "gmail",
                "configured": {"max_connections": 10, "max_messages_per_connection": 100,
                               "max_message_rate_per_hour": null},
                "live": {"max_connections": 4, "max_messages_per_connection": 100,
                         "max_message_rate_per_hour": 1800.0},
                "open_connections": 2,
                "throttled_by": "rule:gmail-421", "throttled_until": 1_700_000_600_000u64,
                "avoided_until": null
            }],
            "suspensions": [
                {"scope": "domain:x.test", "until": 1_700_003_600_000u64,
                 "since": 1_700_000_000_000u64, "reason": "maint"},
                {"scope": "source:ip2", "until": null, "since": 1_700_000_000_000u64,
                 "reason": "operator"}
            ],
            "warmup": [{"source": "ip1", "provider": "gmail", "stage": 2, "cap": 5000,
                        "taken_today": 120, "delivered_today": 118}]
        });
        let out = render(&v);
        assert!(out.starts_with("adaptive shaping: on\n"), "{out}");
        let row = out.lines().find(|l| l.starts_with("ip1  ")).unwrap();
        for want in [
            "mx.example.test",
            "gmail",
            "10/4",
            "unlimited/1800",
            "rule:gmail-421 until 2023-11-14T22:23:20Z",
        ] {
            assert!(row.contains(want), "{want:?} missing in {row:?}");
        }
        assert!(
            out.contains("domain:x.test  until 2023-11-14T23:13:20Z  maint"),
            "{out}"
        );
        assert!(out.contains("source:ip2     until resumed"), "{out}");
        assert!(out.contains("stage 2 (5000/day)"), "{out}");
    }

    #[test]
    fn empty_sections_say_so() {
        let v = json!({"now": 0, "adaptive": false, "queues": [], "suspensions": [],
                       "warmup": []});
        let out = render(&v);
        assert!(out.starts_with("adaptive shaping: off"), "{out}");
        assert!(out.contains("no active queues"), "{out}");
        assert!(out.contains("Suspensions\nnone\n"), "{out}");
        assert!(out.contains("Warm-up\nnone\n"), "{out}");
    }

    #[test]
    fn fractional_rates_keep_two_decimals() {
        assert_eq!(rate(&json!(0.5)), "0.50");
        assert_eq!(rate(&json!(3600.0)), "3600");
        assert_eq!(rate(&Value::Null), "unlimited");
    }
}
