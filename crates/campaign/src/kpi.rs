//! A delivery's KPIs (SPEC §3.3): counters kept up to date by every row transition, and the
//! read-time views computed from them (Email Feedback Service and legacy), so a read costs the
//! same at 100 or 10,000,000 rows.
//!
//! Every counter counts *rows*: a row contributes by its status, its failure (type and
//! reason) and its feedback, and a transition moves its contribution. Counters are therefore
//! exactly the sums over the rows' current states; `pending + taken + sent + failed =
//! to_deliver` always holds, and a replayed event moves nothing.

use crate::model::{Feedback, Kpis, LogRow, LogStatus, UnixMillis};
use cartero_bounce::{FailureType, Reason};
use serde::Serialize;
use std::collections::BTreeMap;

/// What one row adds to its delivery's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution {
    pub status: LogStatus,
    /// The row's failure type and reason value, if it has a failure.
    pub failure: Option<(FailureType, u8)>,
    pub feedback: Feedback,
}

impl Contribution {
    pub fn of(row: &LogRow) -> Self {
        Self {
            status: row.status,
            failure: row.failure.as_ref().map(|f| (f.r#type, f.reason.value())),
            feedback: row.feedback,
        }
    }
}

/// A row's contribution before and after a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiDelta {
    pub before: Contribution,
    pub after: Contribution,
}

impl KpiDelta {
    pub fn is_empty(&self) -> bool {
        self.before == self.after
    }
}

/// Counts a new row (after analysis: Pending, or Ignored with its reason).
pub fn add_row(kpis: &mut Kpis, row: &LogRow) {
    count(kpis, &Contribution::of(row), &row.domain, true);
}

/// Moves a row's contribution; `domain` is the row's domain.
pub fn apply(kpis: &mut Kpis, delta: &KpiDelta, domain: &str) {
    if delta.is_empty() {
        return;
    }
    count(kpis, &delta.before, domain, false);
    count(kpis, &delta.after, domain, true);
}

/// Counts an address that entered Quarantine or Denylisted because of this delivery.
pub fn add_new_quarantine(kpis: &mut Kpis) {
    kpis.new_quarantines = kpis.new_quarantines.saturating_add(1);
}

fn bump(n: &mut u64, add: bool) {
    *n = if add {
        n.saturating_add(1)
    } else {
        n.saturating_sub(1)
    };
}

fn bump_key<K: Ord>(map: &mut BTreeMap<K, u64>, key: K, add: bool) {
    match map.get_mut(&key) {
        Some(n) => {
            bump(n, add);
            // A map of zeros would keep every reason and domain ever seen.
            if *n == 0 {
                map.remove(&key);
            }
        }
        None if add => {
            map.insert(key, 1);
        }
        None => {}
    }
}

fn count(kpis: &mut Kpis, c: &Contribution, domain: &str, add: bool) {
    let reason = c.failure.map_or(Reason::NotDefined.value(), |(_, r)| r);
    match c.status {
        LogStatus::Pending => bump(&mut kpis.pending, add),
        LogStatus::Taken => bump(&mut kpis.taken, add),
        LogStatus::Sent => {
            bump(&mut kpis.sent, add);
            bump_key(&mut kpis.sent_by_domain, domain.to_string(), add);
        }
        LogStatus::Failed => {
            bump(&mut kpis.failed, add);
            bump_key(&mut kpis.failed_by_reason, reason, add);
            bump_key(&mut kpis.failed_by_domain, domain.to_string(), add);
        }
        LogStatus::Ignored => {
            bump(&mut kpis.ignored, add);
            bump_key(&mut kpis.ignored_by_reason, reason, add);
            // Ignored rows are not messages to deliver, nor bounces or feedback.
            return;
        }
    }
    bump(&mut kpis.to_deliver, add);
    match c.failure.map(|(t, _)| t) {
        Some(FailureType::Hard) => bump(&mut kpis.hard_bounces, add),
        Some(FailureType::Soft) => bump(&mut kpis.soft_bounces, add),
        Some(FailureType::Ignored) | None => {}
    }
    if c.feedback.complained {
        bump(&mut kpis.complaints, add);
    }
    if c.feedback.unsubscribed {
        bump(&mut kpis.unsubscribes, add);
    }
}

/// A count and its rate in percent of the messages to deliver (0 when there are none).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Figure {
    pub count: u64,
    pub rate: f64,
}

fn figure(count: u64, of: u64) -> Figure {
    let rate = if of == 0 {
        0.0
    } else {
        count as f64 * 100.0 / of as f64
    };
    Figure { count, rate }
}

/// One reason's line in a breakdown.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ReasonFigure {
    pub reason: u8,
    pub label: &'static str,
    #[serde(flatten)]
    pub figure: Figure,
}

/// The Email Feedback Service view (SPEC §3.3, the default): Sent only once the receiving
/// server accepted the message; Success starts at 0 % and goes up.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EfsView {
    pub to_deliver: u64,
    /// Sent / to deliver.
    pub success: Figure,
    pub pending: Figure,
    pub taken: Figure,
    pub sent: Figure,
    pub failed: Figure,
    pub failed_by_reason: Vec<ReasonFigure>,
    /// Excluded at analysis; the rate is of the messages to deliver, as for every figure.
    pub ignored: Figure,
    pub ignored_by_reason: Vec<ReasonFigure>,
    pub hard_bounces: Figure,
    pub soft_bounces: Figure,
    pub complaints: Figure,
    pub unsubscribes: Figure,
    pub new_quarantines: Figure,
    /// The figures will not move any more (see [`is_final`]).
    pub r#final: bool,
}

/// The legacy view of the same data (seed 000, before EFS): Sent as soon as the MTA took the
/// message, so Success is 100 % once every message is handed over, and goes down as hard
/// bounces, expiries and asynchronous bounces turn rows Failed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LegacyView {
    pub to_deliver: u64,
    /// (Taken + Sent) / to deliver.
    pub success: Figure,
    pub pending: Figure,
    /// Taken by the MTA, delivered or not yet.
    pub sent: Figure,
    pub failed: Figure,
    pub failed_by_reason: Vec<ReasonFigure>,
    pub r#final: bool,
}

/// Whether the figures are final: every row reached Sent, Failed or Ignored, or the
/// delivery's validity ended (`validity_end <= now`).
pub fn is_final(kpis: &Kpis, now: UnixMillis, validity_end: Option<UnixMillis>) -> bool {
    (kpis.pending == 0 && kpis.taken == 0) || validity_end.is_some_and(|end| now >= end)
}

fn by_reason(map: &BTreeMap<u8, u64>, of: u64) -> Vec<ReasonFigure> {
    map.iter()
        .map(|(&reason, &count)| ReasonFigure {
            reason,
            label: reason_label(reason),
            figure: figure(count, of),
        })
        .collect()
}

/// The label of a reason value (SPEC §3.4); `"Unknown"` for a value outside the table.
pub fn reason_label(value: u8) -> &'static str {
    Reason::from_value(value).map_or("Unknown", Reason::label)
}

/// The EFS view at `now`.
pub fn efs(kpis: &Kpis, now: UnixMillis, validity_end: Option<UnixMillis>) -> EfsView {
    let of = kpis.to_deliver;
    EfsView {
        to_deliver: of,
        success: figure(kpis.sent, of),
        pending: figure(kpis.pending, of),
        taken: figure(kpis.taken, of),
        sent: figure(kpis.sent, of),
        failed: figure(kpis.failed, of),
        failed_by_reason: by_reason(&kpis.failed_by_reason, of),
        ignored: figure(kpis.ignored, of),
        ignored_by_reason: by_reason(&kpis.ignored_by_reason, of),
        hard_bounces: figure(kpis.hard_bounces, of),
        soft_bounces: figure(kpis.soft_bounces, of),
        complaints: figure(kpis.complaints, of),
        unsubscribes: figure(kpis.unsubscribes, of),
        new_quarantines: figure(kpis.new_quarantines, of),
        r#final: is_final(kpis, now, validity_end),
    }
}

/// The legacy view at `now`.
pub fn legacy(kpis: &Kpis, now: UnixMillis, validity_end: Option<UnixMillis>) -> LegacyView {
    let of = kpis.to_deliver;
    let sent = kpis.taken.saturating_add(kpis.sent);
    LegacyView {
        to_deliver: of,
        success: figure(sent, of),
        pending: figure(kpis.pending, of),
        sent: figure(sent, of),
        failed: figure(kpis.failed, of),
        failed_by_reason: by_reason(&kpis.failed_by_reason, of),
        r#final: is_final(kpis, now, validity_end),
    }
}

/// One domain's line in the breakdown by domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainLine {
    pub domain: String,
    pub sent: u64,
    pub failed: u64,
}

/// The `limit` domains with the most sent + failed rows, most first (ties by name).
pub fn by_domain(kpis: &Kpis, limit: usize) -> Vec<DomainLine> {
    let mut lines: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (d, n) in &kpis.sent_by_domain {
        lines.entry(d).or_default().0 = *n;
    }
    for (d, n) in &kpis.failed_by_domain {
        lines.entry(d).or_default().1 = *n;
    }
    let mut out: Vec<DomainLine> = lines
        .into_iter()
        .map(|(d, (sent, failed))| DomainLine {
            domain: d.to_string(),
            sent,
            failed,
        })
        .collect();
    out.sort_by(|a, b| {
        b.sent
            .saturating_add(b.failed)
            .cmp(&a.sent.saturating_add(a.failed))
            .then_with(|| a.domain.cmp(&b.domain))
    });
    out.truncate(limit);
    out
}
