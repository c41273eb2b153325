use super::*;
use crate::BounceClass as C;

fn classify(c: &RuleClassifier, reply: &str, host: Option<&str>) -> Classification {
    let p = parse_reply(reply);
    c.classify(&p.input(host))
}

fn builtin() -> RuleClassifier {
    RuleClassifier::builtin().unwrap()
}

#[test]
fn builtin_rules_load_and_default_classifier_uses_them() {
    let c = builtin();
    assert!(c.rule_count() > 100, "{}", c.rule_count());
    for p in [
        "gmail",
        "yahoo",
        "microsoft",
        "icloud",
        "comcast",
        "gmx",
        "orange",
        "mailru",
    ] {
        assert!(c.providers().any(|n| n == p), "{p}");
    }
    for p in [
        "qq",
        "netease",
        "zoho",
        "proofpoint",
        "mimecast",
        "barracuda",
    ] {
        assert!(c.providers().any(|n| n == p), "{p}");
    }
    let d = crate::default_classifier();
    let r = d.classify(&parse_reply("550 5.1.1 <a@b.example>: User unknown").input(None));
    assert_eq!(r.class, C::INVALID_RECIPIENT);
    assert!(!r.rule.starts_with("fallback:"), "{}", r.rule);
}

#[test]
fn provider_rules_come_before_generic_ones() {
    let c = builtin();
    // "mailbox unavailable" means an unknown user at Outlook.com; elsewhere it is generic wording.
    let reply = "550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)";
    let r = classify(&c, reply, Some("hotmail-com.olc.protection.outlook.com"));
    assert_eq!(
        (r.class, r.rule.as_str()),
        (C::INVALID_RECIPIENT, "microsoft-recipient-not-found")
    );
    let r = classify(&c, reply, None);
    assert_eq!(r.rule, "generic-user-unknown");
    // A provider's rules never apply to another provider's hosts.
    let r = classify(&c, "554 DT:SPM 163 smtp10", Some("mx.example.org"));
    assert_ne!(r.rule, "netease-spam");
    let r = classify(
        &c,
        "554 DT:SPM 163 smtp10",
        Some("163mx01.mxmail.netease.com"),
    );
    assert_eq!(
        (r.class, r.rule.as_str()),
        (C::SPAM_CONTENT, "netease-spam")
    );
}

#[test]
fn hosts_match_by_suffix_on_label_boundaries() {
    let c = builtin();
    assert_eq!(c.provider_for("gmail-smtp-in.l.google.com"), Some("gmail"));
    assert_eq!(c.provider_for("ALT1.ASPMX.L.GOOGLE.COM."), Some("gmail"));
    assert_eq!(c.provider_for("someone@gmail.com"), Some("gmail"));
    assert_eq!(c.provider_for("gmail.com"), Some("gmail"));
    assert_eq!(c.provider_for("notgoogle.com"), None);
    assert_eq!(c.provider_for("mx.example.com"), None);
    assert_eq!(c.provider_for(""), None);
    assert_eq!(c.provider_for("..."), None);
    assert_eq!(c.provider_for("mx1.hc1234-56.eu.iphmx.com"), None);
    assert_eq!(
        c.provider_for("mxa-001.gslb.pphosted.com"),
        Some("proofpoint")
    );
}

#[test]
fn operator_rules_override_and_extend() {
    let extra = r#"
[[provider]]
name = "acme"
domains = ["acme.example"]

[[rule]]
name = "acme-vacation-is-fine"
provider = "acme"
text = "(?i)on the beach"
class = 60

[[rule]]
name = "gmail-account-does-not-exist"
provider = "gmail"
code = "5xx"
text = "(?i)does not exist"
class = 40

[[rule]]
name = "strict-greylisting"
code = "4xx"
text = "(?i)greylisted"
class = 20
"#;
    let c = RuleClassifier::with_extra(&[("ops.toml", extra)]).unwrap();
    let r = classify(&c, "550 5.7.1 on the beach", Some("mx.acme.example"));
    assert_eq!(
        (r.class, r.rule.as_str()),
        (C::AUTO_REPLY, "acme-vacation-is-fine")
    );
    // Same name as a built-in rule: replaces it, so the built-in's count drops by one.
    assert_eq!(c.rule_count(), builtin().rule_count() + 2);
    let r = classify(
        &c,
        "550-5.1.1 The email account that you tried to reach does not exist.",
        Some("gmail-smtp-in.l.google.com"),
    );
    assert_eq!(
        (r.class, r.rule.as_str()),
        (C::GENERIC, "gmail-account-does-not-exist")
    );
    // An operator generic rule beats a built-in generic rule.
    let r = classify(&c, "450 4.2.0 Greylisted, see http://x", None);
    assert_eq!((r.class, r.rule.as_str()), (C::SOFT, "strict-greylisting"));
}

#[test]
fn unmatched_replies_fall_back_to_the_code_classifier() {
    let c = builtin();
    let r = classify(&c, "550 zzz", None);
    assert_eq!(
        (r.class, r.rule.as_str()),
        (C::INVALID_RECIPIENT, "fallback:code:55x-mailbox")
    );
    let r = classify(&c, "599 qqq", None);
    assert_eq!(
        (r.class, r.rule.as_str()),
        (C::GENERIC, "fallback:code:5xx")
    );
    let r = classify(&c, "", None);
    assert_eq!(r.rule, "fallback:code:none");
}

#[test]
fn transient_replies_never_become_hard_through_wording() {
    let c = builtin();
    let r = classify(
        &c,
        "450 4.2.0 <a@b>: Recipient address rejected: User unknown",
        None,
    );
    assert_ne!(r.class.category(), crate::Category::Hard, "{r:?}");
    let r = classify(
        &c,
        "550 5.2.0 <a@b>: Recipient address rejected: User unknown",
        None,
    );
    assert_eq!(r.class, C::INVALID_RECIPIENT);
}

fn err_of(text: &str) -> String {
    RuleClassifier::with_extra(&[("/etc/cartero/rules.toml", text)])
        .unwrap_err()
        .to_string()
}

#[test]
fn errors_name_file_rule_and_reason() {
    let e = err_of("[[rule]]\nname = \"r1\"\ntext = \"(unclosed\"\nclass = 10\n");
    assert!(
        e.contains("/etc/cartero/rules.toml") && e.contains("\"r1\"") && e.contains("bad regex"),
        "{e}"
    );
    let e = err_of("[[rule]]\nname = \"r2\"\ncode = \"5xx\"\nclass = 11\n");
    assert!(
        e.contains("\"r2\"") && e.contains("unknown bounce class 11"),
        "{e}"
    );
    let e = err_of("[[rule]]\nname = \"r3\"\nprovider = \"nope\"\ncode = \"5xx\"\nclass = 10\n");
    assert!(
        e.contains("\"r3\"") && e.contains("unknown provider \"nope\""),
        "{e}"
    );
    let e = err_of("[[rule]]\nname = \"r4\"\ncode = \"5x\"\nclass = 10\n");
    assert!(e.contains("bad reply code pattern \"5x\""), "{e}");
    let e = err_of("[[rule]]\nname = \"r5\"\nenhanced = \"5.1\"\nclass = 10\n");
    assert!(e.contains("bad enhanced code pattern"), "{e}");
    let e = err_of("[[rule]]\nname = \"r6\"\nclass = 10\n");
    assert!(e.contains("no condition"), "{e}");
    let e = err_of(
        "[[rule]]\nname = \"r7\"\ncode = \"5xx\"\nclass = 10\n[[rule]]\nname = \"r7\"\ncode = \"4xx\"\nclass = 20\n",
    );
    assert!(e.contains("\"r7\"") && e.contains("duplicate"), "{e}");
    let e = err_of("[[rule]\n");
    assert!(
        e.contains("/etc/cartero/rules.toml") && e.contains("invalid TOML"),
        "{e}"
    );
    let e = err_of("[[provider]]\nname = \"p\"\nhosts = [\"bad host\"]\n");
    assert!(
        e.contains("provider \"p\"") && e.contains("bad host"),
        "{e}"
    );
}

#[test]
fn rule_files_are_read_from_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(
        &path,
        "[[rule]]\nname = \"mine\"\ncode = \"599\"\nclass = 25\n",
    )
    .unwrap();
    let c = RuleClassifier::from_paths(&[&path]).unwrap();
    assert_eq!(classify(&c, "599 x", None).rule, "mine");
    let missing = dir.path().join("missing.toml");
    let e = RuleClassifier::from_paths(&[&missing])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("missing.toml") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn builtin_names_are_unique_and_every_file_is_loaded() {
    // Duplicates across built-in files are an error of the same kind operators get.
    let c = compile::build(&[], builtin::FILES);
    assert!(c.is_ok());
    assert_eq!(builtin::FILES.len(), 12);
}

#[test]
fn catch_all_rules_and_fallbacks_are_not_specific() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ops.toml");
    std::fs::write(
        &path,
        "[[rule]]\nname = \"ops-vague\"\ntext = '(?i)not possible'\nclass = 50\ncatch_all = true\n\n\
         [[rule]]\nname = \"ops-precise\"\ntext = '(?i)frozen account'\nclass = 10\n",
    )
    .unwrap();
    let c = RuleClassifier::from_paths(&[&path]).unwrap();
    let vague = classify(&c, "550 delivery not possible", None);
    assert_eq!((vague.rule.as_str(), vague.specific), ("ops-vague", false));
    let precise = classify(&c, "550 frozen account", None);
    assert_eq!(
        (precise.rule.as_str(), precise.specific),
        ("ops-precise", true)
    );
    let fallback = classify(&c, "550 zzz", None);
    assert!(fallback.rule.starts_with("fallback:") && !fallback.specific);
    let builtin = classify(&builtin(), "550 message refused", None);
    assert_eq!(
        (builtin.rule.as_str(), builtin.specific),
        ("generic-policy-block", false)
    );
}
