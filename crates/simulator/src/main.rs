//! `cartero-simulator [--stats-json PATH] [--stats-every DURATION] SCENARIO.toml`: runs the
//! simulated providers until Ctrl-C or SIGTERM, printing their counters every few seconds.
//!
//! With `--stats-json PATH` the counters are also written to PATH as JSON at start, every
//! `--stats-every` (default 1s) and once more at exit, so a benchmark driver can read exact
//! counts without parsing the human-readable report. Each write replaces the file atomically
//! (written beside it, then renamed), so a reader never sees half a document.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cartero_simulator::{Scenario, scenario::ScenarioError};
use cartero_simulator::{Simulator, Stats};
use humantime_serde::re::humantime;

const REPORT_EVERY: Duration = Duration::from_secs(10);
const DEFAULT_STATS_EVERY: Duration = Duration::from_secs(1);
const USAGE: &str =
    "usage: cartero-simulator [--stats-json PATH] [--stats-every DURATION] SCENARIO.toml";

/// The command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    scenario: PathBuf,
    stats_json: Option<PathBuf>,
    stats_every: Duration,
}

fn parse_args(mut args: impl Iterator<Item = OsString>) -> Result<Args, String> {
    let mut scenario = None;
    let mut stats_json = None;
    let mut stats_every = DEFAULT_STATS_EVERY;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--stats-json") => {
                let path = args.next().ok_or("--stats-json needs a path")?;
                stats_json = Some(PathBuf::from(path));
            }
            Some("--stats-every") => {
                let value = args.next().ok_or("--stats-every needs a duration")?;
                let text = value.to_str().ok_or("--stats-every: not UTF-8")?;
                stats_every = humantime::parse_duration(text)
                    .map_err(|e| format!("--stats-every {text:?}: {e}"))?;
                if stats_every.is_zero() {
                    return Err("--stats-every must be above zero".into());
                }
            }
            Some(s) if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ if scenario.is_none() => scenario = Some(PathBuf::from(arg)),
            _ => return Err("more than one scenario given".into()),
        }
    }
    let scenario = scenario.ok_or("no scenario given")?;
    Ok(Args {
        scenario,
        stats_json,
        stats_every,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cartero-simulator: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => return fail_scenario(&e),
    };
    let sim = match Simulator::start(scenario).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("cartero-simulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    for (name, addr) in sim.addrs() {
        println!("{name}: listening on {addr}");
    }
    if let Some(path) = &args.stats_json
        && let Err(e) = write_stats(path, &sim, false)
    {
        // The driver waits for this file: better to stop than to run unobserved.
        eprintln!("cartero-simulator: cannot write {}: {e}", path.display());
        sim.shutdown().await;
        return ExitCode::FAILURE;
    }
    let code = run_until_signal(&sim, &args).await;
    report(&sim);
    if let Some(path) = &args.stats_json
        && let Err(e) = write_stats(path, &sim, true)
    {
        eprintln!("cartero-simulator: cannot write {}: {e}", path.display());
    }
    sim.shutdown().await;
    code
}

fn fail_scenario(e: &ScenarioError) -> ExitCode {
    eprintln!("cartero-simulator: {e}");
    ExitCode::from(2)
}

/// Reports and writes the stats file on their intervals until Ctrl-C or SIGTERM.
async fn run_until_signal(sim: &Simulator, args: &Args) -> ExitCode {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cartero-simulator: cannot wait for SIGTERM: {e}");
                return ExitCode::FAILURE;
            }
        };
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    let mut stats_tick = tokio::time::interval(args.stats_every);
    stats_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    stats_tick.tick().await;
    let mut write_failed = false;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    eprintln!("cartero-simulator: cannot wait for Ctrl-C: {e}");
                }
                return ExitCode::SUCCESS;
            }
            _ = terminate.recv() => return ExitCode::SUCCESS,
            _ = tick.tick() => report(sim),
            _ = stats_tick.tick(), if args.stats_json.is_some() => {
                if let Some(path) = &args.stats_json {
                    match write_stats(path, sim, false) {
                        Ok(()) => write_failed = false,
                        // Said once per run of failures, not every interval.
                        Err(e) if !write_failed => {
                            write_failed = true;
                            eprintln!("cartero-simulator: cannot write {}: {e}", path.display());
                        }
                        Err(_) => {}
                    }
                }
            }
        }
    }
}

fn report(sim: &Simulator) {
    for name in sim.addrs().keys() {
        if let Some(s) = sim.stats(name) {
            println!(
                "{name}: connections={} accepted={} throttled={} greylisted={} rejected={} deferred={} blocks={}",
                s.connections,
                s.accepted,
                s.throttled,
                s.greylisted,
                s.rejected,
                s.deferred,
                s.blocks
            );
        }
    }
}

/// Writes the counters to `path` through a temporary file renamed over it.
fn write_stats(path: &Path, sim: &Simulator, last: bool) -> std::io::Result<()> {
    let providers: Vec<(String, String, Stats)> = sim
        .addrs()
        .into_iter()
        .filter_map(|(name, addr)| Some((sim.stats(&name)?, name, addr)))
        .map(|(stats, name, addr)| (name, addr.to_string(), stats))
        .collect();
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let text = stats_json(unix_ms, last, &providers);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// The stats document: time of writing, whether it is the last one, each provider's address
/// and counters, and the counters summed over all providers.
fn stats_json(unix_ms: u64, last: bool, providers: &[(String, String, Stats)]) -> String {
    let mut total = Stats::default();
    let mut out = format!("{{\"unix_ms\": {unix_ms}, \"final\": {last}, \"providers\": {{");
    for (i, (name, addr, s)) in providers.iter().enumerate() {
        total.connections += s.connections;
        total.accepted += s.accepted;
        total.throttled += s.throttled;
        total.refused_connections += s.refused_connections;
        total.greylisted += s.greylisted;
        total.rejected += s.rejected;
        total.deferred += s.deferred;
        total.blocks += s.blocks;
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(
            out,
            "{sep}\n  {}: {{\"addr\": {}, {}}}",
            json_string(name),
            json_string(addr),
            counters(s)
        );
    }
    let _ = write!(out, "}},\n \"total\": {{{}}}}}\n", counters(&total));
    out
}

fn counters(s: &Stats) -> String {
    format!(
        "\"connections\": {}, \"accepted\": {}, \"throttled\": {}, \"refused_connections\": {}, \
         \"greylisted\": {}, \"rejected\": {}, \"deferred\": {}, \"blocks\": {}",
        s.connections,
        s.accepted,
        s.throttled,
        s.refused_connections,
        s.greylisted,
        s.rejected,
        s.deferred,
        s.blocks
    )
}

/// A JSON string literal (provider names come from the scenario and may hold anything).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(OsString::from))
    }

    #[test]
    fn the_plain_usage_still_works() {
        let a = args(&["s.toml"]).unwrap();
        assert_eq!(a.scenario, PathBuf::from("s.toml"));
        assert_eq!(a.stats_json, None);
        assert_eq!(a.stats_every, DEFAULT_STATS_EVERY);
    }

    #[test]
    fn stats_options_are_read_in_any_order() {
        let a = args(&[
            "--stats-every",
            "250ms",
            "s.toml",
            "--stats-json",
            "/tmp/x.json",
        ])
        .unwrap();
        assert_eq!(a.scenario, PathBuf::from("s.toml"));
        assert_eq!(a.stats_json, Some(PathBuf::from("/tmp/x.json")));
        assert_eq!(a.stats_every, Duration::from_millis(250));
    }

    #[test]
    fn bad_command_lines_are_refused() {
        assert!(args(&[]).is_err());
        assert!(args(&["a.toml", "b.toml"]).is_err());
        assert!(args(&["s.toml", "--stats-json"]).is_err());
        assert!(args(&["s.toml", "--stats-every", "soon"]).is_err());
        assert!(args(&["s.toml", "--stats-every", "0s"]).is_err());
        assert!(args(&["--verbose", "s.toml"]).is_err());
    }

    #[test]
    fn stats_document_has_each_provider_and_the_sums() {
        let a = Stats {
            connections: 3,
            accepted: 10,
            throttled: 2,
            refused_connections: 1,
            greylisted: 1,
            rejected: 0,
            deferred: 4,
            blocks: 0,
        };
        let b = Stats {
            accepted: 5,
            throttled: 1,
            blocks: 1,
            ..Stats::default()
        };
        let providers = vec![
            ("big \"one\"".to_string(), "127.0.0.10:2525".to_string(), a),
            ("small".to_string(), "127.0.0.11:2526".to_string(), b),
        ];
        let text = stats_json(1234, true, &providers);
        assert!(text.starts_with("{\"unix_ms\": 1234, \"final\": true, \"providers\": {"));
        assert!(text.contains(
            "\"big \\\"one\\\"\": {\"addr\": \"127.0.0.10:2525\", \"connections\": 3, \
             \"accepted\": 10, \"throttled\": 2, \"refused_connections\": 1, \
             \"greylisted\": 1, \"rejected\": 0, \"deferred\": 4, \"blocks\": 0}"
        ));
        assert!(text.contains(
            "\"total\": {\"connections\": 3, \"accepted\": 15, \"throttled\": 3, \
             \"refused_connections\": 1, \"greylisted\": 1, \"rejected\": 0, \"deferred\": 4, \"blocks\": 1}"
        ));
        assert!(text.trim_end().ends_with("}}"));
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
        assert_eq!(json_string("gmail"), "\"gmail\"");
    }

    #[test]
    fn stats_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats.json");
        std::fs::write(&path, "old").unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let scenario =
                Scenario::parse("[[provider]]\nname = \"p\"\nlisten = \"127.0.0.1:0\"\n").unwrap();
            let sim = Simulator::start(scenario).await.unwrap();
            write_stats(&path, &sim, false).unwrap();
            let addr = sim.addr("p").unwrap().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                text.contains(&format!("\"p\": {{\"addr\": \"{addr}\"")),
                "{text}"
            );
            assert!(text.contains("\"final\": false"));
            assert!(!dir.path().join("stats.json.tmp").exists());
            sim.shutdown().await;
        });
    }
}
