//! Idempotent injection (SPEC §2.1): a recipient injected with an idempotency key is accepted
//! once while the key is remembered; a repeat gets the original recipient id and nothing is
//! spooled, so a client that retries after a crash or a timeout never causes a second send.
//!
//! Durability: keys are appended to `data_dir/idempotency-keys` with their own group commit,
//! after the message is in the spool and before its recipients are queued or acknowledged.
//! A crash between the two leaves a spooled, not yet queued message whose keys are missing
//! from the file; the keys also travel in the spool envelope, and recovery adds them back, so a
//! retry after restart still finds them. Keys are stored as 128-bit hashes, never in clear.

use aws_lc_rs::digest;
use cartero_clock::UnixMillis;
use cartero_spool::MessageId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// File in `data_dir` holding the remembered keys.
pub const KEYS_FILE: &str = "idempotency-keys";

/// Key hash, expiry, message id, recipient index, check.
const RECORD: usize = 16 + 8 + 8 + 4 + 4;

/// Longest key accepted (it is hashed; the bound only keeps requests sane).
pub const MAX_KEY_LEN: usize = 256;

/// A key's 128-bit hash (the first half of SHA-256), hex in envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash([u8; 16]);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        let d = digest::digest(&digest::SHA256, key.as_bytes());
        let mut h = [0u8; 16];
        h.copy_from_slice(&d.as_ref()[..16]);
        KeyHash(h)
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        let mut h = [0u8; 16];
        for (i, b) in h.iter_mut().enumerate() {
            *b = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(KeyHash(h))
    }
}

/// Where a key's recipient went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub message: MessageId,
    pub index: u32,
    pub expires_at: UnixMillis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Claimed by an injection still being spooled.
    InFlight,
    Done(Recorded),
}

/// What a key is, for an injection that names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// New: claimed for this injection until [`Keys::record`] or [`Keys::release`].
    Claimed,
    /// Seen before: answer with this recipient.
    Known(Recorded),
    /// Another injection with the same key is being spooled right now.
    InFlight,
}

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error("idempotency keys file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("idempotency keys writer stopped")]
    Stopped,
}

type Batch = (
    Vec<[u8; RECORD]>,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// The remembered keys: a map in memory, the file on disk.
pub struct Keys {
    map: Mutex<HashMap<KeyHash, Slot>>,
    tx: Mutex<mpsc::Sender<Batch>>,
    path: PathBuf,
}

fn encode(k: KeyHash, r: Recorded) -> [u8; RECORD] {
    let mut out = [0u8; RECORD];
    out[..16].copy_from_slice(&k.0);
    out[16..24].copy_from_slice(&r.expires_at.to_le_bytes());
    out[24..32].copy_from_slice(&r.message.0.to_le_bytes());
    out[32..36].copy_from_slice(&r.index.to_le_bytes());
    let check = digest::digest(&digest::SHA256, &out[..36]);
    out[36..].copy_from_slice(&check.as_ref()[..4]);
    out
}

fn decode(rec: &[u8]) -> Option<(KeyHash, Recorded)> {
    let check = digest::digest(&digest::SHA256, rec.get(..36)?);
    if rec.get(36..40)? != &check.as_ref()[..4] {
        return None;
    }
    let u64_at = |i: usize| Some(u64::from_le_bytes(rec.get(i..i + 8)?.try_into().ok()?));
    let mut k = [0u8; 16];
    k.copy_from_slice(rec.get(..16)?);
    Some((
        KeyHash(k),
        Recorded {
            expires_at: u64_at(16)?,
            message: MessageId(u64_at(24)?),
            index: u32::from_le_bytes(rec.get(32..36)?.try_into().ok()?),
        },
    ))
}

impl Keys {
    /// Loads the file (dropping expired keys and a torn last record, and rewriting it when
    /// most of it is dead) and starts the writer thread.
    pub fn open(data_dir: &Path, now: UnixMillis) -> Result<Keys, KeysError> {
        let path = data_dir.join(KEYS_FILE);
        let io = |source| KeysError::Io {
            path: path.clone(),
            source,
        };
        let mut data = Vec::new();
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                f.read_to_end(&mut data).map_err(io)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let mut map = HashMap::new();
        let total = data.len() / RECORD;
        for rec in data.chunks(RECORD) {
            if let Some((k, r)) = decode(rec)
                && r.expires_at > now
            {
                map.insert(k, Slot::Done(r));
            }
        }
        let file = if data.len() % RECORD != 0 || map.len() * 2 < total {
            rewrite(&path, &map).map_err(io)?
        } else {
            append_file(&path).map_err(io)?
        };
        let (tx, rx) = mpsc::channel::<Batch>();
        std::thread::Builder::new()
            .name("cartero-keys".into())
            .spawn(move || write_loop(file, rx))
            .map_err(io)?;
        Ok(Keys {
            map: Mutex::new(map),
            tx: Mutex::new(tx),
            path,
        })
    }

    /// Looks a key up for an injection at `now`, claiming it when it is new or expired.
    pub fn claim(&self, k: KeyHash, now: UnixMillis) -> Lookup {
        let mut map = self.map.lock();
        match map.get(&k) {
            Some(Slot::Done(r)) if r.expires_at > now => Lookup::Known(*r),
            Some(Slot::InFlight) => Lookup::InFlight,
            _ => {
                map.insert(k, Slot::InFlight);
                Lookup::Claimed
            }
        }
    }

    /// Gives claimed keys back when their injection failed.
    pub fn release(&self, keys: &[KeyHash]) {
        let mut map = self.map.lock();
        for k in keys {
            if map.get(k) == Some(&Slot::InFlight) {
                map.remove(k);
            }
        }
    }

    /// Remembers keys found in recovered envelopes (the crash window described above).
    pub fn restore(&self, entries: impl IntoIterator<Item = (KeyHash, Recorded)>) {
        let mut map = self.map.lock();
        for (k, r) in entries {
            map.entry(k).or_insert(Slot::Done(r));
        }
    }

    /// Writes the claimed keys durably and makes them known; returns once they are on disk.
    pub async fn record(&self, entries: Vec<(KeyHash, Recorded)>) -> Result<(), KeysError> {
        if entries.is_empty() {
            return Ok(());
        }
        let records = entries.iter().map(|(k, r)| encode(*k, *r)).collect();
        let (reply, done) = tokio::sync::oneshot::channel();
        let sent = self.tx.lock().send((records, reply));
        let written = match sent {
            Ok(()) => done.await.map_err(|_| KeysError::Stopped)?,
            Err(_) => return Err(KeysError::Stopped),
        };
        written.map_err(|e| KeysError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        let mut map = self.map.lock();
        for (k, r) in entries {
            map.insert(k, Slot::Done(r));
        }
        Ok(())
    }

    /// Keys remembered now (for metrics and tests).
    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn append_file(path: &Path) -> std::io::Result<std::fs::File> {
    cartero_spool::private_file()
        .create(true)
        .append(true)
        .open(path)
}

/// Replaces the file with the live keys only (a crash leaves the old file or the new one).
fn rewrite(path: &Path, map: &HashMap<KeyHash, Slot>) -> std::io::Result<std::fs::File> {
    let tmp = path.with_extension("tmp");
    let mut bytes = Vec::with_capacity(map.len() * RECORD);
    for (k, slot) in map {
        if let Slot::Done(r) = slot {
            bytes.extend_from_slice(&encode(*k, *r));
        }
    }
    crate::tls::write_secret_file(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    append_file(path)
}

/// Group commit: everything waiting is written with one `fdatasync`.
fn write_loop(mut file: std::fs::File, rx: mpsc::Receiver<Batch>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let bytes: Vec<u8> = batch
            .iter()
            .flat_map(|(r, _)| r.iter().flatten())
            .copied()
            .collect();
        let result = file
            .write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "cannot write idempotency keys");
        }
        for (_, reply) in batch {
            let _ = reply.send(result.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, index: u32, expires_at: u64) -> Recorded {
        Recorded {
            message: MessageId(id),
            index,
            expires_at,
        }
    }

    #[tokio::test]
    async fn a_key_is_claimed_once_remembered_across_reopen_and_forgotten_after_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path(), 1_000).unwrap();
        let k = KeyHash::of("order-42");
        assert_eq!(keys.claim(k, 1_000), Lookup::Claimed);
        assert_eq!(keys.claim(k, 1_000), Lookup::InFlight);
        keys.record(vec![(k, rec(7, 1, 5_000))]).await.unwrap();
        assert_eq!(keys.claim(k, 1_001), Lookup::Known(rec(7, 1, 5_000)));
        drop(keys);

        let keys = Keys::open(dir.path(), 2_000).unwrap();
        assert_eq!(keys.claim(k, 2_000), Lookup::Known(rec(7, 1, 5_000)));
        assert_eq!(
            keys.claim(k, 5_000),
            Lookup::Claimed,
            "expired keys are new again"
        );
        drop(keys);
        let keys = Keys::open(dir.path(), 6_000).unwrap();
        assert!(keys.is_empty(), "expired on load");
    }

    #[tokio::test]
    async fn a_torn_last_record_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path(), 0).unwrap();
        let (a, b) = (KeyHash::of("a"), KeyHash::of("b"));
        keys.record(vec![(a, rec(1, 0, 10)), (b, rec(2, 0, 10))])
            .await
            .unwrap();
        drop(keys);
        let path = dir.path().join(KEYS_FILE);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let keys = Keys::open(dir.path(), 0).unwrap();
        assert_eq!(keys.claim(a, 0), Lookup::Known(rec(1, 0, 10)));
        assert_eq!(keys.claim(b, 0), Lookup::Claimed);
    }

    #[test]
    fn released_claims_are_free_again_and_hashes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::open(dir.path(), 0).unwrap();
        let k = KeyHash::of("x");
        assert_eq!(keys.claim(k, 0), Lookup::Claimed);
        keys.release(&[k]);
        assert_eq!(keys.claim(k, 0), Lookup::Claimed);
        assert_eq!(KeyHash::from_hex(&k.to_hex()), Some(k));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }
}
