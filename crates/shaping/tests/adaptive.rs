//! Adaptive shaping logic with exact times: response rules, AIMD, warm-up and sweeps.

use cartero_bounce::BounceClass;
use cartero_shaping::*;
use std::time::Duration;

const T0: u64 = 1_700_006_400_000; // a UTC midnight (2023-11-15)
const DAY: u64 = 86_400_000;

fn key(source: &str) -> QueueKey {
    QueueKey {
        source: source.into(),
        site: "mx.example.test".into(),
    }
}

fn count_rule() -> ResponseRule {
    toml::from_str(
        r#"
name = "busy"
pattern = '^421 '
trigger = { type = "count", n = 3, within = "60s" }
action = { type = "suspend", for = "10m" }
"#,
    )
    .unwrap()
}

#[test]
fn count_trigger_fires_on_third_match_within_window() {
    let mut e = RuleEngine::new(&[count_rule()]).unwrap();
    let k = key("a");
    assert!(e.observe(&k, None, "421 busy", T0).is_empty());
    assert!(e.observe(&k, None, "250 ok", T0 + 10_000).is_empty());
    assert!(e.observe(&k, None, "421 busy", T0 + 30_000).is_empty());
    let fired = e.observe(&k, None, "421 busy", T0 + 60_000);
    assert_eq!(fired.len(), 1);
    let t = &fired[0];
    assert_eq!(&*t.rule, "busy");
    assert_eq!(t.until, Some(T0 + 60_000 + 600_000));
    assert_eq!((t.count, t.window), (3, Duration::from_secs(60)));
    assert_eq!(t.reply, "421 busy");
    // The matches are used up: the next one starts a new count.
    assert!(e.observe(&k, None, "421 busy", T0 + 61_000).is_empty());
}

#[test]
fn count_trigger_does_not_fire_when_spread_over_61s() {
    let mut e = RuleEngine::new(&[count_rule()]).unwrap();
    let k = key("a");
    assert!(e.observe(&k, None, "421 busy", T0).is_empty());
    assert!(e.observe(&k, None, "421 busy", T0 + 30_000).is_empty());
    assert!(e.observe(&k, None, "421 busy", T0 + 61_000).is_empty());
    // ...but the two later matches are still counted.
    assert_eq!(e.observe(&k, None, "421 busy", T0 + 62_000).len(), 1);
}

#[test]
fn windows_are_per_queue_and_pruned() {
    let mut e = RuleEngine::new(&[count_rule()]).unwrap();
    for t in 0..2 {
        assert!(e.observe(&key("a"), None, "421 x", T0 + t).is_empty());
    }
    // A different source does not add to a's count.
    assert!(e.observe(&key("b"), None, "421 x", T0 + 5).is_empty());
    assert_eq!(e.tracked_windows(), 2);
    e.prune(T0 + 60_006);
    assert_eq!(e.tracked_windows(), 0);
}

#[test]
fn immediate_rule_scoped_to_provider() {
    let rule: ResponseRule = toml::from_str(
        r#"
name = "g"
provider = "gmail"
pattern = '4\.7\.28'
action = { type = "throttle", factor = 0.5, for = "15m" }
"#,
    )
    .unwrap();
    assert_eq!(rule.trigger, Trigger::Immediate);
    let mut e = RuleEngine::new(&[rule]).unwrap();
    let reply = "421 4.7.28 unusual rate";
    assert!(e.observe(&key("a"), None, reply, T0).is_empty());
    assert!(e.observe(&key("a"), Some("yahoo"), reply, T0).is_empty());
    let f = e.observe(&key("a"), Some("GMail"), reply, T0);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].until, Some(T0 + 900_000));
    assert_eq!(
        f[0].action,
        Action::Throttle {
            factor: 0.5,
            duration: Duration::from_secs(900)
        }
    );
}

#[test]
fn set_and_bounce_actions_parse_and_bounce_has_no_until() {
    let rules: Vec<ResponseRule> = vec![
        toml::from_str(
            "name = \"one\"\npattern = '^452'\naction = { type = \"set\", max_connections = 1, for = \"1h\" }\n",
        )
        .unwrap(),
        toml::from_str("name = \"gone\"\npattern = '^550 5\\.1\\.10'\naction = { type = \"bounce\" }\n")
            .unwrap(),
    ];
    let mut e = RuleEngine::new(&rules).unwrap();
    let f = e.observe(&key("a"), None, "452 4.3.1 too many", T0);
    assert_eq!(
        f[0].action,
        Action::Set {
            max_connections: Some(1),
            duration: Duration::from_secs(3600)
        }
    );
    let f = e.observe(&key("a"), None, "550 5.1.10 no such domain", T0);
    assert_eq!((f[0].action.clone(), f[0].until), (Action::Bounce, None));
}

#[test]
fn bad_rules_are_rejected_with_the_rule_name() {
    let bad_field = toml::from_str::<ResponseRule>("name = \"x\"\npattern = 'a'\nactoin = 1\n");
    assert!(bad_field.is_err());
    let bad_action_field = toml::from_str::<ResponseRule>(
        "name = \"x\"\npattern = 'a'\naction = { type = \"suspend\", for = \"1m\", extra = 1 }\n",
    );
    assert!(bad_action_field.is_err());
    let mut r = count_rule();
    r.pattern = "(".into();
    let err = RuleEngine::new(&[r]).unwrap_err().to_string();
    assert!(err.contains("\"busy\""), "{err}");
    let mut r = count_rule();
    r.action = Action::Throttle {
        factor: 2.0,
        duration: Duration::from_secs(1),
    };
    assert!(RuleEngine::new(&[r]).is_err());
    assert!(matches!(
        RuleEngine::new(&[count_rule(), count_rule()]),
        Err(RuleError::Duplicate(_))
    ));
}

#[test]
fn default_rules_compile_and_match_provider_replies() {
    let mut e = RuleEngine::new(&default_rules()).unwrap();
    let cases = [
        (
            "gmail",
            "421 4.7.28 Our system has detected an unusual rate of unsolicited mail",
            "gmail-rate-limited",
        ),
        (
            "gmail",
            "421 4.7.0 Try again later, closing connection.",
            "gmail-try-later",
        ),
        (
            "yahoo",
            "421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred",
            "yahoo-tss04",
        ),
        (
            "yahoo",
            "421 4.7.0 [TS03] All messages from 192.0.2.1 will be permanently deferred",
            "yahoo-ts0x",
        ),
        (
            "outlook",
            "451 4.7.650 The mail server [192.0.2.1] has been temporarily rate limited",
            "outlook-rate-limited",
        ),
        (
            "outlook",
            "550 5.7.1 Unfortunately, messages from [192.0.2.1] weren't sent. (S3150)",
            "outlook-blocklisted",
        ),
        (
            "apple",
            "421 4.7.0 Too many concurrent connections, try again later",
            "apple-try-later",
        ),
        (
            "apple",
            "554 5.7.1 [CS01] Message rejected due to local policy",
            "apple-policy-block",
        ),
    ];
    for (provider, reply, rule) in cases {
        let f = e.observe(&key(provider), Some(provider), reply, T0);
        assert!(f.iter().any(|t| &*t.rule == rule), "{reply} -> {f:?}");
    }
    // An ordinary deferral from an unrelated site triggers nothing.
    assert!(
        e.observe(&key("x"), Some("other"), "421 4.7.28 x", T0)
            .is_empty()
    );
}

fn aimd_config() -> AimdConfig {
    AimdConfig {
        min: 100.0,
        increase_per_success: 50.0,
        decrease_factor: 0.5,
        decrease_holdoff: Duration::from_secs(10),
    }
}

fn per_hour(n: u32) -> Rate {
    Rate {
        count: n,
        per_ms: 3_600_000,
    }
}

fn aimd() -> Aimd {
    Aimd::new(aimd_config(), Some(per_hour(1_000)))
}

#[test]
fn aimd_halves_on_throttle_once_per_burst_and_climbs_back_additively() {
    let mut a = aimd();
    assert_eq!(a.current(), Some(1_000.0));
    a.on_success(T0);
    assert_eq!(a.current(), Some(1_000.0), "never above max");
    assert!(a.on_throttle(T0, f64::INFINITY));
    assert_eq!(a.current(), Some(500.0));
    // A burst of throttles inside the hold-off counts once; successes there are ignored too.
    assert!(!a.on_throttle(T0 + 9_999, 10_000.0));
    a.on_success(T0 + 5_000);
    assert_eq!(a.current(), Some(500.0));
    for i in 0..4 {
        a.on_success(T0 + 10_000 + i);
    }
    assert_eq!(a.current(), Some(700.0));
    assert_eq!(a.current_rate(), Some(per_hour(700)));
    for i in 0..4 {
        assert!(a.on_throttle(T0 + 20_000 + i * 10_000, f64::INFINITY));
    }
    assert_eq!(
        a.current(),
        Some(100.0),
        "never below min (700→350→175→100)"
    );
    // Back at the ceiling the learned rate is dropped: the configured maximum rules again.
    for i in 0..20 {
        a.on_success(T0 + 100_000 + i);
    }
    assert_eq!(a.current(), Some(1_000.0));
    assert!(!a.is_reduced());
}

#[test]
fn aimd_without_configured_rate_starts_from_the_measured_rate() {
    let mut a = Aimd::new(aimd_config(), None);
    assert_eq!(a.current(), None, "unlimited until the site complains");
    assert!(a.on_throttle(T0, 3_000.0));
    assert_eq!(a.current(), Some(1_500.0));
    // A later throttle while sending below the live limit starts from what was really sent.
    assert!(a.on_throttle(T0 + 10_000, 1_000.0));
    assert_eq!(a.current(), Some(500.0));
}

#[test]
fn aimd_snapshot_round_trips_and_restore_clamps() {
    let mut a = aimd();
    a.on_throttle(T0, f64::INFINITY);
    let json = serde_json::to_string(&a.snapshot()).unwrap();
    let snap: AimdSnapshot = serde_json::from_str(&json).unwrap();
    let b = Aimd::restore(aimd_config(), Some(per_hour(1_000)), snap);
    assert_eq!(b.current(), Some(500.0));
    // Still in hold-off after restore: the restart does not forget the recent decrease.
    let mut b2 = b.clone();
    assert!(!b2.on_throttle(T0 + 1, f64::INFINITY));
    let c = Aimd::restore(aimd_config(), Some(per_hour(300)), snap);
    assert_eq!(c.current(), Some(300.0));
    let mut d = b;
    d.reconfigure(aimd_config(), Some(per_hour(200)));
    assert_eq!(d.current(), Some(200.0));
}

#[test]
fn warmup_caps_the_day_and_resets_at_utc_midnight() {
    let mut w = Warmup::new(WarmupConfig::default(), T0 + 1_000);
    assert_eq!(w.cap(), Some(200));
    for _ in 0..200 {
        w.try_take(T0 + 2_000).unwrap();
    }
    let err = w.try_take(T0 + 3_000).unwrap_err();
    assert_eq!((err.stage, err.cap, err.retry_at), (0, 200, T0 + DAY));
    w.give_back(T0 + 4_000);
    assert!(w.try_take(T0 + 4_000).is_ok());
    // Nothing delivered: the next day has the same stage, a fresh cap.
    assert!(w.try_take(T0 + DAY).is_ok());
    assert_eq!(w.stage(), 0);
}

#[test]
fn warmup_promotes_only_above_90_percent() {
    let mut w = Warmup::new(WarmupConfig::default(), T0);
    for _ in 0..180 {
        w.on_delivered(T0 + 10);
    }
    w.roll(T0 + DAY);
    assert_eq!(w.stage(), 0, "exactly 90% does not promote");
    for _ in 0..181 {
        w.on_delivered(T0 + DAY + 10);
    }
    w.roll(T0 + DAY + DAY - 1);
    assert_eq!(w.stage(), 0, "not before the day rolls over");
    w.roll(T0 + 2 * DAY);
    assert_eq!((w.stage(), w.cap()), (1, Some(500)));
    // A multi-day gap promotes at most once.
    for _ in 0..500 {
        w.on_delivered(T0 + 2 * DAY);
    }
    w.roll(T0 + 9 * DAY);
    assert_eq!(w.stage(), 2);
}

#[test]
fn warmup_ends_unlimited_and_state_persists() {
    let cfg = WarmupConfig {
        stages: vec![2],
        promote_ratio: 0.9,
    };
    let mut w = Warmup::new(cfg.clone(), T0);
    w.on_delivered(T0);
    w.on_delivered(T0);
    let json = serde_json::to_string(&w.state()).unwrap();
    let mut r = Warmup::restore(cfg, serde_json::from_str(&json).unwrap());
    assert_eq!(r.state(), w.state());
    w.roll(T0 + DAY);
    r.roll(T0 + DAY);
    assert!(r.is_warm());
    for _ in 0..1_000 {
        r.try_take(T0 + DAY).unwrap();
    }
}

fn sweep() -> Sweep {
    Sweep::new(SweepConfig {
        min_volume: 100,
        ..SweepConfig::default()
    })
}

fn feed(s: &mut Sweep, delivered: u64, class10: u64, class24: u64, other_fail: u64, now: u64) {
    for _ in 0..delivered {
        s.record(Outcome::Delivered, now);
    }
    for _ in 0..class10 {
        s.record(
            Outcome::Failed {
                class: BounceClass::INVALID_RECIPIENT,
            },
            now,
        );
    }
    for _ in 0..class24 {
        s.record(
            Outcome::Failed {
                class: BounceClass::TIMEOUT,
            },
            now,
        );
    }
    for _ in 0..other_fail {
        s.record(
            Outcome::Failed {
                class: BounceClass::DNS_FAILURE,
            },
            now,
        );
    }
}

#[test]
fn sweep_needs_minimum_volume() {
    let mut s = sweep();
    feed(&mut s, 49, 25, 25, 0, T0);
    assert_eq!(
        s.evaluate(T0),
        None,
        "99 attempts, 50% bad, below min volume"
    );
    feed(&mut s, 1, 0, 0, 0, T0);
    let a = s.evaluate(T0).unwrap();
    assert_eq!((a.kind, a.count, a.volume), (SweepKind::Suspend, 50, 100));
}

#[test]
fn sweep_invalid_and_timeout_thresholds() {
    let mut s = sweep();
    feed(&mut s, 971, 1, 1, 27, T0);
    assert_eq!(s.evaluate(T0), None, "2% with other failures not counted");
    let mut s = sweep();
    feed(&mut s, 970, 20, 10, 0, T0);
    let a = s.evaluate(T0 + 1).unwrap();
    assert_eq!(a.kind, SweepKind::Throttle { factor: 0.5 });
    assert_eq!(
        (a.metric, a.count, a.volume),
        (SweepMetric::InvalidAndTimeouts, 30, 1_000)
    );
    assert_eq!(a.until, T0 + 1 + 3_600_000);
    let mut s = sweep();
    feed(&mut s, 900, 100, 0, 0, T0);
    let a = s.evaluate(T0).unwrap();
    assert_eq!((a.kind, a.until), (SweepKind::Suspend, T0 + 4 * 3_600_000));
}

#[test]
fn sweep_complaint_thresholds_and_suspend_wins() {
    let mut s = sweep();
    feed(&mut s, 1_000, 0, 0, 0, T0);
    s.record(Outcome::Complaint, T0);
    assert_eq!(s.evaluate(T0), None, "0.1%");
    s.record(Outcome::Complaint, T0);
    let a = s.evaluate(T0).unwrap();
    assert_eq!(
        (a.metric, a.kind),
        (SweepMetric::Complaints, SweepKind::Throttle { factor: 0.5 })
    );
    for _ in 0..3 {
        s.record(Outcome::Complaint, T0);
    }
    assert_eq!(s.evaluate(T0).unwrap().kind, SweepKind::Suspend);
    // Hard-failure throttle plus complaint suspend: suspend wins.
    feed(&mut s, 0, 40, 0, 0, T0);
    let a = s.evaluate(T0).unwrap();
    assert_eq!(
        (a.metric, a.kind),
        (SweepMetric::Complaints, SweepKind::Suspend)
    );
}

#[test]
fn sweep_forgets_outcomes_older_than_the_window() {
    let mut s = sweep();
    feed(&mut s, 0, 200, 0, 0, T0);
    assert!(s.evaluate(T0 + 59 * 60_000).is_some());
    assert_eq!(s.evaluate(T0 + 60 * 60_000), None);
    assert!(s.is_idle(T0 + 60 * 60_000));
    // Old buckets are overwritten, not accumulated, when the ring wraps.
    feed(&mut s, 100, 0, 0, 0, T0 + 60 * 60_000);
    assert_eq!(s.evaluate(T0 + 60 * 60_000), None);
}
