//! Bounce classes (SPEC §2.7) and the classifier seam.
//!
//! Every failed reply — synchronous SMTP replies, local failures such as DNS errors or timeouts, and
//! (later) asynchronous bounces — is reduced to a [`BounceClass`]. The MTA only sees the [`Classifier`]
//! trait; [`CodeClassifier`] is the built-in first classifier that reads the reply code, the enhanced
//! status code (RFC 3463) and a few unambiguous text cues. Rule-file classifiers plug in behind the same trait.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod class;
mod code;
pub mod qualify;
pub mod report;
pub mod rules;

pub use class::{BounceClass, Category};
pub use code::CodeClassifier;
pub use qualify::{FailureType, Qualification, Qualifier, QualifyContext, Reason};
pub use report::{
    ArfReport, ClassifiedRecipient, Outcome, ParsedReport, RecipientReport, ReportError,
    ReportKind, classify_report, classify_report_with, parse_report,
};
pub use rules::{RuleClassifier, RuleError};

/// What the MTA knows about a failure when it asks for a class.
#[derive(Debug, Clone, Copy)]
pub struct FailureInput<'a> {
    /// SMTP reply code (e.g. 550), or 0 for a local failure with no reply.
    pub code: u16,
    /// Enhanced status code `(class, subject, detail)`, when the reply had one.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The reply text (or a description of the local failure).
    pub text: &'a str,
    /// The MX host that answered, or the recipient domain when no host is known; lets
    /// provider-specific rules apply (matched by suffix).
    pub host: Option<&'a str>,
}

/// The outcome of a classification: the class and the name of the rule that decided it, so that
/// `cartero bounce classify` can explain itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub class: BounceClass,
    pub rule: String,
    /// A stated reason decided: a rule matched, other than a `catch_all` one. `false` for the
    /// code-only fallbacks and catch-alls ("blocked", "temporary"), which is when a bounce's
    /// human-readable explanation is worth classifying too.
    pub specific: bool,
}

/// Turns a failure into a bounce class. Implementations must be cheap: the MTA calls this for
/// every failed recipient.
pub trait Classifier: Send + Sync {
    fn classify(&self, input: &FailureInput<'_>) -> Classification;
}

/// The classifier the MTA and the CLI use by default: the built-in rule files, or — should they
/// ever fail to load, which the tests rule out — the plain [`CodeClassifier`].
pub fn default_classifier() -> std::sync::Arc<dyn Classifier> {
    match RuleClassifier::builtin() {
        Ok(c) => std::sync::Arc::new(c),
        Err(_) => std::sync::Arc::new(CodeClassifier::new()),
    }
}
