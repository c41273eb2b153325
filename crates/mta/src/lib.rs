//! The cartero MTA: SMTP and HTTP injection, durable spool, scheduled and ready queues, MX routing,
//! outbound delivery with retries and expiry, DKIM signing and events (SPEC §2).
//!
//! It knows messages, recipients, domains, sources and replies — never campaigns. Everything that
//! happens to a recipient is reported as a [`cartero_events::Event`] to the configured sinks.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

pub mod api;
mod api_only;
mod auth;
mod auth_limit;
pub mod config;
mod delivery;
mod http_server;
pub mod idempotency;
mod inbound;
mod inject;
pub mod inmail;
mod ops;
mod outbox;
pub mod outcome;
pub mod pools;
mod prepare;
mod queue;
pub mod retry;
mod routing;
pub mod shaping;
mod start;
pub mod tls;
pub mod validate;

pub use api_only::ApiListener;
pub use auth::{SaltError, hash_password, token_matches, verify_password};
pub use config::MtaConfig;
pub use inject::{InjectError, Injected, Injection};
pub use outbox::{EventOutbox, OutboxEvent};
pub use queue::view::{DomainRow, MessageView, QueueSummary, RcptView, SiteRow};
pub use start::{Mta, StartError, StartOptions, api_tokens};
