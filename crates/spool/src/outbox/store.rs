//! Outbox files: recovery at open, the writer's side of group commit, consumer cursors.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::{Consumer, MAX_EVENT, OutboxShared, Position, SegInfo, State, log_path};
use crate::crc::Crc32;
use crate::fault::Faults;
use crate::record::{self, HEADER_LEN, TYPE_EVENT};
use crate::recovery::open_and_scan;
use crate::writer::{private_dir, private_file, sync_dir};
use crate::{RecoveryReport, SpoolError, SpoolOptions};

const CURSOR_EXT: &str = "cursor";
const CURSOR_LEN: usize = 16;

/// A consumer name becomes a file name: keep it short and plain.
fn check_name(name: &str) -> Result<(), SpoolError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    match ok {
        true => Ok(()),
        false => Err(SpoolError::Consumer(
            name.to_string(),
            "names are 1 to 64 of A-Z a-z 0-9 - _ . and do not start with a dot",
        )),
    }
}

fn cursor_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.{CURSOR_EXT}"))
}

fn encode_cursor(p: Position) -> [u8; CURSOR_LEN] {
    let mut b = [0u8; CURSOR_LEN];
    b[0..4].copy_from_slice(&p.segment.to_le_bytes());
    b[4..12].copy_from_slice(&p.offset.to_le_bytes());
    let mut crc = Crc32::new();
    crc.update(&b[0..12]);
    b[12..16].copy_from_slice(&crc.finish().to_le_bytes());
    b
}

fn decode_cursor(b: &[u8]) -> Option<Position> {
    if b.len() != CURSOR_LEN {
        return None;
    }
    let mut crc = Crc32::new();
    crc.update(&b[0..12]);
    if crc.finish().to_le_bytes() != b[12..16] {
        return None;
    }
    Some(Position {
        segment: u32::from_le_bytes(b[0..4].try_into().ok()?),
        offset: u64::from_le_bytes(b[4..12].try_into().ok()?),
    })
}

/// Replaces the cursor file through a synced temporary file, a rename and a directory sync, so a
/// crash leaves the old cursor or the new one.
pub(super) fn write_cursor(dir: &Path, name: &str, p: Position) -> Result<(), SpoolError> {
    let path = cursor_path(dir, name);
    let tmp = dir.join(format!("{name}.{CURSOR_EXT}.tmp"));
    let mut f = private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(SpoolError::io("create", &tmp))?;
    f.write_all(&encode_cursor(p))
        .and_then(|()| f.sync_all())
        .map_err(SpoolError::io("write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(SpoolError::io("rename", &tmp))?;
    sync_dir(dir)
}

/// A missing or unreadable cursor is `None`: the consumer starts at the oldest entry kept.
fn read_cursor(dir: &Path, name: &str) -> Result<Option<Position>, SpoolError> {
    let path = cursor_path(dir, name);
    match std::fs::read(&path) {
        Ok(b) => {
            let p = decode_cursor(&b);
            if p.is_none() {
                tracing::warn!(path = %path.display(),
                    "unreadable outbox cursor: the consumer starts again at the oldest entry");
            }
            Ok(p)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SpoolError::io("read", &path)(e)),
    }
}

pub(super) fn delete_segments(dir: &Path, dead: &[u32]) {
    if dead.is_empty() {
        return;
    }
    for &no in dead {
        let p = log_path(dir, no);
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!(path = %p.display(), error = %e, "could not delete outbox segment");
        }
    }
    if let Err(e) = sync_dir(dir) {
        tracing::warn!(error = %e, "could not sync the outbox directory after deletion");
    }
}

/// Numbers of the `.log` files in `dir`.
fn list_segments(dir: &Path) -> Result<BTreeSet<u32>, SpoolError> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(dir).map_err(SpoolError::io("list", dir))? {
        let e = e.map_err(SpoolError::io("list", dir))?;
        let name = e.file_name();
        let Some((stem, "log")) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        if stem.len() == 8
            && let Ok(no) = u32::from_str_radix(stem, 16)
        {
            out.insert(no);
        }
    }
    Ok(out)
}

/// Scans one segment: truncates a torn tail, notes damaged regions and records of other types
/// as regions to skip, and moves each cursor in it that is not on a record boundary to the next
/// boundary.
fn load_segment(
    path: &Path,
    max_len: u64,
    cursors: &mut [&mut Position],
    report: &mut RecoveryReport,
) -> Result<SegInfo, SpoolError> {
    let size = std::fs::metadata(path)
        .map_err(SpoolError::io("stat", path))?
        .len();
    if size > max_len {
        // Never written by the spool: reading it whole could take any amount of memory.
        return Err(SpoolError::OutboxDamaged {
            path: path.to_path_buf(),
            offset: 0,
            detail: format!("{size} bytes, more than the {max_len} a segment can reach"),
        });
    }
    let (_file, data, scan) = open_and_scan(path, report)?;
    let mut info = SegInfo {
        len: data.len() as u64,
        ..SegInfo::default()
    };
    for &(off, len) in &scan.corrupt {
        info.skips.push((off as u64, (off + len) as u64));
    }
    let mut bounds = Vec::with_capacity(scan.frames.len() + 1);
    for (off, ty, range) in &scan.frames {
        bounds.push(*off as u64);
        match *ty == TYPE_EVENT && range.len() <= MAX_EVENT {
            true => info.entries += 1,
            false => info.skips.push((*off as u64, range.end as u64)),
        }
    }
    bounds.push(info.len);
    for c in cursors.iter_mut() {
        let at = bounds.partition_point(|b| *b < c.offset);
        let fixed = bounds.get(at).copied().unwrap_or(info.len);
        if fixed != c.offset {
            tracing::warn!(
                segment = c.segment,
                offset = c.offset,
                moved_to = fixed,
                "outbox cursor not on a record boundary: moved to the next one"
            );
            c.offset = fixed;
        }
    }
    Ok(info)
}

fn consumer_names(opts: &SpoolOptions) -> Result<BTreeSet<String>, SpoolError> {
    let mut names = BTreeSet::new();
    for n in &opts.outbox_consumers {
        check_name(n)?;
        if !names.insert(n.clone()) {
            return Err(SpoolError::Consumer(n.clone(), "configured twice"));
        }
    }
    Ok(names)
}

type Cursors = BTreeMap<String, Option<Position>>;

/// Scans the segments some consumer still needs; returns them and the numbers of the others.
fn recover_segments(
    dir: &Path,
    found: &BTreeSet<u32>,
    cursors: &mut Cursors,
    max_len: u64,
    report: &mut RecoveryReport,
) -> Result<(BTreeMap<u32, SegInfo>, Vec<u32>), SpoolError> {
    // Nobody needs what lies before every cursor: not even worth reading.
    let keep_from = cursors
        .values()
        .map(|c| c.map_or(0, |p| p.segment))
        .min()
        .unwrap_or(0);
    let mut segments = BTreeMap::new();
    let mut dead = Vec::new();
    for &no in found {
        if no < keep_from {
            dead.push(no);
            continue;
        }
        let mut here: Vec<&mut Position> = cursors
            .values_mut()
            .flatten()
            .filter(|p| p.segment == no)
            .collect();
        let info = load_segment(&log_path(dir, no), max_len, &mut here, report)?;
        segments.insert(no, info);
    }
    Ok((segments, dead))
}

/// Opens the outbox under `dir`: recovers its segments and the cursors of the configured
/// consumers, deletes what every consumer acknowledged, and starts a new segment to write.
pub(crate) fn open(
    dir: &Path,
    opts: &SpoolOptions,
    faults: Faults,
    report: &mut RecoveryReport,
) -> Result<(Arc<OutboxShared>, OutboxWriter), SpoolError> {
    let names = consumer_names(opts)?;
    private_dir(dir).map_err(SpoolError::io("create", dir))?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    let found = list_segments(dir)?;
    let newest = found.last().copied();
    let mut cursors = Cursors::new();
    for n in names {
        // A cursor past every segment (an emptied directory) cannot be trusted to skip anything.
        let c = read_cursor(dir, &n)?.filter(|p| newest.is_some_and(|last| p.segment <= last));
        cursors.insert(n, c);
    }
    let segment_size = opts.outbox_segment_size.max(1);
    let max_frame = (HEADER_LEN + MAX_EVENT) as u64;
    let max_len = segment_size.max(max_frame) + max_frame;
    let (mut segments, mut dead) = recover_segments(dir, &found, &mut cursors, max_len, report)?;
    let current = match newest {
        None => 1,
        Some(n) => n
            .checked_add(1)
            .ok_or_else(|| SpoolError::Failed("outbox segment numbers exhausted".into()))?,
    };
    let file = create_log(dir, current)?;
    segments.insert(current, SegInfo::default());
    let oldest = segments.keys().next().copied().unwrap_or(current);
    let mut state = State {
        segments,
        consumers: BTreeMap::new(),
        closed: false,
    };
    for (name, c) in cursors {
        // A cursor on a deleted segment resumes at the oldest entry kept: segments are deleted
        // in order, so that is the first one it has not acknowledged.
        let acked = c
            .filter(|p| state.segments.contains_key(&p.segment))
            .unwrap_or(Position {
                segment: oldest,
                offset: 0,
            });
        let reading = false;
        state.consumers.insert(name, Consumer { acked, reading });
    }
    dead.extend(state.take_dead());
    delete_segments(dir, &dead);
    sync_dir(dir)?;
    let shared = Arc::new(OutboxShared {
        dir: dir.to_path_buf(),
        state: Mutex::new(state),
        notify: Notify::new(),
    });
    let writer = OutboxWriter {
        dir: dir.to_path_buf(),
        segment_size,
        no: current,
        file: Arc::new(file),
        len: 0,
        faults,
    };
    Ok((shared, writer))
}

fn create_log(dir: &Path, no: u32) -> Result<File, SpoolError> {
    let p = log_path(dir, no);
    private_file()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&p)
        .map_err(SpoolError::io("create", &p))
}

/// The writer thread's side: the segment being written and how far.
pub(crate) struct OutboxWriter {
    dir: PathBuf,
    segment_size: u64,
    no: u32,
    file: Arc<File>,
    /// Bytes written to `file` (durable once the batch that wrote them synced).
    len: u64,
    faults: Faults,
}

/// Outbox records staged by one batch.
#[derive(Default)]
pub(crate) struct OutboxBatch {
    buf: Vec<u8>,
    entries: u64,
    /// Segments written by this batch: number, file, length and entries added.
    written: Vec<(u32, Arc<File>, u64, u64)>,
}

impl OutboxBatch {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0 && self.written.is_empty()
    }
}

impl OutboxWriter {
    /// Checks an event before anything of its request is staged.
    pub(crate) fn check(event: &[u8]) -> Result<(), SpoolError> {
        match event.len() > MAX_EVENT {
            true => Err(SpoolError::EventTooLarge(event.len())),
            false => Ok(()),
        }
    }

    /// Adds one event record to the batch, starting a new segment first when it would not fit.
    pub(crate) fn stage(&mut self, b: &mut OutboxBatch, event: &[u8]) -> Result<(), SpoolError> {
        Self::check(event)?;
        let size = self.len + b.buf.len() as u64;
        if size > 0 && size + (HEADER_LEN + event.len()) as u64 > self.segment_size {
            self.roll(b)?;
        }
        record::encode_frame(&mut b.buf, TYPE_EVENT, &[event]);
        b.entries += 1;
        Ok(())
    }

    fn write_buf(&mut self, b: &mut OutboxBatch) -> Result<(), SpoolError> {
        if b.buf.is_empty() {
            return Ok(());
        }
        self.faults
            .write_all_at(&self.file, &b.buf, self.len)
            .map_err(SpoolError::io("write", &log_path(&self.dir, self.no)))?;
        self.len += b.buf.len() as u64;
        b.buf.clear();
        b.written
            .push((self.no, self.file.clone(), self.len, b.entries));
        b.entries = 0;
        Ok(())
    }

    fn roll(&mut self, b: &mut OutboxBatch) -> Result<(), SpoolError> {
        self.write_buf(b)?;
        let next = self
            .no
            .checked_add(1)
            .ok_or_else(|| SpoolError::Failed("outbox segment numbers exhausted".into()))?;
        let file = create_log(&self.dir, next)?;
        // The new name must be durable before any journal record that needs its events.
        sync_dir(&self.dir)?;
        tracing::debug!(segment = next, "outbox segment started");
        (self.no, self.file, self.len) = (next, Arc::new(file), 0);
        Ok(())
    }

    /// Writes and syncs what the batch staged. Returns (segment, durable length, entries added)
    /// per segment written, for [`OutboxShared::publish`].
    pub(crate) fn commit(
        &mut self,
        b: &mut OutboxBatch,
    ) -> Result<Vec<(u32, u64, u64)>, SpoolError> {
        self.write_buf(b)?;
        let mut done = Vec::with_capacity(b.written.len());
        for (no, file, len, entries) in b.written.drain(..) {
            file.sync_data()
                .map_err(SpoolError::io("fdatasync", &log_path(&self.dir, no)))?;
            done.push((no, len, entries));
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip_and_damage_is_detected() {
        let p = Position {
            segment: 7,
            offset: 123_456,
        };
        let b = encode_cursor(p);
        assert_eq!(decode_cursor(&b), Some(p));
        for i in 0..CURSOR_LEN {
            let mut c = b;
            c[i] ^= 1;
            assert_eq!(decode_cursor(&c), None, "flip at {i}");
        }
        assert_eq!(decode_cursor(&b[..15]), None);
    }

    #[test]
    fn consumer_names_are_plain_file_names() {
        for ok in ["campaign", "web-hooks_2", "a.b"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        let long = "x".repeat(65);
        for bad in ["", ".hidden", "a/b", "..", "a b", long.as_str()] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
