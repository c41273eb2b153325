//! A minimal reader of returned mail: RFC 3464 DSNs, RFC 5965 ARF reports, RFC 3834 auto-replies
//! and a fallback for non-standard bounces.
//!
//! TODO(inmail): replace with `cartero_bounce::report::{parse_report, classify_report}` once that
//! module lands; the shapes below mirror its `ParsedReport` so the swap stays local to this file.
//! This reader is deliberately line-based: it unfolds header-like lines and picks the DSN and ARF
//! fields wherever they appear, which is enough for well-formed reports and never panics.

use regex::Regex;
use std::sync::LazyLock;

/// How much of a message is looked at: reports put what matters near the top, and the returned
/// original's headers follow the machine-readable part.
const SCAN_LIMIT: usize = 2 * 1024 * 1024;

/// What kind of message came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dsn,
    NonStandardBounce,
    Arf,
    AutoReply,
    Unknown,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dsn => "dsn",
            Kind::NonStandardBounce => "bounce",
            Kind::Arf => "arf",
            Kind::AutoReply => "auto_reply",
            Kind::Unknown => "unknown",
        }
    }
}

/// One recipient of a report.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RecipientReport {
    /// Empty when the report does not name the recipient.
    pub address: String,
    pub action: Option<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub remote_mta: Option<String>,
}

/// The ARF fields the MTA reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ArfReport {
    pub feedback_type: Option<String>,
    pub original_rcpt_to: Option<String>,
    pub source_ip: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParsedReport {
    pub kind: Kind,
    pub recipients: Vec<RecipientReport>,
    pub subject: Option<String>,
    /// From an `X-Cartero-Token` header or a `b-<token>@` address inside the report.
    pub token: Option<String>,
    pub arf: Option<ArfReport>,
}

static TOKEN_ADDR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\bb-([a-z2-7]{39})@").ok());
static STATUS_LINE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\b[45][0-9]{2}[ -]([45]\.[0-9]{1,3}\.[0-9]{1,3})\b").ok());

/// Joins folded lines; works on the scanned prefix only.
fn unfolded_lines(raw: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(raw.get(..SCAN_LIMIT).unwrap_or(raw));
    let mut out: Vec<String> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        match out.last_mut() {
            Some(prev) if line.starts_with([' ', '\t']) && !prev.is_empty() => {
                prev.push(' ');
                prev.push_str(line.trim());
            }
            _ => out.push(line.to_string()),
        }
    }
    out
}

/// `Name: value` → value, when the line is that field (case-insensitive name).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (n, v) = line.split_once(':')?;
    n.trim_end().eq_ignore_ascii_case(name).then(|| v.trim())
}

/// `rfc822; user@example.com` → `user@example.com`.
fn strip_type(v: &str) -> String {
    let v = v.split_once(';').map_or(v, |(_, a)| a).trim();
    v.trim_matches(['<', '>']).to_string()
}

/// Reads a returned message. Never fails: unreadable input is `Kind::Unknown` with nothing found.
pub(crate) fn parse_report(raw: &[u8]) -> ParsedReport {
    let lines = unfolded_lines(raw);
    let head_end = lines.iter().position(String::is_empty).unwrap_or(lines.len());
    let head = lines.get(..head_end).unwrap_or(&[]);
    let top = |name: &str| head.iter().find_map(|l| field(l, name)).map(str::to_string);
    let content_type = top("content-type").unwrap_or_default().to_ascii_lowercase();
    let subject = top("subject");
    let from = top("from").unwrap_or_default().to_ascii_lowercase();
    let mut report = ParsedReport {
        kind: Kind::Unknown,
        recipients: Vec::new(),
        subject: subject.clone(),
        token: find_token(&lines),
        arf: None,
    };
    if content_type.contains("delivery-status") {
        report.kind = Kind::Dsn;
        report.recipients = dsn_recipients(&lines);
    } else if content_type.contains("feedback-report") {
        report.kind = Kind::Arf;
        report.arf = Some(arf_fields(&lines));
    } else if is_auto_reply(head, subject.as_deref()) {
        report.kind = Kind::AutoReply;
    } else if from.contains("mailer-daemon") || from.contains("postmaster") {
        report.kind = Kind::NonStandardBounce;
        report.recipients = free_text_diagnostic(&lines, head_end);
    }
    report
}

fn find_token(lines: &[String]) -> Option<String> {
    if let Some(t) = lines.iter().find_map(|l| field(l, "x-cartero-token")) {
        return Some(t.to_ascii_lowercase());
    }
    let re = TOKEN_ADDR.as_ref()?;
    lines
        .iter()
        .find_map(|l| re.captures(l)?.get(1).map(|m| m.as_str().to_ascii_lowercase()))
}

/// Per-recipient DSN fields: each `Final-Recipient` opens a recipient, the fields after it belong
/// to it (RFC 3464 §2.3).
fn dsn_recipients(lines: &[String]) -> Vec<RecipientReport> {
    let mut out: Vec<RecipientReport> = Vec::new();
    for line in lines {
        if let Some(v) = field(line, "final-recipient") {
            out.push(RecipientReport {
                address: strip_type(v),
                ..RecipientReport::default()
            });
            continue;
        }
        let Some(r) = out.last_mut() else { continue };
        let set = |slot: &mut Option<String>, v: &str| {
            if slot.is_none() {
                *slot = Some(v.to_string());
            }
        };
        if let Some(v) = field(line, "action") {
            set(&mut r.action, &v.to_ascii_lowercase());
        } else if let Some(v) = field(line, "status") {
            set(&mut r.status, v.split_whitespace().next().unwrap_or(v));
        } else if let Some(v) = field(line, "diagnostic-code") {
            set(&mut r.diagnostic, v.split_once(';').map_or(v, |(_, d)| d).trim());
        } else if let Some(v) = field(line, "remote-mta") {
            set(&mut r.remote_mta, &strip_type(v));
        }
    }
    out
}

fn arf_fields(lines: &[String]) -> ArfReport {
    let first = |name: &str| lines.iter().find_map(|l| field(l, name)).map(str::to_string);
    ArfReport {
        feedback_type: first("feedback-type"),
        original_rcpt_to: first("original-rcpt-to").map(|v| strip_type(&v)),
        source_ip: first("source-ip"),
    }
}

/// RFC 3834 `Auto-Submitted` (anything but `no`), the common vendor headers and subjects.
fn is_auto_reply(head: &[String], subject: Option<&str>) -> bool {
    let auto_submitted = head
        .iter()
        .filter_map(|l| field(l, "auto-submitted"))
        .any(|v| !v.eq_ignore_ascii_case("no"));
    let vendor = head.iter().any(|l| {
        field(l, "x-autoreply").is_some()
            || field(l, "x-autorespond").is_some()
            || field(l, "precedence").is_some_and(|v| v.eq_ignore_ascii_case("auto_reply"))
    });
    let subject = subject.unwrap_or("").to_ascii_lowercase();
    let by_subject = ["out of office", "automatic reply", "auto:", "autoreply", "vacation"]
        .iter()
        .any(|p| subject.contains(p));
    auto_submitted || vendor || by_subject
}

/// A non-standard bounce: the first body line that looks like an SMTP reply with an enhanced code.
fn free_text_diagnostic(lines: &[String], head_end: usize) -> Vec<RecipientReport> {
    let Some(re) = STATUS_LINE.as_ref() else {
        return Vec::new();
    };
    lines
        .iter()
        .skip(head_end)
        .find_map(|l| {
            let c = re.captures(l)?;
            Some(RecipientReport {
                status: c.get(1).map(|m| m.as_str().to_string()),
                diagnostic: Some(l.trim().to_string()),
                action: Some("failed".into()),
                ..RecipientReport::default()
            })
        })
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DSN: &str = "From: MAILER-DAEMON@mx.example.test\r\nSubject: Undelivered Mail\r\n\
Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"B\"\r\n\r\n\
--B\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n\r\n--B\r\n\
Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.test\r\n\r\n\
Final-Recipient: rfc822; bob@example.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Remote-MTA: dns; mx.example.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <bob@example.test>:\r\n \
user unknown\r\n\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n\
X-Cartero-Token: ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcdefg\r\n\r\n--B--\r\n";

    #[test]
    fn dsn_fields_are_read_per_recipient() {
        let r = parse_report(DSN.as_bytes());
        assert_eq!(r.kind, Kind::Dsn);
        assert_eq!(r.recipients.len(), 1);
        let rc = &r.recipients[0];
        assert_eq!(rc.address, "bob@example.test");
        assert_eq!(rc.action.as_deref(), Some("failed"));
        assert_eq!(rc.status.as_deref(), Some("5.1.1"));
        assert_eq!(rc.remote_mta.as_deref(), Some("mx.example.test"));
        assert_eq!(
            rc.diagnostic.as_deref(),
            Some("550 5.1.1 <bob@example.test>: user unknown")
        );
        assert_eq!(
            r.token.as_deref(),
            Some("abcdefghijklmnopqrstuvwxyz234567abcdefg")
        );
    }

    #[test]
    fn auto_replies_and_arf_are_recognised() {
        let a = parse_report(b"From: x@y\r\nAuto-Submitted: auto-replied\r\nSubject: hi\r\n\r\nAway\r\n");
        assert_eq!(a.kind, Kind::AutoReply);
        let n = parse_report(b"From: x@y\r\nAuto-Submitted: no\r\nSubject: hi\r\n\r\nbody\r\n");
        assert_eq!(n.kind, Kind::Unknown);
        let arf = parse_report(
            b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\r\n\r\n--x\r\n\
Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nOriginal-Rcpt-To: <u@example.test>\r\n\
Source-IP: 192.0.2.1\r\n\r\n--x--\r\n",
        );
        assert_eq!(arf.kind, Kind::Arf);
        let f = arf.arf.unwrap();
        assert_eq!(f.feedback_type.as_deref(), Some("abuse"));
        assert_eq!(f.original_rcpt_to.as_deref(), Some("u@example.test"));
        assert_eq!(f.source_ip.as_deref(), Some("192.0.2.1"));
    }

    #[test]
    fn garbage_does_not_panic() {
        for raw in [&b""[..], b"\xff\xfe:\r\n\r\n", b":", b"Final-Recipient:\r\n\t\r\n"] {
            let _ = parse_report(raw);
        }
    }
}
