//! Address quality (SPEC §3.5) on a manual clock: exact 24 h, 10-day and 30-day boundaries.

use crate::support::*;
use cartero_bounce::{FailureType, Reason};
use cartero_campaign::model::{AddressState, AddressStatus, FailureInfo};
use cartero_campaign::quarantine::{
    self, Change, ConfigError, FilterError, QuarantineConfig, ReleaseFilter, Signal,
};
use cartero_clock::{Clock, ManualClock};
use std::time::Duration;

use AddressStatus::*;

fn fail(t: FailureType, reason: Reason, text: &str) -> FailureInfo {
    FailureInfo {
        r#type: t,
        reason,
        class: None,
        text: text.into(),
        rule: "test".into(),
    }
}

fn soft_at(at: u64, reason: Reason) -> Signal {
    Signal::Soft {
        at,
        failure: fail(FailureType::Soft, reason, "452 try later"),
    }
}

fn hard_at(at: u64, reason: Reason) -> Signal {
    Signal::Hard {
        at,
        failure: fail(FailureType::Hard, reason, "550 5.1.1 unknown"),
    }
}

struct Fixture {
    clock: ManualClock,
    cfg: QuarantineConfig,
    state: AddressState,
}

impl Fixture {
    fn new() -> Self {
        Self {
            clock: ManualClock::new(T0),
            cfg: QuarantineConfig::default(),
            state: quarantine::new_state(" User@Example.COM "),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn set(&self, at: u64) {
        self.clock.set(at);
    }

    /// Applies a signal that happens now.
    fn signal(&mut self, make: impl FnOnce(u64) -> Signal) -> Change {
        let now = self.now();
        quarantine::apply(&mut self.state, &make(now), now, &self.cfg)
    }

    fn status(&self) -> AddressStatus {
        quarantine::effective_status(&self.state, self.now(), &self.cfg)
    }
}

#[test]
fn records_are_keyed_lower_case_and_start_valid() {
    let f = Fixture::new();
    assert_eq!(f.state.address, "user@example.com");
    assert_eq!(f.state.status, Valid);
    assert_eq!(quarantine::address_key("A@B.c"), "a@b.c");
}

#[test]
fn hard_quarantines_at_once_and_is_never_released_by_time() {
    let mut f = Fixture::new();
    let c = f.signal(|at| hard_at(at, Reason::UserUnknown));
    assert_eq!(c.entered, Some(Quarantine));
    assert_eq!(f.state.since, Some(T0));
    assert_eq!(f.state.reason, Some(Reason::UserUnknown));
    f.set(T0 + 1000 * DAY);
    assert_eq!(f.status(), Quarantine);
    assert_eq!(
        quarantine::is_excluded(&f.state, f.now(), &f.cfg),
        Some(Reason::Quarantine)
    );
    // Already in quarantine: not a new one.
    let c = f.signal(|at| hard_at(at, Reason::UserUnknown));
    assert_eq!(c.entered, None);
}

#[test]
fn nothing_and_success_on_a_valid_address_change_nothing() {
    let mut f = Fixture::new();
    let before = f.state.clone();
    assert_eq!(f.signal(|_| Signal::None), Change::default());
    assert_eq!(f.signal(|at| Signal::Success { at }), Change::default());
    assert_eq!(f.state, before);
}

#[test]
fn soft_errors_count_once_per_24_hours_and_the_fifth_quarantines() {
    let mut f = Fixture::new();
    let c = f.signal(|at| soft_at(at, Reason::Unreachable));
    assert!(c.changed && c.entered.is_none());
    assert_eq!((f.state.status, f.state.error_count), (WithErrors, 1));
    // One millisecond short of 24 h: seen, not counted.
    f.set(T0 + DAY - 1);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(f.state.error_count, 1);
    assert_eq!(f.state.last_error_at, Some(T0 + DAY - 1));
    assert_eq!(f.state.last_counted_at, Some(T0));
    // Exactly 24 h after the previous *counted* one: counted.
    f.set(T0 + DAY);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(f.state.error_count, 2);
    f.set(T0 + 2 * DAY);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    f.set(T0 + 3 * DAY);
    let c = f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(
        (f.state.status, f.state.error_count, c.entered),
        (WithErrors, 4, None)
    );
    f.set(T0 + 4 * DAY);
    let c = f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(c.entered, Some(Quarantine));
    assert_eq!(f.state.error_count, 5);
    assert_eq!(f.state.since, Some(T0 + 4 * DAY));
    assert_eq!(f.state.reason, Some(Reason::Unreachable));
    // Not a Mailbox-full quarantine: not released by time.
    f.set(T0 + 400 * DAY);
    assert_eq!(f.status(), Quarantine);
}

#[test]
fn a_late_soft_error_older_than_the_last_counted_one_does_not_count() {
    let mut f = Fixture::new();
    f.set(T0 + 2 * DAY);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    let now = f.now();
    quarantine::apply(&mut f.state, &soft_at(T0, Reason::MailboxFull), now, &f.cfg);
    assert_eq!(f.state.error_count, 1);
    // The newest error stays the last one.
    assert_eq!(f.state.last_error_at, Some(T0 + 2 * DAY));
    assert_eq!(
        f.state.last_error.as_ref().unwrap().reason,
        Reason::Unreachable
    );
}

#[test]
fn success_resets_with_errors_unless_an_error_is_newer() {
    let mut f = Fixture::new();
    f.signal(|at| soft_at(at, Reason::Unreachable));
    f.set(T0 + DAY);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(f.state.error_count, 2);
    // A delivery that happened before the last error arrives late: it answers nothing.
    let now = f.now();
    quarantine::apply(
        &mut f.state,
        &Signal::Success { at: T0 + HOUR },
        now,
        &f.cfg,
    );
    assert_eq!(f.state.status, WithErrors);
    f.set(T0 + DAY + HOUR);
    let c = f.signal(|at| Signal::Success { at });
    assert!(c.changed);
    assert_eq!((f.state.status, f.state.error_count), (Valid, 0));
    // And the next error is the first again.
    f.set(T0 + DAY + 2 * HOUR);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!((f.state.status, f.state.error_count), (WithErrors, 1));
}

#[test]
fn ten_days_without_a_new_error_reset_with_errors() {
    let mut f = Fixture::new();
    f.signal(|at| soft_at(at, Reason::Unreachable));
    f.set(T0 + 5 * DAY);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    // An error that is not counted still postpones the reset.
    f.set(T0 + 5 * DAY + HOUR);
    f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(f.state.error_count, 2);
    f.set(T0 + 15 * DAY + HOUR - 1);
    assert_eq!(f.status(), WithErrors);
    f.set(T0 + 15 * DAY + HOUR);
    assert_eq!(f.status(), Valid);
    assert_eq!(f.state.status, WithErrors, "reading does not write");
    let now = f.now();
    assert!(quarantine::refresh(&mut f.state, now, &f.cfg));
    assert_eq!((f.state.status, f.state.error_count), (Valid, 0));
    assert_eq!(f.state.last_counted_at, None);
}

#[test]
fn the_reset_is_applied_before_the_next_signal() {
    let mut f = Fixture::new();
    for d in 0..4 {
        f.set(T0 + d * DAY);
        f.signal(|at| soft_at(at, Reason::Unreachable));
    }
    assert_eq!(f.state.error_count, 4);
    // Ten days after the 4th: the count starts again instead of reaching 5.
    f.set(T0 + 13 * DAY);
    let c = f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(c.entered, None);
    assert_eq!((f.state.status, f.state.error_count), (WithErrors, 1));
}

#[test]
fn mailbox_full_quarantine_is_released_after_30_days() {
    let mut f = Fixture::new();
    for d in 0..5 {
        f.set(T0 + d * DAY);
        f.signal(|at| soft_at(at, Reason::MailboxFull));
    }
    assert_eq!(f.state.status, Quarantine);
    assert_eq!(f.state.reason, Some(Reason::MailboxFull));
    let since = T0 + 4 * DAY;
    f.set(since + 30 * DAY - 1);
    assert_eq!(
        quarantine::is_excluded(&f.state, f.now(), &f.cfg),
        Some(Reason::Quarantine)
    );
    f.set(since + 30 * DAY);
    assert_eq!(quarantine::is_excluded(&f.state, f.now(), &f.cfg), None);
    // The next signal sees a Valid address.
    let c = f.signal(|at| soft_at(at, Reason::MailboxFull));
    assert!(c.changed);
    assert_eq!((f.state.status, f.state.error_count), (WithErrors, 1));
}

#[test]
fn a_hard_error_makes_a_mailbox_full_quarantine_permanent() {
    let mut f = Fixture::new();
    f.cfg.errors_to_quarantine = 1;
    f.signal(|at| soft_at(at, Reason::MailboxFull));
    assert_eq!(f.state.status, Quarantine);
    f.set(T0 + DAY);
    let c = f.signal(|at| hard_at(at, Reason::UserUnknown));
    assert_eq!(c.entered, None);
    assert!(c.changed);
    assert_eq!(f.state.reason, Some(Reason::UserUnknown));
    f.set(T0 + 100 * DAY);
    assert_eq!(f.status(), Quarantine);
}

#[test]
fn a_hard_mailbox_full_quarantine_is_not_released_by_time() {
    // An operator may qualify class 22 as hard: then it is a hard quarantine.
    let mut f = Fixture::new();
    f.signal(|at| hard_at(at, Reason::MailboxFull));
    f.set(T0 + 31 * DAY);
    assert_eq!(f.status(), Quarantine);
}

#[test]
fn soft_errors_do_not_touch_a_quarantined_address() {
    let mut f = Fixture::new();
    f.signal(|at| hard_at(at, Reason::UserUnknown));
    let before = f.state.clone();
    f.set(T0 + 3 * DAY);
    let c = f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(c, Change::default());
    assert_eq!(f.state, before, "the error that quarantined it is kept");
}

#[test]
fn complaints_unsubscribes_and_class_90_denylist_for_good() {
    for make in [
        (|at| Signal::Complaint {
            at,
            failure: fail(FailureType::Hard, Reason::Denylisted, "abuse"),
        }) as fn(u64) -> Signal,
        |at| Signal::Unsubscribe {
            at,
            failure: fail(FailureType::Hard, Reason::Denylisted, "one-click"),
        },
        |at| hard_at(at, Reason::Denylisted),
    ] {
        let mut f = Fixture::new();
        let c = f.signal(make);
        assert_eq!(c.entered, Some(Denylisted));
        assert_eq!(f.state.reason, Some(Reason::Denylisted));
        f.set(T0 + 1000 * DAY);
        assert_eq!(
            quarantine::is_excluded(&f.state, f.now(), &f.cfg),
            Some(Reason::Denylisted)
        );
        let before = f.state.clone();
        f.signal(|at| hard_at(at, Reason::UserUnknown));
        f.signal(|at| Signal::Success { at });
        assert_eq!(f.state, before);
    }
}

#[test]
fn a_complaint_upgrades_a_quarantine_without_counting_it_again() {
    let mut f = Fixture::new();
    f.signal(|at| hard_at(at, Reason::UserUnknown));
    let c = f.signal(|at| Signal::Complaint {
        at,
        failure: fail(FailureType::Hard, Reason::Denylisted, "abuse"),
    });
    assert_eq!(f.state.status, Denylisted);
    assert_eq!(c.entered, None);
}

#[test]
fn operator_release_returns_what_it_undid() {
    let mut f = Fixture::new();
    assert_eq!(quarantine::release(&mut f.state), None);
    f.signal(|at| hard_at(at, Reason::UserUnknown));
    let r = quarantine::release(&mut f.state).unwrap();
    assert_eq!(r.status, Quarantine);
    assert_eq!(r.reason, Some(Reason::UserUnknown));
    assert_eq!(r.since, Some(T0));
    assert_eq!((f.state.status, f.state.error_count), (Valid, 0));
    assert!(f.state.last_error.is_some(), "kept for reading");
    // Released: the next hard error quarantines again.
    f.set(T0 + HOUR);
    assert_eq!(
        f.signal(|at| hard_at(at, Reason::UserUnknown)).entered,
        Some(Quarantine)
    );
}

fn quarantined(address: &str, at: u64, reason: Reason, text: &str) -> AddressState {
    let mut s = quarantine::new_state(address);
    let signal = Signal::Hard {
        at,
        failure: fail(FailureType::Hard, reason, text),
    };
    quarantine::apply(&mut s, &signal, at, &QuarantineConfig::default());
    s
}

#[test]
fn bulk_release_filter_by_reason_text_window_and_domain() {
    let incident = quarantined(
        "a@big.example",
        T0 + HOUR,
        Reason::UserUnknown,
        "550 5.1.1 temporary glitch #42",
    );
    let other = quarantined("b@small.example", T0 + HOUR, Reason::UserUnknown, "550 no");
    let all = ReleaseFilter::default();
    assert!(quarantine::matches(&all, &incident));
    let f = ReleaseFilter {
        reason: Some(Reason::UserUnknown),
        from: Some(T0 + HOUR),
        until: Some(T0 + 2 * HOUR),
        domain: Some("BIG.example".into()),
        ..Default::default()
    }
    .with_text(r"glitch #\d+")
    .unwrap();
    assert!(quarantine::matches(&f, &incident));
    assert!(!quarantine::matches(&f, &other));
    // The window is [from, until).
    let late = quarantined(
        "a@big.example",
        T0 + 2 * HOUR,
        Reason::UserUnknown,
        "glitch #1",
    );
    assert!(!quarantine::matches(&f, &late));
    let wrong_reason = ReleaseFilter {
        reason: Some(Reason::MailboxFull),
        ..Default::default()
    };
    assert!(!quarantine::matches(&wrong_reason, &incident));
    // Valid and With errors records are never taken; Denylisted only when asked.
    assert!(!quarantine::matches(
        &all,
        &quarantine::new_state("c@big.example")
    ));
    let mut denied = quarantine::new_state("d@big.example");
    let complaint = Signal::Complaint {
        at: T0,
        failure: fail(FailureType::Hard, Reason::Denylisted, "abuse"),
    };
    quarantine::apply(&mut denied, &complaint, T0, &QuarantineConfig::default());
    assert!(!quarantine::matches(&all, &denied));
    let with_denied = ReleaseFilter {
        include_denylisted: true,
        ..Default::default()
    };
    assert!(quarantine::matches(&with_denied, &denied));
}

#[test]
fn bad_text_patterns_are_refused_with_a_reason() {
    assert!(matches!(
        ReleaseFilter::default().with_text("(unclosed"),
        Err(FilterError::Pattern(_))
    ));
    assert_eq!(
        ReleaseFilter::default()
            .with_text(&"a".repeat(quarantine::MAX_PATTERN + 1))
            .err(),
        Some(FilterError::PatternTooLong)
    );
    // Compiles to more than the size limit.
    assert!(
        ReleaseFilter::default()
            .with_text(r"\w{1000}{1000}")
            .is_err()
    );
}

#[test]
fn config_defaults_and_overrides() {
    let d = QuarantineConfig::default();
    assert_eq!(d.error_interval, Duration::from_secs(86_400));
    assert_eq!(d.errors_to_quarantine, 5);
    assert_eq!(d.reset_after, Duration::from_secs(10 * 86_400));
    assert_eq!(d.mailbox_full_release, Duration::from_secs(30 * 86_400));
    let empty: QuarantineConfig = toml::from_str("").unwrap();
    assert_eq!(empty, d);
    let c: QuarantineConfig =
        toml::from_str("error_interval = \"12h\"\nerrors_to_quarantine = 2\n").unwrap();
    assert_eq!(c.error_interval, Duration::from_secs(12 * 3600));
    assert!(toml::from_str::<QuarantineConfig>("errors = 3\n").is_err());
    let zero = QuarantineConfig {
        errors_to_quarantine: 0,
        ..d
    };
    assert_eq!(zero.validate(), Err(ConfigError::NoErrorThreshold));
}

#[test]
fn configured_numbers_are_the_ones_used() {
    let mut f = Fixture::new();
    f.cfg = toml::from_str("error_interval = \"12h\"\nerrors_to_quarantine = 2\n").unwrap();
    f.signal(|at| soft_at(at, Reason::Unreachable));
    f.set(T0 + 12 * HOUR);
    let c = f.signal(|at| soft_at(at, Reason::Unreachable));
    assert_eq!(c.entered, Some(Quarantine));
}
