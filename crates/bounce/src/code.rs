//! The built-in classifier: enhanced status code first (it is the most precise signal the reply
//! carries), then a handful of unambiguous text cues, then the bare reply code.

use crate::{BounceClass as C, Classification, Classifier, FailureInput};
use regex::RegexSet;

/// Text cues checked in order; the first match wins. Kept deliberately short: provider-specific
/// wording belongs in rule files, not here.
const TEXT_RULES: &[(&str, C, &str)] = &[
    (
        r"(?i)\b(spam|blacklist|blocklist|listed at|spamhaus|reputation)\b",
        C::SPAM_BLOCK,
        "text:spam",
    ),
    (
        r"(?i)relay(ing)? (access )?(denied|not permitted|not allowed)",
        C::RELAYING_DENIED,
        "text:relay",
    ),
    (
        r"(?i)(mailbox|inbox|quota|storage)\b.*\b(full|exceeded)|over ?quota|insufficient (system )?storage",
        C::MAILBOX_FULL,
        "text:mailbox-full",
    ),
    (
        r"(?i)grey ?list|gray ?list|try again later",
        C::TRANSIENT,
        "text:greylist",
    ),
    (
        r"(?i)(user|recipient|mailbox|address)\b.{0,30}\b(unknown|not found|does not exist|doesn't exist|no such|invalid|disabled|unavailable)|no such (user|mailbox|recipient)",
        C::INVALID_RECIPIENT,
        "text:user-unknown",
    ),
    (
        r"(?i)(message|mail) (size|too (large|big))|too large",
        C::TOO_LARGE,
        "text:too-large",
    ),
];

/// Classifies by enhanced code, text cues and reply code. Build once: it compiles a regex set.
pub struct CodeClassifier {
    text: RegexSet,
}

impl Default for CodeClassifier {
    fn default() -> Self {
        Self::new()
    }
}

impl CodeClassifier {
    pub fn new() -> Self {
        // The patterns are constants checked by the tests, so a failure here is a programming error.
        let text =
            RegexSet::new(TEXT_RULES.iter().map(|r| r.0)).unwrap_or_else(|_| RegexSet::empty());
        Self { text }
    }

    fn by_enhanced(permanent: bool, e: (u8, u16, u16)) -> Option<(C, &'static str)> {
        let soft_or = |hard: C| if permanent { hard } else { C::SOFT };
        let c = match (e.1, e.2) {
            (1, 1) | (1, 3) | (1, 6) | (2, 1) => soft_or(C::INVALID_RECIPIENT),
            (1, 0) if permanent => C::INVALID_RECIPIENT,
            (1, 2) | (1, 10) | (4, 4) | (4, 3) => C::DNS_FAILURE,
            (2, 2) | (3, 1) => C::MAILBOX_FULL,
            (2, 3) | (3, 4) => C::TOO_LARGE,
            (4, 1) | (4, 2) | (4, 7) => C::TIMEOUT,
            (7, 1) if permanent => C::MAIL_BLOCK,
            // X.6.x are media and conversion errors (RFC 3463 §3.7), not spam.
            (6, _) if permanent => C::GENERIC,
            (7, _) if permanent => C::MAIL_BLOCK,
            (7, _) => C::TRANSIENT,
            _ => return None,
        };
        Some((c, "enhanced-code"))
    }

    fn by_code(code: u16) -> (C, &'static str) {
        match code {
            421 | 450 | 451 => (C::TRANSIENT, "code:4xx-transient"),
            452 => (C::MAILBOX_FULL, "code:452"),
            400..=499 => (C::SOFT, "code:4xx"),
            550 | 551 | 553 => (C::INVALID_RECIPIENT, "code:55x-mailbox"),
            552 => (C::TOO_LARGE, "code:552"),
            554 => (C::MAIL_BLOCK, "code:554"),
            500..=599 => (C::GENERIC, "code:5xx"),
            _ => (C::UNDETERMINED, "code:none"),
        }
    }
}

impl Classifier for CodeClassifier {
    fn classify(&self, input: &FailureInput<'_>) -> Classification {
        let permanent = (500..600).contains(&input.code);
        let enhanced = input
            .enhanced
            .filter(|e| e.0 as u16 == input.code / 100 || input.code == 0);
        let enhanced_hit = enhanced.and_then(|e| Self::by_enhanced(permanent || e.0 == 5, e));
        // A generic 5.7.x/4.7.x block is refined by the text (spam vs relay); precise codes are not.
        let generic = matches!(enhanced_hit, None | Some((C::MAIL_BLOCK | C::TRANSIENT, _)));
        if generic
            && let Some(i) = self.text.matches(input.text).iter().next()
            && let Some((_, class, rule)) = TEXT_RULES.get(i)
        {
            // Text never turns a transient reply into a hard one: 4xx stays soft.
            let class = if !permanent && input.code != 0 && *class == C::INVALID_RECIPIENT {
                C::SOFT
            } else {
                *class
            };
            return Classification {
                class,
                rule: (*rule).to_string(),
                specific: true,
            };
        }
        let (class, rule) = enhanced_hit.unwrap_or_else(|| Self::by_code(input.code));
        Classification {
            class,
            rule: rule.to_string(),
            specific: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(code: u16, e: Option<(u8, u16, u16)>, text: &str) -> C {
        CodeClassifier::new()
            .classify(&FailureInput {
                code,
                enhanced: e,
                text,
                host: None,
            })
            .class
    }

    #[test]
    fn text_patterns_compile() {
        assert!(RegexSet::new(TEXT_RULES.iter().map(|r| r.0)).is_ok());
    }

    #[test]
    fn enhanced_codes_decide_first() {
        assert_eq!(
            classify(550, Some((5, 1, 1)), "whatever"),
            C::INVALID_RECIPIENT
        );
        assert_eq!(
            classify(452, Some((4, 2, 2)), "mailbox full"),
            C::MAILBOX_FULL
        );
        assert_eq!(classify(552, Some((5, 3, 4)), "x"), C::TOO_LARGE);
        assert_eq!(classify(550, Some((5, 1, 10)), "null mx"), C::DNS_FAILURE);
        assert_eq!(classify(450, Some((4, 1, 1)), "try later"), C::SOFT);
    }

    #[test]
    fn generic_block_codes_are_refined_by_text() {
        assert_eq!(
            classify(550, Some((5, 7, 1)), "Message rejected as spam"),
            C::SPAM_BLOCK
        );
        assert_eq!(
            classify(554, Some((5, 7, 1)), "Relay access denied"),
            C::RELAYING_DENIED
        );
        assert_eq!(
            classify(550, Some((5, 7, 1)), "Delivery not authorized"),
            C::MAIL_BLOCK
        );
    }

    #[test]
    fn bare_codes_and_text() {
        assert_eq!(
            classify(550, None, "No such user here"),
            C::INVALID_RECIPIENT
        );
        assert_eq!(
            classify(451, None, "Greylisted, try again later"),
            C::TRANSIENT
        );
        assert_eq!(classify(421, None, "closing"), C::TRANSIENT);
        assert_eq!(classify(500, None, "huh"), C::GENERIC);
        assert_eq!(classify(0, None, "connection timed out"), C::UNDETERMINED);
    }

    #[test]
    fn transient_reply_never_becomes_hard_from_text() {
        assert_eq!(classify(450, None, "user unknown, try later"), C::SOFT);
    }

    #[test]
    fn mismatched_enhanced_class_is_ignored() {
        // A 250 with 5.x.x is nonsense; a 450 claiming 5.1.1 must not be classed as a hard bounce.
        assert_eq!(classify(450, Some((5, 1, 1)), "odd"), C::TRANSIENT);
    }

    #[test]
    fn class_table_is_complete() {
        assert_eq!(C::all().count(), 20);
        assert_eq!(C(22).name(), Some("Mailbox Full"));
        assert_eq!(C(30).category(), crate::Category::Hard);
        assert!(!C(11).is_known());
    }
}
