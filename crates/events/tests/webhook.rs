//! Webhook delivery against a loopback receiver: batching, retries, rejection, durability.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use cartero_clock::{ManualClock, SharedClock};
use cartero_events::{Event, EventSink, EventType, WebhookConfig, WebhookSink};
use parking_lot::Mutex;
use tokio::sync::watch;

const TOKEN: &str = "Bearer t0ken-for-tests";
const LIMIT: Duration = Duration::from_secs(20);

#[derive(Default)]
struct Log {
    attempts: usize,
    /// Authorization header and events of every accepted POST.
    accepted: Vec<(Option<String>, Vec<Event>)>,
    /// Status codes to answer before accepting (popped one per request).
    script: VecDeque<u16>,
}

struct Receiver {
    log: Mutex<Log>,
    delivered: watch::Sender<usize>,
}

impl Receiver {
    fn ids(&self) -> Vec<String> {
        let log = self.log.lock();
        log.accepted
            .iter()
            .flat_map(|(_, evs)| evs.iter().map(|e| e.event_id.clone()))
            .collect()
    }

    async fn wait_delivered(&self, n: usize) {
        let mut rx = self.delivered.subscribe();
        tokio::time::timeout(LIMIT, rx.wait_for(|&got| got >= n))
            .await
            .expect("receiver did not get the events in time")
            .unwrap();
    }
}

async fn handle(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut log = r.log.lock();
    log.attempts += 1;
    if let Some(code) = log.script.pop_front() {
        return StatusCode::from_u16(code).unwrap();
    }
    let Ok(events) = serde_json::from_slice::<Vec<Event>>(&body) else {
        return StatusCode::UNPROCESSABLE_ENTITY;
    };
    let auth = headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_owned());
    let n = events.len();
    log.accepted.push((auth, events));
    r.delivered.send_modify(|total| *total += n);
    StatusCode::OK
}

async fn receiver(script: &[u16]) -> (Arc<Receiver>, String) {
    let state = Arc::new(Receiver {
        log: Mutex::new(Log {
            script: script.iter().copied().collect(),
            ..Log::default()
        }),
        delivered: watch::channel(0).0,
    });
    let app = Router::new()
        .route("/hook", post(handle))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, format!("http://{addr}/hook"))
}

/// A loopback URL where nothing listens: connections are refused. The socket is bound but never
/// listens, so the port stays reserved (a dropped listener's port could be taken by a concurrent
/// test); keep it alive for as long as the URL must stay closed.
fn closed_url() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, format!("http://127.0.0.1:{port}/hook"))
}

fn config(url: &str, dir: &Path, batch_size: usize) -> WebhookConfig {
    WebhookConfig {
        url: url.to_owned(),
        auth_header: Some(TOKEN.to_owned()),
        batch_size,
        // Long: batches are cut by size or by an explicit persist/flush, never by chance.
        batch_delay: Duration::from_secs(3600),
        spool_dir: dir.to_path_buf(),
        retry_base: Duration::from_millis(5),
        retry_max: Duration::from_millis(40),
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..WebhookConfig::default()
    }
}

fn clock() -> SharedClock {
    Arc::new(ManualClock::new(1_714_564_800_000))
}

fn events(n: usize) -> Vec<Event> {
    let c = ManualClock::new(1_714_564_800_000);
    (0..n)
        .map(|i| Event::new(EventType::Delivery, &c).rcpt_to(format!("r{i}@example.com")))
        .collect()
}

fn ids(evs: &[Event]) -> Vec<String> {
    evs.iter().map(|e| e.event_id.clone()).collect()
}

fn spooled(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count()
}

async fn flush(sink: &WebhookSink) {
    tokio::time::timeout(LIMIT, sink.flush())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn batches_by_size_and_sends_the_authorization_header() {
    let (rx, url) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start(config(&url, dir.path(), 10), clock()).unwrap();
    let evs = events(25);
    for e in &evs {
        sink.emit(e);
    }
    flush(&sink).await;
    let log = rx.log.lock();
    let sizes: Vec<usize> = log.accepted.iter().map(|(_, b)| b.len()).collect();
    assert_eq!(sizes, vec![10, 10, 5]);
    assert!(
        log.accepted
            .iter()
            .all(|(auth, _)| auth.as_deref() == Some(TOKEN))
    );
    drop(log);
    assert_eq!(rx.ids(), ids(&evs));
    assert_eq!(spooled(dir.path()), 0);
    assert_eq!(sink.stats().batches_delivered, 3);
}

#[tokio::test]
async fn a_partial_batch_goes_out_after_the_batch_delay() {
    let (rx, url) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, dir.path(), 100);
    cfg.batch_delay = Duration::from_millis(30);
    let sink = WebhookSink::start(cfg, clock()).unwrap();
    let evs = events(3);
    for e in &evs {
        sink.emit(e);
    }
    // No flush: only the delay timer can send this batch.
    rx.wait_delivered(3).await;
    assert_eq!(rx.log.lock().accepted.len(), 1);
    assert_eq!(rx.ids(), ids(&evs));
}

#[tokio::test]
async fn retries_after_503_twice_and_loses_nothing() {
    let (rx, url) = receiver(&[503, 503]).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start(config(&url, dir.path(), 5), clock()).unwrap();
    let evs = events(5);
    for e in &evs {
        sink.emit(e);
    }
    flush(&sink).await;
    assert_eq!(rx.log.lock().attempts, 3);
    assert_eq!(rx.ids(), ids(&evs));
    let stats = sink.stats();
    assert_eq!(stats.failed_attempts, 2);
    assert_eq!(stats.batches_delivered, 1);
    assert_eq!(spooled(dir.path()), 0);
}

#[tokio::test]
async fn retries_on_429() {
    let (rx, url) = receiver(&[429]).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start(config(&url, dir.path(), 2), clock()).unwrap();
    let evs = events(2);
    for e in &evs {
        sink.emit(e);
    }
    flush(&sink).await;
    assert_eq!(rx.ids(), ids(&evs));
    assert_eq!(sink.stats().failed_attempts, 1);
}

#[tokio::test]
async fn a_400_drops_the_batch_and_later_batches_still_flow() {
    let (rx, url) = receiver(&[400]).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start(config(&url, dir.path(), 10), clock()).unwrap();
    for e in &events(2) {
        sink.emit(e);
    }
    flush(&sink).await;
    assert_eq!(sink.stats().batches_rejected, 1);
    assert!(rx.ids().is_empty());
    assert_eq!(spooled(dir.path()), 0);
    let later = events(1);
    sink.emit(&later[0]);
    flush(&sink).await;
    assert_eq!(rx.ids(), ids(&later));
    assert_eq!(rx.log.lock().attempts, 2);
}

#[tokio::test]
async fn undelivered_batches_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let evs = events(7);
    {
        let (_reserved, closed) = closed_url();
        let sink = WebhookSink::start(config(&closed, dir.path(), 3), clock()).unwrap();
        for e in &evs {
            sink.emit(e);
        }
        tokio::time::timeout(LIMIT, sink.persist())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(spooled(dir.path()), 3);
        assert_eq!(sink.stats().batches_delivered, 0);
    }
    // The old sink is gone; its batch files are all that is left.
    assert_eq!(spooled(dir.path()), 3);
    let (rx, url) = receiver(&[]).await;
    let sink = WebhookSink::start(config(&url, dir.path(), 3), clock()).unwrap();
    flush(&sink).await;
    assert_eq!(rx.ids(), ids(&evs));
    assert_eq!(spooled(dir.path()), 0);
    assert_eq!(sink.stats().batches_delivered, 3);
}

#[tokio::test]
async fn shutdown_keeps_the_partial_batch_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (_reserved, closed) = closed_url();
    let sink = WebhookSink::start(config(&closed, dir.path(), 100), clock()).unwrap();
    for e in &events(4) {
        sink.emit(e);
    }
    tokio::time::timeout(LIMIT, sink.shutdown())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spooled(dir.path()), 1);
}

#[tokio::test]
async fn an_unreadable_batch_file_is_set_aside_and_the_rest_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("0000000000001-0000000000-00000000.json");
    std::fs::write(&bad, b"{not an array").unwrap();
    let (rx, url) = receiver(&[]).await;
    let sink = WebhookSink::start(config(&url, dir.path(), 2), clock()).unwrap();
    let evs = events(2);
    for e in &evs {
        sink.emit(e);
    }
    flush(&sink).await;
    assert_eq!(rx.ids(), ids(&evs));
    assert!(!bad.exists());
    assert!(
        dir.path()
            .join("0000000000001-0000000000-00000000.json.bad")
            .exists()
    );
}

#[tokio::test]
async fn a_bad_auth_header_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("http://127.0.0.1:9/hook", dir.path(), 1);
    cfg.auth_header = Some("Bearer SECRETVALUE\nInjected: 1".into());
    let err = WebhookSink::start(cfg, clock()).err().unwrap().to_string();
    assert!(!err.contains("SECRETVALUE"), "{err}");
    assert!(err.contains("auth_header"), "{err}");
}

#[test]
fn starting_outside_a_runtime_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("http://127.0.0.1:9/hook", dir.path(), 1);
    assert!(WebhookSink::start(cfg, clock()).is_err());
}

#[tokio::test]
async fn ids_are_unique_across_a_large_run() {
    let (rx, url) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = WebhookSink::start(config(&url, dir.path(), 50), clock()).unwrap();
    let evs = events(500);
    for e in &evs {
        sink.emit(e);
    }
    flush(&sink).await;
    let got = rx.ids();
    assert_eq!(got.len(), 500);
    assert_eq!(got.iter().collect::<HashSet<_>>().len(), 500);
    assert_eq!(rx.log.lock().accepted.len(), 10);
}

// current_thread runtime: the batcher cannot run while this test emits without awaiting, so the
// in-memory bound is hit deterministically.
#[tokio::test(flavor = "current_thread")]
async fn memory_is_bounded_by_max_pending_events() {
    let (rx, url) = receiver(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&url, dir.path(), 10);
    cfg.max_pending_events = 2;
    let sink = WebhookSink::start(cfg, clock()).unwrap();
    let evs = events(5);
    for e in &evs {
        sink.emit(e);
    }
    assert_eq!(sink.stats().events_dropped, 3);
    flush(&sink).await;
    assert_eq!(rx.ids(), ids(&evs[..2]));
}

/// `ca_file` names a PEM bundle the client trusts; one it cannot use stops the start with an
/// error naming the file, never a webhook that silently trusts only the system's roots.
#[tokio::test]
async fn a_ca_file_that_cannot_be_used_stops_the_start_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("https://127.0.0.1:9/hook", &dir.path().join("spool"), 10);
    cfg.ca_file = Some(dir.path().join("missing.pem"));
    let e = WebhookSink::start(cfg.clone(), clock())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("missing.pem"), "{e}");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    cfg.ca_file = Some(garbage);
    let e = WebhookSink::start(cfg.clone(), clock())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("garbage.pem"), "{e}");
    assert!(e.to_string().contains("no certificate"), "{e}");
}
