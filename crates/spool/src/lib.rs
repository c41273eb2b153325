//! The durable spool: message bodies stored once in append-only segment files, per-recipient state
//! in a journal beside each segment, group commit through one writer thread.
//!
//! Layout under the spool directory: `segments/XXXXXXXX.seg` (message records) and
//! `segments/XXXXXXXX.jnl` (recipient-state records for messages of that segment), `XXXXXXXX` being
//! the segment number in 8 hex digits. A segment and its journal are deleted together once every
//! recipient of every message in the segment is final, so no state outlives its message.
//!
//! Durability: [`Spool::insert`] and [`Spool::update`] return only after the record was written and
//! `fdatasync`'d (many callers share one write and one sync per batch). The directory is fsync'd
//! after files are created or deleted. A crash after the acknowledgement loses nothing; on
//! [`Spool::open`] torn tails are truncated and damaged regions elsewhere are skipped and reported
//! in [`Spool::recovery_report`].
//!
//! Memory: bodies and envelopes never stay in memory; see the `index` module note (about 24 bytes per
//! message plus one bit per recipient).
//!
//! Events: with [`SpoolOptions::outbox_consumers`] set, opaque event records are written in the
//! same group commit as the states they go with, under `outbox/`, and read back by the named
//! consumers ([`Spool::outbox_reader`]); see the `outbox` module note.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod crc;
mod fault;
mod index;
mod outbox;
mod record;
mod recovery;
mod writer;

pub use outbox::{MAX_EVENT, OutboxEntry, OutboxReader, OutboxStats, Position};
pub use writer::{private_dir, private_file};

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cartero_clock::UnixMillis;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::index::Index;
use crate::outbox::OutboxShared;
use crate::writer::Request;

/// Makes the outbox records of a message being inserted, from the id it gets. Called on the
/// spool's writer thread, only when the outbox is enabled: keep it short.
pub type EventsFor = Box<dyn FnOnce(MessageId) -> Vec<Bytes> + Send>;

/// Identifies a spooled message: segment number in the high 32 bits, position in the segment in the
/// low 32. Segment numbers only grow (the newest segment file is never deleted before a newer one
/// exists), so ids are unique across restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub u64);

impl MessageId {
    pub(crate) fn new(segment: u32, index: u32) -> Self {
        MessageId((u64::from(segment) << 32) | u64::from(index))
    }

    pub(crate) fn segment(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Error parsing a [`MessageId`] from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid message id {0:?}: expected 16 hex digits")]
pub struct ParseMessageIdError(pub String);

impl FromStr for MessageId {
    type Err = ParseMessageIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseMessageIdError(s.to_string()));
        }
        u64::from_str_radix(s, 16)
            .map(MessageId)
            .map_err(|_| ParseMessageIdError(s.to_string()))
    }
}

/// The envelope of a spooled message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Envelope sender (MAIL FROM), possibly empty for bounces.
    pub sender: String,
    /// Envelope recipients (RCPT TO); recipient numbers in updates index this list.
    pub recipients: Vec<String>,
    /// When the message was accepted.
    pub received_at: UnixMillis,
    /// When undelivered recipients expire.
    pub expires_at: UnixMillis,
    /// Free metadata such as `delivery_id` and `campaign_id`.
    pub metadata: serde_json::Map<String, serde_json::Value>,
    /// Egress pool requested for this message.
    pub pool: Option<String>,
    /// Hashes of the recipients' idempotency keys, aligned with `recipients` (empty string: no
    /// key; empty list: none at all). Kept so a restart still knows keys of spooled mail.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub idempotency: Vec<String>,
}

/// Delivery status of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptStatus {
    /// Waiting for a (further) delivery attempt.
    Queued,
    /// Accepted by the remote side; final.
    Delivered,
    /// Permanently failed or expired; final.
    Failed,
}

impl RcptStatus {
    /// Whether no further attempt will be made.
    pub fn is_final(self) -> bool {
        !matches!(self, RcptStatus::Queued)
    }
}

/// Durable state of one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RcptState {
    /// Current status.
    pub status: RcptStatus,
    /// Delivery attempts made so far.
    pub attempts: u16,
    /// Earliest time of the next attempt.
    pub next_attempt: UnixMillis,
    /// Last reply from the remote side, if any.
    pub last_reply: Option<String>,
}

/// Tuning of the spool.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// A new segment is started once the current one reaches this many bytes.
    pub segment_size: u64,
    /// Most records written per durability barrier.
    pub max_batch: usize,
    /// How long the writer waits for more records after the first of a batch. The default is zero:
    /// records that arrive while a sync is in progress form the next batch by themselves, so
    /// batching grows with load and an idle spool adds no latency to an acknowledgement.
    pub max_batch_delay: Duration,
    /// Names of the consumers of the event outbox (`outbox/` under the spool directory). Empty
    /// (the default): no outbox, events given to the spool are ignored and nothing is written.
    pub outbox_consumers: Vec<String>,
    /// A new outbox segment is started once the current one would grow past this many bytes.
    pub outbox_segment_size: u64,
    /// Simulates a crash after this many file writes (the crate's own tests only).
    #[cfg(test)]
    pub(crate) crash_after_writes: Option<u64>,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        SpoolOptions {
            segment_size: 64 * 1024 * 1024,
            max_batch: 256,
            max_batch_delay: Duration::ZERO,
            outbox_consumers: Vec::new(),
            outbox_segment_size: 16 * 1024 * 1024,
            #[cfg(test)]
            crash_after_writes: None,
        }
    }
}

/// A message found on [`Spool::open`] that still has at least one non-final recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    /// Its id.
    pub id: MessageId,
    /// Its envelope as inserted.
    pub envelope: Envelope,
    /// One state per recipient, in envelope order. Recipients never updated are `Queued` with zero
    /// attempts and `next_attempt = received_at`.
    pub rcpts: Vec<RcptState>,
    /// Size of the stored body in bytes.
    pub body_len: u64,
}

/// Counters describing the spool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// Segment files present (each with its journal).
    pub segments: usize,
    /// Messages with at least one non-final recipient.
    pub live_messages: u64,
    /// Non-final recipients.
    pub live_recipients: u64,
    /// Bytes in segment and journal files.
    pub bytes_on_disk: u64,
    /// Durability barriers (batches written and synced) since open.
    pub fsync_barriers: u64,
}

/// A damaged region skipped during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptRegion {
    /// The damaged file.
    pub file: PathBuf,
    /// Offset of the damage.
    pub offset: u64,
    /// Bytes skipped.
    pub len: u64,
}

/// What recovery had to repair or skip.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut off torn file tails (normal after a crash mid-write).
    pub truncated_bytes: u64,
    /// Damaged regions followed by valid data (not a crash artefact: disk or outside damage).
    pub corrupt: Vec<CorruptRegion>,
    /// Records that passed the checksum but made no sense (e.g. an update for an unknown message).
    pub invalid_records: u64,
    /// Messages that cannot be restored: their record was in a damaged region, or passed the
    /// checksum with an unreadable envelope. Named so that none disappears silently.
    pub lost: Vec<LostMessage>,
}

/// A message recovery had to give up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostMessage {
    pub id: MessageId,
    /// How many recipients it had, when the record said so (`None`: the record itself is gone).
    pub recipients: Option<u32>,
}

/// Spool errors.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool I/O error: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// No such message in the spool (never existed, or already deleted).
    #[error("unknown message {0}")]
    UnknownMessage(MessageId),
    /// The recipient number is out of range.
    #[error("message {id} has no recipient #{rcpt}")]
    UnknownRecipient {
        /// The message.
        id: MessageId,
        /// The recipient number.
        rcpt: u32,
    },
    /// The recipient already reached a final state, which cannot be changed.
    #[error("recipient #{rcpt} of message {id} is already final")]
    AlreadyFinal {
        /// The message.
        id: MessageId,
        /// The recipient number.
        rcpt: u32,
    },
    /// An envelope must name at least one recipient.
    #[error("envelope has no recipients")]
    NoRecipients,
    /// The message does not fit a record.
    #[error("message too large for the spool: {0} bytes")]
    TooLarge(usize),
    /// The envelope could not be encoded or decoded.
    #[error("envelope encoding: {0}")]
    Encoding(#[from] serde_json::Error),
    /// An outbox event is larger than [`MAX_EVENT`].
    #[error("event too large for the outbox: {0} bytes (at most {max})", max = MAX_EVENT)]
    EventTooLarge(usize),
    /// An outbox consumer name that is not configured, invalid, or already being read.
    #[error("outbox consumer {0:?}: {1}")]
    Consumer(String, &'static str),
    /// An outbox file is damaged or is not one the spool wrote.
    #[error("outbox damaged: {path} at offset {offset}: {detail}")]
    OutboxDamaged {
        /// The file.
        path: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong.
        detail: String,
    },
    /// The writer has stopped (after [`Spool::close`]).
    #[error("spool is closed")]
    Closed,
    /// A write or sync failed earlier; the spool refuses further writes because the state of the
    /// page cache is unknown. Restart to recover from what is on disk.
    #[error("spool failed and stopped accepting writes: {0}")]
    Failed(String),
}

impl SpoolError {
    pub(crate) fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError {
        let path = path.to_path_buf();
        move |source| SpoolError::Io { op, path, source }
    }
}

/// State shared between handles and the writer thread.
#[derive(Debug)]
pub(crate) struct Shared {
    pub index: Mutex<Index>,
    pub barriers: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    tx: std::sync::mpsc::Sender<Request>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    report: RecoveryReport,
    outbox: Option<Arc<OutboxShared>>,
}

/// Handle to an open spool. Cheap to clone; all clones share one writer.
#[derive(Debug, Clone)]
pub struct Spool {
    inner: Arc<Inner>,
}

/// Largest envelope + body accepted in one record.
const MAX_RECORD: usize = u32::MAX as usize - 64;

/// Bodies up to this size are read on the calling thread.
const INLINE_READ_MAX: usize = 256 * 1024;

impl Spool {
    /// Opens (creating if needed) the spool under `dir`, recovers its content and starts the writer.
    /// Returns every message that still has a non-final recipient; fully final segments are deleted.
    pub fn open(dir: &Path, opts: SpoolOptions) -> Result<(Spool, Vec<Recovered>), SpoolError> {
        let mut rec = recovery::recover(dir, &opts)?;
        #[cfg(test)]
        let faults = fault::Faults::crash_after(opts.crash_after_writes);
        #[cfg(not(test))]
        let faults = fault::Faults::default();
        let outbox = match opts.outbox_consumers.is_empty() {
            true => None,
            false => {
                let outbox_dir = dir.join("outbox");
                let (shared, writer) =
                    outbox::open(&outbox_dir, &opts, faults.clone(), &mut rec.report)?;
                Some(writer::OutboxSide { shared, writer })
            }
        };
        let outbox_shared = outbox.as_ref().map(|o| o.shared.clone());
        let shared = Arc::new(Shared {
            index: Mutex::new(rec.index),
            barriers: AtomicU64::new(0),
        });
        let (tx, thread) = writer::start(rec.seg_dir, opts, shared.clone(), outbox, faults)?;
        let spool = Spool {
            inner: Arc::new(Inner {
                tx,
                shared,
                thread: Mutex::new(Some(thread)),
                report: rec.report,
                outbox: outbox_shared,
            }),
        };
        Ok((spool, rec.recovered))
    }

    /// Stores a message durably and returns its id once it is synced to disk.
    pub async fn insert(&self, envelope: &Envelope, body: Bytes) -> Result<MessageId, SpoolError> {
        self.insert_inner(envelope, body, None).await
    }

    /// Like [`Spool::insert`], and writes the outbox records `events` makes from the new id in
    /// the same batch, synced before the message. An event over [`MAX_EVENT`] refuses the
    /// message. Without an outbox `events` is never called.
    pub async fn insert_with_events(
        &self,
        envelope: &Envelope,
        body: Bytes,
        events: impl FnOnce(MessageId) -> Vec<Bytes> + Send + 'static,
    ) -> Result<MessageId, SpoolError> {
        let events: Option<EventsFor> = match self.outbox_enabled() {
            true => Some(Box::new(events)),
            false => None,
        };
        self.insert_inner(envelope, body, events).await
    }

    async fn insert_inner(
        &self,
        envelope: &Envelope,
        body: Bytes,
        events: Option<EventsFor>,
    ) -> Result<MessageId, SpoolError> {
        if envelope.recipients.is_empty() {
            return Err(SpoolError::NoRecipients);
        }
        let rcpts = u32::try_from(envelope.recipients.len())
            .map_err(|_| SpoolError::TooLarge(body.len()))?;
        let env = serde_json::to_vec(envelope)?;
        let total = env.len().saturating_add(body.len());
        if total > MAX_RECORD {
            return Err(SpoolError::TooLarge(total));
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Insert {
            env,
            rcpts,
            body,
            events,
            reply,
        })?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Reads a message body back from its segment.
    pub async fn read_body(&self, id: MessageId) -> Result<Bytes, SpoolError> {
        let (file, off, len) = {
            let idx = self.inner.shared.index.lock();
            let seg = idx
                .segments
                .get(&id.segment())
                .ok_or(SpoolError::UnknownMessage(id))?;
            let m = seg
                .msgs
                .get(id.index() as usize)
                .filter(|m| m.rcpt_count > 0)
                .ok_or(SpoolError::UnknownMessage(id))?;
            (seg.seg.clone(), m.body_off, m.body_len as usize)
        };
        let read_at = move || {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, off).map(|()| buf)
        };
        // Typical bodies were written moments ago and sit in the page cache: a direct pread costs
        // less than handing it to the blocking pool (two thread wake-ups per message). Large
        // bodies still go to the pool so a cold read never stalls an async worker for long.
        let read = if len <= INLINE_READ_MAX {
            read_at()
        } else {
            tokio::task::spawn_blocking(read_at)
                .await
                .map_err(|e| SpoolError::Failed(format!("body read task: {e}")))?
        };
        let buf = read.map_err(|source| SpoolError::Io {
            op: "read body of",
            path: PathBuf::from(id.to_string()),
            source,
        })?;
        Ok(Bytes::from(buf))
    }

    /// Durably records the state of recipient `rcpt` (its position in the envelope) of message `id`.
    pub async fn update(
        &self,
        id: MessageId,
        rcpt: u32,
        state: RcptState,
    ) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Update {
            id,
            rcpt,
            state,
            event: None,
            reply: Some(reply),
        })?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Queues a state update without waiting; it is written with the next batch. Suited to
    /// non-critical updates (e.g. an attempt count) whose loss in a crash only repeats work.
    /// Errors detected by the writer are logged rather than returned.
    pub fn update_nowait(
        &self,
        id: MessageId,
        rcpt: u32,
        state: RcptState,
    ) -> Result<(), SpoolError> {
        self.send(Request::Update {
            id,
            rcpt,
            state,
            event: None,
            reply: None,
        })
    }

    /// [`Spool::update_nowait`] with an outbox record written in the same batch and synced before
    /// the state (so a crash never keeps the state without the event). The event is written even
    /// if the writer refuses the update. Without an outbox the event is ignored. An event over
    /// [`MAX_EVENT`] gives [`SpoolError::EventTooLarge`], and the state is queued all the same.
    pub fn update_nowait_with_event(
        &self,
        id: MessageId,
        rcpt: u32,
        state: RcptState,
        event: Bytes,
    ) -> Result<(), SpoolError> {
        let len = event.len();
        let event = (self.outbox_enabled() && len <= MAX_EVENT).then_some(event);
        self.send(Request::Update {
            id,
            rcpt,
            state,
            event,
            reply: None,
        })?;
        match len > MAX_EVENT {
            true => Err(SpoolError::EventTooLarge(len)),
            false => Ok(()),
        }
    }

    /// Writes outbox records that go with no recipient state; returns once they are durable.
    /// Without an outbox it returns at once and writes nothing.
    pub async fn append_events(&self, events: Vec<Bytes>) -> Result<(), SpoolError> {
        if let Some(e) = events.iter().find(|e| e.len() > MAX_EVENT) {
            return Err(SpoolError::EventTooLarge(e.len()));
        }
        if !self.outbox_enabled() || events.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.send(Request::Events { events, reply })?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Whether an outbox consumer is configured.
    pub fn outbox_enabled(&self) -> bool {
        self.inner.outbox.is_some()
    }

    /// A reader for configured consumer `name`, resuming after its last acknowledgement (at the
    /// oldest entry kept when it never acknowledged). One reader per consumer at a time.
    pub fn outbox_reader(&self, name: &str) -> Result<OutboxReader, SpoolError> {
        match &self.inner.outbox {
            Some(o) => o.reader(name),
            None => Err(SpoolError::Consumer(name.to_string(), "the outbox is off")),
        }
    }

    /// Outbox counters; `None` when the outbox is off.
    pub fn outbox_stats(&self) -> Option<OutboxStats> {
        self.inner.outbox.as_ref().map(|o| o.stats())
    }

    /// Waits until everything queued before this call is durable.
    pub async fn flush(&self) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        self.send(Request::Flush { reply, stop: false })?;
        rx.await.map_err(|_| SpoolError::Closed)?
    }

    /// Current counters.
    pub fn stats(&self) -> SpoolStats {
        let idx = self.inner.shared.index.lock();
        SpoolStats {
            segments: idx.segments.len(),
            live_messages: idx.live_messages,
            live_recipients: idx.live_recipients,
            bytes_on_disk: idx.segments.values().map(|s| s.seg_len + s.jnl_len).sum(),
            fsync_barriers: self.inner.shared.barriers.load(Ordering::Relaxed),
        }
    }

    /// What recovery repaired or skipped when this spool was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// Flushes everything queued and stops the writer. Other clones get [`SpoolError::Closed`]
    /// afterwards.
    pub async fn close(self) -> Result<(), SpoolError> {
        let (reply, rx) = oneshot::channel();
        let sent = self.send(Request::Flush { reply, stop: true });
        let flushed = match sent {
            Ok(()) => rx.await.map_err(|_| SpoolError::Closed)?,
            Err(e) => Err(e),
        };
        let handle = self.inner.thread.lock().take();
        if let Some(h) = handle {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|e| SpoolError::Failed(format!("joining writer: {e}")))?
                .map_err(|_| SpoolError::Failed("writer thread panicked".into()))?;
        }
        flushed
    }

    fn send(&self, req: Request) -> Result<(), SpoolError> {
        self.inner.tx.send(req).map_err(|_| SpoolError::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_text_roundtrip() {
        let id = MessageId::new(0x12, 0xabcdef01);
        assert_eq!(id.to_string(), "00000012abcdef01");
        assert_eq!("00000012abcdef01".parse::<MessageId>(), Ok(id));
        assert_eq!(id.segment(), 0x12);
        assert_eq!(id.index(), 0xabcdef01);
        assert!("12abcdef01".parse::<MessageId>().is_err());
        assert!("+0000012abcdef01".parse::<MessageId>().is_err());
        assert!("00000012abcdefzz".parse::<MessageId>().is_err());
    }
}
