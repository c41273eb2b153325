//! Reading asynchronous reports (SPEC §2.8): RFC 3464 delivery status notifications, the common
//! non-standard bounce formats, RFC 5965 (ARF) complaint reports, RFC 3834 auto-replies and
//! challenge-response messages.
//!
//! [`parse_report`] turns raw bytes into a [`ParsedReport`] (what the message says, per
//! recipient); [`classify_report`] adds the bounce class, the rule that decided it and the campaign
//! qualification. The parser never panics and bounds its work: input over [`MAX_INPUT_BYTES`] is
//! refused, and at most [`MAX_RECIPIENTS`] recipients and [`MAX_PARTS`] MIME parts are examined.

mod arf;
mod auto;
mod classify;
mod dsn;
mod fields;
mod mbox;
mod mime;
mod text;

pub use classify::{ClassifiedRecipient, Outcome, classify_report, classify_report_with};

use serde::Serialize;

/// Largest message accepted (10 MiB). Real bounces are a few KiB to a few hundred KiB (the
/// returned original); anything larger is refused rather than parsed.
pub const MAX_INPUT_BYTES: usize = 10 * 1024 * 1024;
/// Recipients reported per message; further recipients are dropped.
pub const MAX_RECIPIENTS: usize = 100;
/// MIME parts examined per message (top level and the returned original).
pub const MAX_PARTS: usize = 64;
/// Lines that could be MIME boundaries (`--…`) tolerated before the message is refused: the
/// MIME parser allocates per part, so this bounds memory on hostile input. A bounce has < 10.
pub const MAX_BOUNDARY_LINES: usize = 2000;

/// The header of the returned original message that carries our tracking token.
pub const TOKEN_HEADER: &str = "X-Cartero-Token";

/// What kind of report a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReportKind {
    /// RFC 3464 `multipart/report; report-type=delivery-status`.
    Dsn,
    /// A bounce in a vendor-specific text format; `family` names the format (`postfix`, `exim`,
    /// `qmail`, `exchange`, …).
    NonStandardBounce { family: &'static str },
    /// RFC 5965 `multipart/report; report-type=feedback-report`.
    Arf,
    /// An RFC 3834 automatic reply (vacation, out of office).
    AutoReply,
    /// A challenge-response system asking the sender to prove it is human.
    ChallengeResponse,
    /// Not recognised as any report.
    Unknown,
}

/// What the report says about one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecipientReport {
    /// The recipient as we addressed it: `Original-Recipient` when given, else `Final-Recipient`
    /// (DSN), the address named in the text (other bounces), the sender of an auto-reply, or the
    /// `Original-Rcpt-To` of an ARF report.
    pub address: Option<String>,
    /// The `Final-Recipient` when it differs from `address` (forwarding, aliases).
    pub final_recipient: Option<String>,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded` (RFC 3464 §2.3.3), lower-cased.
    /// Non-standard bounces get `failed` or `delayed` from their wording.
    pub action: Option<String>,
    /// RFC 3463 status, e.g. `5.1.1`; for non-standard bounces the code found in the text.
    pub status: Option<String>,
    /// The remote reply, e.g. `smtp; 550 5.1.1 <a@b>: user unknown`, or the bounce's own wording.
    pub diagnostic: Option<String>,
    /// The MTA that gave the diagnostic, e.g. `dns; mx.example.org`.
    pub remote_mta: Option<String>,
    /// The human-readable explanation around this recipient (at most [`MAX_CONTEXT`] bytes),
    /// which the classifier reads when the diagnostic alone does not say why: "This message was
    /// undeliverable due to the following reason: … over quota" with no reply code.
    #[serde(skip)]
    pub context: Option<String>,
}

/// Longest explanation kept per recipient for classification.
pub const MAX_CONTEXT: usize = 4096;

/// The machine-readable part of an ARF report (RFC 5965 §3.1–3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ArfReport {
    /// `abuse`, `fraud`, `virus`, `other`, `not-spam`, … lower-cased.
    pub feedback_type: Option<String>,
    pub user_agent: Option<String>,
    pub original_rcpt_to: Option<String>,
    pub original_mail_from: Option<String>,
    pub source_ip: Option<String>,
    pub arrival_date: Option<String>,
    pub reported_domain: Option<String>,
}

/// Everything read from one report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParsedReport {
    pub kind: ReportKind,
    /// One entry per recipient the report is about (at most [`MAX_RECIPIENTS`]).
    pub recipients: Vec<RecipientReport>,
    /// `Message-ID` of the returned original (without angle brackets), when it came back.
    pub original_message_id: Option<String>,
    /// Our tracking token: the [`TOKEN_HEADER`] of the returned original, else the local part
    /// after `b-` of a `b-<token>@domain` address found in the report. Not verified here: the
    /// caller checks its signature.
    pub token: Option<String>,
    /// Set for [`ReportKind::Arf`].
    pub arf: Option<ArfReport>,
    /// The `Auto-Submitted` header of the report itself (RFC 3834), when present.
    pub auto_submitted: Option<String>,
    /// The report's subject, for display and inbound rules.
    pub subject: Option<String>,
}

/// Why a message could not be read at all. Unrecognised but well-formed messages are not errors:
/// they come back as [`ReportKind::Unknown`].
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("message too large: {size} bytes (limit {limit})")]
    TooLarge { size: usize, limit: usize },
    #[error("message has too many MIME boundary lines ({count}, limit {limit})")]
    TooComplex { count: usize, limit: usize },
    #[error("empty message")]
    Empty,
    #[error("the MIME parser could not read the message")]
    Unparseable,
}

/// Parses one raw message (as received, headers and body) into a report.
///
/// Detection order: ARF, DSN, challenge-response, non-standard bounce, auto-reply, unknown —
/// mailer daemons also set `Auto-Submitted`, so the bounce readers come before the auto-reply
/// check.
pub fn parse_report(raw: &[u8]) -> Result<ParsedReport, ReportError> {
    if raw.len() > MAX_INPUT_BYTES {
        return Err(ReportError::TooLarge {
            size: raw.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ReportError::Empty);
    }
    let count = boundary_lines(raw);
    if count > MAX_BOUNDARY_LINES {
        return Err(ReportError::TooComplex {
            count,
            limit: MAX_BOUNDARY_LINES,
        });
    }
    let mut messages = mbox::split(raw).into_iter();
    let mut report = parse_one(messages.next().unwrap_or(raw))?;
    // Further messages of the same input add their recipients; one that cannot be read is skipped.
    for more in messages.filter_map(|m| parse_one(m).ok()) {
        if report.kind == ReportKind::Unknown {
            report = more;
            continue;
        }
        for r in more.recipients {
            let known = report.recipients.iter().any(|k| {
                k.address.as_deref().map(str::to_ascii_lowercase)
                    == r.address.as_deref().map(str::to_ascii_lowercase)
            });
            if !known && report.recipients.len() < MAX_RECIPIENTS {
                report.recipients.push(r);
            }
        }
        report.token = report.token.or(more.token);
    }
    Ok(report)
}

/// Reads one message (see [`parse_report`]).
fn parse_one(raw: &[u8]) -> Result<ParsedReport, ReportError> {
    let msg = mime::extract(raw).ok_or(ReportError::Unparseable)?;
    let mut report = ParsedReport {
        kind: ReportKind::Unknown,
        recipients: Vec::new(),
        original_message_id: msg.original_message_id(),
        token: None,
        arf: None,
        auto_submitted: msg.top.get_owned("Auto-Submitted"),
        subject: msg.subject.clone(),
    };
    if let Some((arf, addresses)) = arf::read(&msg) {
        report.kind = ReportKind::Arf;
        // One recipient even when the feedback loop redacted the address: the complaint still
        // counts, and the token identifies whom it is about.
        report.recipients = if addresses.is_empty() {
            vec![RecipientReport::default()]
        } else {
            addresses
                .into_iter()
                .map(|a| RecipientReport {
                    address: Some(a),
                    ..Default::default()
                })
                .collect()
        };
        report.arf = Some(arf);
    } else if msg.is_delivery_report() {
        report.kind = ReportKind::Dsn;
        report.recipients = dsn::recipients(&msg);
    } else if auto::is_challenge_response(&msg) {
        report.kind = ReportKind::ChallengeResponse;
        report.recipients = auto::sender_as_recipient(&msg);
    } else if let Some(bounce) = text::read(&msg) {
        report.kind = ReportKind::NonStandardBounce {
            family: bounce.family,
        };
        report.recipients = bounce.recipients;
    } else if auto::is_auto_reply(&msg)
        && !msg.from.as_deref().is_some_and(text::is_service_address)
    {
        // A mailer daemon's message we could not read is not somebody's vacation reply.
        report.kind = ReportKind::AutoReply;
        report.recipients = auto::sender_as_recipient(&msg);
    }
    report.recipients.truncate(MAX_RECIPIENTS);
    report.token = msg.token();
    Ok(report)
}

fn boundary_lines(raw: &[u8]) -> usize {
    let starts_line = |i: usize| i == 0 || raw.get(i - 1) == Some(&b'\n');
    raw.windows(2)
        .enumerate()
        .filter(|(i, w)| w == b"--" && starts_line(*i))
        .count()
}
