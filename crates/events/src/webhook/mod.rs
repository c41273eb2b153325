//! HTTP webhooks: events are batched, each batch is written durably to a spool directory before
//! its first POST, and POSTed (a JSON array) until the receiver answers 2xx.
//!
//! Retry policy: connection errors, timeouts, 5xx, 408 and 429 are retried with exponential backoff
//! (`retry_base` doubling up to `retry_max`, with jitter), forever, oldest batch first. Any other
//! answer (other 4xx, 3xx: redirects are not followed) means the same body can never succeed: the
//! batch is dropped with an error log. Delivery is at-least-once: a batch POSTed but not yet
//! acknowledged when the process stops is POSTed again on the next start, so receivers must
//! deduplicate by `event_id`.

mod sender;
mod spool;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cartero_clock::SharedClock;
use reqwest::header::HeaderValue;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

pub use sender::backoff_delay;
use sender::redact_url;
use spool::BatchSpool;

use crate::{Event, EventSink, EventsError, Result, WebhookConfig};

/// Counters of one webhook since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WebhookStats {
    /// Events dropped because `max_pending_events` were already waiting in memory.
    pub events_dropped: u64,
    /// Events lost because their batch could not be written to the spool (disk error).
    pub events_unspooled: u64,
    /// Batches written to the spool directory.
    pub batches_spooled: u64,
    /// Batches acknowledged with a 2xx (including batches left over from an earlier run).
    pub batches_delivered: u64,
    /// Batches dropped because the receiver refused them for good.
    pub batches_rejected: u64,
    /// POST attempts that will be retried.
    pub failed_attempts: u64,
}

#[derive(Default)]
struct Counters {
    events_dropped: AtomicU64,
    events_unspooled: AtomicU64,
    batches_spooled: AtomicU64,
    batches_delivered: AtomicU64,
    batches_rejected: AtomicU64,
    failed_attempts: AtomicU64,
}

/// State shared by the sink handle, the batching task and the sending task.
struct Shared {
    config: WebhookConfig,
    /// The URL without path or query, safe to log.
    log_url: String,
    client: reqwest::Client,
    auth: Option<HeaderValue>,
    spool: BatchSpool,
    clock: SharedClock,
    /// Wakes the sending task when a batch file appears.
    wake: Notify,
    scans_started: AtomicU64,
    stats: Counters,
}

enum Msg {
    Event(Box<Event>),
    Persist(oneshot::Sender<Result<()>>),
}

/// Adds the certificates of a PEM file to the roots `builder` trusts (a private CA, or a
/// server's self-signed certificate). Errors name the file and what is wrong with it.
pub fn trust_pem_file(
    mut builder: reqwest::ClientBuilder,
    path: &std::path::Path,
) -> std::result::Result<reqwest::ClientBuilder, String> {
    let pem = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| format!("{}: not a PEM certificate bundle: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    for c in certs {
        builder = builder.add_root_certificate(c);
    }
    Ok(builder)
}

/// A durable, batching webhook sink. See the module documentation for the delivery contract.
///
/// Memory holds at most `max_pending_events` queued events, the batch being filled and the one
/// batch being POSTed; everything else waits on disk. When the queue is full, [`EventSink::emit`]
/// drops the event (counted in [`WebhookStats::events_dropped`]) instead of blocking the MTA.
pub struct WebhookSink {
    tx: Option<mpsc::Sender<Msg>>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    drained: watch::Receiver<u64>,
    batcher: Option<JoinHandle<()>>,
    sender: Option<JoinHandle<()>>,
}

impl WebhookSink {
    /// Validates the configuration, opens the spool directory and starts the background tasks on
    /// the current Tokio runtime. Batches left in the spool by an earlier run are sent first.
    pub fn start(config: WebhookConfig, clock: SharedClock) -> Result<Self> {
        config.validate()?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| EventsError::NoRuntime("WebhookSink"))?;
        let log_url = redact_url(&config.url);
        let auth = match &config.auth_header {
            Some(value) => {
                // The error deliberately omits the value: it is a secret.
                let mut v = HeaderValue::from_str(value).map_err(|_| {
                    EventsError::Config(format!(
                        "webhook {log_url}: auth_header is not a valid header value"
                    ))
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        reqwest::Url::parse(&config.url)
            .map_err(|e| EventsError::Config(format!("webhook {log_url}: bad url: {e}")))?;
        let mut builder = reqwest::Client::builder();
        if let Some(path) = &config.ca_file {
            builder = trust_pem_file(builder, path)
                .map_err(|e| EventsError::Config(format!("webhook {log_url}: ca_file: {e}")))?;
        }
        let client = builder
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cartero-events/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EventsError::Config(format!("webhook {log_url}: HTTP client: {e}")))?;
        let spool = BatchSpool::open(&config.spool_dir)?;
        let (tx, rx) = mpsc::channel(config.max_pending_events);
        let shared = Arc::new(Shared {
            config,
            log_url,
            client,
            auth,
            spool,
            clock,
            wake: Notify::new(),
            scans_started: AtomicU64::new(0),
            stats: Counters::default(),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (drained_tx, drained) = watch::channel(0);
        let batcher = runtime.spawn(run_batcher(Arc::clone(&shared), rx));
        let sender = runtime.spawn(sender::run(Arc::clone(&shared), shutdown_rx, drained_tx));
        Ok(Self {
            tx: Some(tx),
            shared,
            shutdown,
            drained,
            batcher: Some(batcher),
            sender: Some(sender),
        })
    }

    /// Waits until every event emitted before this call is in a batch file on disk (a partial
    /// batch is cut early). After this, the events survive a crash.
    pub async fn persist(&self) -> Result<()> {
        let tx = self
            .tx
            .as_ref()
            .ok_or(EventsError::WorkerGone("webhook batcher"))?;
        let (done_tx, done_rx) = oneshot::channel();
        tx.send(Msg::Persist(done_tx))
            .await
            .map_err(|_| EventsError::WorkerGone("webhook batcher"))?;
        done_rx
            .await
            .map_err(|_| EventsError::WorkerGone("webhook batcher"))?
    }

    /// Waits until every event emitted before this call has been delivered (or its batch rejected
    /// for good). While the receiver is down this waits for as long as it stays down: wrap it in a
    /// timeout.
    pub async fn flush(&self) -> Result<()> {
        self.persist().await?;
        // Only a scan that starts after the batches were on disk proves they are gone.
        let after = self.shared.scans_started.load(Ordering::SeqCst);
        self.shared.wake.notify_one();
        let mut drained = self.drained.clone();
        drained
            .wait_for(|&scan| scan > after)
            .await
            .map(|_| ())
            .map_err(|_| EventsError::WorkerGone("webhook sender"))
    }

    /// Persists the partial batch and stops both tasks; undelivered batches stay in the spool.
    pub async fn shutdown(mut self) -> Result<()> {
        self.tx.take();
        if let Some(batcher) = self.batcher.take() {
            batcher
                .await
                .map_err(|_| EventsError::WorkerGone("webhook batcher"))?;
        }
        self.shutdown.send_replace(true);
        if let Some(sender) = self.sender.take() {
            sender
                .await
                .map_err(|_| EventsError::WorkerGone("webhook sender"))?;
        }
        Ok(())
    }

    /// Counters since start.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.shared.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        WebhookStats {
            events_dropped: get(&c.events_dropped),
            events_unspooled: get(&c.events_unspooled),
            batches_spooled: get(&c.batches_spooled),
            batches_delivered: get(&c.batches_delivered),
            batches_rejected: get(&c.batches_rejected),
            failed_attempts: get(&c.failed_attempts),
        }
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> &Path {
        &self.shared.config.spool_dir
    }
}

impl EventSink for WebhookSink {
    fn emit(&self, event: &Event) {
        let Some(tx) = &self.tx else { return };
        if tx.try_send(Msg::Event(Box::new(event.clone()))).is_err() {
            self.shared
                .stats
                .events_dropped
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(webhook = %self.shared.log_url, event_id = %event.event_id, "webhook queue full, event dropped");
        }
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        // The batcher writes its partial batch when the channel closes; the sender stops at once
        // and leaves undelivered batches on disk for the next start.
        self.tx.take();
        self.shutdown.send_replace(true);
    }
}

/// Collects events into batches of `batch_size`, cutting a partial batch `batch_delay` after its
/// first event, on `persist`, and when the sink is dropped.
async fn run_batcher(shared: Arc<Shared>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<Event> = Vec::new();
    let mut deadline: Option<Instant> = None;
    loop {
        let msg = match deadline {
            Some(at) => tokio::select! {
                m = rx.recv() => m,
                () = sleep_until(at) => {
                    deadline = None;
                    let _ = cut(&shared, &mut batch).await;
                    continue;
                }
            },
            None => rx.recv().await,
        };
        match msg {
            Some(Msg::Event(ev)) => {
                if batch.is_empty() {
                    deadline = Some(Instant::now() + shared.config.batch_delay);
                }
                batch.push(*ev);
                if batch.len() >= shared.config.batch_size {
                    deadline = None;
                    let _ = cut(&shared, &mut batch).await;
                }
            }
            Some(Msg::Persist(done)) => {
                deadline = None;
                // The caller may have stopped waiting; nothing to do then.
                let _ = done.send(cut(&shared, &mut batch).await);
            }
            None => {
                let _ = cut(&shared, &mut batch).await;
                return;
            }
        }
    }
}

/// Writes the batch to the spool (off the async threads: it fsyncs) and wakes the sender.
async fn cut(shared: &Arc<Shared>, batch: &mut Vec<Event>) -> Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let events = std::mem::take(batch);
    let count = events.len() as u64;
    let job = Arc::clone(shared);
    let written = tokio::task::spawn_blocking(move || job.spool.write(&events, job.clock.now_ms()))
        .await
        .unwrap_or(Err(EventsError::WorkerGone("webhook spool writer")));
    match written {
        Ok(_) => {
            shared.stats.batches_spooled.fetch_add(1, Ordering::Relaxed);
            shared.wake.notify_one();
            Ok(())
        }
        Err(e) => {
            shared
                .stats
                .events_unspooled
                .fetch_add(count, Ordering::Relaxed);
            tracing::error!(webhook = %shared.log_url, events = count, error = %e, "writing webhook batch to the spool failed; events lost");
            Err(e)
        }
    }
}
