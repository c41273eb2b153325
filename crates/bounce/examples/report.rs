//! Development aid: one line per message with what the readers and the classifier decided.
//!
//! `cargo run -p cartero-bounce --example report -- FILE...`, or `--reply "550 5.1.1 text"` to
//! classify one reply line. The operator's tool is `cartero bounce parse` / `classify`.

use cartero_bounce::{FailureInput, classify_report, default_classifier, parse_report};

fn main() {
    let classifier = default_classifier();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--reply") {
        for reply in &args[1..] {
            let code = reply.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let enhanced = reply.split_whitespace().nth(1).and_then(|e| {
                let mut it = e.split('.').map(|p| p.parse::<u16>().ok());
                Some((it.next()?? as u8, it.next()??, it.next()??))
            });
            let c = classifier.classify(&FailureInput {
                code,
                enhanced,
                text: reply,
                host: None,
            });
            println!("{} {:<40} {reply}", c.class.0, c.rule);
        }
        return;
    }
    if args.first().map(String::as_str) == Some("--time") {
        let raws: Vec<Vec<u8>> = args[1..]
            .iter()
            .filter_map(|p| std::fs::read(p).ok())
            .collect();
        let t = std::time::Instant::now();
        let reports: Vec<_> = raws.iter().filter_map(|r| parse_report(r).ok()).collect();
        let parsed = t.elapsed();
        let t = std::time::Instant::now();
        let n: usize = reports
            .iter()
            .map(|r| classify_report(r, classifier.as_ref()).len())
            .sum();
        let mut bare = reports.clone();
        for r in &mut bare {
            for x in &mut r.recipients {
                x.context = None;
            }
        }
        let t2 = std::time::Instant::now();
        let _: usize = bare
            .iter()
            .map(|r| classify_report(r, classifier.as_ref()).len())
            .sum();
        println!("without explanations: classify {:?}", t2.elapsed());
        println!(
            "{} messages: parse {:?}, classify {:?} ({n} recipients)",
            raws.len(),
            parsed,
            t.elapsed()
        );
        return;
    }
    for path in &args {
        let raw = match std::fs::read(path) {
            Ok(r) => r,
            Err(e) => {
                println!("{path}: {e}");
                continue;
            }
        };
        match parse_report(&raw) {
            Err(e) => println!("{path}: error {e}"),
            Ok(report) => {
                let rows = classify_report(&report, classifier.as_ref());
                if rows.is_empty() {
                    println!("{path}: {:?} no recipient", report.kind);
                }
                for r in rows {
                    println!(
                        "{path}: {:?} {} {:?} class={:?} rule={} status={:?} diag={:?} token={:?}",
                        report.kind,
                        r.report.address.as_deref().unwrap_or("-"),
                        r.outcome,
                        r.class.map(|c| c.0),
                        r.rule,
                        r.report.status,
                        r.report
                            .diagnostic
                            .as_deref()
                            .map(|d| d.chars().take(90).collect::<String>()),
                        report.token,
                    );
                }
            }
        }
    }
}
