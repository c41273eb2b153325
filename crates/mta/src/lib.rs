//! The cartero MTA: SMTP and HTTP injection, durable spool, scheduled and ready queues, MX routing,
//! outbound delivery with retries and expiry, DKIM signing and events (SPEC §2).
//!
//! It knows messages, recipients, domains, sources and replies — never campaigns. Everything that
//! happens to a recipient is reported as a [`cartero_events::Event`] to the configured sinks.

pub mod api;
mod auth;
mod auth_limit;
pub mod config;
mod delivery;
mod http_server;
mod inbound;
mod inject;
pub mod inmail;
pub mod outcome;
pub mod pools;
mod prepare;
mod queue;
pub mod retry;
mod routing;
pub mod shaping;
mod start;
pub mod tls;

pub use auth::hash_password;
pub use config::MtaConfig;
pub use inject::{InjectError, Injected, Injection};
pub use queue::view::{DomainRow, MessageView, QueueSummary, RcptView, SiteRow};
pub use start::{Mta, StartError, StartOptions};
