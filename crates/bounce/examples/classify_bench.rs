//! Classifications per second of the built-in rules over the labelled corpus, on one core:
//! `cargo run --release -p cartero-bounce --example classify_bench [-- SECONDS]`.

use cartero_bounce::rules::{ParsedReply, parse_reply};
use cartero_bounce::{Classifier, CodeClassifier, RuleClassifier};
use std::hint::black_box;
use std::time::{Duration, Instant};

const CORPUS: &str = include_str!("../corpus/replies.tsv");

fn load() -> Vec<(ParsedReply, Option<String>)> {
    CORPUS
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            let _class = f.next()?;
            let host = f.next()?.trim();
            let reply = f.next().unwrap_or("");
            Some((parse_reply(reply), (host != "-").then(|| host.to_string())))
        })
        .collect()
}

/// Runs whole passes over the corpus until `budget` has elapsed; returns classifications/s.
fn rate(c: &dyn Classifier, corpus: &[(ParsedReply, Option<String>)], budget: Duration) -> f64 {
    // One warm-up pass fills the regex engine's lazy DFA cache, as a long-running MTA would.
    for (r, h) in corpus {
        black_box(c.classify(&r.input(h.as_deref())));
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for (r, h) in corpus {
            black_box(c.classify(&r.input(h.as_deref())));
        }
        n += corpus.len() as u64;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let secs: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let budget = Duration::from_secs_f64(secs);
    let corpus = load();
    let t = Instant::now();
    let rules = match RuleClassifier::builtin() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("built-in rules failed to load: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "built-in rules: {} rules, {} providers, compiled in {:.1} ms",
        rules.rule_count(),
        rules.providers().count(),
        t.elapsed().as_secs_f64() * 1e3
    );
    println!("corpus: {} replies", corpus.len());
    let r = rate(&rules, &corpus, budget);
    println!(
        "RuleClassifier: {:.2} M classifications/s ({:.0} ns each)",
        r / 1e6,
        1e9 / r
    );
    let r = rate(&CodeClassifier::new(), &corpus, budget);
    println!(
        "CodeClassifier: {:.2} M classifications/s ({:.0} ns each)",
        r / 1e6,
        1e9 / r
    );
}
