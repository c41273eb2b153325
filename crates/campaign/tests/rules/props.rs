//! Properties: a row's final state does not depend on the order or repetition of its events,
//! KPIs always sum, and no event content makes decoding panic.

use crate::support::*;
use cartero_bounce::Qualifier;
use cartero_campaign::kpi;
use cartero_campaign::log;
use cartero_campaign::model::{Kpis, LogRow, MAX_ATTEMPTS_KEPT};
use cartero_campaign::observe;
use cartero_events::{Event, EventType};
use proptest::prelude::*;
use std::collections::HashSet;

#[derive(Debug, Clone, Copy)]
enum Spec {
    Reception,
    Delivery,
    Delay(u16),
    Bounce(u16),
    Expiration(u16),
    OutOfBand(u16),
    AutoReply,
    Complaint,
    Unsubscribe,
}

fn class() -> impl Strategy<Value = u16> {
    prop::sample::select(vec![1u16, 10, 20, 21, 22, 25, 51])
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        Just(Spec::Reception),
        Just(Spec::Delivery),
        class().prop_map(Spec::Delay),
        class().prop_map(Spec::Bounce),
        class().prop_map(Spec::Expiration),
        class().prop_map(Spec::OutOfBand),
        Just(Spec::AutoReply),
        Just(Spec::Complaint),
        Just(Spec::Unsubscribe),
    ]
}

/// Times within a few seconds, so equal timestamps are frequent. The text follows the class:
/// the same reply at the same time is the same event.
fn make(spec: Spec, second: u64, variant: u8) -> Event {
    let at = T0 + second * SEC;
    let text = |c: u16| format!("{c} reply {variant}");
    match spec {
        Spec::Reception => event(EventType::Reception, at),
        Spec::Delivery => event(EventType::Delivery, at).raw_reason(format!("250 ok {variant}")),
        Spec::Delay(c) => failure(EventType::Delay, at, c, &text(c)),
        Spec::Bounce(c) => failure(EventType::Bounce, at, c, &text(c)),
        Spec::Expiration(c) => failure(EventType::Expiration, at, c, &text(c)),
        Spec::OutOfBand(c) => inmail(EventType::OutOfBand, at)
            .bounce_class(c)
            .raw_reason(text(c)),
        Spec::AutoReply => inmail(EventType::OutOfBand, at).bounce_class(60),
        Spec::Complaint => inmail(EventType::SpamComplaint, at),
        Spec::Unsubscribe => inmail(EventType::ListUnsubscribe, at).bounce_class(90),
    }
}

type Scenario = (Vec<Event>, Vec<usize>, Vec<(usize, usize)>);

fn scenario(count: std::ops::Range<usize>, seconds: u64) -> impl Strategy<Value = Scenario> {
    prop::collection::vec((spec(), 0..seconds, 0..2u8), count).prop_flat_map(|specs| {
        let events: Vec<Event> = specs.iter().map(|&(s, t, v)| make(s, t, v)).collect();
        let n = events.len();
        let order = Just((0..n).collect::<Vec<_>>()).prop_shuffle();
        let dups = prop::collection::vec((0..n, 0..=n), 0..6);
        (Just(events), order, dups)
    })
}

/// Applies events in the given order from analysis on, keeping KPIs by deltas.
fn run<'a>(events: impl IntoIterator<Item = &'a Event>) -> (LogRow, Kpis) {
    let mut r = row();
    let mut k = Kpis::default();
    kpi::add_row(&mut k, &r);
    for e in events {
        let o = observe::observe(e, &Qualifier::default()).unwrap();
        let t = log::apply(&mut r, &o);
        kpi::apply(&mut k, &t.delta, &r.domain);
    }
    (r, k)
}

fn recount(r: &LogRow) -> Kpis {
    let mut k = Kpis::default();
    kpi::add_row(&mut k, r);
    k
}

fn distinct(events: &[Event]) -> usize {
    let keys: HashSet<(String, String, Option<String>)> = events
        .iter()
        .map(|e| {
            let kind = observe::observe(e, &Qualifier::default()).unwrap().kind;
            (
                e.timestamp.clone(),
                kind.name().to_string(),
                e.raw_reason.clone(),
            )
        })
        .collect();
    keys.len()
}

/// Applies the events in time order, and in `order` with `dups` repeated, and compares.
fn same_end(
    events: &[Event],
    order: &[usize],
    dups: Vec<(usize, usize)>,
) -> Result<(), TestCaseError> {
    let mut by_time = events.to_vec();
    by_time.sort_by_key(|e| e.timestamp.clone());
    let (want, want_k) = run(&by_time);

    let mut seq: Vec<&Event> = order.iter().map(|&i| &events[i]).collect();
    for (i, pos) in dups {
        seq.insert(pos.min(seq.len()), &events[i]);
    }
    let (got, got_k) = run(seq);

    prop_assert_eq!(got.status, want.status);
    prop_assert_eq!(&got.failure, &want.failure);
    prop_assert_eq!(got.feedback, want.feedback);
    prop_assert_eq!(got.last_event_at, want.last_event_at);
    prop_assert!(got.attempts.len() <= MAX_ATTEMPTS_KEPT);
    if distinct(events) <= MAX_ATTEMPTS_KEPT {
        prop_assert_eq!(&got.attempts, &want.attempts);
    }
    // Counters are the sums over the rows: never drift, always add up.
    prop_assert_eq!(&got_k, &recount(&got));
    prop_assert_eq!(&want_k, &recount(&want));
    for k in [&got_k, &want_k] {
        prop_assert_eq!(k.pending + k.taken + k.sent + k.failed, k.to_deliver);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn any_order_and_repetition_ends_like_time_order((events, order, dups) in scenario(1..16, 6)) {
        same_end(&events, &order, dups)?;
    }

    /// More events than the history keeps: what decides the row must survive.
    #[test]
    fn long_histories_end_like_time_order((events, order, dups) in scenario(12..32, 40)) {
        same_end(&events, &order, dups)?;
    }

    #[test]
    fn kpis_of_many_rows_always_sum(rows in prop::collection::vec(scenario(1..8, 6), 1..12)) {
        let mut total = Kpis::default();
        let mut finals = Vec::new();
        for (i, (events, order, _)) in rows.iter().enumerate() {
            let mut r = row();
            r.domain = format!("d{}.example", i % 3);
            kpi::add_row(&mut total, &r);
            for &j in order {
                let o = observe::observe(&events[j], &Qualifier::default()).unwrap();
                let t = log::apply(&mut r, &o);
                kpi::apply(&mut total, &t.delta, &r.domain);
                prop_assert_eq!(
                    total.pending + total.taken + total.sent + total.failed,
                    total.to_deliver
                );
            }
            finals.push(r);
        }
        let mut fresh = Kpis::default();
        for r in &finals {
            kpi::add_row(&mut fresh, r);
        }
        prop_assert_eq!(total, fresh);
    }

    #[test]
    fn no_event_content_makes_decoding_panic(
        timestamp in ".{0,40}",
        event_id in "[0-9a-fA-Fz]{0,40}",
        delivery in proptest::option::of(".{0,12}"),
        log_id in proptest::option::of(prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,20}".prop_map(serde_json::Value::from),
        ]),
        class in proptest::option::of(any::<u16>()),
        enhanced in proptest::option::of("[0-9.]{0,12}"),
        reply in proptest::option::of("\\PC{0,700}"),
        kind in 0usize..10,
    ) {
        const KINDS: [EventType; 10] = [
            EventType::Reception, EventType::Delivery, EventType::Delay, EventType::Bounce,
            EventType::Expiration, EventType::OutOfBand, EventType::SpamComplaint,
            EventType::ListUnsubscribe, EventType::PolicyRejection, EventType::Shaping,
        ];
        let mut e = event(KINDS[kind], T0);
        e.timestamp = timestamp;
        e.event_id = event_id;
        e.delivery_id = delivery;
        match log_id {
            Some(v) => { e.metadata.insert("log_id".into(), v); }
            None => { e.metadata.remove("log_id"); }
        }
        e.bounce_class = class;
        e.enhanced_code = enhanced;
        e.raw_reason = reply;
        if let Ok(o) = observe::observe(&e, &Qualifier::default()) {
            prop_assert!(o.text.len() <= observe::MAX_TEXT);
            let mut r = row();
            let _ = log::apply(&mut r, &o);
        }
    }
}
