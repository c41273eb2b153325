//! Quick numbers for the report (not a benchmark): the rate of each store operation the import,
//! the analysis and the send lean on, at 100,000 rows, on SQLite and on PostgreSQL
//! (`CARTERO_TEST_POSTGRES_URL`), with KPI reads beside the send. Run with
//! `cargo test --release -p cartero-campaign --test store_rates -- --ignored --nocapture --test-threads 1`.

mod common;

use cartero_campaign::model::*;
use cartero_campaign::store::*;
use cartero_clock::ManualClock;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const ROWS: usize = 100_000;
/// What the engine uses: `analysis_page` and `batch` (EngineConfig's defaults).
const PAGE: u32 = 2_000;
const SEND_BATCH: u32 = 500;
const NOW: u64 = 1_700_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn sqlite_store_rates() {
    let (store, _dir) = common::sqlite().await;
    rates(&store, "sqlite").await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand"]
async fn postgres_store_rates() {
    let Some((store, schema)) = common::postgres("rates").await else {
        return;
    };
    rates(&store, "postgres").await;
    store.close().await;
    common::drop_schema(&schema).await;
}

fn rate(what: &str, backend: &str, n: usize, took: Duration) {
    println!(
        "{backend}: {what}: {n} in {:.2} s = {:.0}/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
}

async fn rates(store: &Store, backend: &str) {
    let clock = ManualClock::new(NOW);
    let list = import(store, &clock, backend).await;
    let d = store
        .create_delivery(&common::bare_delivery(list), 0)
        .await
        .unwrap()
        .id;
    store.reset_log(d).await.unwrap();
    analyze(store, d, list, backend).await;
    let t = Instant::now();
    store
        .set_delivery_state(d, &[DeliveryState::Draft], DeliveryState::Analyzed, NOW)
        .await
        .unwrap();
    println!(
        "{backend}: to Analyzed: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    table_bytes(store, "pending").await;
    let reading = Arc::new(AtomicBool::new(true));
    let reader = tokio::spawn(kpi_reads(store.clone(), d, reading.clone()));
    send(store, d, backend).await;
    reading.store(false, Ordering::SeqCst);
    let mut lat = reader.await.unwrap();
    lat.sort();
    if !lat.is_empty() {
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        println!(
            "{backend}: kpi read during the send: {} reads, p50 {:.1} ms, p99 {:.1} ms",
            lat.len(),
            p(0.5),
            p(0.99)
        );
    }
    let k = store.kpis(d).await.unwrap();
    assert_eq!(k.sent + k.ignored, ROWS as u64);
    table_bytes(store, "sent").await;
    bounce(store, d, backend).await;
}

/// A late bounce for the first rows, each with its own reply text: a new failure in the
/// dictionary per row.
async fn bounce(store: &Store, d: DeliveryId, backend: &str) {
    const BOUNCED: usize = 20_000;
    let mut n = 0;
    let mut took = Duration::ZERO;
    let mut after = None;
    while n < BOUNCED {
        let page = store
            .list_log_rows(d, &LogFilter::default(), after.as_ref(), SEND_BATCH)
            .await
            .unwrap();
        let Some(cursor) = page.next else { break };
        after = Some(cursor);
        let keys: Vec<EventKey> = page
            .rows
            .iter()
            .filter(|r| r.status == LogStatus::Sent)
            .map(|r| EventKey {
                row: r.id,
                event_id: format!("bounce-{}", r.id.0),
            })
            .collect();
        n += keys.len();
        let applied = keys.clone();
        let t = Instant::now();
        store
            .apply_event_batch(&keys, move |b| fail(b, applied))
            .await
            .unwrap();
        took += t.elapsed();
    }
    rate(
        "apply_event_batch (bounces, new failures)",
        backend,
        n,
        took,
    );
}

fn fail(b: EventBatch, applied: Vec<EventKey>) -> EventBatchChanges {
    let mut c = EventBatchChanges::default();
    for row in b.rows.values() {
        let mut r = row.clone();
        r.status = LogStatus::Failed;
        r.last_event_at = NOW + 1;
        r.failure = Some(FailureInfo {
            r#type: cartero_bounce::FailureType::Hard,
            reason: cartero_bounce::Reason::UserUnknown,
            class: Some(cartero_bounce::BounceClass(10)),
            text: format!("550 5.1.1 <{}>: Recipient address rejected", r.address),
            rule: "rule-1".into(),
        });
        c.rows.push(r);
    }
    c.applied = applied;
    c
}

async fn import(store: &Store, clock: &ManualClock, backend: &str) -> ListId {
    // Every 50th address is a duplicate: analysis logs it as Ignored with a failure.
    let (report, took) = common::import_people(store, clock, ROWS, Some(50)).await;
    rate("import", backend, ROWS, took);
    report.list
}

/// What the engine's analysis does with the store: a page, the address states of its
/// addresses, the page's rows.
async fn analyze(store: &Store, d: DeliveryId, list: ListId, backend: &str) {
    let started = Instant::now();
    let (mut read, mut states_t, mut insert) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut after = None;
    let mut seen = std::collections::HashSet::new();
    loop {
        let t = Instant::now();
        let page = store.recipients_page(list, after, PAGE).await.unwrap();
        read += t.elapsed();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        let keys: Vec<String> = page.iter().map(|r| r.email.to_lowercase()).collect();
        let t = Instant::now();
        let states = store.address_states(&keys).await.unwrap();
        states_t += t.elapsed();
        assert!(states.is_empty());
        let rows: Vec<LogRow> = page
            .iter()
            .map(|r| {
                let dup = !seen.insert(r.email.clone());
                LogRow {
                    id: LogId(0),
                    delivery: d,
                    recipient: Some(r.id),
                    address: r.email.clone(),
                    domain: r.email.split('@').nth(1).unwrap_or_default().into(),
                    status: if dup {
                        LogStatus::Ignored
                    } else {
                        LogStatus::Pending
                    },
                    failure: dup.then(|| FailureInfo {
                        r#type: cartero_bounce::FailureType::Ignored,
                        reason: cartero_bounce::Reason::Duplicate,
                        class: None,
                        text: "duplicate in this delivery".into(),
                        rule: "analysis:duplicate".into(),
                    }),
                    message_id: None,
                    last_event_at: 0,
                    attempts: Vec::new(),
                    feedback: Feedback::default(),
                }
            })
            .collect();
        let t = Instant::now();
        store.insert_log_rows(&rows).await.unwrap();
        insert += t.elapsed();
    }
    rate("analysis (store part)", backend, ROWS, started.elapsed());
    rate("  recipients_page", backend, ROWS, read);
    rate("  address_states", backend, ROWS, states_t);
    rate("  insert_log_rows", backend, ROWS, insert);
}

/// Claims, marks Taken and delivers every Pending row, batch by batch as the engine does:
/// each row gets a message id, then a delivery event and a second event (two applied).
async fn send(store: &Store, d: DeliveryId, backend: &str) {
    let (mut claim, mut taken_t, mut events_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut rows_n, mut events_n) = (0usize, 0usize);
    loop {
        let t = Instant::now();
        let batch = store.claim_pending(d, SEND_BATCH, 0, 60_000).await.unwrap();
        claim += t.elapsed();
        if batch.is_empty() {
            break;
        }
        rows_n += batch.len();
        let taken: Vec<Taken> = batch
            .iter()
            .map(|r| Taken {
                id: r.id,
                message_id: format!("{:016x}", 0x1_0000_0000u64 + r.id.0 as u64),
                at: NOW,
                bytes: 5000,
            })
            .collect();
        let t = Instant::now();
        store.mark_taken(&taken).await.unwrap();
        taken_t += t.elapsed();
        let keys: Vec<EventKey> = batch
            .iter()
            .flat_map(|r| {
                (0..2).map(|k| EventKey {
                    row: r.id,
                    event_id: format!("{:032x}", r.id.0 * 2 + k),
                })
            })
            .collect();
        events_n += keys.len();
        let applied = keys.clone();
        let t = Instant::now();
        store
            .apply_event_batch(&keys, move |b| deliver(b, applied))
            .await
            .unwrap();
        events_t += t.elapsed();
    }
    rate("claim_pending", backend, rows_n, claim);
    rate("mark_taken", backend, rows_n, taken_t);
    rate("apply_event_batch (events)", backend, events_n, events_t);
}

fn deliver(b: EventBatch, applied: Vec<EventKey>) -> EventBatchChanges {
    let mut c = EventBatchChanges::default();
    for row in b.rows.values() {
        let mut r = row.clone();
        r.status = LogStatus::Sent;
        r.last_event_at = NOW;
        r.attempts.push(Attempt {
            at: NOW,
            kind: "delivery".into(),
            text: format!("250 2.0.0 Ok: queued as 4Vb{:08X}", r.id.0),
        });
        c.rows.push(r);
    }
    c.applied = applied;
    c
}

/// KPI reads every 10 ms while `go` holds; their latencies.
async fn kpi_reads(store: Store, d: DeliveryId, go: Arc<AtomicBool>) -> Vec<Duration> {
    let mut out = Vec::new();
    while go.load(Ordering::SeqCst) && out.len() < 100_000 {
        let t = Instant::now();
        store.kpis(d).await.unwrap();
        out.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    out
}

/// PostgreSQL: the log_row table with its indexes, per row (SQLite: see tests/measure.rs).
async fn table_bytes(store: &Store, when: &str) {
    if store.backend() != Backend::Postgres {
        return;
    }
    let Ok(url) = std::env::var(common::URL_VAR) else {
        return;
    };
    use sqlx::{Connection, Row};
    let mut c = sqlx::PgConnection::connect(&url).await.unwrap();
    // The store's schema is the newest t_rates_ one (common::postgres).
    let rows = sqlx::query(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS total, \
         pg_relation_size(c.oid) AS heap FROM pg_class c JOIN pg_namespace n \
         ON n.oid = c.relnamespace WHERE n.nspname = (SELECT nspname FROM pg_namespace \
         WHERE nspname LIKE 't_rates_%' ORDER BY oid DESC LIMIT 1) \
         AND (c.relname LIKE 'log%' OR c.relname = 'recipient') ORDER BY c.relkind DESC, total DESC \
         LIMIT 12",
    )
    .fetch_all(&mut c)
    .await
    .unwrap();
    for r in rows {
        let name: String = r.get("relname");
        let total: i64 = r.get("total");
        let heap: i64 = r.get("heap");
        if total >= ROWS as i64 {
            println!(
                "postgres: {when}: {name}: {:.1} bytes/row with indexes ({:.1} alone)",
                total as f64 / ROWS as f64,
                heap as f64 / ROWS as f64
            );
        }
    }
}
