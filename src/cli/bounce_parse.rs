//! `cartero bounce parse FILE…`: read bounces, DSNs, ARF reports and auto-replies the way the
//! inbound mail handler does, and show per recipient what cartero concludes and why.

use anyhow::Context;
use cartero_bounce::report::MAX_INPUT_BYTES;
use cartero_bounce::{
    ClassifiedRecipient, ParsedReport, RuleClassifier, classify_report, parse_report,
};
use std::io::Read;
use std::path::PathBuf;

/// Arguments of `cartero bounce parse`.
#[derive(clap::Args)]
pub struct ParseArgs {
    /// Message files (raw RFC 5322, e.g. saved .eml); `-` reads one message from stdin.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Operator rule file tried before the built-in rules (repeatable), as `[bounce] rules_files`.
    #[arg(long = "rules")]
    pub rules: Vec<PathBuf>,
    /// One JSON object per file on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ParseArgs) -> anyhow::Result<()> {
    let classifier = RuleClassifier::from_paths(&args.rules)?;
    let mut failed = 0usize;
    for file in &args.files {
        let name = file.display().to_string();
        let raw = read_input(file).with_context(|| format!("reading {name}"))?;
        match parse_report(&raw) {
            Ok(report) => {
                let classified = classify_report(&report, &classifier);
                if args.json {
                    println!("{}", to_json(&name, &report, &classified));
                } else {
                    print_text(&name, &report, &classified);
                }
            }
            Err(e) => {
                failed += 1;
                if args.json {
                    println!(
                        "{}",
                        serde_json::json!({ "file": name, "error": e.to_string() })
                    );
                } else {
                    eprintln!("{name}: {e}");
                }
            }
        }
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} messages could not be read",
        args.files.len()
    );
    Ok(())
}

/// Reads at most one byte more than the parser accepts, so an oversized input is reported by the
/// parser's own error instead of being loaded whole.
fn read_input(file: &PathBuf) -> anyhow::Result<Vec<u8>> {
    let limit = MAX_INPUT_BYTES as u64 + 1;
    let mut raw = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut raw)?;
    } else {
        std::fs::File::open(file)?
            .take(limit)
            .read_to_end(&mut raw)?;
    }
    Ok(raw)
}

fn to_json(
    name: &str,
    report: &ParsedReport,
    classified: &[ClassifiedRecipient],
) -> serde_json::Value {
    let recipients: Vec<_> = classified
        .iter()
        .map(|c| {
            serde_json::json!({
                "address": c.report.address,
                "final_recipient": c.report.final_recipient,
                "action": c.report.action,
                "status": c.report.status,
                "diagnostic": c.report.diagnostic,
                "remote_mta": c.report.remote_mta,
                "outcome": c.outcome,
                "bounce_class": c.class.map(|k| k.0),
                "class_name": c.class.and_then(|k| k.name()),
                "type": c.qualification.map(|q| q.r#type),
                "reason": c.qualification.map(|q| q.reason.value()),
                "reason_label": c.qualification.map(|q| q.reason.label()),
                "rule": c.rule,
            })
        })
        .collect();
    serde_json::json!({
        "file": name,
        "kind": report.kind,
        "subject": report.subject,
        "token": report.token,
        "original_message_id": report.original_message_id,
        "auto_submitted": report.auto_submitted,
        "arf": report.arf,
        "recipients": recipients,
    })
}

fn print_text(name: &str, report: &ParsedReport, classified: &[ClassifiedRecipient]) {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("{name}");
    println!("  kind:        {}", kind_name(report));
    println!("  subject:     {}", dash(&report.subject));
    println!("  token:       {}", dash(&report.token));
    println!("  original id: {}", dash(&report.original_message_id));
    if let Some(arf) = &report.arf {
        println!("  feedback:    {}", dash(&arf.feedback_type));
        println!("  source ip:   {}", dash(&arf.source_ip));
        println!("  user agent:  {}", dash(&arf.user_agent));
        println!("  mail from:   {}", dash(&arf.original_mail_from));
    }
    if classified.is_empty() {
        println!("  no recipient found");
    }
    for c in classified {
        let r = &c.report;
        println!("  recipient:   {}", dash(&r.address));
        if r.final_recipient.is_some() {
            println!("    final:     {}", dash(&r.final_recipient));
        }
        println!("    action:    {}", dash(&r.action));
        println!("    status:    {}", dash(&r.status));
        println!(
            "    diagnostic:{}",
            r.diagnostic
                .as_deref()
                .map(|d| format!(" {d}"))
                .unwrap_or_else(|| " -".into())
        );
        println!(
            "    remote mta:{}",
            r.remote_mta
                .as_deref()
                .map(|d| format!(" {d}"))
                .unwrap_or_else(|| " -".into())
        );
        println!("    outcome:   {:?}", c.outcome);
        match c.class {
            Some(k) => println!("    class:     {k}"),
            None => println!("    class:     -"),
        }
        match c.qualification {
            Some(q) => println!("    campaign:  {:?}, {}", q.r#type, q.reason),
            None => println!("    campaign:  -"),
        }
        println!("    rule:      {}", c.rule);
    }
}

fn kind_name(report: &ParsedReport) -> String {
    use cartero_bounce::ReportKind::*;
    match report.kind {
        Dsn => "DSN (RFC 3464)".into(),
        NonStandardBounce { family } => format!("non-standard bounce ({family})"),
        Arf => "ARF complaint (RFC 5965)".into(),
        AutoReply => "auto-reply".into(),
        ChallengeResponse => "challenge-response".into(),
        Unknown => "not a report".into(),
    }
}
