//! Independent verification: every signature produced here is checked by dkimpy
//! (`python3-dkim`), and tampered copies must fail, so a broken signer cannot pass.
//!
//! Without dkimpy the tests print a SKIPPED line and pass, except when `CI=true`, where a
//! missing verifier is a failure.

use std::time::{SystemTime, UNIX_EPOCH};

use cartero_dkim::testing::{dkimpy_verifies, python_with_dkimpy};
use cartero_dkim::{Algorithm, Signer, SigningKey};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(signer: &Signer, message: &[u8]) -> Vec<u8> {
    let field = signer.sign(message, now()).unwrap().expect("a key matches");
    for line in field.trim_end_matches("\r\n").split("\r\n") {
        assert!(line.len() < 78, "over-long line {line:?}");
    }
    [field.as_bytes(), message].concat()
}

const PLAIN: &str = "From: Sender <sender@example.com>\r\nTo: rcpt@example.net\r\n\
Subject: Plain test\r\nDate: Mon, 06 Jan 2025 10:00:00 +0000\r\n\
Message-ID: <plain.1@example.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\r\nHello world\r\nSecond  line\twith  tabs\r\n";

const TRAILING_WSP_LINES: &str =
    "From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: ws\r\n\r\nHello\r\n \r\n\t\r\n";

const EMPTY_BODY: &str =
    "From: sender@example.com\r\nTo: rcpt@example.net\r\nSubject: empty\r\n\r\n";

const NO_SEPARATOR: &str = "From: sender@example.com\r\nSubject: only headers\r\n";

const UTF8_HEADERS: &str = "From: Jörg Müller <jörg@example.com>\r\nTo: Zoë <zoë@example.net>\r\n\
Subject: Grüße aus Köln ✉ — ünïcödé\r\nMIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße\r\n";

const LONG_FOLDED: &str = "From: \"A very long display name, with a comma\"\r\n <sender@example.com>\r\n\
To: one@example.net, two@example.net, three@example.net,\r\n\tfour@example.net, five@example.net\r\n\
Subject: =?utf-8?q?A_long_subject_that_has_been_folded?=\r\n =?utf-8?q?_over_several_lines?=\r\n\t  \
and   more   words\r\n\
References: <a1@example.com> <a2@example.com> <a3@example.com> <a4@example.com>\r\n <a5@example.com> <a6@example.com>\r\n\
List-Unsubscribe: <mailto:unsub@example.com?subject=unsubscribe>,\r\n <https://example.com/unsubscribe/very/long/token/0123456789abcdef>\r\n\
List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\
Received: from somewhere by somewhere-else; Mon, 06 Jan 2025 10:00:00 +0000\r\n\r\nBody\r\n";

const MESSAGES: &[(&str, &str)] = &[
    ("plain", PLAIN),
    ("trailing whitespace-only lines", TRAILING_WSP_LINES),
    ("empty body", EMPTY_BODY),
    ("no header/body separator", NO_SEPARATOR),
    ("8-bit UTF-8 headers", UTF8_HEADERS),
    ("long folded headers", LONG_FOLDED),
];

/// Copies of a signed message that dkimpy must reject.
fn tampered_copies(signed: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let text = String::from_utf8(signed.to_vec()).unwrap();
    let sep = text.find("\r\n\r\n").map_or(text.len(), |p| p + 2);
    let (head, body) = text.split_at(sep);
    let body = if body.is_empty() { "\r\n" } else { body };
    vec![
        ("body changed", format!("{head}{body}Injected line\r\n")),
        (
            "extra From prepended",
            format!("From: attacker@evil.example\r\n{head}{body}"),
        ),
        (
            "extra From appended",
            format!("{head}From: attacker@evil.example\r\n{body}"),
        ),
        (
            "subject changed",
            text.replacen("Subject: ", "Subject: Re: ", 1),
        ),
    ]
    .into_iter()
    .map(|(what, t)| (what, t.into_bytes()))
    .collect()
}

fn check_algorithm(algorithm: Algorithm) {
    let Some(python) = python_with_dkimpy() else {
        return;
    };
    let (key, pem) = SigningKey::generate(algorithm, "example.com", "sel1").unwrap();
    let loaded = SigningKey::from_pem("example.com", "sel1", &pem).unwrap();
    let signer = Signer::new(vec![loaded]).with_expiry(3600);
    for (name, message) in MESSAGES {
        let signed = sign(&signer, message.as_bytes());
        assert!(
            dkimpy_verifies(python, &signed, &[&key]),
            "{algorithm:?}: {name} did not verify"
        );
        for (what, bad) in tampered_copies(&signed) {
            assert!(
                !dkimpy_verifies(python, &bad, &[&key]),
                "{algorithm:?}: {name} still verified after: {what}"
            );
        }
    }
}

#[test]
fn rsa_sha256_verifies_with_dkimpy() {
    check_algorithm(Algorithm::RsaSha256);
}

#[test]
fn ed25519_sha256_verifies_with_dkimpy() {
    check_algorithm(Algorithm::Ed25519Sha256);
}

#[test]
fn relaxed_changes_in_transit_still_verify() {
    let Some(python) = python_with_dkimpy() else {
        return;
    };
    let (key, _) = SigningKey::generate(Algorithm::Ed25519Sha256, "example.com", "s").unwrap();
    let signer = Signer::new(vec![key]);
    let signed = String::from_utf8(sign(&signer, PLAIN.as_bytes())).unwrap();
    let key = &signer.keys()[0];
    let refolded = signed.replacen("Subject: Plain test", "subject:   Plain\r\n\t test  ", 1);
    assert!(dkimpy_verifies(python, refolded.as_bytes(), &[key]));
    let padded = format!("{signed}\r\n \r\n\r\n");
    assert!(dkimpy_verifies(python, padded.as_bytes(), &[key]));
    // The wrong published key must make verification fail.
    let (other, _) = SigningKey::generate(Algorithm::Ed25519Sha256, "example.com", "s").unwrap();
    assert!(!dkimpy_verifies(python, signed.as_bytes(), &[&other]));
}

#[test]
fn dual_signing_subdomain_and_bare_lf_verify() {
    let Some(python) = python_with_dkimpy() else {
        return;
    };
    let (rsa, _) = SigningKey::generate(Algorithm::RsaSha256, "example.com", "rsa").unwrap();
    let (ed, _) = SigningKey::generate(Algorithm::Ed25519Sha256, "example.com", "ed").unwrap();
    let signer = Signer::new(vec![rsa, ed]);
    let keys: Vec<&SigningKey> = signer.keys().iter().collect();

    let from_sub = PLAIN.replace("sender@example.com", "news@News.Example.com");
    let signed = sign(&signer, from_sub.as_bytes());
    let text = String::from_utf8(signed.clone()).unwrap();
    assert_eq!(text.matches("DKIM-Signature:").count(), 2);
    assert!(dkimpy_verifies(python, &signed, &keys));
    // Each signature verifies alone too (dkimpy checks them one by one above, but a
    // message with only the Ed25519 field proves it is not leaning on the RSA one).
    let second = text
        .find("DKIM-Signature:")
        .and_then(|p| text[p + 1..].find("DKIM-Signature:").map(|q| q + p + 1));
    let ed_only = &text[second.unwrap()..];
    assert!(dkimpy_verifies(python, ed_only.as_bytes(), &keys));

    // A message submitted with bare LF is signed as its CRLF form, which is what SMTP sends.
    let lf = TRAILING_WSP_LINES.replace("\r\n", "\n");
    let field = signer.sign(lf.as_bytes(), now()).unwrap().unwrap();
    let transmitted = format!("{field}{TRAILING_WSP_LINES}");
    assert!(dkimpy_verifies(python, transmitted.as_bytes(), &keys));
}
