//! Scenarios decided by the receiving server's SMTP replies.

use crate::support::DEADLINE;
use crate::{Backend, Opts, Scenario, attempt_kinds, deliver_one, next_delivery_ignores, row_line};
use std::collections::BTreeSet;

const ANA: &str = "ana@dest.test";

/// 2xx: Pending → Taken → Sent; Success goes from 0 % to 100 %.
pub fn accepted_goes_pending_taken_sent(backend: Backend) {
    let Some(s) = Scenario::start(backend, Opts::default()) else {
        return;
    };
    let (id, msg) = deliver_one(&s, ANA);
    let row = s.row(&id, ANA);
    assert_eq!(attempt_kinds(&row), ["delivery"], "{row}");
    assert_eq!(msg.header("subject").as_deref(), Some("Hi Ana0"));
    assert_eq!(s.address_line(ANA), "valid errors 0 reason -");
}

/// 5xx user unknown: Taken → Failed (Hard, reason 1 User unknown); Success stays 0 %; the
/// address goes to Quarantine, and a second delivery excludes it at analysis (reason 9).
pub fn user_unknown_fails_hard_and_quarantines(backend: Backend) {
    let Some(s) = Scenario::start(backend, Opts::default()) else {
        return;
    };
    s.sink
        .set_dot_reply(Some("550 5.1.1 <ana@dest.test>: user unknown"));
    let id = s.prepare(&[ANA], None);
    assert_eq!(row_line(&s.row(&id, ANA)), "pending");
    s.sink.set_hold(true);
    s.start_delivery(&id);
    s.wait_row(&id, ANA, "taken");
    assert!(
        s.sink.wait_data_seen(1, DEADLINE),
        "never reached the receiver"
    );
    s.wait_kpis(
        &id,
        "running P0 T1 S0 F0 I0 | hard 0 soft 0 compl 0 unsub 0 newq 0 | success 0% legacy 100% final false",
    );
    s.sink.set_hold(false);
    let row = s.wait_row(&id, ANA, "failed hard/user_unknown/10");
    let text = row["failure"]["text"].as_str().unwrap_or("");
    assert!(text.contains("550 5.1.1"), "the reply is kept: {row}");
    assert_eq!(attempt_kinds(&row), ["bounce"], "{row}");
    let st = s.wait_kpis(
        &id,
        "finished P0 T0 S0 F1 I0 | hard 1 soft 0 compl 0 unsub 0 newq 1 | success 0% legacy 0% final true",
    );
    assert_eq!(st["kpis"]["failed_by_reason"]["1"], 1, "{st}");
    assert_eq!(
        s.address_line(ANA),
        "quarantine errors 0 reason user_unknown"
    );
    s.sink.set_dot_reply(None);
    next_delivery_ignores(&s, ANA, "quarantine", 9);
}

/// 4xx, then another 4xx, then 2xx: the row stays Taken while each soft bounce updates its
/// failure, then Sent with the last soft failure still readable; Success goes up only then.
/// The address has errors during the bounces and is Valid again after the success.
pub fn soft_bounces_keep_taken_then_sent(backend: Backend) {
    let Some(s) = Scenario::start(backend, Opts::default()) else {
        return;
    };
    s.sink.set_temp_fail(true);
    let id = s.prepare(&[ANA], None);
    assert_eq!(row_line(&s.row(&id, ANA)), "pending");
    s.start_delivery(&id);
    let row = s.wait_row(&id, ANA, "taken soft/unreachable/20");
    assert!(
        row["failure"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("451 4.3.0")),
        "{row}"
    );
    let during = "running P0 T1 S0 F0 I0 | hard 0 soft 1 compl 0 unsub 0 newq 0 | success 0% legacy 100% final false";
    s.wait_kpis(&id, during);
    s.wait_address(ANA, "with_errors errors 1 reason -");

    s.sink.set_rcpt_reply(Some("452 4.2.2 mailbox full"));
    s.wait_row(&id, ANA, "taken soft/mailbox_full/22");
    assert_eq!(s.kpis(&id), during);

    s.sink.set_rcpt_reply(None);
    let row = s.wait_row(&id, ANA, "sent soft/mailbox_full/22");
    assert!(
        row["failure"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("452 4.2.2")),
        "the last soft failure stays: {row}"
    );
    // The history keeps the newest attempts: on a slow machine many retries push the first
    // delays out, never the delivery.
    let kinds = attempt_kinds(&row);
    assert_eq!(kinds.last().map(String::as_str), Some("delivery"), "{row}");
    assert!(kinds.iter().filter(|k| *k == "delay").count() >= 2, "{row}");
    s.wait_kpis(
        &id,
        "finished P0 T0 S1 F0 I0 | hard 0 soft 1 compl 0 unsub 0 newq 0 | success 100% legacy 100% final true",
    );
    s.wait_address(ANA, "valid errors 0 reason -");
    assert_eq!(s.received(ANA).len(), 1);
}

/// 4xx until the validity ends: the row stays Taken, then the MTA's expiry fails it with the
/// class of the last transient failure (a full mailbox after a greylisting-like reply).
pub fn soft_bounces_until_expiry_fail_with_the_last_class(backend: Backend) {
    let Some(s) = Scenario::start(backend, Opts::default()) else {
        return;
    };
    s.sink.set_temp_fail(true);
    // Long enough for the first retry to meet the second reply, short for the test.
    let id = s.prepare(&[ANA], Some("10s"));
    assert_eq!(row_line(&s.row(&id, ANA)), "pending");
    s.start_delivery(&id);
    s.wait_row(&id, ANA, "taken soft/unreachable/20");
    s.sink.set_rcpt_reply(Some("452 4.2.2 mailbox full"));
    s.wait_row(&id, ANA, "taken soft/mailbox_full/22");
    s.wait_kpis(
        &id,
        "running P0 T1 S0 F0 I0 | hard 0 soft 1 compl 0 unsub 0 newq 0 | success 0% legacy 100% final false",
    );
    let row = s.wait_row(&id, ANA, "failed soft/mailbox_full/22");
    assert!(
        row["failure"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("452 4.2.2")),
        "{row}"
    );
    assert_eq!(
        attempt_kinds(&row).last().map(String::as_str),
        Some("expiration"),
        "{row}"
    );
    let st = s.wait_kpis(
        &id,
        "finished P0 T0 S0 F1 I0 | hard 0 soft 1 compl 0 unsub 0 newq 0 | success 0% legacy 0% final true",
    );
    assert_eq!(st["kpis"]["failed_by_reason"]["5"], 1, "{st}");
    assert!(s.received(ANA).is_empty());
}

/// A stop while the receiver stalls: the rows the MTA had not taken fail as
/// `delivery:stopped` (not charged to the addresses, never sent), the rows it had taken still
/// end Sent once the receiver answers.
pub fn stop_while_the_receiver_stalls(backend: Backend) {
    const N: usize = 300;
    // One row per hand-over, so the stop lands with rows still Pending.
    let opts = Opts {
        campaign: "batch = 1\nsenders = 1\n",
        ..Opts::default()
    };
    let Some(s) = Scenario::start(backend, opts) else {
        return;
    };
    let addresses: Vec<String> = (0..N).map(|i| format!("user{i}@dest.test")).collect();
    let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let id = s.prepare(&refs, None);
    s.sink.set_hold(true);
    s.start_delivery(&id);
    let taken_some = crate::support::wait_until(DEADLINE, || {
        s.status(&id)["kpis"]["taken"].as_u64() >= Some(3)
    });
    assert!(taken_some, "nothing taken: {}", s.kpis(&id));
    s.json(&["delivery", "stop", &id]);
    let st = s.status(&id);
    let k = &st["kpis"];
    let (taken, failed) = (k["taken"].as_u64().unwrap(), k["failed"].as_u64().unwrap());
    assert_eq!(
        (k["pending"].as_u64(), k["sent"].as_u64()),
        (Some(0), Some(0)),
        "{st}"
    );
    assert_eq!(taken + failed, N as u64, "{st}");
    println!("stopped with {taken} rows taken and {failed} cancelled of {N}");
    assert!(failed > 0, "every row was taken before the stop: {st}");
    assert_eq!(st["delivery"]["state"], "stopped", "{st}");

    let stopped: Vec<_> = s.rows(&id, Some("failed"));
    assert_eq!(stopped.len() as u64, failed);
    for r in &stopped {
        assert_eq!(row_line(r), "failed ignored/not_defined/-", "{r}");
        assert_eq!(r["failure"]["rule"], "delivery:stopped", "{r}");
    }
    s.sink.set_hold(false);
    let st = s.wait_kpis(
        &id,
        &format!(
            "stopped P0 T0 S{taken} F{failed} I0 | hard 0 soft 0 compl 0 unsub 0 newq 0 | success {:.0}% legacy {:.0}% final true",
            taken as f64 * 100.0 / N as f64,
            taken as f64 * 100.0 / N as f64,
        ),
    );
    let sent: BTreeSet<String> = s
        .rows(&id, Some("sent"))
        .iter()
        .map(|r| r["address"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(sent.len() as u64, taken, "{st}");
    assert!(s.sink.wait_accepted(sent.len(), DEADLINE));
    let received: BTreeSet<String> = s
        .sink
        .accepted()
        .into_iter()
        .flat_map(|m| m.rcpts)
        .collect();
    assert_eq!(received, sent, "the receiver got exactly the rows Sent");
    let first_stopped = stopped[0]["address"].as_str().unwrap_or("");
    assert_eq!(s.address_line(first_stopped), "never seen");
}
