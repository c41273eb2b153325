//! Opening a fresh store for a test: SQLite in a temporary directory always, PostgreSQL in a
//! schema of its own when `CARTERO_TEST_POSTGRES_URL` is set.

#![allow(dead_code)]

pub mod scripted;

use cartero_bounce::{BounceClass, FailureType, Reason};
use cartero_campaign::import::{ImportOptions, ImportReport, import_csv};
use cartero_campaign::model::{DEFAULT_VALIDITY_MS, DeliveryId, FailureInfo, ListId, LogRow};
use cartero_campaign::store::{ImportTarget, LogFilter, NewDelivery, Store, StoreOptions};
use cartero_clock::ManualClock;
use sqlx::Connection;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A hard failure as the MTA would qualify it.
pub fn failure(reason: Reason, text: &str) -> FailureInfo {
    FailureInfo {
        r#type: FailureType::Hard,
        reason,
        class: Some(BounceClass(10)),
        text: text.into(),
        rule: "rule-1".into(),
    }
}

/// A delivery of `list` with the least content a store accepts: what the measurements
/// create, where templates play no part.
pub fn bare_delivery(list: ListId) -> NewDelivery {
    NewDelivery {
        name: "m".into(),
        from: "a@b.c".into(),
        subject: "s".into(),
        text_template: None,
        html_template: None,
        list,
        validity_ms: DEFAULT_VALIDITY_MS,
        pool: None,
    }
}

/// Imports `rows` generated people over 500 domains into a new list "m", timing the import
/// alone. With `duplicate_every = Some(k)` each k-th row repeats the address before it.
pub async fn import_people(
    store: &Store,
    clock: &ManualClock,
    rows: usize,
    duplicate_every: Option<usize>,
) -> (ImportReport, Duration) {
    let mut csv = String::from("email,first_name,last_name,city\n");
    for i in 0..rows {
        let n = match duplicate_every {
            Some(k) if i % k == k - 1 => i - 1,
            _ => i,
        };
        csv.push_str(&format!(
            "jane.doe{n}@mail{}.example,Jane,Doe{i},Lisbon\n",
            n % 500
        ));
    }
    let started = Instant::now();
    let mut ignore = |_| {};
    let report = import_csv(
        store,
        csv.as_bytes(),
        ImportTarget::NewList("m".into()),
        &ImportOptions::default(),
        clock,
        &mut ignore,
    )
    .await
    .unwrap();
    (report, started.elapsed())
}

/// Every log row of a delivery, page by page through the public listing.
pub async fn all_rows(store: &Store, d: DeliveryId) -> Vec<LogRow> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_log_rows(d, &LogFilter::default(), after.as_ref(), 1000)
            .await
            .unwrap();
        out.extend(page.rows);
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

pub const URL_VAR: &str = "CARTERO_TEST_POSTGRES_URL";

pub async fn sqlite() -> (Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(None, dir.path(), &StoreOptions::default())
        .await
        .unwrap();
    (store, dir)
}

/// A store in a new schema of the test database, or `None` (with a printed reason) when no
/// database is configured. Under `CI=true` a missing database fails the test.
pub async fn postgres(test: &str) -> Option<(Store, String)> {
    let Ok(url) = std::env::var(URL_VAR) else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{URL_VAR} must be set under CI: the store tests run on PostgreSQL too");
        }
        println!("SKIPPED: {test} on PostgreSQL ({URL_VAR} is not set)");
        return None;
    };
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let schema = format!(
        "t_{}_{}_{}",
        test,
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    );
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&url).await.unwrap();
    let ddl = format!("DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
        .execute(&mut admin)
        .await
        .unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let store = Store::open(
        Some(&scoped),
        std::path::Path::new("."),
        &StoreOptions::default(),
    )
    .await
    .unwrap();
    Some((store, schema))
}

/// Drops a test's schema once the test passed (a failed test leaves it to look at).
pub async fn drop_schema(schema: &str) {
    let Ok(url) = std::env::var(URL_VAR) else {
        return;
    };
    let mut admin = sqlx::AnyConnection::connect(&url).await.unwrap();
    let ddl = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl))
        .execute(&mut admin)
        .await
        .unwrap();
}

/// Runs each named `async fn(Store)` as two tests: `NAME::sqlite` and `NAME::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let (store, _dir) = $crate::common::sqlite().await;
                    super::$name(store.clone()).await;
                    store.close().await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if let Some((store, schema)) = $crate::common::postgres(stringify!($name)).await {
                        super::$name(store.clone()).await;
                        store.close().await;
                        $crate::common::drop_schema(&schema).await;
                    }
                }
            }
        )*
    };
}
