//! The campaign layer's pure rules (issue 9): observation of MTA events, the delivery log
//! state machine, quarantine, KPIs and analysis, every time rule on a manual clock.

// Tests may unwrap: a panic there is a failure.
#![allow(clippy::unwrap_used)]

mod analysis;
mod kpi;
mod log;
mod observe;
mod props;
mod quarantine;
mod support;
