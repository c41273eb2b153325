//! Simulated crashes for the crate's own tests: after a set number of file writes, the next write
//! stops half way and fails, and so does every later one, as if the process had died there
//! (what was written stays in the page cache, nothing more reaches the files). Outside tests
//! this is a plain positioned write.

use std::fs::File;
use std::os::unix::fs::FileExt;

#[derive(Debug, Clone, Default)]
pub(crate) struct Faults {
    #[cfg(test)]
    writes_left: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl Faults {
    #[cfg(test)]
    pub(crate) fn crash_after(writes: Option<u64>) -> Faults {
        Faults {
            writes_left: writes.map(|n| std::sync::Arc::new(n.into())),
        }
    }

    #[cfg(test)]
    fn crashed(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.writes_left.as_ref().is_some_and(|n| {
            n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_err()
        })
    }

    /// `write_all_at`, unless a simulated crash happens here.
    pub(crate) fn write_all_at(&self, file: &File, buf: &[u8], off: u64) -> std::io::Result<()> {
        #[cfg(test)]
        if self.crashed() {
            let _ = file.write_all_at(&buf[..buf.len() / 2], off);
            return Err(std::io::Error::other("simulated crash"));
        }
        file.write_all_at(buf, off)
    }
}
