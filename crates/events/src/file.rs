//! JSON-lines log files: `DIR/events.jsonl`, rotated by size to `events.jsonl.1` ... `.N`.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use crate::{Event, EventSink, EventsError, JsonlFileConfig, Result};

/// Name of the live file inside the configured directory.
pub const FILE_NAME: &str = "events.jsonl";

enum Cmd {
    Line(Vec<u8>),
    Flush(oneshot::Sender<Result<()>>),
}

/// Appends one JSON object per line to `DIR/events.jsonl` from a background thread.
///
/// [`EventSink::emit`] only serializes the event and queues the line; the writer thread buffers,
/// writes and rotates. A single thread owns the file, so rotation never loses or duplicates a line:
/// the file is flushed, renamed, and the next line goes to a fresh file. When the queue holds
/// `queue_capacity` lines, new events are dropped and counted ([`JsonlFileSink::dropped`]).
/// Dropping the sink writes every queued line and waits for the thread.
pub struct JsonlFileSink {
    tx: Option<mpsc::Sender<Cmd>>,
    worker: Option<JoinHandle<()>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: AtomicU64,
    path: PathBuf,
}

impl JsonlFileSink {
    /// Creates the directory if needed, opens the file for appending and starts the writer thread.
    pub fn open(config: JsonlFileConfig) -> Result<Self> {
        config.validate()?;
        let writer = Writer::open(config.clone())?;
        let path = writer.path.clone();
        let (tx, rx) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let worker_queued = Arc::clone(&queued);
        let worker = std::thread::Builder::new()
            .name("events-jsonl".into())
            .spawn(move || run_writer(writer, rx, &worker_queued))
            .map_err(|e| EventsError::io("spawning writer thread for", &path, e))?;
        Ok(Self {
            tx: Some(tx),
            worker: Some(worker),
            queued,
            capacity: config.queue_capacity,
            dropped: AtomicU64::new(0),
            path,
        })
    }

    /// Path of the live file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events dropped because the writer queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every event emitted before this call is written and synced to disk.
    pub async fn flush(&self) -> Result<()> {
        let (done_tx, done_rx) = oneshot::channel();
        let tx = self
            .tx
            .as_ref()
            .ok_or(EventsError::WorkerGone("jsonl file"))?;
        tx.send(Cmd::Flush(done_tx))
            .map_err(|_| EventsError::WorkerGone("jsonl file"))?;
        done_rx
            .await
            .map_err(|_| EventsError::WorkerGone("jsonl file"))?
    }
}

impl EventSink for JsonlFileSink {
    fn emit(&self, event: &Event) {
        let Some(tx) = &self.tx else { return };
        // The capacity check and the increment are not one atomic step; overshooting by a few
        // lines under contention is harmless, the bound only protects memory.
        if self.queued.load(Ordering::Relaxed) >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(event_id = %event.event_id, "events file queue full, event dropped");
            return;
        }
        let mut line = match event.to_json() {
            Ok(json) => json.into_bytes(),
            Err(e) => {
                tracing::error!(event_id = %event.event_id, error = %e, "event not serializable");
                return;
            }
        };
        line.push(b'\n');
        self.queued.fetch_add(1, Ordering::Relaxed);
        if tx.send(Cmd::Line(line)).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("events file writer has stopped, event dropped");
        }
    }
}

impl Drop for JsonlFileSink {
    fn drop(&mut self) {
        // Closing the channel lets the thread drain what is queued and exit.
        self.tx.take();
        if let Some(worker) = self.worker.take()
            && worker.join().is_err()
        {
            tracing::error!("events file writer thread panicked");
        }
    }
}

/// Longest delay added before queued events reach the file.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(2);

fn run_writer(mut writer: Writer, rx: mpsc::Receiver<Cmd>, queued: &AtomicUsize) {
    let handle = |writer: &mut Writer, cmd: Cmd| match cmd {
        Cmd::Line(line) => {
            queued.fetch_sub(1, Ordering::Relaxed);
            if let Err(e) = writer.write_line(&line) {
                tracing::error!(error = %e, "writing event line failed, line lost");
            }
        }
        Cmd::Flush(done) => {
            // The caller may have given up waiting; nothing to do then.
            let _ = done.send(writer.sync());
        }
    };
    while let Ok(cmd) = rx.recv() {
        handle(&mut writer, cmd);
        // Drain what is already queued before paying for a write to the OS.
        while let Ok(cmd) = rx.try_recv() {
            handle(&mut writer, cmd);
        }
        if let Err(e) = writer.flush_buffer() {
            tracing::error!(error = %e, "flushing events file failed");
        }
        // Let lines accumulate before the next batch: under load this turns one thread wake-up
        // (and one write) per event into one per COALESCE, at the cost of that much delay.
        std::thread::sleep(COALESCE);
    }
    if let Err(e) = writer.sync() {
        tracing::error!(error = %e, "final flush of events file failed");
    }
}

/// Owns the live file; only the writer thread touches it.
struct Writer {
    config: JsonlFileConfig,
    path: PathBuf,
    /// `None` after a failed reopen; the next write tries again.
    file: Option<BufWriter<File>>,
    size: u64,
}

impl Writer {
    fn open(config: JsonlFileConfig) -> Result<Self> {
        crate::private_dir(&config.dir)
            .map_err(|e| EventsError::io("creating directory", &config.dir, e))?;
        let path = config.dir.join(FILE_NAME);
        let (file, size) = open_append(&path)?;
        Ok(Self {
            config,
            path,
            file: Some(file),
            size,
        })
    }

    fn write_line(&mut self, line: &[u8]) -> Result<()> {
        let len = line.len() as u64;
        if self.size > 0 && self.size.saturating_add(len) > self.config.max_bytes {
            self.rotate()?;
        }
        if self.file.is_none() {
            let (file, size) = open_append(&self.path)?;
            self.file = Some(file);
            self.size = size;
        }
        let file = self
            .file
            .as_mut()
            .ok_or(EventsError::WorkerGone("jsonl file"))?;
        file.write_all(line)
            .map_err(|e| EventsError::io("writing", &self.path, e))?;
        self.size = self.size.saturating_add(len);
        Ok(())
    }

    /// Shifts `.k` to `.k+1`, drops the oldest, renames the live file to `.1` and starts a new one.
    fn rotate(&mut self) -> Result<()> {
        self.flush_buffer()?;
        self.file = None;
        let keep = self.config.max_files;
        if keep == 0 {
            remove_if_exists(&self.path)?;
        } else {
            remove_if_exists(&self.rotated(keep))?;
            for k in (1..keep).rev() {
                let from = self.rotated(k);
                if from.exists() {
                    let to = self.rotated(k + 1);
                    fs::rename(&from, &to).map_err(|e| EventsError::io("renaming", &from, e))?;
                }
            }
            let first = self.rotated(1);
            fs::rename(&self.path, &first)
                .map_err(|e| EventsError::io("renaming", &self.path, e))?;
        }
        let (file, size) = open_append(&self.path)?;
        self.file = Some(file);
        self.size = size;
        Ok(())
    }

    fn rotated(&self, k: usize) -> PathBuf {
        self.config.dir.join(format!("{FILE_NAME}.{k}"))
    }

    fn flush_buffer(&mut self) -> Result<()> {
        match self.file.as_mut() {
            Some(file) => file
                .flush()
                .map_err(|e| EventsError::io("flushing", &self.path, e)),
            None => Ok(()),
        }
    }

    fn sync(&mut self) -> Result<()> {
        self.flush_buffer()?;
        match self.file.as_ref() {
            Some(file) => file
                .get_ref()
                .sync_data()
                .map_err(|e| EventsError::io("syncing", &self.path, e)),
            None => Ok(()),
        }
    }
}

fn open_append(path: &Path) -> Result<(BufWriter<File>, u64)> {
    let file = crate::private_file()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| EventsError::io("opening", path, e))?;
    let size = file
        .metadata()
        .map_err(|e| EventsError::io("reading size of", path, e))?
        .len();
    Ok((BufWriter::with_capacity(64 * 1024, file), size))
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EventsError::io("removing", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EventType;
    use cartero_clock::ManualClock;

    fn config(dir: &Path, max_bytes: u64, max_files: usize) -> JsonlFileConfig {
        JsonlFileConfig {
            dir: dir.to_path_buf(),
            max_bytes,
            max_files,
            queue_capacity: 100_000,
        }
    }

    fn events(n: usize) -> Vec<Event> {
        let clock = ManualClock::new(1_700_000_000_000);
        (0..n)
            .map(|i| {
                Event::new(EventType::Delivery, &clock)
                    .rcpt_to(format!("user{i}@example.com"))
                    .message_id(format!("msg-{i}"))
            })
            .collect()
    }

    /// Every line of the live file and the rotated ones, oldest first.
    fn read_all(dir: &Path, max_files: usize) -> (Vec<String>, usize) {
        let mut ids = Vec::new();
        let mut files = 0;
        let mut paths: Vec<PathBuf> = (1..=max_files)
            .rev()
            .map(|k| dir.join(format!("{FILE_NAME}.{k}")))
            .collect();
        paths.push(dir.join(FILE_NAME));
        for p in paths {
            let Ok(text) = fs::read_to_string(&p) else {
                continue;
            };
            files += 1;
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "partial line in {p:?}"
            );
            for line in text.lines() {
                let ev: Event = serde_json::from_str(line).unwrap();
                ids.push(ev.event_id);
            }
        }
        (ids, files)
    }

    #[tokio::test]
    async fn rotation_keeps_every_line_exactly_once_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sink = JsonlFileSink::open(config(dir.path(), 1000, 1000)).unwrap();
        let evs = events(300);
        for e in &evs {
            sink.emit(e);
        }
        sink.flush().await.unwrap();
        let (ids, files) = read_all(dir.path(), 1000);
        let want: Vec<String> = evs.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(ids, want);
        assert!(files > 10, "expected many rotations, got {files} files");
        for entry in fs::read_dir(dir.path()).unwrap() {
            let len = entry.unwrap().metadata().unwrap().len();
            assert!(len <= 1000, "file of {len} bytes exceeds the limit");
        }
        assert_eq!(sink.dropped(), 0);
    }

    #[tokio::test]
    async fn only_max_files_rotated_files_are_kept_and_they_are_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let sink = JsonlFileSink::open(config(dir.path(), 600, 2)).unwrap();
        let evs = events(100);
        for e in &evs {
            sink.emit(e);
        }
        sink.flush().await.unwrap();
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        let (ids, _) = read_all(dir.path(), 2);
        let want: Vec<String> = evs.iter().map(|e| e.event_id.clone()).collect();
        assert!(!ids.is_empty() && ids.len() < want.len());
        assert_eq!(ids[..], want[want.len() - ids.len()..]);
    }

    #[tokio::test]
    async fn reopening_appends_and_counts_existing_size() {
        let dir = tempfile::tempdir().unwrap();
        let evs = events(20);
        {
            let sink = JsonlFileSink::open(config(dir.path(), 10_000, 5)).unwrap();
            for e in &evs[..10] {
                sink.emit(e);
            }
            // Dropping without flush must still write everything queued.
        }
        let first_size = fs::metadata(dir.path().join(FILE_NAME)).unwrap().len();
        let sink = JsonlFileSink::open(config(dir.path(), first_size + 10, 5)).unwrap();
        for e in &evs[10..] {
            sink.emit(e);
        }
        sink.flush().await.unwrap();
        let (ids, files) = read_all(dir.path(), 5);
        let want: Vec<String> = evs.iter().map(|e| e.event_id.clone()).collect();
        assert_eq!(ids, want);
        // The old content was already at the limit, so the first new line rotated it.
        assert!(files >= 2);
        let rotated = fs::read_to_string(dir.path().join(format!("{FILE_NAME}.{}", files - 1)));
        assert_eq!(rotated.unwrap().lines().count(), 10);
    }

    #[tokio::test]
    async fn a_line_longer_than_the_limit_gets_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let sink = JsonlFileSink::open(config(dir.path(), 50, 10)).unwrap();
        let evs = events(3);
        for e in &evs {
            sink.emit(e);
        }
        sink.flush().await.unwrap();
        let (ids, files) = read_all(dir.path(), 10);
        assert_eq!(ids.len(), 3);
        assert_eq!(files, 3);
    }

    #[tokio::test]
    async fn full_queue_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), 1 << 20, 1);
        cfg.queue_capacity = 1;
        let sink = JsonlFileSink::open(cfg).unwrap();
        // Hold the counter at capacity so the outcome does not depend on the writer's speed.
        sink.queued.fetch_add(1, Ordering::Relaxed);
        sink.emit(&events(1)[0]);
        assert_eq!(sink.dropped(), 1);
        sink.queued.fetch_sub(1, Ordering::Relaxed);
        sink.emit(&events(1)[0]);
        sink.flush().await.unwrap();
        assert_eq!(read_all(dir.path(), 1).0.len(), 1);
    }
}
