//! Classification never panics, whatever the reply code, enhanced code, text or host.

use cartero_bounce::rules::parse_reply;
use cartero_bounce::{Classifier, FailureInput, RuleClassifier};
use proptest::prelude::*;
use std::sync::OnceLock;

fn classifier() -> &'static RuleClassifier {
    static C: OnceLock<RuleClassifier> = OnceLock::new();
    C.get_or_init(|| RuleClassifier::builtin().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn classify_never_panics_on_arbitrary_input(
        code in any::<u16>(),
        enhanced in proptest::option::of((any::<u8>(), any::<u16>(), any::<u16>())),
        text in any::<String>(),
        host in proptest::option::of(any::<String>()),
    ) {
        let c = classifier().classify(&FailureInput { code, enhanced, text: &text, host: host.as_deref() });
        prop_assert!(c.class.is_known());
        prop_assert!(!c.rule.is_empty());
    }

    #[test]
    fn reply_like_text_parses_and_classifies(
        code in 0u16..1000,
        e in proptest::option::of((0u8..10, 0u16..1200, 0u16..1200)),
        text in "[ -~]{0,200}",
        host in "[a-zA-Z0-9.@-]{0,60}",
    ) {
        let line = match e {
            Some((a, b, c)) => format!("{code:03} {a}.{b}.{c} {text}"),
            None => format!("{code:03}-{text}\n{code:03} {text}"),
        };
        let parsed = parse_reply(&line);
        let c = classifier().classify(&parsed.input(Some(&host)));
        prop_assert!(c.class.is_known());
    }
}
