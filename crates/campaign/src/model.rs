//! The campaign layer's vocabulary (SPEC §3): deliveries, their log rows, addresses and KPI
//! counters. Plain data shared by the rules (`log`, `quarantine`, `kpi`, `analysis`) and the
//! storage (`store`), which persists exactly these fields.

use cartero_bounce::{BounceClass, FailureType, Reason};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds since the Unix epoch, as every clock of cartero reads it.
pub type UnixMillis = u64;

/// A delivery (SPEC §3.1).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct DeliveryId(pub i64);

/// One row of a delivery's log: one targeted recipient of one delivery.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct LogId(pub i64);

/// A recipient list to target.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct ListId(pub i64);

/// A recipient profile (e-mail plus free attributes).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub struct RecipientId(pub i64);

/// The state of a delivery. `Finished` means every log row reached a final status (or the
/// validity ended); `Stopped` means an operator stopped it and what the MTA had not taken was
/// cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    Draft,
    Analyzed,
    Running,
    Paused,
    Finished,
    Stopped,
}

/// What a delivery is. A transactional template's version (SPEC §3.7) is a delivery that is
/// Running from its creation and never finishes: each call adds a row to its log. The campaign
/// verbs (analyze, start, pause, resume, stop) refuse it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    #[default]
    Campaign,
    Transactional,
}

impl DeliveryKind {
    /// As stored (column `delivery.kind`).
    pub fn code(self) -> i64 {
        match self {
            DeliveryKind::Campaign => 0,
            DeliveryKind::Transactional => 1,
        }
    }

    pub fn from_code(v: i64) -> Option<Self> {
        match v {
            0 => Some(DeliveryKind::Campaign),
            1 => Some(DeliveryKind::Transactional),
            _ => None,
        }
    }
}

/// A delivery log status (SPEC §3.3, Email Feedback Service mode). Stored as its number.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum LogStatus {
    /// Generated, not yet in the MTA.
    Pending = 0,
    /// "Taken into account by the service provider": the MTA spooled it.
    Taken = 1,
    /// The receiving server accepted it (2xx after the data).
    Sent = 2,
    /// A hard bounce, an expiry, or an asynchronous bounce after Sent.
    Failed = 3,
    /// Excluded at analysis (no address, invalid, duplicate, quarantine, denylisted).
    Ignored = 4,
}

impl LogStatus {
    /// Sent, Failed and Ignored are final: the delivery's figures count them as settled.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            LogStatus::Sent | LogStatus::Failed | LogStatus::Ignored
        )
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => LogStatus::Pending,
            1 => LogStatus::Taken,
            2 => LogStatus::Sent,
            3 => LogStatus::Failed,
            4 => LogStatus::Ignored,
            _ => return None,
        })
    }
}

/// Why a row failed or was ignored, or the last soft failure of a row still on its way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FailureInfo {
    pub r#type: FailureType,
    pub reason: Reason,
    /// The bounce class the MTA gave, when the failure came from the MTA.
    pub class: Option<BounceClass>,
    /// The exact reply or explanation (`raw_reason` of the event).
    pub text: String,
    /// The rule that classified it (classifier rule or inbound rule name).
    pub rule: String,
}

/// One attempt the MTA reported for a row (delay, delivery, bounce, expiration, async bounce).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Attempt {
    pub at: UnixMillis,
    /// The event type as the MTA named it (`delivery`, `delay`, `bounce`, ...).
    pub kind: String,
    pub text: String,
}

/// How many attempts a row keeps: the history is for reading, not an archive.
pub const MAX_ATTEMPTS_KEPT: usize = 10;

/// A delivery log row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogRow {
    pub id: LogId,
    pub delivery: DeliveryId,
    /// The recipient profile the row was made from: its attributes personalize the message.
    #[serde(default)]
    pub recipient: Option<RecipientId>,
    /// As targeted (after trimming); empty when the recipient had none.
    pub address: String,
    /// Lower-cased domain of `address`, for the breakdown by domain.
    pub domain: String,
    pub status: LogStatus,
    /// Set for Failed and Ignored rows, and updated by soft bounces on rows still on their way.
    pub failure: Option<FailureInfo>,
    /// The MTA's message id once it took the message.
    pub message_id: Option<String>,
    /// Time of the newest event applied: an older event never undoes a newer state.
    pub last_event_at: UnixMillis,
    /// Newest last; at most [`MAX_ATTEMPTS_KEPT`].
    pub attempts: Vec<Attempt>,
    /// Complaint and unsubscribe received about this row's message: counted once per row,
    /// however many reports arrive (the KPIs count rows, not reports).
    #[serde(default)]
    pub feedback: Feedback,
}

/// Recipient feedback about a delivered message (SPEC §2.8).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct Feedback {
    pub complained: bool,
    pub unsubscribed: bool,
}

impl Feedback {
    /// As one small integer, for a compact column: bit 0 complained, bit 1 unsubscribed.
    pub fn bits(self) -> u8 {
        u8::from(self.complained) | (u8::from(self.unsubscribed) << 1)
    }

    /// The inverse of [`Feedback::bits`]; unknown bits are ignored.
    pub fn from_bits(bits: u8) -> Self {
        Self {
            complained: bits & 1 != 0,
            unsubscribed: bits & 2 != 0,
        }
    }
}

/// Address quality status (SPEC §3.5), shared by every delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AddressStatus {
    Valid,
    WithErrors,
    Quarantine,
    Denylisted,
}

/// The quality record of one address (lower-cased), shared by all deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AddressState {
    pub address: String,
    pub status: AddressStatus,
    /// Significant soft errors counted (at most one per 24 h by default).
    pub error_count: u32,
    /// When the last *counted* error happened.
    pub last_counted_at: Option<UnixMillis>,
    /// The last error seen, counted or not.
    pub last_error: Option<FailureInfo>,
    pub last_error_at: Option<UnixMillis>,
    /// When it entered Quarantine or Denylisted, and why.
    pub since: Option<UnixMillis>,
    pub reason: Option<Reason>,
}

/// A delivery's counters, kept up to date by every transition so a read costs the same at
/// 100 or 10,000,000 rows (SPEC §3.3). Rates are computed from these at read time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Kpis {
    /// Rows analysis kept (the denominator of Success %).
    pub to_deliver: u64,
    pub pending: u64,
    pub taken: u64,
    pub sent: u64,
    pub failed: u64,
    pub ignored: u64,
    /// Failed rows by reason value.
    // JSON object keys are strings ("1"), whatever the map's key type.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub failed_by_reason: BTreeMap<u8, u64>,
    /// Ignored rows by reason value.
    #[schema(value_type = BTreeMap<String, u64>)]
    pub ignored_by_reason: BTreeMap<u8, u64>,
    pub hard_bounces: u64,
    pub soft_bounces: u64,
    pub complaints: u64,
    pub unsubscribes: u64,
    pub new_quarantines: u64,
    /// Failed rows by recipient domain, and sent rows by recipient domain.
    pub failed_by_domain: BTreeMap<String, u64>,
    pub sent_by_domain: BTreeMap<String, u64>,
}

impl Kpis {
    /// The scalar counters' names, in the order the store keeps them and the CLI prints
    /// them: the one list both read.
    pub const COUNTERS: [&'static str; 11] = [
        "to_deliver",
        "pending",
        "taken",
        "sent",
        "failed",
        "ignored",
        "hard_bounces",
        "soft_bounces",
        "complaints",
        "unsubscribes",
        "new_quarantines",
    ];
}

/// A recipient profile: an e-mail and free attributes (CSV columns or API JSON), the values
/// templates personalize with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Recipient {
    pub id: RecipientId,
    pub list: ListId,
    pub email: String,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// How long a delivery keeps trying by default (SPEC §3.1); the MTA caps each message at its own
/// maximum (3.5 days).
pub const DEFAULT_VALIDITY_MS: u64 = 5 * 24 * 3_600_000;

/// A delivery (SPEC §3.1): what to send, to whom, until when, through which pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Delivery {
    pub id: DeliveryId,
    pub name: String,
    /// The From header (and the envelope sender unless the pool says otherwise).
    pub from: String,
    pub subject: String,
    pub text_template: Option<String>,
    pub html_template: Option<String>,
    pub list: ListId,
    pub validity_ms: u64,
    /// The MTA egress pool; `None` is the MTA's default pool.
    pub pool: Option<String>,
    pub state: DeliveryState,
    /// A campaign, or one version of a transactional template.
    #[serde(default)]
    pub kind: DeliveryKind,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// When it first went Running, and when it became Finished or Stopped.
    pub started_at: Option<UnixMillis>,
    pub ended_at: Option<UnixMillis>,
}
