//! The event model (SPEC §2.10): one JSON object per event, SparkPost-like field names.

use cartero_clock::{Clock, UnixMillis};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What happened to a message. Serialized in `snake_case` (`out_of_band`, `spam_complaint`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// The MTA accepted the message for a recipient.
    Reception,
    /// The receiving MX accepted the message.
    Delivery,
    /// A transient failure; the MTA will retry.
    Delay,
    /// A permanent failure during the SMTP transaction.
    Bounce,
    /// The message reached the end of its validity without being delivered.
    Expiration,
    /// An asynchronous bounce (DSN) received after the message was accepted.
    OutOfBand,
    /// A feedback-loop (ARF) complaint.
    SpamComplaint,
    /// The recipient unsubscribed through `List-Unsubscribe`.
    ListUnsubscribe,
    /// The MTA refused the message by policy (suppression, size, ...), before any attempt.
    PolicyRejection,
    /// An adaptive-delivery action (throttle, suspend, resume) with its cause.
    Shaping,
}

/// One event. `None` fields and empty metadata are left out of the JSON object.
///
/// Delivery of events is at-least-once: consumers must be idempotent by [`Event::event_id`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What happened.
    #[serde(rename = "type")]
    pub r#type: EventType,
    /// Unique id: 32 hex digits, the first 12 the creation time in ms (so ids sort by time), then 80
    /// random bits.
    pub event_id: String,
    /// RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`.
    pub timestamp: String,
    /// Message id assigned by the MTA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    /// Recipient address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rcpt_to: Option<String>,
    /// Envelope sender (return path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_from: Option<String>,
    /// Campaign-layer delivery id given at injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    /// Campaign id given at injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Free metadata given at injection, passed through untouched.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Bounce class (SPEC §2.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_class: Option<u16>,
    /// SMTP reply code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<u16>,
    /// RFC 3463 enhanced status code, e.g. `5.1.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enhanced_code: Option<String>,
    /// The exact reply text received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw_reason: Option<String>,
    /// The normalized reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Attempts made before this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_retries: Option<u32>,
    /// Time spent in the MTA, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_time: Option<u64>,
    /// Egress IP address used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sending_ip: Option<String>,
    /// Egress pool name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_pool: Option<String>,
    /// Recipient domain the message was routed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_domain: Option<String>,
    /// MX host that answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mx_host: Option<String>,
    /// Message size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_size: Option<u64>,
    /// Whether the SMTP session used TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    /// Details of a `shaping` event (site, action, cause, rates, until when).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaping: Option<Value>,
}

/// Generates chainable setters so emitters can write `Event::new(..).rcpt_to("a@b").error_code(550)`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty => $conv:expr;)*) => {
        $(
            $(#[$doc])*
            #[must_use]
            pub fn $name(mut self, value: $ty) -> Self {
                self.$name = Some($conv(value));
                self
            }
        )*
    };
}

impl Event {
    /// A new event of `kind`, stamped with the clock's time and a fresh id; every other field empty.
    pub fn new(kind: EventType, clock: &dyn Clock) -> Self {
        let now = clock.now_ms();
        Self {
            r#type: kind,
            event_id: new_event_id(now),
            timestamp: format_timestamp(now),
            message_id: None,
            rcpt_to: None,
            mail_from: None,
            delivery_id: None,
            campaign_id: None,
            metadata: Map::new(),
            bounce_class: None,
            error_code: None,
            enhanced_code: None,
            raw_reason: None,
            reason: None,
            num_retries: None,
            queue_time: None,
            sending_ip: None,
            ip_pool: None,
            routing_domain: None,
            mx_host: None,
            msg_size: None,
            tls: None,
            shaping: None,
        }
    }

    setters! {
        /// Sets `message_id`.
        message_id: impl Into<String> => Into::into;
        /// Sets `rcpt_to`.
        rcpt_to: impl Into<String> => Into::into;
        /// Sets `mail_from`.
        mail_from: impl Into<String> => Into::into;
        /// Sets `delivery_id`.
        delivery_id: impl Into<String> => Into::into;
        /// Sets `campaign_id`.
        campaign_id: impl Into<String> => Into::into;
        /// Sets `bounce_class`.
        bounce_class: u16 => std::convert::identity;
        /// Sets `error_code`.
        error_code: u16 => std::convert::identity;
        /// Sets `enhanced_code`.
        enhanced_code: impl Into<String> => Into::into;
        /// Sets `raw_reason`.
        raw_reason: impl Into<String> => Into::into;
        /// Sets `reason`.
        reason: impl Into<String> => Into::into;
        /// Sets `num_retries`.
        num_retries: u32 => std::convert::identity;
        /// Sets `queue_time` (ms).
        queue_time: u64 => std::convert::identity;
        /// Sets `sending_ip`.
        sending_ip: impl Into<String> => Into::into;
        /// Sets `ip_pool`.
        ip_pool: impl Into<String> => Into::into;
        /// Sets `routing_domain`.
        routing_domain: impl Into<String> => Into::into;
        /// Sets `mx_host`.
        mx_host: impl Into<String> => Into::into;
        /// Sets `msg_size`.
        msg_size: u64 => std::convert::identity;
        /// Sets `tls`.
        tls: bool => std::convert::identity;
        /// Sets the `shaping` details.
        shaping: Value => std::convert::identity;
    }

    /// Replaces the free metadata.
    #[must_use]
    pub fn metadata(mut self, metadata: Map<String, Value>) -> Self {
        self.metadata = metadata;
        self
    }

    /// True when the event settles the recipient's outcome: `delivery`, `bounce`, `expiration`,
    /// `policy_rejection` and `out_of_band` (a late bounce turns a delivery into a failure).
    ///
    /// `delay` and `reception` are intermediate; `spam_complaint` and `list_unsubscribe` are feedback
    /// about a delivered message ([`Event::is_feedback`]); `shaping` is not about one recipient.
    pub fn is_final(&self) -> bool {
        matches!(
            self.r#type,
            EventType::Delivery
                | EventType::Bounce
                | EventType::Expiration
                | EventType::PolicyRejection
                | EventType::OutOfBand
        )
    }

    /// True for recipient feedback received after delivery (`spam_complaint`, `list_unsubscribe`).
    pub fn is_feedback(&self) -> bool {
        matches!(
            self.r#type,
            EventType::SpamComplaint | EventType::ListUnsubscribe
        )
    }

    /// The event as one compact JSON object (no trailing newline).
    pub fn to_json(&self) -> crate::Result<String> {
        serde_json::to_string(self).map_err(|source| crate::EventsError::Json {
            what: "event",
            source,
        })
    }
}

/// 48 bits of milliseconds then 80 random bits, as 32 lowercase hex digits.
fn new_event_id(now: UnixMillis) -> String {
    let random = fastrand::u128(..) >> 48;
    format!("{:012x}{:020x}", now & 0xffff_ffff_ffff, random)
}

/// RFC 3339 in UTC with millisecond precision. Times beyond chrono's range fall back to the epoch
/// rather than failing, since a clock that far off is a bug elsewhere and must not stop events.
pub fn format_timestamp(ms: UnixMillis) -> String {
    let dt = i64::try_from(ms)
        .ok()
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    dt.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_clock::ManualClock;
    use serde_json::json;

    fn clock() -> ManualClock {
        // 2024-05-01T12:00:00.123Z
        ManualClock::new(1_714_564_800_123)
    }

    #[test]
    fn field_names_follow_spec_and_none_fields_are_absent() {
        let mut meta = Map::new();
        meta.insert("user".into(), json!("u-1"));
        let ev = Event::new(EventType::Bounce, &clock())
            .message_id("m1")
            .rcpt_to("a@example.com")
            .delivery_id("d1")
            .campaign_id("c1")
            .metadata(meta)
            .bounce_class(10)
            .error_code(550)
            .enhanced_code("5.1.1")
            .raw_reason("550 5.1.1 no such user")
            .reason("no such user")
            .num_retries(2)
            .queue_time(1500)
            .sending_ip("192.0.2.1")
            .ip_pool("default")
            .routing_domain("example.com")
            .mx_host("mx.example.com");
        let v: Value = serde_json::from_str(&ev.to_json().unwrap()).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = vec![
            "type",
            "event_id",
            "timestamp",
            "message_id",
            "rcpt_to",
            "delivery_id",
            "campaign_id",
            "metadata",
            "bounce_class",
            "error_code",
            "enhanced_code",
            "raw_reason",
            "reason",
            "num_retries",
            "queue_time",
            "sending_ip",
            "ip_pool",
            "routing_domain",
            "mx_host",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(obj["type"], json!("bounce"));
        assert_eq!(obj["bounce_class"], json!(10));
        assert_eq!(obj["timestamp"], json!("2024-05-01T12:00:00.123Z"));
        assert_eq!(obj["metadata"], json!({"user": "u-1"}));
    }

    #[test]
    fn minimal_event_has_only_type_id_and_timestamp() {
        let ev = Event::new(EventType::OutOfBand, &clock());
        let v: Value = serde_json::from_str(&ev.to_json().unwrap()).unwrap();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 3, "{obj:?}");
        assert_eq!(obj["type"], json!("out_of_band"));
    }

    #[test]
    fn type_names_are_snake_case() {
        let names = [
            (EventType::Reception, "reception"),
            (EventType::Delivery, "delivery"),
            (EventType::Delay, "delay"),
            (EventType::Bounce, "bounce"),
            (EventType::Expiration, "expiration"),
            (EventType::OutOfBand, "out_of_band"),
            (EventType::SpamComplaint, "spam_complaint"),
            (EventType::ListUnsubscribe, "list_unsubscribe"),
            (EventType::PolicyRejection, "policy_rejection"),
            (EventType::Shaping, "shaping"),
        ];
        for (t, name) in names {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(name));
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let ev = Event::new(EventType::Delivery, &clock())
            .rcpt_to("b@example.org")
            .mail_from("bounce@example.net")
            .msg_size(4096)
            .tls(true)
            .shaping(json!({"action": "throttle"}));
        let back: Event = serde_json::from_str(&ev.to_json().unwrap()).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn ids_are_unique_and_time_ordered() {
        let c = clock();
        let a = Event::new(EventType::Delay, &c);
        let b = Event::new(EventType::Delay, &c);
        assert_ne!(a.event_id, b.event_id);
        assert_eq!(a.event_id.len(), 32);
        assert!(a.event_id.chars().all(|ch| ch.is_ascii_hexdigit()));
        c.advance(std::time::Duration::from_millis(1));
        let later = Event::new(EventType::Delay, &c);
        assert!(later.event_id > a.event_id && later.event_id > b.event_id);
    }

    #[test]
    fn finality() {
        let c = clock();
        assert!(Event::new(EventType::Delivery, &c).is_final());
        assert!(Event::new(EventType::Expiration, &c).is_final());
        assert!(!Event::new(EventType::Delay, &c).is_final());
        assert!(!Event::new(EventType::SpamComplaint, &c).is_final());
        assert!(Event::new(EventType::ListUnsubscribe, &c).is_feedback());
    }

    #[test]
    fn out_of_range_time_does_not_panic() {
        assert_eq!(format_timestamp(u64::MAX), "1970-01-01T00:00:00.000Z");
    }
}
