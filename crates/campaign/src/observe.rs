//! What one MTA event says about one delivery log row: which row, what happened, when, and how
//! the failure qualifies (SPEC §2.10, §3.4). Pure decoding: no storage, no clock.
//!
//! The campaign injects every message with [`DELIVERY_ID_KEY`] and [`LOG_ID_KEY`] in its
//! metadata; the MTA copies `delivery_id` into the event's own field and passes the metadata
//! through, so the events the queue emits (`reception`, `delay`, `delivery`, `bounce`,
//! `expiration`) name their row. Events from inMail (`out_of_band`, `spam_complaint`,
//! `list_unsubscribe`) and the spool's lost-message `bounce` carry only the MTA's `message_id`:
//! those come back as [`RowRef::Message`] and the store finds the row by the message id it
//! recorded at `reception` (the campaign injects one recipient per message).

use crate::model::{DeliveryId, FailureInfo, LogId, UnixMillis};
use cartero_bounce::{BounceClass, FailureType, Qualification, Qualifier, QualifyContext, Reason};
use cartero_events::{Event, EventType};
use serde_json::Value;

/// Metadata key of the campaign's delivery id (a decimal string). The MTA copies it into the
/// event's `delivery_id` field.
pub const DELIVERY_ID_KEY: &str = "delivery_id";
/// Metadata key of the log row id (a JSON integer, or a decimal string).
pub const LOG_ID_KEY: &str = "log_id";

/// Longest reply text kept in a row or an address record, in bytes: a row is read, not
/// archived, and a hostile DSN must not inflate the database.
pub const MAX_TEXT: usize = 512;
/// Longest rule name kept, in bytes.
pub const MAX_RULE: usize = 128;

/// Which log row an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowRef {
    /// Named by the injection metadata.
    Log { delivery: DeliveryId, log: LogId },
    /// Named only by the MTA's message id (inMail reports, lost-spool bounces).
    Message { message_id: String },
}

/// What happened, for the log. `out_of_band` reports of class 60 (auto-reply) and 100
/// (challenge-response) are [`Kind::AutoReply`]: someone answered, nothing failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The MTA spooled the message: "taken into account".
    Reception,
    Delivery,
    /// A transient failure; the MTA retries.
    Delay,
    /// A permanent failure.
    Bounce,
    /// The validity ended before a delivery.
    Expiration,
    /// An asynchronous bounce.
    OutOfBand,
    AutoReply,
    SpamComplaint,
    ListUnsubscribe,
}

impl Kind {
    /// The name kept in a row's attempt history: the event type, except `auto_reply`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Reception => "reception",
            Kind::Delivery => "delivery",
            Kind::Delay => "delay",
            Kind::Bounce => "bounce",
            Kind::Expiration => "expiration",
            Kind::OutOfBand => "out_of_band",
            Kind::AutoReply => "auto_reply",
            Kind::SpamComplaint => "spam_complaint",
            Kind::ListUnsubscribe => "list_unsubscribe",
        }
    }

    /// The inverse of [`Kind::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "reception" => Kind::Reception,
            "delivery" => Kind::Delivery,
            "delay" => Kind::Delay,
            "bounce" => Kind::Bounce,
            "expiration" => Kind::Expiration,
            "out_of_band" => Kind::OutOfBand,
            "auto_reply" => Kind::AutoReply,
            "spam_complaint" => Kind::SpamComplaint,
            "list_unsubscribe" => Kind::ListUnsubscribe,
            _ => return None,
        })
    }

    /// Whether the event reports a failure of the message (and so carries a qualification).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Kind::Delay | Kind::Bounce | Kind::Expiration | Kind::OutOfBand
        )
    }
}

/// Whom a failure is about. Only [`Blame::Recipient`] failures count against the address
/// (issue 9, item 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Blame {
    Recipient,
    /// The envelope sender, its domain or its authentication (X.1.7, X.1.8, X.7.20–X.7.24,
    /// X.7.26, X.7.27, or a reply naming the sender address).
    Sender,
    /// Our sending IP, its reputation or the content: block classes 50–54, X.7.25.
    Sending,
}

/// What one event says about one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub row: RowRef,
    pub kind: Kind,
    /// The event's time (its `timestamp`, else the time in its `event_id`).
    pub at: UnixMillis,
    pub event_id: String,
    pub message_id: Option<String>,
    pub rcpt_to: Option<String>,
    /// The reply or explanation, at most [`MAX_TEXT`] bytes.
    pub text: String,
    /// For failures, complaints and unsubscribes: the qualification as it counts (a failure
    /// blamed on the sender or on our sending is `Ignored`, reason `Refused`).
    pub failure: Option<FailureInfo>,
    pub blame: Blame,
}

/// Why an event says nothing about a log row. Never fatal: the caller counts and moves on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// `policy_rejection`, `shaping`: not about a row's delivery.
    #[error("{0:?} events do not change a delivery log")]
    NotForTheLog(EventType),
    /// No campaign row reference (another injector's message).
    #[error("not a campaign message: {0}")]
    NotOurs(&'static str),
    /// Ours, but a field cannot be read.
    #[error("unreadable event: {0}")]
    Unreadable(&'static str),
}

/// Decodes `event`. Failures are qualified through `qualifier` (the operator's overrides of
/// SPEC §3.4), except what inMail already decided for `out_of_band` (its inbound rules).
pub fn observe(event: &Event, qualifier: &Qualifier) -> Result<Observation, Skip> {
    let kind = kind_of(event)?;
    let row = row_ref(event, kind)?;
    if event.event_id.is_empty() {
        return Err(Skip::Unreadable("empty event_id"));
    }
    let at = event_time(event)?;
    let text = clip(
        event
            .raw_reason
            .as_deref()
            .or(event.reason.as_deref())
            .unwrap_or(""),
        MAX_TEXT,
    );
    let blame = if kind.is_failure() {
        blame_of(event)
    } else {
        Blame::Recipient
    };
    let failure = qualification(event, kind, blame, qualifier).map(|q| FailureInfo {
        r#type: q.r#type,
        reason: q.reason,
        class: event.bounce_class.map(BounceClass),
        text: text.clone(),
        rule: clip(event.reason.as_deref().unwrap_or(""), MAX_RULE),
    });
    Ok(Observation {
        row,
        kind,
        at,
        event_id: event.event_id.clone(),
        message_id: event.message_id.clone(),
        rcpt_to: event.rcpt_to.clone(),
        text,
        failure,
        blame,
    })
}

fn kind_of(event: &Event) -> Result<Kind, Skip> {
    Ok(match event.r#type {
        EventType::Reception => Kind::Reception,
        EventType::Delivery => Kind::Delivery,
        EventType::Delay => Kind::Delay,
        EventType::Bounce => Kind::Bounce,
        EventType::Expiration => Kind::Expiration,
        EventType::OutOfBand => match event.bounce_class {
            Some(60 | 100) => Kind::AutoReply,
            _ => Kind::OutOfBand,
        },
        EventType::SpamComplaint => Kind::SpamComplaint,
        EventType::ListUnsubscribe => Kind::ListUnsubscribe,
        other @ (EventType::PolicyRejection | EventType::Shaping) => {
            return Err(Skip::NotForTheLog(other));
        }
    })
}

/// The row: by the injection metadata, else by message id for the kinds that cannot carry it.
fn row_ref(event: &Event, kind: Kind) -> Result<RowRef, Skip> {
    let delivery = event
        .delivery_id
        .as_ref()
        .map(|s| Value::String(s.clone()))
        .or_else(|| event.metadata.get(DELIVERY_ID_KEY).cloned());
    let log = event.metadata.get(LOG_ID_KEY);
    match (delivery, log) {
        (Some(d), Some(l)) => {
            // Another injector may use `delivery_id` for its own (non-numeric) ids.
            let delivery = id_value(&d).ok_or(Skip::NotOurs("delivery_id is not a number"))?;
            let log = id_value(l).ok_or(Skip::Unreadable("log_id is not a number"))?;
            Ok(RowRef::Log {
                delivery: DeliveryId(delivery),
                log: LogId(log),
            })
        }
        _ => {
            let by_message = matches!(
                kind,
                Kind::OutOfBand
                    | Kind::AutoReply
                    | Kind::SpamComplaint
                    | Kind::ListUnsubscribe
                    | Kind::Bounce
            );
            match &event.message_id {
                Some(m) if by_message && !m.is_empty() => Ok(RowRef::Message {
                    message_id: m.clone(),
                }),
                _ => Err(Skip::NotOurs("no delivery_id and log_id")),
            }
        }
    }
}

fn id_value(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) if !s.starts_with('+') => s.parse().ok(),
        _ => None,
    }
}

/// The `timestamp` (RFC 3339), else the 48-bit millisecond prefix of the `event_id`.
fn event_time(event: &Event) -> Result<UnixMillis, Skip> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&event.timestamp) {
        return u64::try_from(t.timestamp_millis())
            .map_err(|_| Skip::Unreadable("timestamp before 1970"));
    }
    event
        .event_id
        .get(..12)
        .filter(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|p| u64::from_str_radix(p, 16).ok())
        .ok_or(Skip::Unreadable("no readable timestamp or event_id time"))
}

fn qualification(
    event: &Event,
    kind: Kind,
    blame: Blame,
    qualifier: &Qualifier,
) -> Option<Qualification> {
    match kind {
        Kind::Reception | Kind::Delivery => None,
        Kind::SpamComplaint => Some(qualifier.qualify(
            BounceClass::UNDETERMINED,
            QualifyContext {
                spam_complaint: true,
                ..Default::default()
            },
        )),
        Kind::ListUnsubscribe => {
            Some(qualifier.qualify(BounceClass::UNSUBSCRIBE, QualifyContext::default()))
        }
        Kind::AutoReply => Some(Qualification {
            r#type: FailureType::Ignored,
            reason: Reason::Unreachable,
        }),
        Kind::Delay | Kind::Bounce | Kind::Expiration | Kind::OutOfBand => {
            if blame != Blame::Recipient {
                return Some(Qualification {
                    r#type: FailureType::Ignored,
                    reason: Reason::Refused,
                });
            }
            let q = failure_qualification(event, kind, qualifier);
            // A transient failure is never final, whatever its class says: a 4xx "user
            // unknown" is retried by the MTA, and an expiry carries the last transient class.
            let transient = matches!(kind, Kind::Delay | Kind::Expiration);
            Some(match q.r#type {
                FailureType::Hard if transient => Qualification {
                    r#type: FailureType::Soft,
                    ..q
                },
                _ => q,
            })
        }
    }
}

fn failure_qualification(event: &Event, kind: Kind, qualifier: &Qualifier) -> Qualification {
    if kind == Kind::OutOfBand
        && let Some(q) = inmail_decision(event)
    {
        return q;
    }
    let class = BounceClass(event.bounce_class.unwrap_or(BounceClass::UNDETERMINED.0));
    let enhanced = enhanced_code(event);
    // A permanent DNS failure (NXDOMAIN, Null MX) reaches us as a class-21 `bounce`; in a DSN
    // the status says it (5.1.2 bad destination system, 5.1.10 null MX).
    let dns_final = match kind {
        Kind::Bounce => class == BounceClass::DNS_FAILURE,
        Kind::OutOfBand => matches!(enhanced, Some((5, 1, 2 | 10))),
        _ => false,
    };
    qualifier.qualify(
        class,
        QualifyContext {
            domain_permanently_invalid: dns_final,
            ..Default::default()
        },
    )
}

/// inMail puts its decision (inbound rules first, then the classifier) in the metadata of the
/// `out_of_band` events it builds; those carry no injection metadata, so the keys are its own.
fn inmail_decision(event: &Event) -> Option<Qualification> {
    let r#type = serde_json::from_value(event.metadata.get("type")?.clone()).ok()?;
    let reason = serde_json::from_value(event.metadata.get("failure_reason")?.clone()).ok()?;
    Some(Qualification { r#type, reason })
}

/// The enhanced status code (RFC 3463) of the event, else the first one in its reply text.
pub fn enhanced_code(event: &Event) -> Option<(u8, u16, u16)> {
    event
        .enhanced_code
        .as_deref()
        .and_then(parse_enhanced)
        .or_else(|| {
            event
                .raw_reason
                .as_deref()?
                .split_whitespace()
                .take(4)
                .find_map(parse_enhanced)
        })
}

/// `class.subject.detail`, RFC 3463 §2: class 2, 4 or 5, subject and detail of 1 to 3 digits.
fn parse_enhanced(s: &str) -> Option<(u8, u16, u16)> {
    let s = s.trim_matches(|c: char| !c.is_ascii_digit());
    let mut parts = s.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    if parts.next().is_some() || !digits(class, 1) || !digits(subject, 3) || !digits(detail, 3) {
        return None;
    }
    let class: u8 = class.parse().ok()?;
    if !matches!(class, 2 | 4 | 5) {
        return None;
    }
    Some((class, subject.parse().ok()?, detail.parse().ok()?))
}

/// Reply texts that reject the sender whatever their code (Postfix, Exim wordings).
const SENDER_CUES: &[&str] = &[
    "sender address rejected",
    "sender domain",
    "sender verify failed",
];

fn blame_of(event: &Event) -> Blame {
    let enhanced = enhanced_code(event);
    if let Some((_, subject, detail)) = enhanced {
        match (subject, detail) {
            (1, 7 | 8) | (7, 20..=24 | 26 | 27) => return Blame::Sender,
            (7, 25) => return Blame::Sending,
            _ => {}
        }
    }
    let text = event.raw_reason.as_deref().unwrap_or("");
    let lower = clip(text, MAX_TEXT * 2).to_ascii_lowercase();
    if SENDER_CUES.iter().any(|c| lower.contains(c)) {
        return Blame::Sender;
    }
    match event.bounce_class {
        Some(50..=54) => Blame::Sending,
        _ => Blame::Recipient,
    }
}

/// The first `max` bytes of `s`, cut on a character boundary.
pub fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
