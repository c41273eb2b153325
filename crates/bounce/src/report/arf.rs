//! RFC 5965 Abuse Reporting Format: `multipart/report; report-type=feedback-report` whose
//! `message/feedback-report` part holds the machine-readable fields.

use super::fields::{self, Fields};
use super::mime::Extracted;
use super::{ArfReport, MAX_RECIPIENTS};

/// The ARF fields, when the message is a feedback report. A report without the
/// `message/feedback-report` part is not ARF, whatever its `report-type` says.
pub(crate) fn read(msg: &Extracted) -> Option<(ArfReport, Vec<String>)> {
    let body = msg.feedback_report.as_deref()?;
    let mut f = Fields::default();
    for block in fields::parse_blocks(body, 4) {
        f.0.extend(block.0);
    }
    let mut recipients = all_addresses(&f, "Original-Rcpt-To");
    if recipients.is_empty() {
        // Some feedback loops name the address to remove instead (draft ARF extensions).
        recipients = all_addresses(&f, "Removal-Recipient");
    }
    let mut arf = ArfReport {
        feedback_type: f.get("Feedback-Type").map(|v| v.to_ascii_lowercase()),
        user_agent: f.get_owned("User-Agent"),
        original_rcpt_to: recipients.first().cloned(),
        original_mail_from: f.get("Original-Mail-From").and_then(fields::header_address),
        source_ip: f.get_owned("Source-IP"),
        arrival_date: f
            .get_owned("Arrival-Date")
            .or_else(|| f.get_owned("Received-Date")),
        reported_domain: f.get_owned("Reported-Domain"),
    };
    // Many feedback loops redact Original-Rcpt-To; the returned original's To is then the best
    // we have (often redacted too, in which case the token is what identifies the recipient).
    if recipients.is_empty() {
        arf.original_rcpt_to = msg
            .original
            .as_ref()
            .and_then(fields::original_recipient)
            .filter(|a| !a.to_ascii_lowercase().contains("redacted"));
        recipients.extend(arf.original_rcpt_to.clone());
    }
    Some((arf, recipients))
}

/// Every value of `name` that is an address, once each, in order.
fn all_addresses(f: &Fields, name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (_, v) in f.0.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
        for a in v.split([',', ' ']).filter_map(fields::header_address) {
            if out.len() < MAX_RECIPIENTS {
                fields::push_distinct(&mut out, a);
            }
        }
    }
    out
}
