//! Rebuilding the index from disk on open.
//!
//! Each segment file is read whole (peak memory during open is one segment image, about
//! `segment_size`), scanned, repaired, and dropped before the next one is read.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::index::{Index, SegState};
use crate::record::{self, HEADER_LEN, MESSAGE_FIXED, TYPE_MESSAGE, TYPE_UPDATE};
use crate::writer::{create_segment_files, seg_path, sync_dir};
use crate::{
    CorruptRegion, Envelope, LostMessage, MessageId, RcptState, RcptStatus, Recovered,
    RecoveryReport, SpoolError, SpoolOptions,
};

/// Everything [`crate::Spool::open`] needs from recovery.
pub(crate) struct Recovery {
    pub index: Index,
    pub recovered: Vec<Recovered>,
    pub report: RecoveryReport,
    pub seg_dir: PathBuf,
}

pub(crate) fn recover(dir: &Path, _opts: &SpoolOptions) -> Result<Recovery, SpoolError> {
    let seg_dir = dir.join("segments");
    crate::writer::private_dir(&seg_dir).map_err(SpoolError::io("create", &seg_dir))?;
    sync_dir(dir)?;
    let (segs, jnls) = list(&seg_dir)?;
    let newest = segs.iter().chain(jnls.iter()).max().copied();

    let mut index = Index::default();
    let mut recovered = Vec::new();
    let mut report = RecoveryReport::default();
    let mut dead = Vec::new();
    for &no in &segs {
        match load_segment(&seg_dir, no, &mut report)? {
            Some((st, mut rec)) => {
                index.live_messages += u64::from(st.live_msgs);
                index.live_recipients += st.msgs.iter().map(|m| u64::from(m.live)).sum::<u64>();
                index.segments.insert(no, st);
                recovered.append(&mut rec);
            }
            None => dead.push(no),
        }
        if !jnls.contains(&no) {
            tracing::warn!(
                segment = no,
                "spool segment had no journal; created an empty one"
            );
        }
    }
    // Journals of dead segments and orphans (a crash between deleting a segment and its journal).
    let dead_jnls: BTreeSet<u32> = jnls
        .iter()
        .filter(|n| !segs.contains(n))
        .chain(dead.iter())
        .copied()
        .collect();

    // The new current segment is created before anything is deleted, so the highest segment number
    // ever used always stays on disk and ids never repeat across restarts.
    let current = match newest {
        None => 1,
        Some(n) => n
            .checked_add(1)
            .ok_or_else(|| SpoolError::Failed("segment numbers exhausted".into()))?,
    };
    let (seg, jnl) = create_segment_files(&seg_dir, current)?;
    sync_dir(&seg_dir)?;
    index
        .segments
        .insert(current, SegState::new(seg, jnl, 0, 0));
    index.current = current;

    let mut removed = false;
    for &no in &dead {
        removed |= remove(&seg_path(&seg_dir, no, "seg"));
    }
    for no in dead_jnls {
        removed |= remove(&seg_path(&seg_dir, no, "jnl"));
    }
    if removed {
        sync_dir(&seg_dir)?;
    }
    recovered.sort_by_key(|r| r.id);
    Ok(Recovery {
        index,
        recovered,
        report,
        seg_dir,
    })
}

fn remove(p: &Path) -> bool {
    match std::fs::remove_file(p) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(path = %p.display(), error = %e, "could not delete spool file");
            false
        }
    }
}

/// Segment numbers of `.seg` and `.jnl` files; other names are ignored.
fn list(dir: &Path) -> Result<(BTreeSet<u32>, BTreeSet<u32>), SpoolError> {
    let mut segs = BTreeSet::new();
    let mut jnls = BTreeSet::new();
    let entries = std::fs::read_dir(dir).map_err(SpoolError::io("list", dir))?;
    for e in entries {
        let e = e.map_err(SpoolError::io("list", dir))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 8 {
            continue;
        }
        let Ok(no) = u32::from_str_radix(stem, 16) else {
            continue;
        };
        match ext {
            "seg" => segs.insert(no),
            "jnl" => jnls.insert(no),
            _ => continue,
        };
    }
    Ok((segs, jnls))
}

/// Reads a file whole, truncates a torn tail, records damage. Returns the file, its image and the
/// scan of that image.
pub(crate) fn open_and_scan(
    path: &Path,
    report: &mut RecoveryReport,
) -> Result<(File, Vec<u8>, record::Scan), SpoolError> {
    let mut file = crate::writer::private_file()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(SpoolError::io("open", path))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(SpoolError::io("read", path))?;
    let scan = record::scan(&data);
    for &(offset, len) in &scan.corrupt {
        tracing::error!(path = %path.display(), offset, len, "damaged spool region skipped");
        report.corrupt.push(CorruptRegion {
            file: path.to_path_buf(),
            offset: offset as u64,
            len: len as u64,
        });
    }
    if scan.valid_len < data.len() {
        let cut = data.len() - scan.valid_len;
        tracing::warn!(path = %path.display(), bytes = cut, "truncating torn spool tail");
        file.set_len(scan.valid_len as u64)
            .and_then(|()| file.sync_all())
            .map_err(SpoolError::io("truncate", path))?;
        report.truncated_bytes += cut as u64;
        data.truncate(scan.valid_len);
    }
    Ok((file, data, scan))
}

/// Loads one segment and its journal. `None` if no message in it has a non-final recipient.
fn load_segment(
    dir: &Path,
    no: u32,
    report: &mut RecoveryReport,
) -> Result<Option<(SegState, Vec<Recovered>)>, SpoolError> {
    let (seg_file, data, scan) = open_and_scan(&seg_path(dir, no, "seg"), report)?;
    let (jnl_file, jdata, jscan) = open_and_scan(&seg_path(dir, no, "jnl"), report)?;
    let mut st = SegState::new(seg_file, jnl_file, data.len() as u64, jdata.len() as u64);
    let envs = load_messages(no, &data, &scan, &mut st, report);
    let states = load_updates(&jdata, &jscan, &mut st, report);

    let mut recovered = Vec::new();
    for (index, env_range) in envs {
        let Some(m) = st.msgs.get(index as usize).copied() else {
            continue;
        };
        if m.live == 0 {
            continue;
        }
        let envelope = data
            .get(env_range)
            .and_then(|b| serde_json::from_slice::<Envelope>(b).ok())
            .filter(|e| e.recipients.len() == m.rcpt_count as usize);
        let Some(envelope) = envelope else {
            // Checksummed but unreadable: nothing can be delivered, so retire it.
            report.invalid_records += 1;
            let id = MessageId::new(no, index);
            tracing::error!(message = %id, "spool message with an unreadable envelope: not restored");
            report.lost.push(LostMessage {
                id,
                recipients: Some(m.rcpt_count),
            });
            for r in 0..m.rcpt_count {
                st.mark_final(index, r);
            }
            continue;
        };
        let rcpts = (0..m.rcpt_count)
            .map(|r| {
                states.get(&(index, r)).cloned().unwrap_or(RcptState {
                    status: RcptStatus::Queued,
                    attempts: 0,
                    next_attempt: envelope.received_at,
                    last_reply: None,
                })
            })
            .collect();
        recovered.push(Recovered {
            id: MessageId::new(no, index),
            envelope,
            rcpts,
            body_len: m.body_len as u64,
        });
    }
    if st.live_msgs == 0 {
        return Ok(None);
    }
    Ok(Some((st, recovered)))
}

/// Rebuilds the message entries of a segment; returns (index, envelope range) per message.
fn load_messages(
    no: u32,
    data: &[u8],
    scan: &record::Scan,
    st: &mut SegState,
    report: &mut RecoveryReport,
) -> Vec<(u32, Range<usize>)> {
    // Every message frame takes at least this many bytes, which bounds any legitimate index and so
    // the placeholder entries a gap (from a skipped damaged region) can need.
    let max_index = data.len() / (HEADER_LEN + MESSAGE_FIXED);
    let mut envs = Vec::new();
    for (_, ty, range) in &scan.frames {
        let m = data
            .get(range.clone())
            .filter(|_| *ty == TYPE_MESSAGE)
            .and_then(record::decode_message);
        let Some(m) = m else {
            report.invalid_records += 1;
            continue;
        };
        let id = MessageId(m.id);
        let index = id.index() as usize;
        let body_len = u32::try_from(m.body.len()).ok();
        let (Some(body_len), true) = (
            body_len,
            id.segment() == no && index >= st.msgs.len() && index <= max_index && m.rcpts > 0,
        ) else {
            report.invalid_records += 1;
            continue;
        };
        // Indexes are given in order, so a gap is messages whose records were damaged.
        while st.msgs.len() < index {
            let id = MessageId::new(no, st.msgs.len() as u32);
            tracing::error!(message = %id, "spool message lost in a damaged region: not restored");
            report.lost.push(LostMessage {
                id,
                recipients: None,
            });
            st.push_message(0, 0, 0);
        }
        let body_off = (range.start + m.body.start) as u64;
        if st.push_message(body_off, body_len, m.rcpts).is_none() {
            report.invalid_records += 1;
            continue;
        }
        let env = range.start + m.envelope.start..range.start + m.envelope.end;
        envs.push((index as u32, env));
    }
    envs
}

/// Applies journal records in order (last one wins); returns the latest state per recipient.
fn load_updates(
    data: &[u8],
    scan: &record::Scan,
    st: &mut SegState,
    report: &mut RecoveryReport,
) -> HashMap<(u32, u32), RcptState> {
    let mut states = HashMap::new();
    for (_, ty, range) in &scan.frames {
        let u = data
            .get(range.clone())
            .filter(|_| *ty == TYPE_UPDATE)
            .and_then(record::decode_update);
        let Some((index, rcpt, state)) = u else {
            report.invalid_records += 1;
            continue;
        };
        let Some(m) = st.msgs.get(index as usize).copied() else {
            report.invalid_records += 1;
            continue;
        };
        if rcpt >= m.rcpt_count || st.is_final(&m, rcpt) {
            report.invalid_records += 1;
            continue;
        }
        if state.status.is_final() {
            st.mark_final(index, rcpt);
        }
        states.insert((index, rcpt), state);
    }
    states
}
