//! Batch files waiting for delivery. A batch is written (to a temporary name, fsynced, renamed,
//! directory fsynced) before its first POST and removed after a 2xx, so a crash at any point leaves
//! either no file or a complete one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Event, EventsError, Result};

const SUFFIX: &str = ".json";
const TMP_SUFFIX: &str = ".tmp";
const BAD_SUFFIX: &str = ".bad";

/// The spool directory of one webhook.
#[derive(Debug)]
pub(crate) struct BatchSpool {
    dir: PathBuf,
    next_seq: AtomicU64,
}

impl BatchSpool {
    /// Creates the directory, removes leftovers of interrupted writes, and continues the sequence
    /// after the highest existing batch so new names sort after old ones even with a frozen clock.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        crate::private_dir(dir).map_err(|e| EventsError::io("creating directory", dir, e))?;
        let mut max_seq = None;
        let entries = fs::read_dir(dir).map_err(|e| EventsError::io("listing", dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(TMP_SUFFIX) {
                // Never renamed, so never acknowledged to anyone: an incomplete write.
                let _ = fs::remove_file(entry.path());
            } else if let Some(seq) = parse_seq(&name) {
                max_seq = max_seq.max(Some(seq));
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            next_seq: AtomicU64::new(max_seq.map_or(0, |s| s.saturating_add(1))),
        })
    }

    /// Writes `events` as one JSON array, durably, and returns the file's path.
    pub(crate) fn write(&self, events: &[Event], now_ms: u64) -> Result<PathBuf> {
        let body = serde_json::to_vec(events).map_err(|source| EventsError::Json {
            what: "webhook batch",
            source,
        })?;
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{now_ms:013}-{seq:010}-{:08x}", fastrand::u32(..));
        let tmp = self.dir.join(format!("{stem}{TMP_SUFFIX}"));
        let path = self.dir.join(format!("{stem}{SUFFIX}"));
        let mut file = crate::private_file()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| EventsError::io("creating", &tmp, e))?;
        file.write_all(&body)
            .map_err(|e| EventsError::io("writing", &tmp, e))?;
        file.sync_all()
            .map_err(|e| EventsError::io("syncing", &tmp, e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| EventsError::io("renaming", &tmp, e))?;
        self.sync_dir()?;
        Ok(path)
    }

    /// Complete batch files, oldest first.
    pub(crate) fn list(&self) -> Result<Vec<PathBuf>> {
        let entries =
            fs::read_dir(&self.dir).map_err(|e| EventsError::io("listing", &self.dir, e))?;
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| parse_seq(n).is_some())
            .collect();
        // Zero-padded time then sequence: name order is creation order.
        names.sort_unstable();
        Ok(names.into_iter().map(|n| self.dir.join(n)).collect())
    }

    /// Removes a batch that was delivered or rejected for good.
    pub(crate) fn remove(&self, path: &Path) -> Result<()> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EventsError::io("removing", path, e)),
        }
    }

    /// Moves an unreadable batch aside so it is kept for inspection but not retried forever.
    pub(crate) fn set_aside(&self, path: &Path) -> Result<PathBuf> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(BAD_SUFFIX);
        let to = self.dir.join(name);
        fs::rename(path, &to).map_err(|e| EventsError::io("renaming", path, e))?;
        Ok(to)
    }

    fn sync_dir(&self) -> Result<()> {
        // Makes the rename itself durable, not only the file's content.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| EventsError::io("syncing directory", &self.dir, e))
    }
}

/// Sequence number of a complete batch file name `TIME-SEQ-RAND.json`.
fn parse_seq(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(SUFFIX)?;
    let mut parts = stem.split('-');
    let time = parts.next()?;
    let seq = parts.next()?;
    let rand = parts.next()?;
    let digits = |s: &str, hex: bool| {
        !s.is_empty()
            && s.chars().all(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
    };
    if parts.next().is_some() || !digits(time, false) || !digits(rand, true) {
        return None;
    }
    seq.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;
    use cartero_clock::ManualClock;

    #[test]
    fn names_sort_in_creation_order_across_reopen_with_a_frozen_clock() {
        let dir = tempfile::tempdir().unwrap();
        let ev = Event::new(EventType::Delay, &ManualClock::new(5));
        let spool = BatchSpool::open(dir.path()).unwrap();
        let a = spool.write(std::slice::from_ref(&ev), 5).unwrap();
        let b = spool.write(std::slice::from_ref(&ev), 5).unwrap();
        drop(spool);
        let spool = BatchSpool::open(dir.path()).unwrap();
        let c = spool.write(std::slice::from_ref(&ev), 5).unwrap();
        assert_eq!(spool.list().unwrap(), vec![a, b, c.clone()]);
        let body: Vec<Event> = serde_json::from_slice(&fs::read(&c).unwrap()).unwrap();
        assert_eq!(body, vec![ev]);
    }

    #[test]
    fn leftover_temp_files_are_removed_and_foreign_files_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("0000000000005-0000000001-0000abcd.tmp"),
            b"[",
        )
        .unwrap();
        fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        fs::write(dir.path().join("1-2-zz.json"), b"[]").unwrap();
        let spool = BatchSpool::open(dir.path()).unwrap();
        assert!(spool.list().unwrap().is_empty());
        assert!(
            !dir.path()
                .join("0000000000005-0000000001-0000abcd.tmp")
                .exists()
        );
    }

    #[test]
    fn parse_seq_accepts_only_our_names() {
        assert_eq!(
            parse_seq("0000000000005-0000000042-deadbeef.json"),
            Some(42)
        );
        assert_eq!(parse_seq("5-42-deadbeef.json.bad"), None);
        assert_eq!(parse_seq("5-x-deadbeef.json"), None);
        assert_eq!(parse_seq("5-1-2-3.json"), None);
    }
}
