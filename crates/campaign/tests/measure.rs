//! Quick numbers for the report (not a benchmark): bytes of SQLite per log row at 100k rows, and
//! CSV import rows per second. Run with
//! `cargo test --release -p cartero-campaign --test measure -- --ignored --nocapture`.

mod common;

use cartero_campaign::model::*;
use cartero_campaign::store::*;
use cartero_clock::ManualClock;
use std::time::Instant;

const ROWS: usize = 100_000;

fn db_bytes(dir: &std::path::Path) -> u64 {
    ["campaign.sqlite", "campaign.sqlite-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

async fn reopen(dir: &std::path::Path, store: Store) -> (Store, u64) {
    store.close().await;
    let bytes = db_bytes(dir);
    (
        Store::open(None, dir, &StoreOptions::default())
            .await
            .unwrap(),
        bytes,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn sqlite_bytes_per_log_row_and_import_rate() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let store = Store::open(None, dir.path(), &StoreOptions::default())
        .await
        .unwrap();

    let list = import_rate(&store, &clock).await;
    let d = store
        .create_delivery(&common::bare_delivery(list), 0)
        .await
        .unwrap()
        .id;
    let (store, empty) = reopen(dir.path(), store).await;
    let rows: Vec<LogRow> = (0..ROWS)
        .map(|i| LogRow {
            id: LogId(0),
            delivery: d,
            recipient: Some(RecipientId(i as i64 + 1)),
            address: format!("jane.doe{i}@mail{}.example", i % 500),
            domain: format!("mail{}.example", i % 500),
            status: LogStatus::Pending,
            failure: None,
            message_id: None,
            last_event_at: 0,
            attempts: Vec::new(),
            feedback: Feedback::default(),
        })
        .collect();
    let started = Instant::now();
    for chunk in rows.chunks(5_000) {
        store.insert_log_rows(chunk).await.unwrap();
    }
    println!(
        "insert: {ROWS} log rows in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let (store, pending) = reopen(dir.path(), store).await;
    println!(
        "pending rows: {:.1} bytes/row",
        (pending - empty) as f64 / ROWS as f64
    );
    deliver_everything(&store, d).await;
    let (store, sent) = reopen(dir.path(), store).await;
    println!(
        "sent rows (message id, one attempt, two events applied): {:.1} bytes/row",
        (sent - empty) as f64 / ROWS as f64
    );
    let k = store.kpis(d).await.unwrap();
    assert_eq!(k.sent, ROWS as u64);
    let started = Instant::now();
    for _ in 0..100 {
        store.kpis(d).await.unwrap();
    }
    println!(
        "kpi read: {:.2} ms each",
        started.elapsed().as_secs_f64() * 10.0
    );
    store.close().await;
    breakdown(dir.path()).await;
}

/// Imports 100,000 CSV rows and prints the rate.
async fn import_rate(store: &Store, clock: &ManualClock) -> ListId {
    let (report, took) = common::import_people(store, clock, ROWS, None).await;
    let secs = took.as_secs_f64();
    println!(
        "import: {} rows in {secs:.2} s = {:.0} rows/s",
        report.imported,
        report.imported as f64 / secs
    );
    report.list
}

/// Each row taken, then delivered: a message id, one attempt with a 250 reply, two events
/// applied.
async fn deliver_everything(store: &Store, d: DeliveryId) {
    let mut n = 0u64;
    loop {
        let batch = store.claim_pending(d, 5_000, 0, 60_000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        let taken: Vec<Taken> = batch
            .iter()
            .map(|r| {
                n += 1;
                Taken {
                    id: r.id,
                    message_id: format!("{:016x}", 0x1_0000_0000u64 + n),
                    at: 1_700_000_000_000,
                    bytes: 5000,
                }
            })
            .collect();
        store.mark_taken(&taken).await.unwrap();
        let keys: Vec<EventKey> = batch
            .iter()
            .flat_map(|r| {
                [
                    EventKey {
                        row: r.id,
                        event_id: format!("{:032x}", r.id.0 * 2),
                    },
                    EventKey {
                        row: r.id,
                        event_id: format!("{:032x}", r.id.0 * 2 + 1),
                    },
                ]
            })
            .collect();
        let k2 = keys.clone();
        store
            .apply_event_batch(&keys, move |b| {
                let mut c = EventBatchChanges::default();
                for row in b.rows.values() {
                    let mut r = row.clone();
                    r.status = LogStatus::Sent;
                    r.last_event_at = 1_700_000_000_000;
                    r.attempts.push(Attempt {
                        at: 1_700_000_000_000,
                        kind: "delivery".into(),
                        text: format!("250 2.0.0 Ok: queued as 4Vb{:08X}", r.id.0),
                    });
                    c.rows.push(r);
                }
                c.applied = k2;
                c
            })
            .await
            .unwrap();
    }
}

/// Bytes per table and index (SQLite's dbstat), per log row.
async fn breakdown(dir: &std::path::Path) {
    use sqlx::{Connection, Row};
    let url = format!("sqlite://{}", dir.join("campaign.sqlite").display());
    let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let rows = sqlx::query("SELECT name, SUM(pgsize) AS bytes, SUM(unused) AS unused FROM dbstat GROUP BY name ORDER BY bytes DESC LIMIT 12")
        .fetch_all(&mut c).await.unwrap();
    for r in rows {
        let name: String = r.get("name");
        let bytes: i64 = r.get("bytes");
        let unused: i64 = r.get("unused");
        println!(
            "  {name:<24} {:>7.1} bytes/row ({:.0}% unused)",
            bytes as f64 / ROWS as f64,
            100.0 * unused as f64 / bytes.max(1) as f64
        );
    }
}
