//! Analysis (SPEC §3.2): exclusions in order, with their reasons and counts.

use crate::support::*;
use cartero_bounce::{FailureType, Reason};
use cartero_campaign::analysis::{self, Analyzer, Candidate, Counts, Exclusion};
use cartero_campaign::model::{AddressState, DeliveryId, LogId, LogStatus, RecipientId};
use cartero_campaign::quarantine::{self, QuarantineConfig, Signal};
use std::collections::HashMap;

fn c(address: &str) -> Candidate<u32> {
    Candidate {
        address: address.into(),
        attributes: 0,
    }
}

fn states() -> HashMap<String, AddressState> {
    let cfg = QuarantineConfig::default();
    let mut m = HashMap::new();
    let hard = |at| Signal::Hard {
        at,
        failure: cartero_campaign::model::FailureInfo {
            r#type: FailureType::Hard,
            reason: Reason::UserUnknown,
            class: None,
            text: "550".into(),
            rule: String::new(),
        },
    };
    let mut q = quarantine::new_state("q@example.com");
    quarantine::apply(&mut q, &hard(T0), T0, &cfg);
    m.insert(q.address.clone(), q);
    let mut d = quarantine::new_state("d@example.com");
    let complaint = Signal::Complaint {
        at: T0,
        failure: Exclusion::Denylisted.failure(),
    };
    quarantine::apply(&mut d, &complaint, T0, &cfg);
    m.insert(d.address.clone(), d);
    m.insert(
        "ok@example.com".into(),
        quarantine::new_state("ok@example.com"),
    );
    m
}

#[test]
fn each_exclusion_has_its_reason_and_count() {
    let known = states();
    let input = [
        "ok@example.com",
        "   ",
        "not an address",
        " OK@EXAMPLE.COM", // another local part case: not a duplicate
        "ok@EXAMPLE.com ", // the domain's case does not matter: a duplicate
        "Q@example.com",   // record keys are lower-case
        "d@example.com",
        "new@example.org",
    ];
    let mut a = analysis::analyze(
        input.iter().map(|s| c(s)),
        |k: &str| known.get(k).cloned(),
        T0 + DAY,
        &QuarantineConfig::default(),
    );
    let got: Vec<Option<Exclusion>> = a.by_ref().map(|d| d.exclusion).collect();
    assert_eq!(
        got,
        [
            None,
            Some(Exclusion::NoAddress),
            Some(Exclusion::InvalidSyntax(
                cartero_address::AddressError::MissingAt
            )),
            None,
            Some(Exclusion::Duplicate),
            Some(Exclusion::Quarantine),
            Some(Exclusion::Denylisted),
            None,
        ]
    );
    assert_eq!(
        *a.counts(),
        Counts {
            candidates: 8,
            to_deliver: 3,
            no_address: 1,
            invalid_syntax: 1,
            duplicate: 1,
            quarantine: 1,
            denylisted: 1,
        }
    );
    assert_eq!(a.counts().ignored(), 5);
    let reasons: Vec<u8> = [
        Exclusion::NoAddress,
        Exclusion::InvalidSyntax(cartero_address::AddressError::MissingAt),
        Exclusion::Duplicate,
        Exclusion::Quarantine,
        Exclusion::Denylisted,
    ]
    .iter()
    .map(|e| e.reason().value())
    .collect();
    assert_eq!(reasons, [7, 7, 10, 9, 8]);
}

#[test]
fn a_duplicate_of_a_quarantined_address_is_a_duplicate_and_looked_up_once() {
    let known = states();
    let mut lookups = 0;
    let mut a = Analyzer::new(T0, &QuarantineConfig::default());
    let mut decide = |addr: &str| {
        a.decide(c(addr), |k| {
            lookups += 1;
            known.get(k).cloned()
        })
        .exclusion
    };
    assert_eq!(decide("q@example.com"), Some(Exclusion::Quarantine));
    assert_eq!(decide("q@Example.com"), Some(Exclusion::Duplicate));
    assert_eq!(
        decide("bad"),
        Some(Exclusion::InvalidSyntax(
            cartero_address::AddressError::MissingAt
        ))
    );
    assert_eq!(lookups, 1);
}

#[test]
fn expired_mailbox_full_quarantines_are_sent_to_again() {
    let cfg = QuarantineConfig {
        errors_to_quarantine: 1,
        ..Default::default()
    };
    let mut s = quarantine::new_state("full@example.com");
    let soft = Signal::Soft {
        at: T0,
        failure: cartero_campaign::model::FailureInfo {
            r#type: FailureType::Soft,
            reason: Reason::MailboxFull,
            class: None,
            text: "552".into(),
            rule: String::new(),
        },
    };
    quarantine::apply(&mut s, &soft, T0, &cfg);
    let at = |now| {
        Analyzer::new(now, &cfg)
            .decide(c("full@example.com"), |_| Some(s.clone()))
            .exclusion
    };
    assert_eq!(at(T0 + 30 * DAY - 1), Some(Exclusion::Quarantine));
    assert_eq!(at(T0 + 30 * DAY), None);
}

#[test]
fn decisions_become_pending_or_ignored_rows() {
    let mut a = Analyzer::new(T0, &QuarantineConfig::default());
    let d = a.decide(c("  Jane@Example.COM "), |_| None);
    assert_eq!(d.address, "Jane@Example.COM");
    assert_eq!(d.domain, "example.com");
    let r = d.log_row(LogId(1), DeliveryId(2), Some(RecipientId(5)));
    assert_eq!(r.status, LogStatus::Pending);
    assert_eq!(r.recipient, Some(RecipientId(5)));
    assert!(r.failure.is_none());
    let d = a.decide(c(""), |_| None);
    let r = d.log_row(LogId(2), DeliveryId(2), None);
    assert_eq!(r.status, LogStatus::Ignored);
    let f = r.failure.unwrap();
    assert_eq!(
        (f.r#type, f.reason),
        (FailureType::Ignored, Reason::AddressNotSpecified)
    );
    assert_eq!(f.rule, "analysis:no-address");
}

#[test]
fn streams_a_large_list_without_holding_it() {
    // A generator, not a vector: only the duplicate set grows.
    const N: u64 = 100_000;
    let list = (0..N).map(|i| c(&format!("user{}@d{}.example", i % (N / 2), i % 7)));
    let mut a = analysis::analyze(list, |_: &str| None, T0, &QuarantineConfig::default());
    let mut sent = 0u64;
    for d in a.by_ref() {
        sent += u64::from(d.exclusion.is_none());
    }
    // i and i + N/2 share the local part and, as N/2 is not a multiple of 7, not the domain.
    assert_eq!(sent, N);
    assert_eq!(a.counts().duplicate, 0);
    let again = (0..1000u64).flat_map(|i| {
        let s = format!("x{i}@example.com");
        [c(&s), c(&s)]
    });
    let mut a = analysis::analyze(again, |_: &str| None, T0, &QuarantineConfig::default());
    a.by_ref().for_each(drop);
    assert_eq!((a.counts().to_deliver, a.counts().duplicate), (1000, 1000));
}
