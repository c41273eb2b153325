//! SMTP protocol for cartero. The `server` and `client` modules are pure state machines fed with
//! bytes (no I/O), in the style of incremental receivers; `io` holds thin tokio drivers.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

pub mod client;
pub mod io;
pub mod reply;
pub mod server;

pub use reply::{EnhancedCode, Reply, Severity};
