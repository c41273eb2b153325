//! Errors of the feedback service.

use std::path::PathBuf;

/// Everything that can go wrong while setting up or running an event sink.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// A file or directory operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being attempted, e.g. "creating directory".
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration cannot work (bad URL, zero batch size, ...).
    #[error("invalid events configuration: {0}")]
    Config(String),
    /// Encoding or decoding an event or a batch failed.
    #[error("JSON encoding of {what}: {source}")]
    Json {
        /// What was being encoded or decoded.
        what: &'static str,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// The sink was started outside a Tokio runtime.
    #[error("{0} must be started inside a Tokio runtime")]
    NoRuntime(&'static str),
    /// The sink's background worker has stopped, so the request cannot be served.
    #[error("the {0} background worker has stopped")]
    WorkerGone(&'static str),
}

impl EventsError {
    /// Shorthand for an [`EventsError::Io`].
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = EventsError> = std::result::Result<T, E>;
