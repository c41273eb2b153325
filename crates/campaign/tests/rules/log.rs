//! The delivery log state machine (SPEC §3.3): every step of the table, late and duplicate
//! events, equal timestamps, the bounded history.

use crate::support::*;
use cartero_bounce::{FailureType, Reason};
use cartero_campaign::log::{Effect, Mismatch};
use cartero_campaign::model::{LogStatus, MAX_ATTEMPTS_KEPT};
use cartero_campaign::quarantine::Signal;
use cartero_events::EventType;

use LogStatus::*;

fn reason(row: &cartero_campaign::model::LogRow) -> Option<(FailureType, Reason)> {
    row.failure.as_ref().map(|f| (f.r#type, f.reason))
}

#[test]
fn reception_takes_the_row_into_account() {
    let mut r = row();
    let t = feed(&mut r, &event(EventType::Reception, T0));
    assert_eq!((t.effect, t.from, t.to), (Effect::Applied, Pending, Taken));
    assert_eq!(t.signal, Signal::None);
    assert_eq!(r.message_id.as_deref(), Some(MESSAGE));
    assert_eq!(r.last_event_at, T0);
    assert_eq!(r.attempts.len(), 1);
    assert_eq!(r.attempts[0].kind, "reception");
}

#[test]
fn delivery_makes_it_sent_and_tells_the_address() {
    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    let t = feed(
        &mut r,
        &event(EventType::Delivery, T0 + SEC).raw_reason("250 ok"),
    );
    assert_eq!((t.from, t.to), (Taken, Sent));
    assert_eq!(t.signal, Signal::Success { at: T0 + SEC });
    assert_eq!(r.attempts[1].text, "250 ok");
}

#[test]
fn soft_bounce_keeps_the_status_and_updates_only_the_reason() {
    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    let t = feed(
        &mut r,
        &failure(EventType::Delay, T0 + HOUR, 20, "451 later"),
    );
    assert_eq!((t.from, t.to), (Taken, Taken));
    assert_eq!(reason(&r), Some((FailureType::Soft, Reason::Unreachable)));
    assert!(matches!(t.signal, Signal::Soft { at, .. } if at == T0 + HOUR));
    assert!(!t.delta.is_empty(), "the soft bounce counts");
    let t = feed(
        &mut r,
        &failure(EventType::Delay, T0 + 2 * HOUR, 22, "452 full"),
    );
    assert_eq!(t.to, Taken);
    assert_eq!(reason(&r), Some((FailureType::Soft, Reason::MailboxFull)));
    assert_eq!(r.failure.as_ref().unwrap().text, "452 full");
}

#[test]
fn success_after_soft_bounces_is_sent() {
    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    feed(
        &mut r,
        &failure(EventType::Delay, T0 + HOUR, 20, "451 later"),
    );
    let t = feed(&mut r, &event(EventType::Delivery, T0 + 2 * HOUR));
    assert_eq!((t.from, t.to), (Taken, Sent));
    // The last soft reason stays for reading.
    assert_eq!(reason(&r), Some((FailureType::Soft, Reason::Unreachable)));
}

#[test]
fn hard_bounce_expiry_and_async_bounce_fail_the_row() {
    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    let t = feed(
        &mut r,
        &failure(EventType::Bounce, T0 + SEC, 10, "550 5.1.1 unknown"),
    );
    assert_eq!((t.from, t.to), (Taken, Failed));
    assert!(matches!(t.signal, Signal::Hard { .. }));
    assert_eq!(reason(&r), Some((FailureType::Hard, Reason::UserUnknown)));

    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    feed(&mut r, &failure(EventType::Delay, T0 + HOUR, 24, "timeout"));
    let t = feed(
        &mut r,
        &failure(EventType::Expiration, T0 + 84 * HOUR, 24, "timeout"),
    );
    assert_eq!((t.from, t.to), (Taken, Failed));
    assert_eq!(reason(&r), Some((FailureType::Soft, Reason::Unreachable)));
    assert!(matches!(t.signal, Signal::Soft { .. }));

    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    feed(&mut r, &event(EventType::Delivery, T0 + SEC));
    let t = feed(
        &mut r,
        &inmail(EventType::OutOfBand, T0 + HOUR)
            .bounce_class(10)
            .raw_reason("5.1.1 gone"),
    );
    assert_eq!((t.from, t.to), (Sent, Failed));
    assert!(matches!(t.signal, Signal::Hard { .. }));
}

#[test]
fn late_delay_or_reception_never_reverts_sent() {
    let mut r = row();
    feed(&mut r, &event(EventType::Delivery, T0 + 2 * HOUR));
    assert_eq!(r.status, Sent);
    let t = feed(
        &mut r,
        &failure(EventType::Delay, T0 + HOUR, 20, "451 later"),
    );
    assert_eq!((t.effect, t.to), (Effect::Applied, Sent));
    // The success answered that soft error already: the address learns nothing.
    assert_eq!(t.signal, Signal::None);
    let t = feed(&mut r, &event(EventType::Reception, T0));
    assert_eq!(t.to, Sent);
    assert_eq!(r.last_event_at, T0 + 2 * HOUR);
    let kinds: Vec<&str> = r.attempts.iter().map(|a| a.kind.as_str()).collect();
    assert_eq!(kinds, ["reception", "delay", "delivery"], "sorted by time");
}

#[test]
fn older_delivery_never_reverts_failed() {
    let mut r = row();
    feed(
        &mut r,
        &failure(EventType::Bounce, T0 + HOUR, 10, "550 unknown"),
    );
    let t = feed(&mut r, &event(EventType::Delivery, T0 + SEC));
    assert_eq!((t.from, t.to), (Failed, Failed));
    assert!(t.delta.is_empty());
    // A newer one does: an older event never undoes a newer state, in either direction.
    let t = feed(&mut r, &event(EventType::Delivery, T0 + 2 * HOUR));
    assert_eq!((t.from, t.to), (Failed, Sent));
}

#[test]
fn equal_times_a_failure_wins_over_a_delivery_in_any_order() {
    for failure_first in [true, false] {
        for e in [
            failure(EventType::Bounce, T0, 10, "550 unknown"),
            failure(EventType::Expiration, T0, 20, "expired"),
            inmail(EventType::OutOfBand, T0).bounce_class(10),
        ] {
            let mut r = row();
            let d = event(EventType::Delivery, T0);
            if failure_first {
                feed(&mut r, &e);
                feed(&mut r, &d);
            } else {
                feed(&mut r, &d);
                feed(&mut r, &e);
            }
            assert_eq!(r.status, Failed, "{:?} first={failure_first}", e.r#type);
        }
    }
}

#[test]
fn the_same_event_twice_changes_nothing() {
    let mut r = row();
    let e = failure(EventType::Delay, T0, 20, "451");
    feed(&mut r, &e);
    let before = r.clone();
    let t = feed(&mut r, &e);
    assert_eq!(t.effect, Effect::Duplicate);
    assert!(t.delta.is_empty());
    assert_eq!(t.signal, Signal::None);
    assert!(!t.row_changed());
    assert_eq!(r, before);
}

#[test]
fn ignored_rows_never_change() {
    let mut r = row();
    r.status = Ignored;
    let before = r.clone();
    for e in [
        event(EventType::Reception, T0),
        event(EventType::Delivery, T0),
        failure(EventType::Bounce, T0, 10, "x"),
    ] {
        assert_eq!(feed(&mut r, &e).effect, Effect::RowIgnored);
    }
    assert_eq!(r, before);
}

#[test]
fn events_about_another_row_message_or_recipient_are_refused() {
    let mut r = row();
    r.id = cartero_campaign::model::LogId(LOG + 1);
    assert_eq!(
        feed(&mut r, &event(EventType::Delivery, T0)).effect,
        Effect::Mismatch(Mismatch::Row)
    );
    let mut r = row();
    r.message_id = Some("00000000000000ff".into());
    assert_eq!(
        feed(&mut r, &event(EventType::Delivery, T0)).effect,
        Effect::Mismatch(Mismatch::MessageId)
    );
    let mut r = row();
    let e = event(EventType::Delivery, T0).rcpt_to("other@example.com");
    assert_eq!(
        feed(&mut r, &e).effect,
        Effect::Mismatch(Mismatch::Recipient)
    );
    assert_eq!(r, row());
    // Case differences are not another recipient.
    let e = event(EventType::Delivery, T0).rcpt_to("User@EXAMPLE.com");
    assert_eq!(feed(&mut r, &e).effect, Effect::Applied);
}

#[test]
fn complaints_and_unsubscribes_mark_the_row_once_and_keep_it_sent() {
    let mut r = row();
    feed(&mut r, &event(EventType::Delivery, T0));
    let t = feed(&mut r, &inmail(EventType::SpamComplaint, T0 + DAY));
    assert_eq!(t.to, Sent);
    assert!(r.feedback.complained);
    assert!(!t.delta.is_empty());
    assert!(matches!(t.signal, Signal::Complaint { .. }));
    // A second report at another time: the row is already counted.
    let t = feed(&mut r, &inmail(EventType::SpamComplaint, T0 + 2 * DAY));
    assert_eq!(t.effect, Effect::Applied);
    assert!(t.delta.is_empty());
    let t = feed(
        &mut r,
        &inmail(EventType::ListUnsubscribe, T0 + DAY).bounce_class(90),
    );
    assert!(r.feedback.unsubscribed);
    assert!(matches!(t.signal, Signal::Unsubscribe { .. }));
    assert_eq!(r.last_event_at, T0 + 2 * DAY);
}

#[test]
fn auto_replies_are_kept_in_the_history_and_change_nothing_else() {
    let mut r = row();
    feed(&mut r, &event(EventType::Delivery, T0));
    let t = feed(
        &mut r,
        &inmail(EventType::OutOfBand, T0 + HOUR)
            .bounce_class(60)
            .raw_reason("Out of office"),
    );
    assert_eq!(t.to, Sent);
    assert!(t.delta.is_empty());
    assert_eq!(t.signal, Signal::None);
    assert_eq!(r.attempts.last().unwrap().kind, "auto_reply");
}

#[test]
fn failures_blamed_on_the_sender_fail_the_row_but_not_the_address() {
    let mut r = row();
    let e = failure(EventType::Bounce, T0, 10, "553 5.1.8 sender domain unknown");
    let t = feed(&mut r, &e);
    assert_eq!(t.to, Failed);
    assert_eq!(reason(&r), Some((FailureType::Ignored, Reason::Refused)));
    assert_eq!(t.signal, Signal::None);
}

#[test]
fn history_is_bounded_and_keeps_what_decides_the_row() {
    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    feed(&mut r, &event(EventType::Delivery, T0 + SEC));
    for i in 0..14 {
        let e = inmail(EventType::SpamComplaint, T0 + HOUR + i * SEC);
        feed(&mut r, &e);
    }
    assert_eq!(r.attempts.len(), MAX_ATTEMPTS_KEPT);
    assert!(r.attempts.iter().any(|a| a.kind == "delivery"));
    assert!(r.attempts.iter().all(|a| a.kind != "reception"));
    assert!(
        r.attempts.windows(2).all(|w| w[0].at <= w[1].at),
        "newest last"
    );
    // The delivery is still there to compare with: an older bounce cannot fail the row.
    let t = feed(&mut r, &failure(EventType::Bounce, T0, 10, "550"));
    assert_eq!(t.to, Sent);
    assert_eq!(r.attempts.len(), MAX_ATTEMPTS_KEPT);

    // A row that retries until expiry keeps its newest attempts and the expiry.
    let mut r = row();
    feed(&mut r, &event(EventType::Reception, T0));
    for i in 1..=14 {
        feed(&mut r, &failure(EventType::Delay, T0 + i * HOUR, 20, "451"));
    }
    feed(
        &mut r,
        &failure(EventType::Expiration, T0 + 84 * HOUR, 20, "451"),
    );
    assert_eq!(r.attempts.len(), MAX_ATTEMPTS_KEPT);
    assert_eq!(r.attempts.last().unwrap().kind, "expiration");
    assert_eq!(r.attempts[0].at, T0 + 6 * HOUR);
    assert_eq!(r.status, Failed);
}

#[test]
fn any_mta_event_proves_the_mta_took_the_message() {
    // Reception lost or late: a delay still moves Pending to Taken.
    let mut r = row();
    let t = feed(&mut r, &failure(EventType::Delay, T0, 20, "451"));
    assert_eq!((t.from, t.to), (Pending, Taken));
}
