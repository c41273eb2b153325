//! Events and rows for the rule tests, at exact times.

use cartero_bounce::Qualifier;
use cartero_campaign::log::{self, Transition};
use cartero_campaign::model::{DeliveryId, Feedback, LogId, LogRow, LogStatus};
use cartero_campaign::observe::{self, DELIVERY_ID_KEY, LOG_ID_KEY, Observation};
use cartero_clock::ManualClock;
use cartero_events::{Event, EventType};
use serde_json::{Map, json};

/// 2024-05-01T12:00:00.000Z
pub const T0: u64 = 1_714_564_800_000;
pub const SEC: u64 = 1_000;
pub const HOUR: u64 = 3_600 * SEC;
pub const DAY: u64 = 24 * HOUR;

pub const DELIVERY: i64 = 7;
pub const LOG: i64 = 42;
pub const MESSAGE: &str = "0000000100000002";
pub const RCPT: &str = "user@example.com";

/// An event of `kind` stamped at `at` as the MTA's queue emits it: delivery and row ids in
/// the metadata, message id and recipient.
pub fn event(kind: EventType, at: u64) -> Event {
    let clock = ManualClock::new(at);
    let mut meta = Map::new();
    meta.insert(DELIVERY_ID_KEY.into(), json!(DELIVERY.to_string()));
    meta.insert(LOG_ID_KEY.into(), json!(LOG));
    Event::new(kind, &clock)
        .delivery_id(DELIVERY.to_string())
        .metadata(meta)
        .message_id(MESSAGE)
        .rcpt_to(RCPT)
}

/// A failure event of `kind` with a bounce class and a reply.
pub fn failure(kind: EventType, at: u64, class: u16, reply: &str) -> Event {
    let mut e = event(kind, at).bounce_class(class).raw_reason(reply);
    e.reason = Some(format!("test:class-{class}"));
    e
}

/// An inMail event: no injection metadata, only the message id.
pub fn inmail(kind: EventType, at: u64) -> Event {
    Event::new(kind, &ManualClock::new(at))
        .message_id(MESSAGE)
        .rcpt_to(RCPT)
}

pub fn obs(e: &Event) -> Observation {
    observe::observe(e, &Qualifier::default()).unwrap()
}

/// The row the events above name, as analysis leaves it.
pub fn row() -> LogRow {
    LogRow {
        id: LogId(LOG),
        delivery: DeliveryId(DELIVERY),
        recipient: None,
        address: RCPT.into(),
        domain: "example.com".into(),
        status: LogStatus::Pending,
        failure: None,
        message_id: None,
        last_event_at: 0,
        attempts: Vec::new(),
        feedback: Feedback::default(),
    }
}

/// Observes and applies one event.
pub fn feed(row: &mut LogRow, e: &Event) -> Transition {
    log::apply(row, &obs(e))
}
