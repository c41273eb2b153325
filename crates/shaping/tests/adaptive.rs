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
        start_rate: 3_600.0,
        start_growth: 2.0,
        settle_fraction: 0.9,
        probe_step: 0.1,
        probe_every: Duration::from_secs(5),
        probe_max: Duration::from_secs(20),
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

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-6)
}

#[test]
fn aimd_halves_an_unmeasured_throttle_once_per_burst_and_climbs_back_additively() {
    let mut a = aimd();
    assert_eq!(
        a.current(),
        Some(1_000.0),
        "a configured rate is trusted: no cold start"
    );
    a.on_success(T0, 1_000.0);
    assert_eq!(a.current(), Some(1_000.0), "never above max");
    assert!(a.on_throttle(T0, f64::NAN));
    assert_eq!(a.current(), Some(500.0));
    // A burst of throttles inside the hold-off counts once; successes there are ignored too.
    assert!(!a.on_throttle(T0 + 9_999, 10_000.0));
    a.on_success(T0 + 5_000, 500.0);
    assert_eq!(a.current(), Some(500.0));
    for i in 0..4 {
        a.on_success(T0 + 10_000 + i, 500.0);
    }
    assert_eq!(a.current(), Some(700.0));
    assert_eq!(a.current_rate(), Some(per_hour(700)));
    for i in 0..4 {
        assert!(a.on_throttle(T0 + 20_000 + i * 10_000, f64::NAN));
    }
    assert_eq!(
        a.current(),
        Some(100.0),
        "never below min (700→350→175→100)"
    );
    // Back at the ceiling the learned rate is dropped: the configured maximum rules again.
    for i in 0..20 {
        a.on_success(T0 + 100_000 + i, 1_000.0);
    }
    assert_eq!(a.current(), Some(1_000.0));
    assert!(!a.is_reduced());
}

#[test]
fn aimd_settles_just_under_what_the_site_accepted() {
    let cfg = AimdConfig {
        start_rate: 0.0,
        ..aimd_config()
    };
    let mut a = Aimd::new(cfg, None);
    assert_eq!(
        a.current(),
        None,
        "start_rate 0: unlimited until the site complains"
    );
    assert!(!a.on_throttle(T0, f64::NAN), "nothing to go down from");
    assert!(a.on_throttle(T0, 3_000.0));
    assert!(close(a.current(), 2_700.0), "{:?}", a.current());
    assert_eq!(a.estimate(), Some(3_000.0));
    // A later throttle with less accepted: the estimate follows the site down.
    assert!(a.on_throttle(T0 + 10_000, 1_000.0));
    assert!(close(a.current(), 900.0));
    // More accepted than the live limit allowed is a measuring artefact: the limit bounds it.
    assert!(a.on_throttle(T0 + 20_000, 50_000.0));
    assert_eq!(a.estimate(), Some(900.0));
}

#[test]
fn cold_start_doubles_each_second_it_is_used_and_ends_at_the_first_throttle() {
    let mut a = Aimd::new(aimd_config(), None);
    assert!(a.in_slow_start());
    assert_eq!(a.current(), Some(3_600.0), "paced from the first message");
    a.on_success(T0, 3_600.0);
    a.on_success(T0 + 999, 3_600.0);
    assert_eq!(
        a.current(),
        Some(3_600.0),
        "a whole second at the rate first"
    );
    a.on_success(T0 + 1_000, 1_000.0);
    assert_eq!(
        a.current(),
        Some(3_600.0),
        "a rate the queue does not use proves nothing"
    );
    a.on_success(T0 + 1_001, 3_600.0);
    assert_eq!(a.current(), Some(7_200.0));
    a.on_success(T0 + 2_001, 7_000.0);
    assert_eq!(a.current(), Some(14_400.0));
    assert!(a.on_throttle(T0 + 2_500, 10_000.0));
    assert!(!a.in_slow_start());
    assert!(close(a.current(), 9_000.0));
    // Without any throttle the cold start ends unlimited once the rate limits nothing.
    let mut b = Aimd::new(aimd_config(), None);
    let mut t = T0;
    for _ in 0..20 {
        b.on_success(t, b.current().unwrap_or(f64::INFINITY));
        t += 1_000;
    }
    assert_eq!(b.current(), None);
    assert!(!b.in_slow_start());
}

#[test]
fn probes_step_up_after_clean_intervals_and_back_off_after_a_failed_one() {
    let cfg = AimdConfig {
        start_rate: 0.0,
        decrease_holdoff: Duration::from_secs(1),
        ..aimd_config()
    };
    let mut a = Aimd::new(cfg, None);
    assert!(a.on_throttle(T0, 10_000.0));
    assert!(close(a.current(), 9_000.0));
    let used = |a: &Aimd| a.current().unwrap_or(0.0);
    a.on_success(T0 + 4_999, used(&a));
    assert!(
        close(a.current(), 9_000.0),
        "no probe before a clean interval"
    );
    a.on_success(T0 + 5_000, used(&a));
    assert!(
        close(a.current(), 10_000.0),
        "one step of 10% of the estimate"
    );
    a.on_success(T0 + 10_000, used(&a));
    assert!(close(a.current(), 11_000.0));
    assert_eq!(
        a.estimate(),
        Some(10_000.0),
        "at the estimate proves nothing new"
    );
    a.on_success(T0 + 15_000, used(&a));
    assert_eq!(
        a.estimate(),
        Some(11_000.0),
        "a clean interval above it raises it"
    );
    assert!(
        close(a.current(), 13_200.0),
        "and the next step is twice as large"
    );
    // The site throttles the probe: settle under what it accepted, wait twice as long.
    assert!(a.on_throttle(T0 + 16_000, 11_000.0));
    assert!(close(a.current(), 9_900.0));
    a.on_success(T0 + 21_000, used(&a));
    assert!(close(a.current(), 9_900.0), "the next probe waits 10 s now");
    a.on_success(T0 + 26_000, used(&a));
    assert!(close(a.current(), 11_000.0));
    // Failed probes never wait longer than probe_max.
    let mut t = T0 + 30_000;
    for _ in 0..6 {
        a.on_success(t + 60_000, used(&a));
        t += 60_000;
        assert!(a.on_throttle(t + 1, 11_000.0));
    }
    a.on_success(t + 20_001, used(&a));
    assert!(close(a.current(), 11_000.0), "{:?}", a.current());
}

#[test]
fn a_long_window_site_settles_on_its_window_at_once_and_is_probed_once_a_window() {
    let cfg = AimdConfig {
        start_rate: 0.0,
        ..aimd_config()
    };
    let mut a = Aimd::new(cfg, None);
    assert!(
        a.on_throttle(T0, 100_000.0),
        "the last second: far too high"
    );
    assert!(!a.long_window());
    // Inside the hold-off, the streak shows a long window: settled on the minute's count anyway.
    a.settle_long(T0 + 1_500, 10_000.0);
    assert!(a.long_window());
    assert_eq!(a.estimate(), Some(10_000.0));
    assert!(close(a.current(), 9_000.0));
    let used = |a: &Aimd| a.current().unwrap_or(0.0);
    // Five or sixty seconds of clean sending prove nothing about a minute: no probe yet.
    a.on_success(T0 + 1_500 + 5_000, used(&a));
    a.on_success(T0 + 1_500 + 60_999, used(&a));
    assert!(close(a.current(), 9_000.0), "{:?}", a.current());
    let t = T0 + 1_500 + aimd::LONG_WINDOW_PROBE_MS;
    a.on_success(t, used(&a));
    assert!(close(a.current(), 10_000.0), "one step of 10 %");
    a.on_success(t + aimd::LONG_WINDOW_PROBE_MS, used(&a));
    a.on_success(t + 2 * aimd::LONG_WINDOW_PROBE_MS, used(&a));
    assert_eq!(a.estimate(), Some(11_000.0));
    assert!(
        close(a.current(), 12_100.0),
        "10 % of the new estimate, not twice that: an overshoot shows a minute late"
    );
    // The mark is persisted: the next campaign probes that site as slowly from the start.
    let snap = a.snapshot();
    assert!(snap.long_window);
    assert!(Aimd::restore(aimd_config(), None, snap).long_window());
    // Nothing measured: marked, rate kept.
    let mut b = Aimd::new(aimd_config(), None);
    b.settle_long(T0, f64::NAN);
    assert!(b.long_window());
    assert_eq!(b.current(), Some(3_600.0));
}

#[test]
fn aimd_snapshot_round_trips_and_restore_clamps() {
    let mut a = aimd();
    a.on_throttle(T0, 800.0);
    let json = serde_json::to_string(&a.snapshot()).unwrap();
    let snap: AimdSnapshot = serde_json::from_str(&json).unwrap();
    let b = Aimd::restore(aimd_config(), Some(per_hour(1_000)), snap);
    assert!(close(b.current(), 720.0));
    assert_eq!(b.estimate(), Some(800.0), "the estimate survives a restart");
    // Still in hold-off after restore: the restart does not forget the recent decrease.
    let mut b2 = b.clone();
    assert!(!b2.on_throttle(T0 + 1, 100.0));
    let c = Aimd::restore(aimd_config(), Some(per_hour(300)), snap);
    assert_eq!(c.current(), Some(300.0));
    let mut d = b;
    d.reconfigure(aimd_config(), Some(per_hour(200)));
    assert_eq!(d.current(), Some(200.0));
    // A cold start survives too, and a state written before estimates existed still reads.
    let cold = Aimd::new(aimd_config(), None).snapshot();
    assert!(cold.slow_start);
    let json = serde_json::to_string(&cold).unwrap();
    let back: AimdSnapshot = serde_json::from_str(&json).unwrap();
    assert!(Aimd::restore(aimd_config(), None, back).in_slow_start());
    let old: AimdSnapshot =
        serde_json::from_str(r#"{"rate": 500.0, "last_decrease": null}"#).unwrap();
    assert_eq!(old.estimate, None);
    assert!(!old.slow_start);
}

#[test]
fn nonsense_aimd_settings_are_made_safe() {
    let cfg = AimdConfig {
        min: f64::NAN,
        start_rate: -5.0,
        start_growth: 0.5,
        settle_fraction: 7.0,
        probe_step: f64::INFINITY,
        ..aimd_config()
    };
    let mut a = Aimd::new(cfg, None);
    assert_eq!(
        a.current(),
        None,
        "a negative start rate means no cold start"
    );
    assert!(a.on_throttle(T0, 1_000.0));
    let r = a.current().unwrap();
    assert!(r.is_finite() && r > 0.0 && r <= 1_000.0, "{r}");
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
