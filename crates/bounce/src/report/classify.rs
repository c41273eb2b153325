//! From a parsed report to bounce classes and campaign qualifications, one per recipient.

use super::fields::{find_codes, parse_enhanced};
use super::{ParsedReport, RecipientReport, ReportKind};
use crate::{
    BounceClass, Category, Classification, Classifier, FailureInput, Qualification, Qualifier,
    QualifyContext,
};
use serde::Serialize;

/// What the recipient's report should become downstream (SPEC §2.10 event types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A final failure, auto-reply or challenge: an `out_of_band` event.
    OutOfBand,
    /// A delay notification (`Action: delayed`): the message is still queued somewhere; soft.
    Delay,
    /// An ARF complaint: a `spam_complaint` event.
    Complaint,
    /// Delivered, relayed or expanded, or an ARF `not-spam` report: nothing failed.
    NoFailure,
}

/// One recipient of a report with its class and qualification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassifiedRecipient {
    pub report: RecipientReport,
    pub outcome: Outcome,
    /// `None` for complaints and non-failures (they are not bounces).
    pub class: Option<BounceClass>,
    /// The rule that decided: the classifier's rule name, or `report:auto-reply`,
    /// `report:challenge-response`, `report:arf:<feedback-type>`, `report:action:<action>`.
    pub rule: String,
    /// The campaign qualification (SPEC §3.4); `None` when nothing failed.
    pub qualification: Option<Qualification>,
}

/// [`classify_report_with`] using the SPEC §3.4 default qualification table.
pub fn classify_report(
    report: &ParsedReport,
    classifier: &dyn Classifier,
) -> Vec<ClassifiedRecipient> {
    classify_report_with(report, classifier, &Qualifier::default())
}

/// For each recipient: the class (from its status and diagnostic via `classifier`; auto-replies
/// → 60, challenge-response → 100; ARF → no class, the complaint path) and the qualification
/// through `qualifier` (operator overrides). Unknown reports yield nothing.
pub fn classify_report_with(
    report: &ParsedReport,
    classifier: &dyn Classifier,
    qualifier: &Qualifier,
) -> Vec<ClassifiedRecipient> {
    report
        .recipients
        .iter()
        .filter_map(|r| {
            let (outcome, class, rule) = match report.kind {
                ReportKind::Unknown => return None,
                ReportKind::Arf => arf_outcome(report),
                ReportKind::AutoReply => fixed(BounceClass::AUTO_REPLY, "report:auto-reply"),
                ReportKind::ChallengeResponse => {
                    fixed(BounceClass::CHALLENGE_RESPONSE, "report:challenge-response")
                }
                ReportKind::Dsn | ReportKind::NonStandardBounce { .. } => bounce(r, classifier),
            };
            let qualification = qualify(r, outcome, class, qualifier);
            Some(ClassifiedRecipient {
                report: r.clone(),
                outcome,
                class,
                rule,
                qualification,
            })
        })
        .collect()
}

fn fixed(class: BounceClass, rule: &str) -> (Outcome, Option<BounceClass>, String) {
    (Outcome::OutOfBand, Some(class), rule.to_string())
}

fn arf_outcome(report: &ParsedReport) -> (Outcome, Option<BounceClass>, String) {
    let ft = report
        .arf
        .as_ref()
        .and_then(|a| a.feedback_type.clone())
        .unwrap_or_else(|| "abuse".to_string());
    let outcome = if ft == "not-spam" {
        Outcome::NoFailure
    } else {
        Outcome::Complaint
    };
    (outcome, None, format!("report:arf:{ft}"))
}

fn bounce(
    r: &RecipientReport,
    classifier: &dyn Classifier,
) -> (Outcome, Option<BounceClass>, String) {
    let action = r.action.as_deref().unwrap_or("failed");
    if matches!(action, "delivered" | "relayed" | "expanded") {
        return (Outcome::NoFailure, None, format!("report:action:{action}"));
    }
    let delayed = action == "delayed";
    let text = r.diagnostic.as_deref().unwrap_or("");
    let codes = find_codes(text);
    let status = r.status.as_deref().and_then(parse_enhanced);
    let host = r
        .remote_mta
        .as_deref()
        .map(|m| m.rsplit(';').next().unwrap_or(m).trim())
        .or_else(|| {
            r.address
                .as_deref()
                .and_then(|a| a.rsplit_once('@'))
                .map(|(_, d)| d)
        });
    let input = FailureInput {
        code: codes.code.unwrap_or(0),
        enhanced: codes.enhanced.or(status),
        text,
        host,
    };
    let mut c = classifier.classify(&input);
    // The reply alone decided nothing better than its code (or a catch-all): the explanation
    // around the recipient may say why ("over quota" in a text with no reply, a reply cut short).
    if let Some(context) = r.context.as_deref().filter(|_| weak(&c)) {
        let found = find_codes(context);
        let from_context = classifier.classify(&FailureInput {
            text: context,
            code: if input.code == 0 {
                found.code.unwrap_or(0)
            } else {
                input.code
            },
            enhanced: input.enhanced.or(found.enhanced),
            host,
        });
        let better = !weak(&from_context)
            || (c.class == BounceClass::UNDETERMINED
                && from_context.class != BounceClass::UNDETERMINED);
        if better {
            c = Classification {
                rule: format!("{}+explanation", from_context.rule),
                ..from_context
            };
        }
    }
    // A delay notification is never final, whatever its wording suggests.
    let (class, rule) = if delayed && c.class.category() == Category::Hard {
        (BounceClass::SOFT, format!("{}+delayed", c.rule))
    } else {
        (c.class, c.rule)
    };
    let outcome = if delayed {
        Outcome::Delay
    } else {
        Outcome::OutOfBand
    };
    (outcome, Some(class), rule)
}

/// Decisions that did not read a reason (see [`Classification::specific`]), or decided nothing.
fn weak(c: &Classification) -> bool {
    c.class == BounceClass::UNDETERMINED || !c.specific
}

fn qualify(
    r: &RecipientReport,
    outcome: Outcome,
    class: Option<BounceClass>,
    qualifier: &Qualifier,
) -> Option<Qualification> {
    match outcome {
        Outcome::NoFailure => None,
        Outcome::Complaint => Some(qualifier.qualify(
            BounceClass::UNDETERMINED,
            QualifyContext {
                spam_complaint: true,
                ..Default::default()
            },
        )),
        Outcome::OutOfBand | Outcome::Delay => {
            let class = class?;
            // 5.1.2 (bad destination system) and 5.1.10 (null MX) in a failed report are final
            // for the domain, unless the text said otherwise (Office 365 sends 5.1.10 for an
            // unknown user: the domain is fine).
            let final_domain = outcome == Outcome::OutOfBand
                && class == BounceClass::DNS_FAILURE
                && matches!(r.status.as_deref(), Some("5.1.2" | "5.1.10"));
            Some(qualifier.qualify(
                class,
                QualifyContext {
                    domain_permanently_invalid: final_domain,
                    ..Default::default()
                },
            ))
        }
    }
}
