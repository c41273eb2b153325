//! Address states and their release from quarantine, on SQLite and (when configured) on
//! PostgreSQL.

mod common;

use cartero_bounce::Reason;
use cartero_campaign::model::*;
use cartero_campaign::store::*;
use common::failure;

const T0: UnixMillis = 1_700_000_000_000;

on_both_backends!(
    address_states_upsert_and_read_lower_cased,
    bulk_release_previews_releases_and_audits,
    release_filters_take_text_literally_and_need_a_reason,
);

fn quarantined(address: &str, reason: Reason, text: &str, since: UnixMillis) -> AddressState {
    AddressState {
        address: address.into(),
        status: AddressStatus::Quarantine,
        error_count: 5,
        last_counted_at: Some(since),
        last_error: Some(failure(reason, text)),
        last_error_at: Some(since),
        since: Some(since),
        reason: Some(reason),
    }
}

async fn address_states_upsert_and_read_lower_cased(store: Store) {
    let s = quarantined("Mixed@Example.ORG", Reason::MailboxFull, "552 full", T0);
    store
        .upsert_address_states(std::slice::from_ref(&s))
        .await
        .unwrap();
    let got = store
        .address_state("mixed@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        AddressState {
            address: "mixed@example.org".into(),
            ..s
        }
    );
    let mut valid = got.clone();
    valid.status = AddressStatus::Valid;
    valid.error_count = 0;
    store.upsert_address_states(&[valid.clone()]).await.unwrap();
    assert_eq!(
        store.address_state("MIXED@example.org").await.unwrap(),
        Some(valid)
    );
    let many = store
        .address_states(&["mixed@EXAMPLE.org".into(), "never@seen.test".into()])
        .await
        .unwrap();
    assert_eq!(many.keys().collect::<Vec<_>>(), vec!["mixed@example.org"]);
}

async fn bulk_release_previews_releases_and_audits(store: Store) {
    let incident = "421 4.7.0 too many connections from your IP";
    let states = vec![
        quarantined("a@big.test", Reason::Refused, incident, T0 + 10),
        quarantined("b@big.test", Reason::Refused, incident, T0 + 20),
        quarantined("c@small.test", Reason::Refused, incident, T0 + 30),
        quarantined("d@big.test", Reason::Refused, incident, T0 + 5_000),
    ];
    store.upsert_address_states(&states).await.unwrap();
    let filter = ReleaseFilter {
        text_contains: Some("TOO MANY connections".into()),
        since_from: Some(T0),
        since_until: Some(T0 + 1_000),
        domain: Some("BIG.test".into()),
        ..Default::default()
    };
    assert_eq!(store.count_release(&filter).await.unwrap(), 2);
    let listed = store.list_addresses(&filter, None, 10).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| s.address.as_str())
            .collect::<Vec<_>>(),
        vec!["a@big.test", "b@big.test"]
    );
    let audit = store
        .release(&filter, "ops@corp", "provider incident #42", T0 + 9_000)
        .await
        .unwrap();
    assert_eq!(audit.count, 2);
    assert_eq!(store.count_release(&filter).await.unwrap(), 0);
    let a = store.address_state("a@big.test").await.unwrap().unwrap();
    assert_eq!(
        (a.status, a.error_count, a.since),
        (AddressStatus::Valid, 0, None)
    );
    assert_eq!(
        a.last_error.unwrap().text,
        incident,
        "the last error stays for the record"
    );
    assert_eq!(
        store
            .address_state("d@big.test")
            .await
            .unwrap()
            .unwrap()
            .status,
        AddressStatus::Quarantine
    );
    let trail = store.release_audit(10).await.unwrap();
    assert_eq!(
        (
            trail[0].actor.as_str(),
            trail[0].why.as_str(),
            trail[0].count,
            trail[0].at
        ),
        ("ops@corp", "provider incident #42", 2, T0 + 9_000)
    );
    assert_eq!(trail[0].filter, filter);
}

async fn release_filters_take_text_literally_and_need_a_reason(store: Store) {
    let states = vec![
        quarantined(
            "e@big.test",
            Reason::UserUnknown,
            "550 unknown 100%_off",
            T0,
        ),
        quarantined(
            "f@big.test",
            Reason::UserUnknown,
            "550 unknown 1000 off",
            T0,
        ),
    ];
    store.upsert_address_states(&states).await.unwrap();
    // LIKE wildcards in the pattern are literal.
    let literal = ReleaseFilter {
        text_contains: Some("100%_".into()),
        ..Default::default()
    };
    assert_eq!(store.count_release(&literal).await.unwrap(), 1);
    let wildcard = ReleaseFilter {
        text_contains: Some("1%f".into()),
        ..Default::default()
    };
    assert_eq!(store.count_release(&wildcard).await.unwrap(), 0);
    let one = ReleaseFilter {
        address: Some("E@big.test".into()),
        reason: Some(Reason::UserUnknown),
        ..Default::default()
    };
    store
        .release(&one, "ops@corp", "confirmed by the user", T0 + 9_500)
        .await
        .unwrap();
    let trail = store.release_audit(10).await.unwrap();
    assert_eq!((trail.len(), trail[0].count), (1, 1));
    assert_eq!(
        store
            .address_state("f@big.test")
            .await
            .unwrap()
            .unwrap()
            .status,
        AddressStatus::Quarantine
    );
    let no_why = store.release(&one, "ops@corp", " ", T0).await;
    assert!(matches!(no_why, Err(StoreError::Invalid(_))));
    let valid = ReleaseFilter {
        statuses: vec![AddressStatus::Valid],
        ..Default::default()
    };
    assert!(matches!(
        store.count_release(&valid).await,
        Err(StoreError::Invalid(_))
    ));
}
