//! Properties over generated bounces: whatever the layout, a DSN yields one report per recipient
//! block, a success never fails anybody and a delay never gets a hard class. (Never-panic on
//! arbitrary and mutated input is `report_robustness.rs`.)

use cartero_bounce::{
    Category, Classifier, Outcome, classify_report, default_classifier, parse_report,
};
use std::sync::{Arc, OnceLock};

/// Compiling the built-in rules takes a while in a debug build: once per test binary.
fn classifier() -> &'static Arc<dyn Classifier> {
    static C: OnceLock<Arc<dyn Classifier>> = OnceLock::new();
    C.get_or_init(default_classifier)
}
use proptest::prelude::*;

const ACTIONS: &[&str] = &[
    "failed",
    "Failed",
    "delayed",
    "delivered",
    "Delivered (to mailbox)",
    "relayed",
    "expanded; to 3 recipients",
];

const DIAGNOSTICS: &[&str] = &[
    "smtp; 550 5.1.1 <{a}>: Recipient address rejected: User unknown",
    "smtp; 452 4.2.2 Mailbox full, try again later",
    "smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org",
    "smtp; 421 4.7.0 Try again later, closing connection",
    "X-Postfix; delivery temporarily suspended: connect to mx.example.net: Connection timed out",
    "smtp; 250 2.0.0 Ok: queued",
    "",
];

prop_compose! {
    fn block()(action in 0..ACTIONS.len(), diag in 0..DIAGNOSTICS.len(),
               status in prop_oneof![Just("5.1.1"), Just("4.2.2"), Just("5.0.0"), Just("2.0.0"), Just("4.4.7")],
               original in any::<bool>(), noise in "[ -~]{0,30}")
        -> (usize, usize, &'static str, bool, String) {
        (action, diag, status, original, noise)
    }
}

fn message(blocks: &[(usize, usize, &str, bool, String)], blank_lines: bool, crlf: bool) -> String {
    let mut fields = String::new();
    for (i, (action, diag, status, original, noise)) in blocks.iter().enumerate() {
        let a = format!("user{i}@example.org");
        if *original {
            fields.push_str(&format!("Original-Recipient: rfc822;{a}\n"));
        }
        fields.push_str(&format!(
            "Final-Recipient: rfc822; {a}\nAction: {}\nStatus: {status}\n",
            ACTIONS[*action]
        ));
        let d = DIAGNOSTICS[*diag].replace("{a}", &a);
        if !d.is_empty() {
            fields.push_str(&format!("Diagnostic-Code: {d} {noise}\n"));
        }
        if blank_lines {
            fields.push('\n');
        }
    }
    let raw = format!(
        "From: MAILER-DAEMON@mx.example.net\nTo: b-tok.1@bounces.example\nSubject: Delivery Status Notification\n\
MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n\
--B\nContent-Type: text/plain\n\nThis is an automatically generated Delivery Status Notification.\n\n\
--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n{fields}\n--B--\n"
    );
    if crlf { raw.replace('\n', "\r\n") } else { raw }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_dsns_keep_every_recipient_and_never_fail_a_success(
        blocks in proptest::collection::vec(block(), 1..6),
        blank_lines in any::<bool>(),
        crlf in any::<bool>(),
    ) {
        let raw = message(&blocks, blank_lines, crlf);
        let report = parse_report(raw.as_bytes()).unwrap();
        let classified = classify_report(&report, classifier().as_ref());
        prop_assert_eq!(classified.len(), blocks.len());
        for (c, (action, ..)) in classified.iter().zip(&blocks) {
            let action = ACTIONS[*action].to_ascii_lowercase();
            if ["delivered", "relayed", "expanded"].iter().any(|s| action.starts_with(s)) {
                prop_assert_eq!(c.outcome, Outcome::NoFailure);
                prop_assert!(c.qualification.is_none());
            } else if action == "delayed" {
                prop_assert_eq!(c.outcome, Outcome::Delay);
                prop_assert!(c.class.is_some_and(|k| k.category() != Category::Hard));
            } else {
                prop_assert_eq!(c.outcome, Outcome::OutOfBand);
                prop_assert!(c.class.is_some_and(|k| k.is_known()));
            }
        }
    }
}
