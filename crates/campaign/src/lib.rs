//! The campaign layer (SPEC §3): recipients, deliveries, analysis, delivery logs, KPIs and
//! address quarantine.
//!
//! It learns outcomes **only** from MTA events ([`cartero_events::Event`]) and never imports
//! the MTA: messages go out through an injection trait the binary implements (in-process, or
//! over a remote cartero's HTTP API). Every time rule reads a `Clock`.
//!
//! * [`model`] — the data: deliveries, log rows, addresses, KPI counters.
//! * [`observe`] — what one MTA event says about one log row.
//! * [`log`] — the delivery log state machine (SPEC §3.3): applying an observation to a row,
//!   idempotent, never letting an older event undo a newer final state.
//! * [`quarantine`] — address quality rules (SPEC §3.5).
//! * [`kpi`] — incremental counters and the EFS and legacy views (SPEC §3.3).
//! * [`analysis`] — building the send list and its exclusions (SPEC §3.2).
//! * [`store`] — persistence (SQLite embedded, PostgreSQL by URL).
//! * [`import`] — recipients from CSV.
//! * [`render`] — personalized messages from a delivery's templates.
//! * [`engine`] — deliveries from draft to finished: analysis, senders, event intake.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

pub mod analysis;
pub mod api;
pub mod config;
pub mod engine;
pub mod import;
pub mod inject;
pub mod kpi;
pub mod log;
pub mod model;
pub mod observe;
pub mod quarantine;
pub mod render;
pub mod store;
