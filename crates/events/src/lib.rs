//! cartero's event feedback service (SPEC §2.10).
//!
//! The MTA emits an [`Event`] for everything that happens to a message through an [`EventSink`].
//! Sinks: [`ChannelSink`] (the in-process campaign layer), [`BroadcastSink`] (`events tail`),
//! [`JsonlFileSink`] (rotated JSON-lines files), [`WebhookSink`] (batched, retried, durable HTTP
//! POSTs) and [`Fanout`] to combine them.
//!
//! Delivery is **at-least-once**: a webhook batch that was sent but not acknowledged before a crash
//! or restart is sent again, so every consumer must deduplicate by [`Event::event_id`], and must
//! never let an older event undo a newer final state (a late `delay` never reverts a `delivery`).

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod config;
mod error;
mod event;
mod file;
mod sink;
mod webhook;

pub use config::{EventsConfig, JsonlFileConfig, WebhookConfig};
pub use error::{EventsError, Result};
pub use event::{Event, EventType, format_timestamp};
pub use file::{FILE_NAME, JsonlFileSink};
pub use sink::{BroadcastSink, ChannelSink, EventSink, Fanout};
pub use webhook::{WebhookSink, WebhookStats, backoff_delay, trust_pem_file};

/// Options for every file the sinks create: events carry addresses and metadata, so they are
/// readable by the MTA's user only.
pub(crate) fn private_file() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

/// Creates a directory (and its parents) readable by the MTA's user only.
pub(crate) fn private_dir(path: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)
}
