//! Address quality (SPEC §3.5), shared by every delivery: Valid, With errors, Quarantine,
//! Denylisted.
//!
//! * Hard → Quarantine at once (Denylisted when the reason is "Denylisted address", class 90).
//! * Soft → the error count goes up only when the error is *significant*: the first always,
//!   then one at least [`QuarantineConfig::error_interval`] after the previous counted one; at
//!   [`QuarantineConfig::errors_to_quarantine`] counted errors → Quarantine.
//! * A success resets With errors to Valid, and so does [`QuarantineConfig::reset_after`]
//!   without any new error.
//! * A Mailbox-full quarantine entered by soft errors is released after
//!   [`QuarantineConfig::mailbox_full_release`].
//! * A complaint or an unsubscribe → Denylisted.
//! * Hard quarantines and Denylisted are released only by an operator ([`release`]).
//!
//! Time rules are evaluated lazily: every read ([`effective_status`], [`is_excluded`]) and
//! every signal ([`apply`]) first applies what the time since the last change implies, so no
//! sweeper is needed. Times are the events' own (`at`) and the reader's `now`.

use crate::model::{AddressState, AddressStatus, FailureInfo, UnixMillis};
use cartero_bounce::{FailureType, Reason};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The numbers of SPEC §3.5 (`[campaign.quarantine]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuarantineConfig {
    /// A soft error counts only this long after the previous counted one. Default `24h`.
    #[serde(with = "humantime_serde")]
    pub error_interval: Duration,
    /// Counted soft errors that quarantine the address. Default 5; at least 1.
    pub errors_to_quarantine: u32,
    /// With errors becomes Valid again after this long without a new error. Default `10days`.
    #[serde(with = "humantime_serde")]
    pub reset_after: Duration,
    /// A Mailbox-full quarantine is released after this long. Default `30days`.
    #[serde(with = "humantime_serde")]
    pub mailbox_full_release: Duration,
}

const DAY: Duration = Duration::from_secs(86_400);

impl Default for QuarantineConfig {
    fn default() -> Self {
        Self {
            error_interval: DAY,
            errors_to_quarantine: 5,
            reset_after: DAY * 10,
            mailbox_full_release: DAY * 30,
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("campaign.quarantine.errors_to_quarantine must be at least 1")]
    NoErrorThreshold,
}

impl QuarantineConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.errors_to_quarantine == 0 {
            return Err(ConfigError::NoErrorThreshold);
        }
        Ok(())
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// What one delivery log event tells the address (built by [`crate::log::apply`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signal {
    None,
    Success {
        at: UnixMillis,
    },
    Soft {
        at: UnixMillis,
        failure: FailureInfo,
    },
    Hard {
        at: UnixMillis,
        failure: FailureInfo,
    },
    Complaint {
        at: UnixMillis,
        failure: FailureInfo,
    },
    Unsubscribe {
        at: UnixMillis,
        failure: FailureInfo,
    },
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Change {
    /// The record changed: persist it.
    pub changed: bool,
    /// The address went from Valid or With errors to Quarantine or Denylisted (the
    /// `new_quarantines` KPI of the delivery whose event did it).
    pub entered: Option<AddressStatus>,
}

/// The key of an address's record: trimmed and lower-cased, so every delivery that targets
/// it, in whatever case, shares one record.
pub fn address_key(address: &str) -> String {
    address.trim().to_lowercase()
}

/// A fresh Valid record for `address` (stored under [`address_key`]).
pub fn new_state(address: &str) -> AddressState {
    AddressState {
        address: address_key(address),
        status: AddressStatus::Valid,
        error_count: 0,
        last_counted_at: None,
        last_error: None,
        last_error_at: None,
        since: None,
        reason: None,
    }
}

fn valid(state: &mut AddressState) {
    state.status = AddressStatus::Valid;
    state.error_count = 0;
    state.last_counted_at = None;
    state.since = None;
    state.reason = None;
}

fn entered_by_hard(state: &AddressState) -> bool {
    state
        .last_error
        .as_ref()
        .is_some_and(|f| f.r#type == FailureType::Hard)
}

/// The status the time rules give at `now`, without changing the record.
pub fn effective_status(
    state: &AddressState,
    now: UnixMillis,
    cfg: &QuarantineConfig,
) -> AddressStatus {
    match state.status {
        AddressStatus::WithErrors => {
            let last = state.last_error_at.or(state.last_counted_at);
            match last {
                Some(t) if now >= t.saturating_add(ms(cfg.reset_after)) => AddressStatus::Valid,
                _ => AddressStatus::WithErrors,
            }
        }
        AddressStatus::Quarantine
            if state.reason == Some(Reason::MailboxFull) && !entered_by_hard(state) =>
        {
            match state.since {
                Some(t) if now >= t.saturating_add(ms(cfg.mailbox_full_release)) => {
                    AddressStatus::Valid
                }
                _ => AddressStatus::Quarantine,
            }
        }
        s => s,
    }
}

/// Applies the time rules to the record; true when it changed.
pub fn refresh(state: &mut AddressState, now: UnixMillis, cfg: &QuarantineConfig) -> bool {
    let effective = effective_status(state, now, cfg);
    if effective == state.status {
        return false;
    }
    valid(state);
    true
}

/// Why analysis excludes the address at `now`: 9 in quarantine, 8 denylisted.
pub fn is_excluded(
    state: &AddressState,
    now: UnixMillis,
    cfg: &QuarantineConfig,
) -> Option<Reason> {
    match effective_status(state, now, cfg) {
        AddressStatus::Quarantine => Some(Reason::Quarantine),
        AddressStatus::Denylisted => Some(Reason::Denylisted),
        AddressStatus::Valid | AddressStatus::WithErrors => None,
    }
}

fn is_excluded_status(s: AddressStatus) -> bool {
    matches!(s, AddressStatus::Quarantine | AddressStatus::Denylisted)
}

/// Applies a signal at `now` (after the time rules). A record in Quarantine or Denylisted
/// keeps the error that put it there; only a Hard error upgrades a soft quarantine (no more
/// automatic release), and a complaint or unsubscribe upgrades any quarantine to Denylisted.
pub fn apply(
    state: &mut AddressState,
    signal: &Signal,
    now: UnixMillis,
    cfg: &QuarantineConfig,
) -> Change {
    let refreshed = refresh(state, now, cfg);
    let before = state.clone();
    match signal {
        Signal::None => {}
        Signal::Success { at } => success(state, *at),
        Signal::Soft { at, failure } => soft(state, *at, failure, cfg),
        Signal::Hard { at, failure } => {
            let to = if failure.reason == Reason::Denylisted {
                AddressStatus::Denylisted
            } else {
                AddressStatus::Quarantine
            };
            exclude(state, to, *at, failure);
        }
        Signal::Complaint { at, failure } | Signal::Unsubscribe { at, failure } => {
            let failure = FailureInfo {
                reason: Reason::Denylisted,
                ..failure.clone()
            };
            exclude(state, AddressStatus::Denylisted, *at, &failure);
        }
    }
    let entered = (!is_excluded_status(before.status) && is_excluded_status(state.status))
        .then_some(state.status);
    Change {
        changed: refreshed || *state != before,
        entered,
    }
}

/// A success resets With errors, unless an error newer than it was already seen.
fn success(state: &mut AddressState, at: UnixMillis) {
    let newer_error = state.last_error_at.is_some_and(|t| t > at);
    if state.status == AddressStatus::WithErrors && !newer_error {
        valid(state);
    }
}

fn note_error(state: &mut AddressState, at: UnixMillis, failure: &FailureInfo) {
    if state.last_error_at.is_none_or(|t| at >= t) {
        state.last_error = Some(failure.clone());
        state.last_error_at = Some(at);
    }
}

fn soft(state: &mut AddressState, at: UnixMillis, failure: &FailureInfo, cfg: &QuarantineConfig) {
    if is_excluded_status(state.status) {
        return;
    }
    note_error(state, at, failure);
    let significant = state
        .last_counted_at
        .is_none_or(|t| at >= t.saturating_add(ms(cfg.error_interval)));
    if !significant {
        return;
    }
    state.error_count = state.error_count.saturating_add(1);
    state.last_counted_at = Some(at);
    if state.error_count >= cfg.errors_to_quarantine.max(1) {
        state.status = AddressStatus::Quarantine;
        state.since = Some(at);
        state.reason = Some(failure.reason);
    } else {
        state.status = AddressStatus::WithErrors;
    }
}

fn exclude(state: &mut AddressState, to: AddressStatus, at: UnixMillis, failure: &FailureInfo) {
    let upgrade = match state.status {
        AddressStatus::Valid | AddressStatus::WithErrors => true,
        AddressStatus::Quarantine => to == AddressStatus::Denylisted || !entered_by_hard(state),
        AddressStatus::Denylisted => false,
    };
    if !upgrade {
        return;
    }
    state.status = to;
    state.last_error = Some(failure.clone());
    state.last_error_at = Some(state.last_error_at.map_or(at, |t| t.max(at)));
    state.since = Some(at);
    state.reason = Some(failure.reason);
}

/// What an operator release undid, for the store's audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    pub status: AddressStatus,
    pub reason: Option<Reason>,
    pub since: Option<UnixMillis>,
    pub last_error: Option<FailureInfo>,
}

/// Operator release of one address: back to Valid with no error counted (from Quarantine,
/// Denylisted or With errors). The last error is kept for reading. `None` when already Valid.
pub fn release(state: &mut AddressState) -> Option<Released> {
    if !is_excluded_status(state.status) && state.status != AddressStatus::WithErrors {
        return None;
    }
    let released = Released {
        status: state.status,
        reason: state.reason,
        since: state.since,
        last_error: state.last_error.clone(),
    };
    valid(state);
    Some(released)
}

/// Which records a bulk release takes (e.g. everything a provider's incident quarantined:
/// one reply text within a time window). Every given criterion must hold.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFilter {
    /// Denylisted records too; by default only Quarantine (a complaint is the recipient's
    /// will, not an incident).
    pub include_denylisted: bool,
    pub reason: Option<Reason>,
    /// On the text of the error that quarantined the address.
    pub text: Option<regex::Regex>,
    /// On when the address entered quarantine: `from <= since < until`.
    pub from: Option<UnixMillis>,
    pub until: Option<UnixMillis>,
    /// The address's domain, compared lower-case.
    pub domain: Option<String>,
}

/// A reply-text pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("text pattern longer than {MAX_PATTERN} bytes")]
    PatternTooLong,
    #[error("invalid text pattern: {0}")]
    Pattern(String),
}

/// Longest reply-text pattern accepted, and the compiled size allowed: an operator's pattern
/// runs over every quarantined record.
pub const MAX_PATTERN: usize = 1024;
const MAX_COMPILED: usize = 1 << 20;

impl ReleaseFilter {
    /// Sets the reply-text pattern (Rust `regex` syntax, matched anywhere in the text).
    pub fn with_text(mut self, pattern: &str) -> Result<Self, FilterError> {
        if pattern.len() > MAX_PATTERN {
            return Err(FilterError::PatternTooLong);
        }
        let re = regex::RegexBuilder::new(pattern)
            .size_limit(MAX_COMPILED)
            .build()
            .map_err(|e| FilterError::Pattern(e.to_string()))?;
        self.text = Some(re);
        Ok(self)
    }
}

/// Whether the filter takes the record.
pub fn matches(filter: &ReleaseFilter, state: &AddressState) -> bool {
    let status_ok = match state.status {
        AddressStatus::Quarantine => true,
        AddressStatus::Denylisted => filter.include_denylisted,
        AddressStatus::Valid | AddressStatus::WithErrors => false,
    };
    let since = state.since.unwrap_or(0);
    status_ok
        && filter.reason.is_none_or(|r| state.reason == Some(r))
        && filter.text.as_ref().is_none_or(|re| {
            state
                .last_error
                .as_ref()
                .is_some_and(|f| re.is_match(&f.text))
        })
        && filter.from.is_none_or(|t| since >= t)
        && filter.until.is_none_or(|t| since < t)
        && filter.domain.as_ref().is_none_or(|d| {
            cartero_address::routing_domain(&state.address) == d.to_ascii_lowercase()
        })
}
