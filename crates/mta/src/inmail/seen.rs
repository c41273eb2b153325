//! What inMail already reported, per (message, recipient index, event kind), kept in
//! `data_dir/inmail-seen` so that a replayed report or unsubscribe request produces nothing, also
//! after a restart.
//!
//! The file is a header and fixed-size records (kind, message id, recipient index, first-seen
//! time), appended and synced before the event they stand for is emitted: a crash can lose an
//! entry only for an event that was not emitted. Entries older than the horizon are dropped when
//! the file is opened and whenever it is rewritten, which happens once as many records were
//! appended as it held when last written (at least [`COMPACT_MIN`]), so the file and the map stay within about twice
//! what one horizon of reports needs. The key is the recipient, not the token text: the token is a
//! credential and is not stored, and two tokens of one recipient (a retry through another source)
//! count as one.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: &[u8] = b"cartero-inmail-seen 1\n";
const RECORD: usize = 1 + 8 + 4 + 8;
/// Fewest appended records that trigger a rewrite, so that a small file is not rewritten often.
const COMPACT_MIN: usize = 4096;

/// The event kinds counted apart: an auto-reply does not hide a later bounce of the same recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Bounce = 1,
    AutoReply = 2,
    Complaint = 3,
    Unsubscribe = 4,
}

impl Kind {
    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Bounce,
            2 => Kind::AutoReply,
            3 => Kind::Complaint,
            4 => Kind::Unsubscribe,
            _ => return None,
        })
    }
}

/// One reported (recipient, kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub kind: Kind,
    pub message_id: u64,
    pub rcpt_index: u32,
}

impl Key {
    fn encode(&self, at: u64) -> [u8; RECORD] {
        let mut r = [0u8; RECORD];
        r[0] = self.kind as u8;
        r[1..9].copy_from_slice(&self.message_id.to_be_bytes());
        r[9..13].copy_from_slice(&self.rcpt_index.to_be_bytes());
        r[13..].copy_from_slice(&at.to_be_bytes());
        r
    }

    fn decode(r: &[u8]) -> Option<(Key, u64)> {
        let key = Key {
            kind: Kind::from_byte(*r.first()?)?,
            message_id: u64::from_be_bytes(r.get(1..9)?.try_into().ok()?),
            rcpt_index: u32::from_be_bytes(r.get(9..13)?.try_into().ok()?),
        };
        Some((key, u64::from_be_bytes(r.get(13..RECORD)?.try_into().ok()?)))
    }
}

struct Inner {
    file: File,
    /// Bytes of whole records (and the header) in `file`: a failed append is cut back to this.
    len: u64,
    map: HashMap<Key, u64>,
    /// Claimed by a report whose event is being stored, not written yet: a concurrent replay
    /// is a replay, and a failure gives the key back.
    pending: HashSet<Key>,
    /// Records appended since the file was last written whole, and how many it held then.
    appended: usize,
    base: usize,
}

/// The set of reported (recipient, kind), durable.
pub(crate) struct Seen {
    path: PathBuf,
    horizon_ms: u64,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen").field("path", &self.path).finish()
    }
}

/// Reads the entries of `path` still within the horizon. A file that is not ours is renamed
/// `.bad` (with a warning) rather than trusted or deleted; a torn last record is ignored.
fn load(path: &Path, horizon_ms: u64, now_ms: u64) -> io::Result<HashMap<Key, u64>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let Some(records) = bytes.strip_prefix(MAGIC) else {
        let bad = path.with_extension("bad");
        std::fs::rename(path, &bad)?;
        tracing::warn!(path = %path.display(), moved_to = %bad.display(),
            "inMail: unreadable replay record file set aside; replays of earlier reports are not recognised");
        return Ok(HashMap::new());
    };
    let mut map = HashMap::new();
    for (key, at) in records.chunks_exact(RECORD).filter_map(Key::decode) {
        if at.saturating_add(horizon_ms) > now_ms {
            // A key is appended again only once its entry expired: the latest one holds.
            let last = map.entry(key).or_insert(at);
            *last = (*last).max(at);
        }
    }
    Ok(map)
}

/// Writes `map` to `path` through a synced temporary file and a rename, so that a crash leaves
/// the old file or the new one. Returns the file opened for appending and its length.
fn rewrite(path: &Path, map: &HashMap<Key, u64>) -> io::Result<(File, u64)> {
    let tmp = path.with_extension("tmp");
    let mut buf = Vec::with_capacity(MAGIC.len() + map.len() * RECORD);
    buf.extend_from_slice(MAGIC);
    for (key, at) in map {
        buf.extend_from_slice(&key.encode(*at));
    }
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    let file = OpenOptions::new().append(true).open(path)?;
    Ok((file, buf.len() as u64))
}

impl Seen {
    /// Opens (or creates) the file at `path`, dropping entries older than `horizon_ms`.
    pub fn open(path: &Path, horizon_ms: u64, now_ms: u64) -> io::Result<Seen> {
        let map = load(path, horizon_ms, now_ms)?;
        let (file, len) = rewrite(path, &map)?;
        Ok(Seen {
            path: path.to_path_buf(),
            horizon_ms,
            inner: Mutex::new(Inner {
                file,
                len,
                base: map.len(),
                map,
                pending: HashSet::new(),
                appended: 0,
            }),
        })
    }

    /// Records `key` as reported at `now_ms`. `Ok(true)`: the first time within the horizon, and
    /// the record is on disk, so the event may be emitted. `Ok(false)`: a replay. `Err`: the
    /// record could not be written, and the event must not be emitted either.
    #[cfg(test)]
    pub fn first(&self, key: Key, now_ms: u64) -> io::Result<bool> {
        if !self.claim(key, now_ms) {
            return Ok(false);
        }
        self.commit(key, now_ms).map(|()| true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves the map consistent: use it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims `key` for a first report: `false` for a replay (reported within the horizon, or
    /// being reported right now). A claim ends with [`Seen::commit`] or [`Seen::release`].
    pub fn claim(&self, key: Key, now_ms: u64) -> bool {
        let mut g = self.lock();
        let reported = g
            .map
            .get(&key)
            .is_some_and(|at| at.saturating_add(self.horizon_ms) > now_ms);
        !reported && g.pending.insert(key)
    }

    /// Gives a claim back: the report was not handled, its replay will be.
    pub fn release(&self, key: Key) {
        self.lock().pending.remove(&key);
    }

    /// Writes a claimed key to disk (synced). On failure the claim is given back.
    pub fn commit(&self, key: Key, now_ms: u64) -> io::Result<()> {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.pending.remove(&key);
        let record = key.encode(now_ms);
        let written = inner
            .file
            .write_all(&record)
            .and_then(|()| inner.file.sync_data());
        if let Err(e) = written {
            // Cut a torn record off, so later appends stay aligned.
            let _ = inner.file.set_len(inner.len);
            return Err(e);
        }
        inner.len += RECORD as u64;
        inner.map.insert(key, now_ms);
        inner.appended += 1;
        if inner.appended >= inner.base.max(COMPACT_MIN) {
            self.compact(inner, now_ms);
        }
        Ok(())
    }

    fn compact(&self, inner: &mut Inner, now_ms: u64) {
        let horizon = self.horizon_ms;
        inner
            .map
            .retain(|_, at| at.saturating_add(horizon) > now_ms);
        inner.appended = 0;
        inner.base = inner.map.len();
        match rewrite(&self.path, &inner.map) {
            Ok((file, len)) => (inner.file, inner.len) = (file, len),
            // The old file is intact (the rename did not happen) and still open for appending.
            Err(e) => tracing::warn!(path = %self.path.display(), error = %e,
                "inMail: could not compact the replay record file"),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map(|g| g.map.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn key(kind: Kind, message_id: u64) -> Key {
        Key {
            kind,
            message_id,
            rcpt_index: 3,
        }
    }

    #[test]
    fn a_claim_hides_the_key_until_released_and_only_a_commit_persists_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seen");
        let s = Seen::open(&path, DAY, 0).unwrap();
        let k = key(Kind::Bounce, 1);
        assert!(s.claim(k, 10));
        assert!(
            !s.claim(k, 11),
            "a concurrent report of the same key is a replay"
        );
        s.release(k);
        assert!(s.claim(k, 12), "a given-back claim can be taken again");
        drop(s);
        let s = Seen::open(&path, DAY, 20).unwrap();
        assert!(s.claim(k, 21), "an uncommitted claim is not on disk");
        s.commit(k, 21).unwrap();
        drop(s);
        let s = Seen::open(&path, DAY, 30).unwrap();
        assert!(!s.claim(k, 31));
    }

    #[test]
    fn a_key_counts_once_per_kind_and_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inmail-seen");
        let s = Seen::open(&path, 30 * DAY, 0).unwrap();
        assert!(s.first(key(Kind::Complaint, 7), 10).unwrap());
        assert!(!s.first(key(Kind::Complaint, 7), 11).unwrap());
        assert!(s.first(key(Kind::Bounce, 7), 12).unwrap());
        assert!(s.first(key(Kind::Complaint, 8), 13).unwrap());
        drop(s);
        let s = Seen::open(&path, 30 * DAY, 20).unwrap();
        assert_eq!(s.len(), 3);
        assert!(!s.first(key(Kind::Complaint, 7), 21).unwrap());
        assert!(!s.first(key(Kind::Bounce, 7), 21).unwrap());
        assert!(s.first(key(Kind::Unsubscribe, 7), 21).unwrap());
    }

    #[test]
    fn entries_older_than_the_horizon_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inmail-seen");
        let s = Seen::open(&path, DAY, 0).unwrap();
        assert!(s.first(key(Kind::Complaint, 1), 0).unwrap());
        assert!(s.first(key(Kind::Complaint, 2), DAY / 2).unwrap());
        // Past the horizon the same key counts again.
        assert!(s.first(key(Kind::Complaint, 1), DAY).unwrap());
        drop(s);
        let s = Seen::open(&path, DAY, DAY + DAY / 2).unwrap();
        // Key 2 (seen at DAY/2) expired; key 1 was seen again at DAY.
        assert_eq!(s.len(), 1);
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(size, (MAGIC.len() + RECORD) as u64);
    }

    #[test]
    fn a_torn_record_is_ignored_and_a_foreign_file_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inmail-seen");
        let s = Seen::open(&path, DAY, 0).unwrap();
        assert!(s.first(key(Kind::Bounce, 1), 0).unwrap());
        drop(s);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&key(Kind::Bounce, 2).encode(0)[..RECORD - 1])
            .unwrap();
        drop(f);
        let s = Seen::open(&path, DAY, 1).unwrap();
        assert_eq!(s.len(), 1);
        assert!(s.first(key(Kind::Bounce, 2), 1).unwrap());
        drop(s);

        std::fs::write(&path, b"something else entirely").unwrap();
        let s = Seen::open(&path, DAY, 1).unwrap();
        assert_eq!(s.len(), 0);
        assert_eq!(
            std::fs::read(path.with_extension("bad")).unwrap(),
            b"something else entirely"
        );
    }

    #[test]
    fn the_file_is_rewritten_without_expired_entries_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inmail-seen");
        let s = Seen::open(&path, DAY, 0).unwrap();
        let n = COMPACT_MIN as u64;
        for i in 0..n {
            assert!(s.first(key(Kind::Complaint, i), 0).unwrap());
        }
        // The rewrite after COMPACT_MIN appends kept them all (none expired yet).
        assert_eq!(s.len(), COMPACT_MIN);
        for i in 0..n {
            assert!(s.first(key(Kind::Bounce, i), 2 * DAY).unwrap());
        }
        // The second rewrite dropped the complaints, a day past the horizon.
        assert_eq!(s.len(), COMPACT_MIN);
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(size, (MAGIC.len() + COMPACT_MIN * RECORD) as u64);
    }
}
