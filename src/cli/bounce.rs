use cartero_bounce::{Classifier, CodeClassifier, FailureInput};
use cartero_smtp::Reply;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BounceCmd {
    /// Classify an SMTP reply, e.g. "550 5.1.1 <a@b>: user unknown", and say which rule decided.
    Classify { reply: String },
}

pub fn run(cmd: BounceCmd) -> anyhow::Result<()> {
    let BounceCmd::Classify { reply } = cmd;
    let lines: Vec<&str> = reply.lines().collect();
    let parsed = Reply::from_lines(&lines);
    let (code, enhanced, text) = match &parsed {
        Some(r) => (
            r.code,
            r.enhanced.map(|e| (e.class, e.subject, e.detail)),
            r.text.as_str(),
        ),
        None => (0, None, reply.as_str()),
    };
    let c = CodeClassifier::new().classify(&FailureInput {
        code,
        enhanced,
        text,
        host: None,
    });
    println!("class:    {}", c.class);
    println!("category: {:?}", c.class.category());
    println!("rule:     {}", c.rule);
    Ok(())
}
