//! KPIs (SPEC §3.3): the table's steps in order, the EFS and legacy views, the final flag.

use crate::support::*;
use cartero_bounce::Reason;
use cartero_campaign::analysis::Exclusion;
use cartero_campaign::kpi::{self, Figure};
use cartero_campaign::model::{Kpis, LogId, LogRow, LogStatus};
use cartero_events::{Event, EventType};

/// Four rows as analysis leaves them, plus one Ignored (duplicate).
fn delivery() -> (Vec<LogRow>, Kpis) {
    let mut kpis = Kpis::default();
    let mut rows = Vec::new();
    for i in 0..4 {
        let mut r = row();
        r.id = LogId(i);
        r.address = format!("u{i}@example.com");
        kpi::add_row(&mut kpis, &r);
        rows.push(r);
    }
    let mut ignored = row();
    ignored.id = LogId(99);
    ignored.status = LogStatus::Ignored;
    ignored.failure = Some(Exclusion::Duplicate.failure());
    kpi::add_row(&mut kpis, &ignored);
    (rows, kpis)
}

/// Sends `e` (rewritten for row `i`) through the log and into the KPIs.
fn step(rows: &mut [LogRow], kpis: &mut Kpis, i: usize, mut e: Event) {
    let r = &mut rows[i];
    e.metadata
        .insert("log_id".into(), serde_json::json!(r.id.0));
    e.rcpt_to = Some(r.address.clone());
    e.message_id = Some(format!("{:016x}", r.id.0));
    let t = feed(r, &e);
    kpi::apply(kpis, &t.delta, &r.domain);
}

fn success(k: &Kpis) -> f64 {
    kpi::efs(k, T0, None).success.rate
}

fn legacy(k: &Kpis) -> f64 {
    kpi::legacy(k, T0, None).success.rate
}

fn sums(k: &Kpis) {
    assert_eq!(k.pending + k.taken + k.sent + k.failed, k.to_deliver);
}

#[test]
fn the_spec_table_in_order() {
    let (mut rows, mut k) = delivery();
    assert_eq!((k.to_deliver, k.pending, k.ignored), (4, 4, 1));
    assert_eq!(
        k.ignored_by_reason.get(&Reason::Duplicate.value()),
        Some(&1)
    );
    assert_eq!(success(&k), 0.0);
    assert_eq!(legacy(&k), 0.0);

    // MTA acknowledged: Taken, EFS success unchanged at 0 %, legacy at 100 %.
    for i in 0..4 {
        step(&mut rows, &mut k, i, event(EventType::Reception, T0));
    }
    assert_eq!((k.pending, k.taken), (0, 4));
    assert_eq!(success(&k), 0.0);
    assert_eq!(legacy(&k), 100.0);
    sums(&k);

    // Delivered: Sent, success goes up.
    step(&mut rows, &mut k, 0, event(EventType::Delivery, T0 + SEC));
    assert_eq!(success(&k), 25.0);
    assert_eq!(k.sent_by_domain.get("example.com"), Some(&1));

    // Hard bounce: Failed with its reason, success unchanged; legacy goes down.
    step(
        &mut rows,
        &mut k,
        1,
        failure(EventType::Bounce, T0 + SEC, 10, "550 5.1.1 unknown"),
    );
    assert_eq!((k.failed, k.hard_bounces), (1, 1));
    assert_eq!(
        k.failed_by_reason.get(&Reason::UserUnknown.value()),
        Some(&1)
    );
    assert_eq!(success(&k), 25.0);
    assert_eq!(legacy(&k), 75.0);

    // Soft bounce: status unchanged, only the reason; success unchanged.
    step(
        &mut rows,
        &mut k,
        2,
        failure(EventType::Delay, T0 + HOUR, 22, "452 full"),
    );
    assert_eq!((k.taken, k.soft_bounces), (2, 1));
    assert_eq!(success(&k), 25.0);
    assert_eq!(legacy(&k), 75.0);
    step(
        &mut rows,
        &mut k,
        3,
        failure(EventType::Delay, T0 + HOUR, 20, "451 later"),
    );

    // The retry succeeds: Sent, success goes up.
    step(
        &mut rows,
        &mut k,
        2,
        event(EventType::Delivery, T0 + 2 * HOUR),
    );
    assert_eq!(success(&k), 50.0);

    // Retries end: Failed, success unchanged, legacy down.
    step(
        &mut rows,
        &mut k,
        3,
        failure(EventType::Expiration, T0 + 84 * HOUR, 20, "451 later"),
    );
    assert_eq!(success(&k), 50.0);
    assert_eq!(legacy(&k), 50.0);
    assert!(kpi::efs(&k, T0, None).r#final, "every row is final");

    // Asynchronous bounce after Sent: Failed, success goes down.
    let mut dsn = inmail(EventType::OutOfBand, T0 + 3 * HOUR).bounce_class(10);
    dsn.metadata
        .insert("delivery_id".into(), serde_json::json!("7"));
    step(&mut rows, &mut k, 0, dsn);
    assert_eq!(success(&k), 25.0);
    assert_eq!(legacy(&k), 25.0);
    assert_eq!(k.failed_by_domain.get("example.com"), Some(&3));

    // A complaint about the delivered one.
    step(
        &mut rows,
        &mut k,
        2,
        inmail(EventType::SpamComplaint, T0 + DAY),
    );
    assert_eq!(k.complaints, 1);
    sums(&k);

    // Recounting every row from scratch gives the same counters.
    let mut fresh = Kpis::default();
    for r in &rows {
        kpi::add_row(&mut fresh, r);
    }
    let mut ignored = row();
    ignored.status = LogStatus::Ignored;
    ignored.failure = Some(Exclusion::Duplicate.failure());
    kpi::add_row(&mut fresh, &ignored);
    assert_eq!(fresh, k);
}

#[test]
fn replayed_events_move_no_counter() {
    let (mut rows, mut k) = delivery();
    let e = failure(EventType::Bounce, T0, 10, "550");
    step(&mut rows, &mut k, 0, e.clone());
    let before = k.clone();
    step(&mut rows, &mut k, 0, e);
    step(&mut rows, &mut k, 0, event(EventType::Delay, T0 - SEC));
    assert_eq!(k.failed, before.failed);
    assert_eq!(k.hard_bounces, 1);
}

#[test]
fn rates_never_divide_by_zero() {
    let k = Kpis::default();
    let v = kpi::efs(&k, T0, None);
    assert_eq!(
        v.success,
        Figure {
            count: 0,
            rate: 0.0
        }
    );
    assert_eq!(v.hard_bounces.rate, 0.0);
    assert!(v.r#final);
    let l = kpi::legacy(&k, T0, None);
    assert_eq!(l.success.rate, 0.0);
    // Counters that drifted (a store bug) never underflow.
    let mut k = Kpis::default();
    let mut r = row();
    r.status = LogStatus::Taken;
    let t = feed(&mut r, &event(EventType::Delivery, T0));
    kpi::apply(&mut k, &t.delta, &r.domain);
    assert_eq!((k.taken, k.sent), (0, 1));
}

#[test]
fn final_when_every_row_is_final_or_the_validity_ended() {
    let (mut rows, mut k) = delivery();
    for i in 0..4 {
        step(&mut rows, &mut k, i, event(EventType::Reception, T0));
    }
    let end = T0 + 5 * DAY;
    assert!(!kpi::efs(&k, end - 1, Some(end)).r#final);
    assert!(kpi::efs(&k, end, Some(end)).r#final);
    assert!(kpi::legacy(&k, end, Some(end)).r#final);
    assert!(!kpi::is_final(&k, T0, None));
}

#[test]
fn views_show_reasons_with_labels_and_domains_by_volume() {
    let (mut rows, mut k) = delivery();
    step(
        &mut rows,
        &mut k,
        0,
        failure(EventType::Bounce, T0, 22, "552 full"),
    );
    let v = kpi::efs(&k, T0, None);
    assert_eq!(v.failed_by_reason.len(), 1);
    assert_eq!(v.failed_by_reason[0].reason, 5);
    assert_eq!(v.failed_by_reason[0].label, "Mailbox full");
    assert_eq!(v.failed_by_reason[0].figure.rate, 25.0);
    assert_eq!(v.ignored_by_reason[0].label, "Duplicate");
    assert_eq!(kpi::reason_label(200), "Unknown");
    rows[1].domain = "other.example".into();
    step(&mut rows, &mut k, 1, event(EventType::Delivery, T0));
    step(&mut rows, &mut k, 2, event(EventType::Delivery, T0));
    let d = kpi::by_domain(&k, 10);
    assert_eq!(d[0].domain, "example.com");
    assert_eq!((d[0].sent, d[0].failed), (1, 1));
    assert_eq!(d[1].domain, "other.example");
    assert_eq!(kpi::by_domain(&k, 1).len(), 1);
    let json = serde_json::to_value(&v).unwrap();
    assert_eq!(json["failed_by_reason"][0]["rate"], 25.0);
    assert_eq!(json["final"], false);
}
