//! `cartero-simulator SCENARIO.toml`: runs the simulated providers until Ctrl-C, printing
//! their counters every few seconds.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use cartero_simulator::{Scenario, Simulator};

const REPORT_EVERY: Duration = Duration::from_secs(10);

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(path), None) = (args.next(), args.next()) else {
        eprintln!("usage: cartero-simulator SCENARIO.toml");
        return ExitCode::from(2);
    };
    let scenario = match Scenario::load(&PathBuf::from(path)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cartero-simulator: {e}");
            return ExitCode::from(2);
        }
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
    let mut tick = tokio::time::interval(REPORT_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            r = tokio::signal::ctrl_c() => {
                if let Err(e) = r {
                    eprintln!("cartero-simulator: cannot wait for Ctrl-C: {e}");
                }
                break;
            }
            _ = tick.tick() => report(&sim),
        }
    }
    report(&sim);
    sim.shutdown().await;
    ExitCode::SUCCESS
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
