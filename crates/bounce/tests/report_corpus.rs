//! Accuracy of the report readers on the labelled corpora. Prints a table per folder and fails
//! below the thresholds justified in `docs/bounces.md` ("Corpus and accuracy"):
//! - the training corpus, which the readers and rules were written against: `corpus/bounces/*`,
//!   `corpus/arf`, `corpus/autoreplies` (from `gen_reports.py`) and `corpus/world/*` (from
//!   `gen_world.py`);
//! - the held-out corpus `corpus/holdout/*`, written without looking at the readers or rules and
//!   never used to tune them, reported on its own.
//!
//! Labels (`labels.tsv`): file, kind, recipients (comma-separated), class, token. Kind `bounce`
//! accepts a DSN or any non-standard family; class is a number, `complaint` or `none`; an empty
//! token means the message carries none.

use cartero_bounce::{
    ClassifiedRecipient, Classifier, Outcome, ReportKind, classify_report, default_classifier,
    parse_report,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Training corpus minimums (fractions).
const MIN_RECIPIENT: f64 = 0.97;
const MIN_CLASS: f64 = 0.90;
const MIN_KIND: f64 = 0.97;
const MIN_TOKEN: f64 = 0.97;
/// No training folder may fall below this for recipient extraction: a format we cannot read at
/// all is a regression even when the overall number looks fine.
const MIN_FAMILY_RECIPIENT: f64 = 0.80;
/// Held-out minimums: lower than the training bars because nobody tuned for these messages; a
/// drop below them means a change broke generalisation, not a missing wording.
const MIN_HOLDOUT_RECIPIENT: f64 = 0.90;
const MIN_HOLDOUT_CLASS: f64 = 0.75;

#[derive(Default)]
struct Score {
    n: usize,
    kind: usize,
    recipient: usize,
    class: usize,
    token: usize,
}

impl Score {
    fn add(&mut self, o: &Score) {
        self.n += o.n;
        self.kind += o.kind;
        self.recipient += o.recipient;
        self.class += o.class;
        self.token += o.token;
    }

    fn row(&self, name: &str) {
        println!(
            "{name:<34} {:>4} {:>6.1}% {:>9.1}% {:>6.1}% {:>6.1}%",
            self.n,
            100.0 * pct(self.kind, self.n),
            100.0 * pct(self.recipient, self.n),
            100.0 * pct(self.class, self.n),
            100.0 * pct(self.token, self.n)
        );
    }
}

struct Label {
    file: String,
    kind: String,
    addresses: Vec<String>,
    class: String,
    token: String,
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

fn labels(dir: &Path) -> Vec<Label> {
    let text = std::fs::read_to_string(dir.join("labels.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(
                f.len() == 5 || f.len() == 4,
                "bad label line {l:?} in {dir:?}"
            );
            Label {
                file: f[0].into(),
                kind: f[1].into(),
                addresses: f[2]
                    .split(',')
                    .map(|a| a.trim().to_ascii_lowercase())
                    .filter(|a| !a.is_empty())
                    .collect(),
                class: f[3].trim().into(),
                token: f.get(4).map_or("", |t| t.trim()).into(),
            }
        })
        .collect()
}

fn kind_label(k: &ReportKind) -> String {
    match k {
        ReportKind::Dsn => "dsn".into(),
        ReportKind::NonStandardBounce { family } => format!("nonstandard:{family}"),
        ReportKind::Arf => "arf".into(),
        ReportKind::AutoReply => "auto_reply".into(),
        ReportKind::ChallengeResponse => "challenge_response".into(),
        ReportKind::Unknown => "unknown".into(),
    }
}

fn kind_ok(got: &ReportKind, want: &str) -> bool {
    let label = kind_label(got);
    label == want
        || (want == "bounce"
            && matches!(got, ReportKind::Dsn | ReportKind::NonStandardBounce { .. }))
}

fn class_of(c: &ClassifiedRecipient) -> String {
    match (c.outcome, c.class) {
        (Outcome::Complaint, _) => "complaint".to_string(),
        (Outcome::NoFailure, _) => "none".to_string(),
        (_, Some(class)) => class.0.to_string(),
        (_, None) => "?".to_string(),
    }
}

fn score_folder(dir: &Path, name: &str, failures: &mut Vec<String>) -> Score {
    static CLASSIFIER: OnceLock<Arc<dyn Classifier>> = OnceLock::new();
    let classifier = CLASSIFIER.get_or_init(default_classifier);
    let mut s = Score::default();
    for l in labels(dir) {
        s.n += 1;
        let raw = std::fs::read(dir.join(&l.file)).unwrap();
        let where_ = format!("{name}/{}", l.file);
        let report = match parse_report(&raw) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{where_}: error {e}"));
                continue;
            }
        };
        let kind = kind_ok(&report.kind, &l.kind);
        s.kind += usize::from(kind);
        let want_token = (!l.token.is_empty()).then_some(l.token.as_str());
        s.token += usize::from(report.token.as_deref() == want_token);
        let classified = classify_report(&report, classifier.as_ref());
        let mut got: Vec<String> = classified
            .iter()
            .map(|c| {
                c.report
                    .address
                    .as_deref()
                    .unwrap_or("")
                    .to_ascii_lowercase()
            })
            .collect();
        got.sort();
        got.dedup();
        let mut want = l.addresses.clone();
        if want.is_empty() {
            want.push(String::new());
        }
        want.sort();
        let rcpt_ok = got == want;
        s.recipient += usize::from(rcpt_ok);
        let classes: Vec<String> = classified
            .iter()
            .filter(|c| {
                want.contains(
                    &c.report
                        .address
                        .as_deref()
                        .unwrap_or("")
                        .to_ascii_lowercase(),
                )
            })
            .map(class_of)
            .collect();
        let class_ok = !classes.is_empty() && classes.iter().all(|c| *c == l.class);
        s.class += usize::from(class_ok);
        if !kind || !rcpt_ok || !class_ok {
            failures.push(format!(
                "{where_}: kind {} (want {}), recipients {got:?} (want {want:?}), class {classes:?} (want {}) rules {:?} diag {:?}",
                kind_label(&report.kind),
                l.kind,
                l.class,
                classified.iter().map(|c| c.rule.as_str()).collect::<Vec<_>>(),
                classified
                    .first()
                    .and_then(|c| c.report.diagnostic.as_deref())
                    .map(|d| d.chars().take(100).collect::<String>()),
            ));
        }
    }
    s
}

fn pct(a: usize, n: usize) -> f64 {
    if n == 0 { 1.0 } else { a as f64 / n as f64 }
}

/// Every folder holding a labels.tsv under `root`, by name relative to the corpus.
fn folders(root: &Path, out: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries {
        let p = entry.unwrap().path();
        if p.is_dir() {
            if p.join("labels.tsv").exists() {
                let name = p
                    .strip_prefix(corpus())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(name, p.clone());
            }
            folders(&p, out);
        }
    }
}

/// Scores every folder under the given corpus sub-trees; returns (total, weak folders, bounce
/// messages, bounce folders).
fn score_trees(trees: &[&str], failures: &mut Vec<String>) -> (Score, Vec<String>, usize, usize) {
    let mut all = BTreeMap::new();
    for t in trees {
        folders(&corpus().join(t), &mut all);
        if corpus().join(t).join("labels.tsv").exists() {
            all.insert((*t).to_string(), corpus().join(t));
        }
    }
    println!(
        "{:<34} {:>4} {:>7} {:>10} {:>7} {:>7}",
        "folder", "n", "kind", "recipient", "class", "token"
    );
    let mut total = Score::default();
    let mut weak = Vec::new();
    let (mut bounce_messages, mut bounce_folders) = (0, 0);
    for (name, dir) in &all {
        let s = score_folder(dir, name, failures);
        s.row(name);
        if pct(s.recipient, s.n) < MIN_FAMILY_RECIPIENT {
            weak.push(name.clone());
        }
        if !name.contains("arf") && !name.contains("auto") {
            bounce_folders += 1;
            bounce_messages += s.n;
        }
        total.add(&s);
    }
    total.row("OVERALL");
    for f in failures.iter() {
        println!("miss: {f}");
    }
    (total, weak, bounce_messages, bounce_folders)
}

#[test]
fn training_corpus_accuracy_per_family_and_overall() {
    let mut failures = Vec::new();
    let (total, weak, messages, families) = score_trees(
        &["bounces", "arf", "autoreplies", "world", "world2"],
        &mut failures,
    );
    assert!(messages >= 150 && families >= 15, "corpus too small");
    assert!(
        weak.is_empty(),
        "folders below {MIN_FAMILY_RECIPIENT}: {weak:?}"
    );
    assert!(
        pct(total.recipient, total.n) >= MIN_RECIPIENT,
        "recipient accuracy"
    );
    assert!(pct(total.class, total.n) >= MIN_CLASS, "class accuracy");
    assert!(pct(total.kind, total.n) >= MIN_KIND, "kind accuracy");
    assert!(pct(total.token, total.n) >= MIN_TOKEN, "token accuracy");
}

/// Each held-out set on its own: `holdout` (169 messages) and `holdout2`, written later by
/// another writer and measured once the rules had been tuned on `world`/`world2`.
#[test]
fn held_out_corpus_accuracy() {
    for set in ["holdout", "holdout2"] {
        let mut failures = Vec::new();
        let (total, _, _, _) = score_trees(&[set], &mut failures);
        assert!(
            set != "holdout" || total.n >= 150,
            "held-out corpus missing or too small: {}",
            total.n
        );
        if total.n == 0 {
            continue;
        }
        assert!(
            pct(total.recipient, total.n) >= MIN_HOLDOUT_RECIPIENT,
            "{set}: held-out recipient accuracy"
        );
        assert!(
            pct(total.class, total.n) >= MIN_HOLDOUT_CLASS,
            "{set}: held-out class accuracy"
        );
    }
}
