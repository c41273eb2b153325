//! `cartero`: a thin binary over the library crates. It parses the command line, loads the config
//! and wires things together; every rule lives in a library.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod cli;
mod dashboard;
mod node;
mod remote_mta;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cartero",
    version,
    about = "Outbound e-mail platform: adaptive MTA and campaign delivery"
)]
struct Args {
    /// Config file (TOML). Without it, embedded defaults: SMTP on 127.0.0.1:2525, API on 127.0.0.1:8025.
    #[arg(long, short, global = true, env = "CARTERO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the MTA (SMTP and HTTP listeners, delivery) until SIGINT/SIGTERM.
    Serve,
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(cli::config::ConfigCmd),
    /// DKIM key management.
    #[command(subcommand)]
    Dkim(cli::dkim::DkimCmd),
    /// Hash a password for `[[smtp.users]]` (reads it from standard input).
    Passwd,
    /// Bounce classification.
    #[command(subcommand)]
    Bounce(cli::bounce::BounceCmd),
    /// Live events of a running instance.
    #[command(subcommand)]
    Events(cli::events::EventsCmd),
    /// Recipient lists (campaign layer).
    #[command(subcommand)]
    Recipients(cli::campaign::RecipientsCmd),
    /// Deliveries: create, analyze, start, pause, resume, stop, status, logs.
    #[command(subcommand)]
    Delivery(cli::campaign::DeliveryCmd),
    /// An address's quality record; release it from quarantine.
    #[command(subcommand)]
    Address(cli::campaign::AddressCmd),
    /// Quarantined addresses: list, bulk release.
    #[command(subcommand)]
    Quarantine(cli::campaign::QuarantineCmd),
    /// Transactional messages: templates, send, status, list, outbox.
    #[command(subcommand)]
    Transactional(cli::transactional::TransactionalCmd),
    /// Queue summary per domain and site of a running instance (like `mailq`).
    Queue(cli::remote::RemoteArgs),
    /// Show the queued recipients of one message.
    Message {
        id: String,
        #[command(flatten)]
        remote: cli::remote::RemoteArgs,
    },
    /// Retry now the queued recipients of a domain (all domains when none is given).
    Flush {
        domain: Option<String>,
        #[command(flatten)]
        remote: cli::remote::RemoteArgs,
    },
    /// Fail every queued recipient of a domain (bounce events, class 25).
    Drain {
        domain: String,
        #[command(flatten)]
        remote: cli::remote::RemoteArgs,
    },
    /// Inject an RFC 5322 file through the HTTP API.
    Inject(cli::remote::InjectArgs),
    /// Shaping per (source, site): configured and live limits, suspensions, warm-up
    /// (`shaping reload` re-reads the configuration file of the running instance).
    Shaping(cli::shaping::ShapingArgs),
    /// Hold delivery for a scope (domain:NAME, site:NAME, source:NAME) without using attempts.
    Suspend(cli::shaping::SuspendArgs),
    /// Lift a suspension.
    Resume(cli::shaping::ResumeArgs),
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let config = args.config.as_deref();
    let result = runtime.block_on(async {
        match args.command {
            Command::Serve => cli::serve::run(config).await,
            Command::Config(c) => cli::config::run(c, config),
            Command::Dkim(c) => cli::dkim::run(c),
            Command::Passwd => cli::passwd(),
            Command::Bounce(c) => cli::bounce::run(c),
            Command::Events(c) => cli::events::run(config, c).await,
            Command::Recipients(c) => cli::campaign::recipients(config, c).await,
            Command::Delivery(c) => cli::campaign::delivery(config, c).await,
            Command::Address(c) => cli::campaign::address(config, c).await,
            Command::Quarantine(c) => cli::campaign::quarantine(config, c).await,
            Command::Transactional(c) => cli::transactional::run(config, c).await,
            Command::Queue(r) => cli::remote::queue(config, r).await,
            Command::Message { id, remote } => cli::remote::message(config, remote, &id).await,
            Command::Flush { domain, remote } => cli::remote::flush(config, remote, domain).await,
            Command::Drain { domain, remote } => cli::remote::drain(config, remote, &domain).await,
            Command::Inject(a) => cli::remote::inject(config, a).await,
            Command::Shaping(a) => cli::shaping::run(config, a).await,
            Command::Suspend(a) => cli::shaping::suspend(config, a).await,
            Command::Resume(a) => cli::shaping::resume(config, a).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each said once: library errors often repeat their
/// source in their own message, which `{:#}` would print again.
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
