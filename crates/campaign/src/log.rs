//! The delivery log state machine (SPEC §3.3, Email Feedback Service mode).
//!
//! A row's state is a function of the *set* of events applied to it, not of their arrival
//! order, so at-least-once delivery, replays and reordering (webhook batches, inMail reports
//! that outrun the queue's events) all end in the same row:
//!
//! * every event orders by its key `(time, kind rank, text)`; the rank breaks ties between
//!   events of the same millisecond (see [`rank`]);
//! * the status comes from the greatest *final* event (`delivery` → Sent; `bounce`,
//!   `expiration`, `out_of_band` → Failed): an older event never undoes a newer final state,
//!   and at equal times a failure wins over a delivery;
//! * any event from the MTA moves Pending to Taken; nothing else moves a row back or forth
//!   (a late `delay` or `reception` never reverts Sent);
//! * the failure is that of the greatest failure event (`delay`, `bounce`, `expiration`,
//!   `out_of_band`): a soft bounce updates it and keeps the status;
//! * complaints and unsubscribes set the row's [`Feedback`](crate::model::Feedback);
//! * Ignored rows never change.
//!
//! The attempt history keeps the greatest [`MAX_ATTEMPTS_KEPT`] events, sorted, and never
//! drops the two that decide the status and the failure, so those stay exact however many
//! events a row gets.

use crate::kpi::{Contribution, KpiDelta};
use crate::model::{Attempt, LogRow, LogStatus, MAX_ATTEMPTS_KEPT};
use crate::observe::{Blame, Kind, Observation, RowRef};
use crate::quarantine::Signal;
use cartero_bounce::FailureType;

/// Why an event was refused for a row it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The event names another delivery or row id than the row given.
    Row,
    /// The row already has another MTA message id.
    MessageId,
    /// The event's recipient is not the row's address.
    Recipient,
}

/// What applying an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The row changed (at least its history); persist it.
    Applied,
    /// The same event was already applied: nothing changed.
    Duplicate,
    /// Ignored rows are final from analysis on.
    RowIgnored,
    /// The event is not about this row: nothing changed.
    Mismatch(Mismatch),
}

/// The outcome of [`apply`]: the status move, the KPI delta and what the address learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub effect: Effect,
    pub from: LogStatus,
    pub to: LogStatus,
    pub delta: KpiDelta,
    /// For the address's quality record (SPEC §3.5); [`Signal::None`] unless applied.
    pub signal: Signal,
}

impl Transition {
    fn unchanged(row: &LogRow, effect: Effect) -> Self {
        let c = Contribution::of(row);
        Self {
            effect,
            from: row.status,
            to: row.status,
            delta: KpiDelta {
                before: c,
                after: c,
            },
            signal: Signal::None,
        }
    }

    /// Whether the row must be written back.
    pub fn row_changed(&self) -> bool {
        self.effect == Effect::Applied
    }
}

/// Ties at the same millisecond: intermediate events first, then feedback, then the final
/// ones — a delivery below the failures (a failure report and a delivery in the same
/// millisecond mean the failure came after), and the asynchronous bounce, which always follows
/// a delivery, greatest.
pub fn rank(kind: Kind) -> u8 {
    match kind {
        Kind::Reception => 1,
        Kind::Delay => 2,
        Kind::AutoReply => 3,
        Kind::SpamComplaint => 4,
        Kind::ListUnsubscribe => 5,
        Kind::Delivery => 6,
        Kind::Expiration => 7,
        Kind::Bounce => 8,
        Kind::OutOfBand => 9,
    }
}

/// The status a final event decides.
fn final_status(kind: Kind) -> Option<LogStatus> {
    match kind {
        Kind::Delivery => Some(LogStatus::Sent),
        Kind::Bounce | Kind::Expiration | Kind::OutOfBand => Some(LogStatus::Failed),
        _ => None,
    }
}

type Key<'a> = (u64, u8, &'a str);

fn key_of(a: &Attempt) -> Key<'_> {
    (a.at, Kind::from_name(&a.kind).map_or(0, rank), &a.text)
}

/// Index of the greatest attempt whose kind satisfies `pick` (attempts are sorted).
fn greatest(attempts: &[Attempt], pick: fn(Kind) -> bool) -> Option<usize> {
    attempts
        .iter()
        .rposition(|a| Kind::from_name(&a.kind).is_some_and(pick))
}

fn is_final(kind: Kind) -> bool {
    final_status(kind).is_some()
}

/// Applies one observation to its row. See the module documentation for the rules.
pub fn apply(row: &mut LogRow, obs: &Observation) -> Transition {
    if row.status == LogStatus::Ignored {
        return Transition::unchanged(row, Effect::RowIgnored);
    }
    if let Some(m) = mismatch(row, obs) {
        return Transition::unchanged(row, Effect::Mismatch(m));
    }
    let attempt = Attempt {
        at: obs.at,
        kind: obs.kind.name().to_string(),
        text: obs.text.clone(),
    };
    if row.attempts.contains(&attempt) {
        return Transition::unchanged(row, Effect::Duplicate);
    }
    let before = Contribution::of(row);
    let from = row.status;
    let key = (obs.at, rank(obs.kind), obs.text.as_str());
    let newer_than =
        |pick| greatest(&row.attempts, pick).is_none_or(|i| key > key_of(&row.attempts[i]));
    let wins_status = newer_than(is_final);
    let wins_failure = newer_than(Kind::is_failure);
    match final_status(obs.kind) {
        Some(s) if wins_status => row.status = s,
        _ if row.status == LogStatus::Pending => row.status = LogStatus::Taken,
        _ => {}
    }
    if obs.kind.is_failure() && wins_failure {
        row.failure.clone_from(&obs.failure);
    }
    match obs.kind {
        Kind::SpamComplaint => row.feedback.complained = true,
        Kind::ListUnsubscribe => row.feedback.unsubscribed = true,
        _ => {}
    }
    if row.message_id.is_none() {
        row.message_id.clone_from(&obs.message_id);
    }
    insert(&mut row.attempts, attempt);
    row.last_event_at = row.last_event_at.max(obs.at);
    let signal = signal(row, obs);
    Transition {
        effect: Effect::Applied,
        from,
        to: row.status,
        delta: KpiDelta {
            before,
            after: Contribution::of(row),
        },
        signal,
    }
}

fn mismatch(row: &LogRow, obs: &Observation) -> Option<Mismatch> {
    if let RowRef::Log { delivery, log } = obs.row
        && (delivery != row.delivery || log != row.id)
    {
        return Some(Mismatch::Row);
    }
    if let (Some(ours), Some(theirs)) = (&row.message_id, &obs.message_id)
        && ours != theirs
    {
        return Some(Mismatch::MessageId);
    }
    // Domains are case-insensitive and local parts nearly always treated so; the MTA echoes
    // what was injected, inMail what the report proved.
    match &obs.rcpt_to {
        Some(r) if !row.address.is_empty() && !r.eq_ignore_ascii_case(&row.address) => {
            Some(Mismatch::Recipient)
        }
        _ => None,
    }
}

/// Inserts in key order, then drops the smallest attempts beyond the bound, except the two
/// that decide the status and the failure.
fn insert(attempts: &mut Vec<Attempt>, attempt: Attempt) {
    let key = key_of(&attempt);
    let at = attempts.partition_point(|a| key_of(a) < key);
    attempts.insert(at, attempt);
    while attempts.len() > MAX_ATTEMPTS_KEPT {
        let keep = [
            greatest(attempts, is_final),
            greatest(attempts, Kind::is_failure),
        ];
        let Some(drop) = (0..attempts.len()).find(|i| !keep.contains(&Some(*i))) else {
            break;
        };
        attempts.remove(drop);
    }
}

/// What the address learns. A failure older than the delivery that decides the row says
/// nothing any more (the later success answered it), and a failure blamed on the sender or on
/// our sending never counts against the recipient.
fn signal(row: &LogRow, obs: &Observation) -> Signal {
    let at = obs.at;
    let failure = || obs.failure.clone().unwrap_or_else(|| unknown_failure(obs));
    match obs.kind {
        Kind::Reception | Kind::AutoReply => Signal::None,
        Kind::Delivery => Signal::Success { at },
        Kind::SpamComplaint => Signal::Complaint {
            at,
            failure: failure(),
        },
        Kind::ListUnsubscribe => Signal::Unsubscribe {
            at,
            failure: failure(),
        },
        Kind::Delay | Kind::Bounce | Kind::Expiration | Kind::OutOfBand => {
            let key = (obs.at, rank(obs.kind), obs.text.as_str());
            let answered = greatest(&row.attempts, is_final).is_some_and(|i| {
                let a = &row.attempts[i];
                a.kind == Kind::Delivery.name() && key_of(a) > key
            });
            if answered || obs.blame != Blame::Recipient {
                return Signal::None;
            }
            let failure = failure();
            match failure.r#type {
                FailureType::Hard => Signal::Hard { at, failure },
                FailureType::Soft => Signal::Soft { at, failure },
                FailureType::Ignored => Signal::None,
            }
        }
    }
}

/// Observations of failures always carry a qualification; this only keeps the signal total.
fn unknown_failure(obs: &Observation) -> crate::model::FailureInfo {
    crate::model::FailureInfo {
        r#type: FailureType::Soft,
        reason: cartero_bounce::Reason::NotDefined,
        class: None,
        text: obs.text.clone(),
        rule: String::new(),
    }
}
