//! The durable event outbox: opaque event records written by the spool writer in the same group
//! commit as the recipient states they go with, read back by named consumers that acknowledge
//! what they stored.
//!
//! Layout under the spool directory: `outbox/XXXXXXXX.log` (event records, framed like every
//! other spool record) and `outbox/NAME.cursor` (how far consumer `NAME` acknowledged). A batch
//! writes and syncs its outbox records before it writes its journal records, so a recipient state
//! is never durable without its event; the reverse (event durable, state lost in a crash) only
//! repeats an attempt, and with it the event, which consumers deduplicate.
//!
//! Only durable entries are handed out: the writer publishes a segment's length after its sync.
//! A segment is deleted once every configured consumer acknowledged past it; the segment being
//! written is never deleted, so segment numbers only grow.
//!
//! Memory: per kept segment a few words (plus the damaged regions found in it); a reader holds
//! only the entries of the batch it returns.

#[cfg(test)]
mod crash_tests;
mod store;

pub(crate) use store::{OutboxBatch, OutboxWriter, open};

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::SpoolError;
use crate::record::{self, HEADER_LEN, TYPE_EVENT};

/// Largest event payload an outbox record takes.
pub const MAX_EVENT: usize = 4 * 1024 * 1024;

/// Where an outbox entry ends. Acknowledging a position acknowledges every entry up to and
/// including the one that ends there; entries are ordered by position, which is commit order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Position {
    /// Outbox segment number.
    pub segment: u32,
    /// Byte offset just past the entry in that segment.
    pub offset: u64,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}:{}", self.segment, self.offset)
    }
}

/// One durable event record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// Acknowledge this to move past the entry.
    pub position: Position,
    /// The event as given to the spool.
    pub data: Bytes,
}

/// Counters describing the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Segment files kept.
    pub segments: usize,
    /// Durable entries in the kept segments, acknowledged or not.
    pub entries: u64,
    /// Bytes in the kept segments.
    pub bytes: u64,
    /// Per consumer, the durable bytes it has not acknowledged yet.
    pub lag_bytes: Vec<(String, u64)>,
}

/// What is known of one kept segment.
#[derive(Debug, Default, Clone)]
pub(crate) struct SegInfo {
    /// Durable length; the segment is sealed once a higher-numbered one exists.
    pub len: u64,
    pub entries: u64,
    /// Damaged regions `[start, end)` a reader jumps over.
    pub skips: Vec<(u64, u64)>,
}

#[derive(Debug)]
pub(crate) struct Consumer {
    pub acked: Position,
    /// A reader is open for this consumer (only one may be, so that acks stay in order).
    pub reading: bool,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub segments: BTreeMap<u32, SegInfo>,
    pub consumers: BTreeMap<String, Consumer>,
    /// The writer stopped: nothing more will become durable.
    pub closed: bool,
}

impl State {
    fn sealed(&self, no: u32) -> bool {
        self.segments.range(no.saturating_add(1)..).next().is_some()
    }

    /// The first segment the consumer still needs.
    fn first_needed(&self, at: Position) -> u32 {
        let passed = self.sealed(at.segment)
            && self
                .segments
                .get(&at.segment)
                .is_none_or(|s| at.offset >= s.len);
        if passed {
            at.segment.saturating_add(1)
        } else {
            at.segment
        }
    }

    /// Removes from the map, and returns, the sealed segments every consumer acknowledged past.
    fn take_dead(&mut self) -> Vec<u32> {
        let keep_from = self
            .consumers
            .values()
            .map(|c| self.first_needed(c.acked))
            .min()
            .unwrap_or(0);
        let newest = self.segments.keys().next_back().copied();
        let dead: Vec<u32> = self
            .segments
            .range(..keep_from)
            .map(|(no, _)| *no)
            .filter(|no| Some(*no) != newest)
            .collect();
        for no in &dead {
            self.segments.remove(no);
        }
        dead
    }
}

/// State shared by the writer, the readers and the spool handles.
#[derive(Debug)]
pub(crate) struct OutboxShared {
    pub dir: PathBuf,
    pub state: Mutex<State>,
    /// Woken after every durable batch and when the writer stops.
    pub notify: Notify,
}

pub(crate) fn log_path(dir: &Path, no: u32) -> PathBuf {
    dir.join(format!("{no:08x}.log"))
}

impl OutboxShared {
    pub(crate) fn stats(&self) -> OutboxStats {
        let st = self.state.lock();
        let lag = |at: Position| -> u64 {
            st.segments
                .range(at.segment..)
                .map(|(no, s)| match *no == at.segment {
                    true => s.len.saturating_sub(at.offset),
                    false => s.len,
                })
                .sum()
        };
        OutboxStats {
            segments: st.segments.len(),
            entries: st.segments.values().map(|s| s.entries).sum(),
            bytes: st.segments.values().map(|s| s.len).sum(),
            lag_bytes: st
                .consumers
                .iter()
                .map(|(name, c)| (name.clone(), lag(c.acked)))
                .collect(),
        }
    }

    pub(crate) fn reader(self: &Arc<Self>, name: &str) -> Result<OutboxReader, SpoolError> {
        let mut st = self.state.lock();
        let c = st
            .consumers
            .get_mut(name)
            .ok_or_else(|| SpoolError::Consumer(name.to_string(), "not configured"))?;
        if c.reading {
            return Err(SpoolError::Consumer(
                name.to_string(),
                "already has an open reader",
            ));
        }
        c.reading = true;
        Ok(OutboxReader {
            shared: self.clone(),
            name: name.to_string(),
            pos: c.acked,
            acked: c.acked,
            file: None,
        })
    }

    /// Persists the consumer's cursor, then deletes what nobody needs any more.
    fn ack(&self, name: &str, upto: Position) -> Result<(), SpoolError> {
        store::write_cursor(&self.dir, name, upto)?;
        let dead = {
            let mut st = self.state.lock();
            if let Some(c) = st.consumers.get_mut(name) {
                c.acked = c.acked.max(upto);
            }
            st.take_dead()
        };
        store::delete_segments(&self.dir, &dead);
        Ok(())
    }

    /// Called by the writer after a durable batch.
    pub(crate) fn publish(&self, touched: &[(u32, u64, u64)]) {
        {
            let mut st = self.state.lock();
            for &(no, len, entries) in touched {
                let s = st.segments.entry(no).or_default();
                s.len = len;
                s.entries += entries;
            }
        }
        self.notify.notify_waiters();
    }

    pub(crate) fn close(&self) {
        self.state.lock().closed = true;
        self.notify.notify_waiters();
    }
}

/// What a reader does next at its position.
enum Step {
    /// Read the frame there; the segment's durable length.
    Read(u64),
    /// Jump (past a damaged region, or to the next segment).
    Move(Position),
    /// Nothing durable past the position yet.
    Wait,
}

/// Reads one consumer's entries in commit order. One reader per consumer at a time; dropping it
/// frees the name for [`crate::Spool::outbox_reader`] again. Entries not acknowledged before a
/// restart are read again after it (at least once).
#[derive(Debug)]
pub struct OutboxReader {
    shared: Arc<OutboxShared>,
    name: String,
    /// Just past the last entry handed out.
    pos: Position,
    acked: Position,
    file: Option<(u32, File)>,
}

impl Drop for OutboxReader {
    fn drop(&mut self) {
        if let Some(c) = self.shared.state.lock().consumers.get_mut(&self.name) {
            c.reading = false;
        }
    }
}

impl OutboxReader {
    /// The consumer this reader reads for.
    pub fn consumer(&self) -> &str {
        &self.name
    }

    /// The position acknowledged last (where a restart would resume).
    pub fn acked(&self) -> Position {
        self.acked
    }

    /// Waits until at least one durable entry is past the reader's position and returns up to
    /// `max` of them (at least one). Fails with [`SpoolError::Closed`] once the spool stopped and
    /// everything was read. A damaged record gives [`SpoolError::OutboxDamaged`] once; the next
    /// call goes on after it.
    pub async fn next_batch(&mut self, max: usize) -> Result<Vec<OutboxEntry>, SpoolError> {
        let max = max.max(1);
        let shared = self.shared.clone();
        loop {
            let notified = shared.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a batch published in between still wakes us.
            notified.as_mut().enable();
            let (got, closed) = self.read_available(max)?;
            if !got.is_empty() {
                return Ok(got);
            }
            if closed {
                return Err(SpoolError::Closed);
            }
            notified.await;
        }
    }

    /// Durably records that every entry up to `upto` (a position this reader handed out) is
    /// stored by the consumer; after a restart reading resumes past it. Segments every consumer
    /// acknowledged past are deleted.
    pub async fn ack(&mut self, upto: Position) -> Result<(), SpoolError> {
        if upto > self.pos {
            return Err(SpoolError::Consumer(
                self.name.clone(),
                "acknowledged a position it was not given",
            ));
        }
        if upto <= self.acked {
            return Ok(());
        }
        let shared = self.shared.clone();
        let name = self.name.clone();
        tokio::task::spawn_blocking(move || shared.ack(&name, upto))
            .await
            .map_err(|e| SpoolError::Failed(format!("outbox ack task: {e}")))??;
        self.acked = upto;
        Ok(())
    }

    fn step(&self) -> (Step, bool) {
        let st = self.shared.state.lock();
        let here = self.pos;
        let next_segment = || {
            st.segments
                .range(here.segment.saturating_add(1)..)
                .next()
                .map(|(no, _)| Position {
                    segment: *no,
                    offset: 0,
                })
        };
        let step = match st.segments.get(&here.segment) {
            Some(s) if here.offset < s.len => {
                match s
                    .skips
                    .iter()
                    .find(|(a, b)| *a <= here.offset && here.offset < *b)
                {
                    Some(&(_, end)) => Step::Move(Position {
                        segment: here.segment,
                        offset: end,
                    }),
                    None => Step::Read(s.len),
                }
            }
            _ => next_segment().map_or(Step::Wait, Step::Move),
        };
        (step, st.closed)
    }

    /// Reads what is durable past the position, up to `max` entries; also says whether the
    /// writer stopped.
    fn read_available(&mut self, max: usize) -> Result<(Vec<OutboxEntry>, bool), SpoolError> {
        let mut out = Vec::new();
        // Each turn reads an entry or moves forward; bounded by the entries and segments kept.
        loop {
            let (step, closed) = self.step();
            if out.len() >= max {
                return Ok((out, closed));
            }
            match step {
                Step::Wait => return Ok((out, closed)),
                Step::Move(p) => self.pos = p,
                Step::Read(len) => match self.read_frame(len) {
                    Ok(e) => {
                        self.pos = e.position;
                        out.push(e);
                    }
                    // What was read is returned; the damage is reported on the next call.
                    Err(_) if !out.is_empty() => return Ok((out, closed)),
                    Err(e) => {
                        self.skip_damage(len);
                        return Err(e);
                    }
                },
            }
        }
    }

    fn open_file(&mut self) -> Result<&File, SpoolError> {
        let no = self.pos.segment;
        if self.file.as_ref().is_none_or(|(n, _)| *n != no) {
            let path = log_path(&self.shared.dir, no);
            let f = File::open(&path).map_err(SpoolError::io("open", &path))?;
            self.file = Some((no, f));
        }
        match &self.file {
            Some((_, f)) => Ok(f),
            None => Err(SpoolError::Failed("outbox segment not open".into())),
        }
    }

    /// Reads and checks the frame at the position; `len` is the segment's durable length.
    fn read_frame(&mut self, len: u64) -> Result<OutboxEntry, SpoolError> {
        let at = self.pos;
        let path = log_path(&self.shared.dir, at.segment);
        let damaged = |detail: String| SpoolError::OutboxDamaged {
            path: path.clone(),
            offset: at.offset,
            detail,
        };
        let mut hdr = [0u8; HEADER_LEN];
        if at.offset + HEADER_LEN as u64 > len {
            return Err(damaged("record header runs past the durable end".into()));
        }
        let file = self.open_file()?;
        file.read_exact_at(&mut hdr, at.offset)
            .map_err(SpoolError::io("read", &path))?;
        let Some((ty, plen, crc)) = record::decode_header(&hdr) else {
            return Err(damaged("no record header".into()));
        };
        let end = at.offset + (HEADER_LEN as u64) + u64::from(plen);
        if ty != TYPE_EVENT || plen as usize > MAX_EVENT || end > len {
            return Err(damaged(format!(
                "record of type {ty} and {plen} bytes does not fit"
            )));
        }
        let mut payload = vec![0u8; plen as usize];
        file.read_exact_at(&mut payload, at.offset + HEADER_LEN as u64)
            .map_err(SpoolError::io("read", &path))?;
        if !record::crc_matches(&hdr, &payload, crc) {
            return Err(damaged("checksum mismatch".into()));
        }
        Ok(OutboxEntry {
            position: Position {
                segment: at.segment,
                offset: end,
            },
            data: Bytes::from(payload),
        })
    }

    /// Finds the next valid record after damage at the position and remembers the region, so
    /// that neither this reader nor any other stops there again.
    fn skip_damage(&mut self, len: u64) {
        let at = self.pos;
        let found = self.open_file().ok().and_then(|f| {
            let rest = usize::try_from(len.saturating_sub(at.offset)).ok()?;
            let mut buf = vec![0u8; rest];
            f.read_exact_at(&mut buf, at.offset).ok()?;
            let scan = record::scan(buf.get(1..)?);
            scan.frames.first().map(|(off, _, _)| (*off + 1) as u64)
        });
        let end = found.map_or(len, |off| at.offset + off);
        tracing::error!(
            segment = at.segment,
            offset = at.offset,
            bytes = end - at.offset,
            "damaged outbox region skipped"
        );
        let mut st = self.shared.state.lock();
        if let Some(s) = st.segments.get_mut(&at.segment) {
            s.skips.push((at.offset, end));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(lens: &[(u32, u64)], cursors: &[Position]) -> State {
        let mut st = State::default();
        for &(no, len) in lens {
            st.segments.insert(
                no,
                SegInfo {
                    len,
                    ..SegInfo::default()
                },
            );
        }
        for (i, c) in cursors.iter().enumerate() {
            st.consumers.insert(
                format!("c{i}"),
                Consumer {
                    acked: *c,
                    reading: false,
                },
            );
        }
        st
    }

    fn at(segment: u32, offset: u64) -> Position {
        Position { segment, offset }
    }

    #[test]
    fn only_sealed_segments_every_consumer_passed_are_dead() {
        let mut st = state(&[(1, 100), (2, 50), (3, 10)], &[at(2, 50), at(3, 0)]);
        assert_eq!(st.take_dead(), vec![1, 2]);
        let mut st = state(&[(1, 100), (2, 50), (3, 10)], &[at(2, 49), at(3, 0)]);
        assert_eq!(st.take_dead(), vec![1]);
        // The newest segment stays even when every consumer read all of it.
        let mut st = state(&[(4, 10)], &[at(4, 10)]);
        assert!(st.take_dead().is_empty());
    }
}
