use serde::{Deserialize, Serialize};
use std::fmt;

/// Broad grouping of bounce classes (SPEC §2.7 table, "category" column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Undetermined,
    Hard,
    Soft,
    Admin,
    Block,
}

/// A Momentum/SparkPost bounce class code (1…100).
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
#[serde(transparent)]
pub struct BounceClass(pub u16);

/// The class table: (code, name, category).
const TABLE: &[(u16, &str, Category)] = &[
    (1, "Undetermined", Category::Undetermined),
    (10, "Invalid Recipient", Category::Hard),
    (20, "Soft Bounce", Category::Soft),
    (21, "DNS Failure", Category::Soft),
    (22, "Mailbox Full", Category::Soft),
    (23, "Too Large", Category::Soft),
    (24, "Timeout", Category::Soft),
    (25, "Admin Failure", Category::Admin),
    (30, "Generic Bounce: No RCPT", Category::Hard),
    (40, "Generic Bounce", Category::Soft),
    (50, "Mail Block", Category::Block),
    (51, "Spam Block", Category::Block),
    (52, "Spam Content", Category::Block),
    (53, "Prohibited Attachment", Category::Block),
    (54, "Relaying Denied", Category::Block),
    (60, "Auto-Reply", Category::Soft),
    (70, "Transient Failure", Category::Soft),
    (80, "Subscribe", Category::Admin),
    (90, "Unsubscribe", Category::Hard),
    (100, "Challenge-Response", Category::Soft),
];

impl BounceClass {
    pub const UNDETERMINED: Self = Self(1);
    pub const INVALID_RECIPIENT: Self = Self(10);
    pub const SOFT: Self = Self(20);
    pub const DNS_FAILURE: Self = Self(21);
    pub const MAILBOX_FULL: Self = Self(22);
    pub const TOO_LARGE: Self = Self(23);
    pub const TIMEOUT: Self = Self(24);
    pub const ADMIN: Self = Self(25);
    pub const NO_RCPT: Self = Self(30);
    pub const GENERIC: Self = Self(40);
    pub const MAIL_BLOCK: Self = Self(50);
    pub const SPAM_BLOCK: Self = Self(51);
    pub const SPAM_CONTENT: Self = Self(52);
    pub const PROHIBITED_ATTACHMENT: Self = Self(53);
    pub const RELAYING_DENIED: Self = Self(54);
    pub const AUTO_REPLY: Self = Self(60);
    pub const TRANSIENT: Self = Self(70);
    pub const SUBSCRIBE: Self = Self(80);
    pub const UNSUBSCRIBE: Self = Self(90);
    pub const CHALLENGE_RESPONSE: Self = Self(100);

    /// Every defined class, in code order.
    pub fn all() -> impl Iterator<Item = Self> {
        TABLE.iter().map(|(c, _, _)| Self(*c))
    }

    fn entry(self) -> Option<&'static (u16, &'static str, Category)> {
        TABLE.iter().find(|(c, _, _)| *c == self.0)
    }

    /// `None` for codes outside the table.
    pub fn name(self) -> Option<&'static str> {
        self.entry().map(|e| e.1)
    }

    pub fn category(self) -> Category {
        self.entry().map_or(Category::Undetermined, |e| e.2)
    }

    pub fn is_known(self) -> bool {
        self.entry().is_some()
    }
}

impl fmt::Display for BounceClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name().unwrap_or("unknown"))
    }
}
