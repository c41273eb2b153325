//! Campaign qualification (SPEC §3.4): a bounce class becomes a failure type (Hard / Soft /
//! Ignored) and a reason, the way the campaign layer counts and quarantines. The default table is
//! the SPEC's; operators override entries per class in config.

use crate::BounceClass;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How a failure counts for address quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureType {
    Hard,
    Soft,
    Ignored,
}

/// Failure reason with its technical value (SPEC §3.4). JSON carries the name; query filters
/// take the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    NotDefined = 0,
    UserUnknown = 1,
    InvalidDomain = 2,
    Unreachable = 3,
    AccountDisabled = 4,
    MailboxFull = 5,
    AddressNotSpecified = 7,
    Denylisted = 8,
    Quarantine = 9,
    Duplicate = 10,
    Refused = 20,
    ErrorIgnored = 25,
}

impl Reason {
    /// Every reason, in value order.
    pub const ALL: [Reason; 12] = [
        Reason::NotDefined,
        Reason::UserUnknown,
        Reason::InvalidDomain,
        Reason::Unreachable,
        Reason::AccountDisabled,
        Reason::MailboxFull,
        Reason::AddressNotSpecified,
        Reason::Denylisted,
        Reason::Quarantine,
        Reason::Duplicate,
        Reason::Refused,
        Reason::ErrorIgnored,
    ];

    /// The reason with this technical value, if any.
    pub fn from_value(value: u8) -> Option<Reason> {
        Reason::ALL.into_iter().find(|r| r.value() == value)
    }

    /// The technical value.
    pub fn value(self) -> u8 {
        self as u8
    }

    pub fn label(self) -> &'static str {
        match self {
            Reason::NotDefined => "Not defined",
            Reason::UserUnknown => "User unknown",
            Reason::InvalidDomain => "Invalid domain",
            Reason::Unreachable => "Unreachable",
            Reason::AccountDisabled => "Account disabled",
            Reason::MailboxFull => "Mailbox full",
            Reason::AddressNotSpecified => "Address not specified",
            Reason::Denylisted => "Denylisted address",
            Reason::Quarantine => "Address in quarantine",
            Reason::Duplicate => "Duplicate",
            Reason::Refused => "Refused",
            Reason::ErrorIgnored => "Error ignored",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.value(), self.label())
    }
}

/// A qualification: type and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qualification {
    pub r#type: FailureType,
    pub reason: Reason,
}

/// What the class alone cannot tell.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QualifyContext {
    /// The domain does not exist or publishes Null MX: a class-21 failure that is final.
    pub domain_permanently_invalid: bool,
    /// The failure is a spam complaint (ARF), not a bounce.
    pub spam_complaint: bool,
}

/// The class → qualification mapping, with operator overrides (`[bounce.qualification]`, keys are
/// class codes as strings: `"52" = { type = "hard", reason = "refused" }`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, transparent)]
pub struct Qualifier {
    pub overrides: BTreeMap<String, Qualification>,
}

fn q(t: FailureType, reason: Reason) -> Qualification {
    Qualification { r#type: t, reason }
}

/// The SPEC §3.4 default for a class.
pub fn default_qualification(class: BounceClass, ctx: QualifyContext) -> Qualification {
    use FailureType::*;
    use Reason::*;
    if ctx.spam_complaint {
        return q(Hard, Denylisted);
    }
    match class.0 {
        10 | 30 => q(Hard, UserUnknown),
        20 | 40 | 70 | 24 => q(Soft, Unreachable),
        21 if ctx.domain_permanently_invalid => q(Hard, InvalidDomain),
        21 => q(Soft, InvalidDomain),
        22 => q(Soft, MailboxFull),
        23 | 50..=54 => q(Soft, Refused),
        25 => q(Ignored, Refused),
        60 | 100 => q(Ignored, Unreachable),
        80 => q(Ignored, NotDefined),
        90 => q(Hard, Denylisted),
        _ => q(Soft, NotDefined),
    }
}

impl Qualifier {
    /// The operator's override for the class when there is one, else the default.
    pub fn qualify(&self, class: BounceClass, ctx: QualifyContext) -> Qualification {
        if ctx.spam_complaint {
            return default_qualification(class, ctx);
        }
        self.overrides
            .get(&class.0.to_string())
            .copied()
            .unwrap_or_else(|| default_qualification(class, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FailureType::*;

    fn d(c: u16) -> Qualification {
        default_qualification(BounceClass(c), QualifyContext::default())
    }

    #[test]
    fn spec_table_defaults() {
        assert_eq!(d(1), q(Soft, Reason::NotDefined));
        assert_eq!(d(10), q(Hard, Reason::UserUnknown));
        assert_eq!(d(30), q(Hard, Reason::UserUnknown));
        for c in [20, 40, 70, 24] {
            assert_eq!(d(c), q(Soft, Reason::Unreachable), "{c}");
        }
        assert_eq!(d(21), q(Soft, Reason::InvalidDomain));
        assert_eq!(d(22), q(Soft, Reason::MailboxFull));
        for c in [23, 50, 51, 52, 53, 54] {
            assert_eq!(d(c), q(Soft, Reason::Refused), "{c}");
        }
        assert_eq!(d(25), q(Ignored, Reason::Refused));
        assert_eq!(d(60), q(Ignored, Reason::Unreachable));
        assert_eq!(d(100), q(Ignored, Reason::Unreachable));
        assert_eq!(d(80), q(Ignored, Reason::NotDefined));
        assert_eq!(d(90), q(Hard, Reason::Denylisted));
    }

    #[test]
    fn nxdomain_and_null_mx_are_hard_and_complaints_denylist() {
        let ctx = QualifyContext {
            domain_permanently_invalid: true,
            ..Default::default()
        };
        assert_eq!(
            default_qualification(BounceClass(21), ctx),
            q(Hard, Reason::InvalidDomain)
        );
        let ctx = QualifyContext {
            spam_complaint: true,
            ..Default::default()
        };
        assert_eq!(
            default_qualification(BounceClass(1), ctx),
            q(Hard, Reason::Denylisted)
        );
    }

    #[test]
    fn overrides_apply_per_class_from_config() {
        let qz: Qualifier =
            toml::from_str("\"52\" = { type = \"hard\", reason = \"refused\" }\n").unwrap();
        assert_eq!(
            qz.qualify(BounceClass(52), QualifyContext::default()),
            q(Hard, Reason::Refused)
        );
        assert_eq!(
            qz.qualify(BounceClass(51), QualifyContext::default()),
            q(Soft, Reason::Refused)
        );
        assert!(
            toml::from_str::<Qualifier>("\"52\" = { type = \"fatal\", reason = \"refused\" }\n")
                .is_err()
        );
    }

    #[test]
    fn reasons_show_their_technical_value() {
        assert_eq!(Reason::MailboxFull.to_string(), "5 Mailbox full");
        assert_eq!(Reason::ErrorIgnored.value(), 25);
    }

    /// The API's OpenAPI document lists what the JSON carries: names for reasons and types
    /// (never the numbers, which only query filters take), a number for a class.
    #[test]
    fn schemas_list_exactly_what_serde_writes() {
        use serde_json::{Value, json};
        use utoipa::PartialSchema;
        let schema = |s| serde_json::to_value(s).unwrap();
        let reasons: Vec<Value> = Reason::ALL
            .iter()
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        assert_eq!(schema(Reason::schema())["enum"], json!(reasons));
        assert_eq!(
            (&reasons[1], &reasons[11]),
            (&json!("user_unknown"), &json!("error_ignored"))
        );
        let types: Vec<Value> = [Hard, Soft, Ignored]
            .iter()
            .map(|t| serde_json::to_value(t).unwrap())
            .collect();
        assert_eq!(schema(FailureType::schema())["enum"], json!(types));
        assert_eq!(json!(types), json!(["hard", "soft", "ignored"]));
        assert_eq!(serde_json::to_value(BounceClass(52)).unwrap(), 52);
        assert_eq!(schema(BounceClass::schema())["type"], "integer");
    }
}
