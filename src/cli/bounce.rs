use cartero_bounce::qualify::{QualifyContext, default_qualification};
use cartero_bounce::rules::parse_reply;
use cartero_bounce::{Classifier, RuleClassifier};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum BounceCmd {
    /// Classify an SMTP reply, e.g. "550 5.1.1 <a@b>: user unknown", and say which rule decided.
    Classify {
        /// The reply (several lines allowed), or the text of a local failure.
        reply: String,
        /// MX host that answered (or recipient domain), so provider rules apply.
        #[arg(long)]
        host: Option<String>,
        /// Operator rule file tried before the built-in rules (repeatable), as `[bounce] rules_files`.
        #[arg(long = "rules")]
        rules: Vec<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Read bounce messages (DSN, vendor formats), ARF reports and auto-replies (files or `-`):
    /// per recipient the action, status, diagnostic, class, campaign type/reason, rule and token.
    Parse(crate::cli::bounce_parse::ParseArgs),
}

pub fn run(cmd: BounceCmd) -> anyhow::Result<()> {
    match cmd {
        BounceCmd::Classify {
            reply,
            host,
            rules,
            json,
        } => classify(&reply, host.as_deref(), &rules, json),
        BounceCmd::Parse(args) => crate::cli::bounce_parse::run(args),
    }
}

fn classify(reply: &str, host: Option<&str>, rules: &[PathBuf], json: bool) -> anyhow::Result<()> {
    let classifier = RuleClassifier::from_paths(rules)?;
    let parsed = parse_reply(reply);
    let c = classifier.classify(&parsed.input(host));
    let q = default_qualification(c.class, QualifyContext::default());
    let provider = host.and_then(|h| classifier.provider_for(h));
    let enhanced = parsed.enhanced.map(|(a, b, d)| format!("{a}.{b}.{d}"));
    if json {
        let v = serde_json::json!({
            "code": parsed.code,
            "enhanced": enhanced,
            "provider": provider,
            "class": c.class.0,
            "class_name": c.class.name(),
            "category": c.class.category(),
            "type": q.r#type,
            "reason": q.reason.value(),
            "reason_label": q.reason.label(),
            "rule": c.rule,
        });
        println!("{v}");
        return Ok(());
    }
    println!("class:    {}", c.class);
    println!("category: {:?}", c.class.category());
    println!("type:     {:?}", q.r#type);
    println!("reason:   {}", q.reason);
    println!("rule:     {}", c.rule);
    println!("provider: {}", provider.unwrap_or("-"));
    Ok(())
}
