//! Subcommands. Each module turns arguments into library calls and prints the result.

pub mod bounce;
pub mod bounce_parse;
pub mod campaign;
pub mod config;
pub mod dkim;
pub mod events;
pub mod remote;
pub mod serve;
pub mod shaping;
pub mod transactional;

use anyhow::Context;
use std::io::Read;

/// Logs go to stderr; `RUST_LOG` filters, `CARTERO_LOG_FORMAT=json` gives structured lines.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("CARTERO_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn passwd() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .context("reading the password from stdin")?;
    let password = input.trim_end_matches(['\r', '\n']);
    anyhow::ensure!(!password.is_empty(), "empty password");
    println!("{}", cartero_mta::hash_password(password)?);
    Ok(())
}
