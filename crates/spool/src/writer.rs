//! The single writer thread: batches requests from all handles into one write per touched file and
//! one `fdatasync` per touched file, then completes every caller of the batch (group commit).

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::fault::Faults;
use crate::index::SegState;
use crate::outbox::{OutboxBatch, OutboxShared, OutboxWriter};
use crate::record::{self, HEADER_LEN, MESSAGE_FIXED, TYPE_MESSAGE, TYPE_UPDATE};
use crate::{EventsFor, MessageId, RcptState, Shared, SpoolError, SpoolOptions};

type Reply<T> = oneshot::Sender<Result<T, SpoolError>>;

/// A unit of work for the writer.
pub(crate) enum Request {
    Insert {
        env: Vec<u8>,
        rcpts: u32,
        body: Bytes,
        /// The message's events, made once its id is known; written in the same batch.
        events: Option<EventsFor>,
        reply: Reply<MessageId>,
    },
    Update {
        id: MessageId,
        rcpt: u32,
        state: RcptState,
        /// Written to the outbox with the state, whether or not the update is refused.
        event: Option<Bytes>,
        reply: Option<Reply<()>>,
    },
    /// Outbox records without a recipient state.
    Events {
        events: Vec<Bytes>,
        reply: Reply<()>,
    },
    /// Completes once everything before it is durable; `stop` ends the writer afterwards.
    Flush { reply: Reply<()>, stop: bool },
}

enum Pending {
    Insert(Reply<MessageId>, MessageId),
    Unit(Option<Reply<()>>),
}

/// Path of segment `no` with extension `ext` ("seg" or "jnl").
pub(crate) fn seg_path(dir: &Path, no: u32, ext: &str) -> PathBuf {
    dir.join(format!("{no:08x}.{ext}"))
}

/// Makes created or deleted directory entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SpoolError::io("sync directory", dir))
}

/// Options for every file the spool creates: readable by the MTA's user only, since segments
/// hold queued mail. (The MTA uses them for its other files in `data_dir` too.)
pub fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Creates a directory (and its parents) readable by the MTA's user only.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}

/// Creates the journal, then the segment file of segment `no` (the caller syncs the directory).
/// The journal comes first: an orphan journal is harmless and removed on open, while a segment
/// whose journal vanished would resurrect finished recipients.
pub(crate) fn create_segment_files(dir: &Path, no: u32) -> Result<(File, File), SpoolError> {
    let open = |ext: &str| {
        let p = seg_path(dir, no, ext);
        private_file()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(SpoolError::io("create", &p))
    };
    let jnl = open("jnl")?;
    let seg = open("seg")?;
    Ok((seg, jnl))
}

/// The outbox as the writer thread sees it.
pub(crate) struct OutboxSide {
    pub shared: Arc<OutboxShared>,
    pub writer: OutboxWriter,
}

/// Starts the writer thread.
pub(crate) fn start(
    dir: PathBuf,
    opts: SpoolOptions,
    shared: Arc<Shared>,
    outbox: Option<OutboxSide>,
    faults: Faults,
) -> Result<(Sender<Request>, JoinHandle<()>), SpoolError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = Writer {
        dir: dir.clone(),
        opts,
        shared,
        outbox,
        faults,
        failed: None,
    };
    let handle = std::thread::Builder::new()
        .name("spool-writer".into())
        .spawn(move || writer.run(rx))
        .map_err(SpoolError::io("spawn writer for", &dir))?;
    Ok((tx, handle))
}

struct Writer {
    dir: PathBuf,
    opts: SpoolOptions,
    shared: Arc<Shared>,
    /// `None` when no outbox consumer is configured: events are then ignored.
    outbox: Option<OutboxSide>,
    faults: Faults,
    /// Set after a failed write or sync: from then on nothing is acknowledged.
    failed: Option<String>,
}

/// What one batch accumulates before it is written.
struct Batch {
    seg_no: u32,
    /// File offset where `seg_buf` goes.
    seg_off: u64,
    seg_buf: Vec<u8>,
    /// Message records of segments rolled over in this batch: (segment, offset, records). They are
    /// written with the rest at commit, after the outbox is synced.
    seg_rolled: Vec<(u32, u64, Vec<u8>)>,
    jnl: BTreeMap<u32, Vec<u8>>,
    ob: OutboxBatch,
    /// Files written in this batch that still need a sync.
    to_sync: Vec<(Arc<File>, PathBuf)>,
    pending: Vec<Pending>,
    dead: Vec<u32>,
    stop: bool,
}

impl Writer {
    fn run(mut self, rx: Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut reqs = vec![first];
            self.fill(&rx, &mut reqs);
            if self.process(reqs) {
                break;
            }
        }
        if let Some(o) = &self.outbox {
            o.shared.close();
        }
        tracing::debug!("spool writer stopped");
    }

    /// Gathers more requests until the batch is full, the delay has passed or a stop arrives.
    fn fill(&self, rx: &Receiver<Request>, reqs: &mut Vec<Request>) {
        let deadline = Instant::now() + self.opts.max_batch_delay;
        while reqs.len() < self.opts.max_batch.max(1) {
            if matches!(reqs.last(), Some(Request::Flush { stop: true, .. })) {
                return;
            }
            match rx.try_recv() {
                Ok(r) => reqs.push(r),
                Err(TryRecvError::Disconnected) => return,
                Err(TryRecvError::Empty) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return;
                    }
                    match rx.recv_timeout(deadline - now) {
                        Ok(r) => reqs.push(r),
                        Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return,
                    }
                }
            }
        }
    }

    /// Stages, writes, syncs and answers one batch. Returns whether the writer must stop.
    fn process(&mut self, reqs: Vec<Request>) -> bool {
        let (seg_no, seg_off) = {
            let idx = self.shared.index.lock();
            let len = idx.segments.get(&idx.current).map_or(0, |s| s.seg_len);
            (idx.current, len)
        };
        let mut b = Batch {
            seg_no,
            seg_off,
            seg_buf: Vec::new(),
            seg_rolled: Vec::new(),
            jnl: BTreeMap::new(),
            ob: OutboxBatch::default(),
            to_sync: Vec::new(),
            pending: Vec::with_capacity(reqs.len()),
            dead: Vec::new(),
            stop: false,
        };
        for r in reqs {
            self.stage(&mut b, r);
        }
        let result = self.commit(&mut b);
        if let Err(e) = &result {
            tracing::error!(error = %e, "spool write failed; refusing further writes");
            self.failed.get_or_insert_with(|| e.to_string());
        }
        let failure = self.failed.clone();
        for p in b.pending.drain(..) {
            let err = || SpoolError::Failed(failure.clone().unwrap_or_default());
            match p {
                Pending::Insert(tx, id) => {
                    let _ = tx.send(if failure.is_some() {
                        Err(err())
                    } else {
                        Ok(id)
                    });
                }
                Pending::Unit(Some(tx)) => {
                    let _ = tx.send(if failure.is_some() {
                        Err(err())
                    } else {
                        Ok(())
                    });
                }
                Pending::Unit(None) => {}
            }
        }
        if failure.is_none() {
            self.delete_dead(&mut b.dead);
        }
        b.stop
    }

    fn stage(&mut self, b: &mut Batch, r: Request) {
        match r {
            Request::Insert {
                env,
                rcpts,
                body,
                events,
                reply,
            } => match self.stage_insert(b, &env, rcpts, &body, events) {
                Ok(id) => b.pending.push(Pending::Insert(reply, id)),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::Update {
                id,
                rcpt,
                state,
                event,
                reply,
            } => {
                let staged = self.stage_update(b, id, rcpt, &state);
                let logged = event.map(|e| self.stage_events(b, &[e]));
                if let Some(Err(e)) = logged {
                    tracing::error!(message = %id, rcpt, error = %e, "outbox event dropped");
                }
                match staged {
                    Ok(()) => b.pending.push(Pending::Unit(reply)),
                    Err(e) => match reply {
                        Some(tx) => {
                            let _ = tx.send(Err(e));
                        }
                        None => tracing::warn!(error = %e, "spool update dropped"),
                    },
                }
            }
            Request::Events { events, reply } => match self.stage_events(b, &events) {
                Ok(()) => b.pending.push(Pending::Unit(Some(reply))),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::Flush { reply, stop } => {
                b.pending.push(Pending::Unit(Some(reply)));
                b.stop |= stop;
            }
        }
    }

    /// Stages outbox records (nothing when the outbox is off).
    fn stage_events(&mut self, b: &mut Batch, events: &[Bytes]) -> Result<(), SpoolError> {
        if let Some(f) = &self.failed {
            return Err(SpoolError::Failed(f.clone()));
        }
        let Some(o) = self.outbox.as_mut() else {
            return Ok(());
        };
        for e in events {
            OutboxWriter::check(e)?;
        }
        for e in events {
            if let Err(err) = o.writer.stage(&mut b.ob, e) {
                self.failed.get_or_insert_with(|| err.to_string());
                return Err(err);
            }
        }
        Ok(())
    }

    fn stage_insert(
        &mut self,
        b: &mut Batch,
        env: &[u8],
        rcpts: u32,
        body: &[u8],
        events: Option<EventsFor>,
    ) -> Result<MessageId, SpoolError> {
        if let Some(f) = &self.failed {
            return Err(SpoolError::Failed(f.clone()));
        }
        let body_len = u32::try_from(body.len()).map_err(|_| SpoolError::TooLarge(body.len()))?;
        let env_len = u32::try_from(env.len()).map_err(|_| SpoolError::TooLarge(env.len()))?;
        let frame_len = (HEADER_LEN + MESSAGE_FIXED + env.len() + body.len()) as u64;
        let must_roll = {
            let idx = self.shared.index.lock();
            idx.segments.get(&b.seg_no).is_none_or(|s| {
                let size = b.seg_off + b.seg_buf.len() as u64;
                !s.msgs.is_empty()
                    && (size + frame_len > self.opts.segment_size
                        || s.msgs.len() >= u32::MAX as usize
                        || s.total_rcpts.checked_add(rcpts).is_none())
            })
        };
        if must_roll && let Err(e) = self.roll(b) {
            self.failed.get_or_insert_with(|| e.to_string());
            return Err(e);
        }
        let frame_off = b.seg_off + b.seg_buf.len() as u64;
        let body_off = frame_off + (HEADER_LEN + MESSAGE_FIXED) as u64 + u64::from(env_len);
        let missing = || SpoolError::Failed(format!("current segment {} missing", b.seg_no));
        let next_index = {
            let idx = self.shared.index.lock();
            idx.segments.get(&b.seg_no).ok_or_else(missing)?.msgs.len()
        };
        let id = MessageId::new(b.seg_no, next_index as u32);
        // Made from the id before the message is staged, so that an event the outbox refuses
        // refuses the message too (only this thread adds messages, so the id stays free).
        let events = match (events, &self.outbox) {
            (Some(make), Some(_)) => make(id),
            _ => Vec::new(),
        };
        for e in &events {
            OutboxWriter::check(e)?;
        }
        let mut guard = self.shared.index.lock();
        let idx = &mut *guard;
        let seg = idx.segments.get_mut(&b.seg_no).ok_or_else(missing)?;
        seg.push_message(body_off, body_len, rcpts)
            .ok_or_else(|| SpoolError::Failed("recipient space of segment exhausted".into()))?;
        idx.live_messages += 1;
        idx.live_recipients += u64::from(rcpts);
        drop(guard);
        let prefix = record::message_prefix(id.0, rcpts, env_len);
        record::encode_frame(&mut b.seg_buf, TYPE_MESSAGE, &[&prefix, env, body]);
        self.stage_events(b, &events)?;
        Ok(id)
    }

    fn stage_update(
        &mut self,
        b: &mut Batch,
        id: MessageId,
        rcpt: u32,
        state: &RcptState,
    ) -> Result<(), SpoolError> {
        if let Some(f) = &self.failed {
            return Err(SpoolError::Failed(f.clone()));
        }
        let mut guard = self.shared.index.lock();
        let idx = &mut *guard;
        let seg_no = id.segment();
        let seg = idx
            .segments
            .get_mut(&seg_no)
            .ok_or(SpoolError::UnknownMessage(id))?;
        let m = seg
            .msgs
            .get(id.index() as usize)
            .copied()
            .filter(|m| m.rcpt_count > 0)
            .ok_or(SpoolError::UnknownMessage(id))?;
        if rcpt >= m.rcpt_count {
            return Err(SpoolError::UnknownRecipient { id, rcpt });
        }
        if seg.is_final(&m, rcpt) {
            return Err(SpoolError::AlreadyFinal { id, rcpt });
        }
        // Finality is applied in memory at staging time, in request order, so a later update to
        // the same recipient in this batch is already refused; a failed commit poisons the spool.
        if state.status.is_final() {
            let (newly, dead) = seg.mark_final(id.index(), rcpt);
            if newly {
                idx.live_recipients = idx.live_recipients.saturating_sub(1);
            }
            if dead {
                idx.live_messages = idx.live_messages.saturating_sub(1);
                if seg.live_msgs == 0 && seg_no != idx.current {
                    b.dead.push(seg_no);
                }
            }
        }
        drop(guard);
        let payload = record::encode_update(id.index(), rcpt, state);
        record::encode_frame(b.jnl.entry(seg_no).or_default(), TYPE_UPDATE, &[&payload]);
        Ok(())
    }

    /// Writes what is buffered for the current segment and starts the next one.
    fn roll(&mut self, b: &mut Batch) -> Result<(), SpoolError> {
        if !b.seg_buf.is_empty() {
            let records = std::mem::take(&mut b.seg_buf);
            let size = records.len() as u64;
            b.seg_rolled.push((b.seg_no, b.seg_off, records));
            if let Some(s) = self.shared.index.lock().segments.get_mut(&b.seg_no) {
                s.seg_len = b.seg_off + size;
            }
        }
        let next = b
            .seg_no
            .checked_add(1)
            .ok_or_else(|| SpoolError::Failed("segment numbers exhausted".into()))?;
        let (seg, jnl) = create_segment_files(&self.dir, next)?;
        sync_dir(&self.dir)?;
        let mut idx = self.shared.index.lock();
        idx.segments.insert(next, SegState::new(seg, jnl, 0, 0));
        idx.current = next;
        if idx
            .segments
            .get(&b.seg_no)
            .is_some_and(|s| s.live_msgs == 0)
        {
            b.dead.push(b.seg_no);
        }
        drop(idx);
        tracing::debug!(segment = next, "spool segment started");
        b.seg_no = next;
        b.seg_off = 0;
        Ok(())
    }

    /// Writes message records at `off` in segment `no`.
    fn write_records(
        &self,
        b: &mut Batch,
        no: u32,
        off: u64,
        records: &[u8],
    ) -> Result<(), SpoolError> {
        let file = {
            let idx = self.shared.index.lock();
            idx.segments.get(&no).map(|s| s.seg.clone())
        };
        let path = seg_path(&self.dir, no, "seg");
        let file = file.ok_or_else(|| SpoolError::Failed(format!("segment {no} missing")))?;
        self.faults
            .write_all_at(&file, records, off)
            .map_err(SpoolError::io("write", &path))?;
        let end = off + records.len() as u64;
        if let Some(s) = self.shared.index.lock().segments.get_mut(&no) {
            s.seg_len = end;
        }
        b.to_sync.push((file, path));
        Ok(())
    }

    fn write_seg_buf(&self, b: &mut Batch) -> Result<(), SpoolError> {
        for (no, off, records) in std::mem::take(&mut b.seg_rolled) {
            self.write_records(b, no, off, &records)?;
        }
        if b.seg_buf.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut b.seg_buf);
        self.write_records(b, b.seg_no, b.seg_off, &records)?;
        b.seg_off += records.len() as u64;
        Ok(())
    }

    /// Writes all buffers of the batch and syncs every touched file: the durability barrier.
    fn commit(&mut self, b: &mut Batch) -> Result<(), SpoolError> {
        if let Some(f) = &self.failed {
            return Err(SpoolError::Failed(f.clone()));
        }
        // Events first, synced before any state of this batch is even written: the page cache may
        // write a journal page back at any time, so a state could be durable before its event.
        if let Some(o) = self.outbox.as_mut().filter(|_| !b.ob.is_empty()) {
            let durable = o.writer.commit(&mut b.ob)?;
            o.shared.publish(&durable);
        }
        self.write_seg_buf(b)?;
        for (no, buf) in std::mem::take(&mut b.jnl) {
            let target = {
                let idx = self.shared.index.lock();
                idx.segments.get(&no).map(|s| (s.jnl.clone(), s.jnl_len))
            };
            let path = seg_path(&self.dir, no, "jnl");
            let (file, len) =
                target.ok_or_else(|| SpoolError::Failed(format!("journal {no:08x} missing")))?;
            self.faults
                .write_all_at(&file, &buf, len)
                .map_err(SpoolError::io("write", &path))?;
            if let Some(s) = self.shared.index.lock().segments.get_mut(&no) {
                s.jnl_len = len + buf.len() as u64;
            }
            b.to_sync.push((file, path));
        }
        if b.to_sync.is_empty() {
            return Ok(());
        }
        for (file, path) in b.to_sync.drain(..) {
            file.sync_data()
                .map_err(SpoolError::io("fdatasync", &path))?;
        }
        self.shared.barriers.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Deletes segments whose messages are all dead: segment first, then journal, so a crash in
    /// between leaves only an orphan journal (removed on open), never a segment without state.
    fn delete_dead(&self, dead: &mut Vec<u32>) {
        dead.sort_unstable();
        dead.dedup();
        let mut any = false;
        for &no in dead.iter() {
            let removed = {
                let mut idx = self.shared.index.lock();
                let gone =
                    no != idx.current && idx.segments.get(&no).is_some_and(|s| s.live_msgs == 0);
                gone && idx.segments.remove(&no).is_some()
            };
            if !removed {
                continue;
            }
            any = true;
            for ext in ["seg", "jnl"] {
                let p = seg_path(&self.dir, no, ext);
                if let Err(e) = std::fs::remove_file(&p) {
                    tracing::warn!(path = %p.display(), error = %e, "could not delete spool file");
                }
            }
        }
        if any && let Err(e) = sync_dir(&self.dir) {
            tracing::warn!(error = %e, "could not sync spool directory after deletion");
        }
    }
}
