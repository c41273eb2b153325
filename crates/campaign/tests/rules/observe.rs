//! Decoding MTA events (SPEC §2.10, §3.4; issue 9 item 9).

use crate::support::*;
use cartero_bounce::{BounceClass, FailureType, Qualifier, Reason};
use cartero_campaign::model::{DeliveryId, LogId};
use cartero_campaign::observe::{self, Blame, Kind, MAX_TEXT, RowRef, Skip};
use cartero_events::{Event, EventType};
use serde_json::json;

fn decode(e: &Event) -> Result<observe::Observation, Skip> {
    observe::observe(e, &Qualifier::default())
}

fn qual(e: &Event) -> (FailureType, Reason) {
    let f = obs(e).failure.unwrap();
    (f.r#type, f.reason)
}

#[test]
fn queue_events_name_their_row_kind_and_time() {
    let o = obs(&event(EventType::Reception, T0 + 123));
    assert_eq!(
        o.row,
        RowRef::Log {
            delivery: DeliveryId(DELIVERY),
            log: LogId(LOG)
        }
    );
    assert_eq!(o.kind, Kind::Reception);
    assert_eq!(o.at, T0 + 123);
    assert_eq!(o.message_id.as_deref(), Some(MESSAGE));
    assert!(o.failure.is_none());
    for (t, k) in [
        (EventType::Delivery, Kind::Delivery),
        (EventType::Delay, Kind::Delay),
        (EventType::Bounce, Kind::Bounce),
        (EventType::Expiration, Kind::Expiration),
        (EventType::OutOfBand, Kind::OutOfBand),
        (EventType::SpamComplaint, Kind::SpamComplaint),
        (EventType::ListUnsubscribe, Kind::ListUnsubscribe),
    ] {
        assert_eq!(obs(&event(t, T0)).kind, k, "{t:?}");
    }
}

#[test]
fn log_id_may_be_a_decimal_string_and_delivery_id_comes_from_metadata_too() {
    let mut e = event(EventType::Delivery, T0);
    e.delivery_id = None;
    e.metadata.insert("log_id".into(), json!("42"));
    assert_eq!(
        obs(&e).row,
        RowRef::Log {
            delivery: DeliveryId(DELIVERY),
            log: LogId(LOG)
        }
    );
}

#[test]
fn inmail_events_without_metadata_are_found_by_message_id() {
    for t in [
        EventType::OutOfBand,
        EventType::SpamComplaint,
        EventType::ListUnsubscribe,
        EventType::Bounce,
    ] {
        assert_eq!(
            obs(&inmail(t, T0)).row,
            RowRef::Message {
                message_id: MESSAGE.into()
            },
            "{t:?}"
        );
    }
    // A queue event without our metadata is another injector's message.
    assert!(matches!(
        decode(&inmail(EventType::Delivery, T0)),
        Err(Skip::NotOurs(_))
    ));
}

#[test]
fn other_injectors_and_other_event_types_are_skipped_not_errors() {
    let mut e = event(EventType::Delivery, T0);
    e.delivery_id = Some("d-1".into());
    assert!(matches!(decode(&e), Err(Skip::NotOurs(_))));
    let mut e = event(EventType::Delivery, T0).delivery_id("7");
    e.metadata.insert("log_id".into(), json!({"x": 1}));
    assert!(matches!(decode(&e), Err(Skip::Unreadable(_))));
    for bad in [
        json!(1.5),
        json!(true),
        json!("-"),
        json!("+4"),
        json!(u64::MAX),
    ] {
        e.metadata.insert("log_id".into(), bad.clone());
        assert!(matches!(decode(&e), Err(Skip::Unreadable(_))), "{bad}");
    }
    for t in [EventType::Shaping, EventType::PolicyRejection] {
        assert_eq!(decode(&event(t, T0)), Err(Skip::NotForTheLog(t)));
    }
}

#[test]
fn time_falls_back_to_the_event_id_and_unreadable_time_is_typed() {
    let mut e = event(EventType::Delay, T0 + 5);
    e.timestamp = "yesterday".into();
    assert_eq!(obs(&e).at, T0 + 5);
    e.event_id = "zz".into();
    assert!(matches!(decode(&e), Err(Skip::Unreadable(_))));
    e.event_id = String::new();
    e.timestamp = "2024-05-01T12:00:00.000Z".into();
    assert!(matches!(decode(&e), Err(Skip::Unreadable(_))));
    let mut e = event(EventType::Delay, T0);
    e.timestamp = "1969-12-31T23:59:59Z".into();
    assert!(matches!(decode(&e), Err(Skip::Unreadable(_))));
    // An offset is honoured.
    e.timestamp = "2024-05-01T14:00:00.250+02:00".into();
    assert_eq!(obs(&e).at, T0 + 250);
}

#[test]
fn failures_qualify_per_spec_table_with_transient_never_hard() {
    let q = |t, class| qual(&failure(t, T0, class, "reply"));
    assert_eq!(
        q(EventType::Bounce, 10),
        (FailureType::Hard, Reason::UserUnknown)
    );
    assert_eq!(
        q(EventType::Delay, 22),
        (FailureType::Soft, Reason::MailboxFull)
    );
    // A 4xx the classifier calls "invalid recipient" is still retried: soft.
    assert_eq!(
        q(EventType::Delay, 10),
        (FailureType::Soft, Reason::UserUnknown)
    );
    assert_eq!(
        q(EventType::Expiration, 30),
        (FailureType::Soft, Reason::UserUnknown)
    );
    assert_eq!(
        q(EventType::Expiration, 24),
        (FailureType::Soft, Reason::Unreachable)
    );
    assert_eq!(
        q(EventType::Bounce, 25),
        (FailureType::Ignored, Reason::Refused)
    );
    let f = obs(&failure(
        EventType::Bounce,
        T0,
        10,
        "550 5.1.1 no such user",
    ))
    .failure
    .unwrap();
    assert_eq!(f.class, Some(BounceClass(10)));
    assert_eq!(f.text, "550 5.1.1 no such user");
    assert_eq!(f.rule, "test:class-10");
}

#[test]
fn class_21_is_hard_only_when_the_dns_failure_is_permanent() {
    // The MTA reports NXDOMAIN / Null MX as a class-21 `bounce`, SERVFAIL as a `delay`.
    assert_eq!(
        qual(&failure(EventType::Bounce, T0, 21, "domain not found")),
        (FailureType::Hard, Reason::InvalidDomain)
    );
    assert_eq!(
        qual(&failure(EventType::Delay, T0, 21, "servfail")),
        (FailureType::Soft, Reason::InvalidDomain)
    );
    let dsn = inmail(EventType::OutOfBand, T0)
        .bounce_class(21)
        .enhanced_code("5.1.10");
    assert_eq!(qual(&dsn), (FailureType::Hard, Reason::InvalidDomain));
    let dsn = inmail(EventType::OutOfBand, T0)
        .bounce_class(21)
        .enhanced_code("4.4.3");
    assert_eq!(qual(&dsn), (FailureType::Soft, Reason::InvalidDomain));
}

#[test]
fn operator_overrides_apply_to_synchronous_failures() {
    let qz: Qualifier =
        toml::from_str("\"22\" = { type = \"hard\", reason = \"mailbox_full\" }\n").unwrap();
    let f = observe::observe(&failure(EventType::Bounce, T0, 22, "full"), &qz)
        .unwrap()
        .failure
        .unwrap();
    assert_eq!(
        (f.r#type, f.reason),
        (FailureType::Hard, Reason::MailboxFull)
    );
}

#[test]
fn inmail_decision_wins_for_out_of_band_but_not_from_injection_metadata() {
    let mut dsn = inmail(EventType::OutOfBand, T0).bounce_class(40);
    dsn.metadata.insert("type".into(), json!("hard"));
    dsn.metadata
        .insert("failure_reason".into(), json!("account_disabled"));
    dsn.metadata
        .insert("decided_by".into(), json!("inbound_rule"));
    assert_eq!(qual(&dsn), (FailureType::Hard, Reason::AccountDisabled));
    // The same keys on a queue event come from whoever injected: not trusted.
    let mut e = failure(EventType::Delay, T0, 40, "try later");
    e.metadata.insert("type".into(), json!("hard"));
    e.metadata
        .insert("failure_reason".into(), json!("account_disabled"));
    assert_eq!(qual(&e), (FailureType::Soft, Reason::Unreachable));
}

#[test]
fn complaints_and_unsubscribes_denylist() {
    assert_eq!(
        qual(&inmail(EventType::SpamComplaint, T0)),
        (FailureType::Hard, Reason::Denylisted)
    );
    assert_eq!(
        qual(&inmail(EventType::ListUnsubscribe, T0).bounce_class(90)),
        (FailureType::Hard, Reason::Denylisted)
    );
}

#[test]
fn auto_replies_are_not_failures() {
    for class in [60, 100] {
        let o = obs(&inmail(EventType::OutOfBand, T0).bounce_class(class));
        assert_eq!(o.kind, Kind::AutoReply);
        assert_eq!(o.failure.unwrap().r#type, FailureType::Ignored);
    }
}

#[test]
fn replies_about_the_sender_or_our_sending_never_count_against_the_recipient() {
    let cases: [(Event, Blame); 7] = [
        (
            failure(EventType::Bounce, T0, 10, "553 bad sender").enhanced_code("5.1.8"),
            Blame::Sender,
        ),
        (
            failure(
                EventType::Bounce,
                T0,
                10,
                "553 5.1.7 The sender address is invalid",
            ),
            Blame::Sender,
        ),
        (
            failure(
                EventType::Delay,
                T0,
                20,
                "450 4.7.1 <x@ours.example>: Sender address rejected: Domain not found",
            ),
            Blame::Sender,
        ),
        (
            failure(EventType::Bounce, T0, 1, "550 5.7.26 DMARC policy").enhanced_code("5.7.26"),
            Blame::Sender,
        ),
        (
            failure(EventType::Bounce, T0, 51, "554 blocked using zen.example"),
            Blame::Sending,
        ),
        (
            failure(EventType::Bounce, T0, 1, "550 5.7.25 no PTR for your IP"),
            Blame::Sending,
        ),
        (
            failure(EventType::Bounce, T0, 10, "550 5.1.1 no such user"),
            Blame::Recipient,
        ),
    ];
    for (e, blame) in cases {
        let o = obs(&e);
        assert_eq!(o.blame, blame, "{:?}", e.raw_reason);
        let f = o.failure.unwrap();
        if blame == Blame::Recipient {
            assert_eq!(f.r#type, FailureType::Hard);
        } else {
            assert_eq!(
                (f.r#type, f.reason),
                (FailureType::Ignored, Reason::Refused)
            );
        }
    }
    for class in 50..=54 {
        assert_eq!(
            obs(&failure(EventType::Delay, T0, class, "421 try later")).blame,
            Blame::Sending,
            "{class}"
        );
    }
}

#[test]
fn reply_texts_are_clipped_on_a_character_boundary() {
    let long = "é".repeat(MAX_TEXT);
    let o = obs(&failure(EventType::Delay, T0, 20, &long));
    assert!(o.text.len() <= MAX_TEXT && o.text.len() >= MAX_TEXT - 1);
    assert!(o.text.chars().all(|c| c == 'é'));
    assert_eq!(o.failure.unwrap().text, o.text);
}
