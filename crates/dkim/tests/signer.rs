//! Behaviour of `Signer` that does not need an external verifier: key choice, the tags
//! written, header list, folding and robustness on garbage.

use cartero_dkim::{Algorithm, DkimError, Signer, SigningKey};
use proptest::prelude::*;

const ED25519: &str = include_str!("data/ed25519_pkcs8.pem");
const RSA2048: &str = include_str!("data/rsa2048_pkcs1.pem");
const NOW: u64 = 1_736_157_600;

fn key(domain: &str, selector: &str) -> SigningKey {
    SigningKey::from_pem(domain, selector, ED25519).unwrap()
}

/// The field unfolded, as `tag -> value` pairs with whitespace removed.
fn tags(field: &str) -> Vec<(String, String)> {
    let unfolded = field.replace("\r\n", "");
    let value = unfolded.strip_prefix("DKIM-Signature:").unwrap();
    value
        .split(';')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            let (k, v) = t.split_once('=').unwrap();
            let v: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            (k.trim().to_owned(), v)
        })
        .collect()
}

fn tag(field: &str, name: &str) -> Option<String> {
    tags(field)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[test]
fn tags_and_header_list() {
    let signer = Signer::new(vec![key("example.com", "sel")]).with_expiry(600);
    let msg = b"Received: by relay\r\nFrom: a@example.com\r\nTo: x@example.net\r\nCc: y@example.net\r\n\
To: z@example.net\r\nSubject: s\r\nX-Mailer: m\r\nList-Unsubscribe: <mailto:u@example.com>\r\n\r\nbody\r\n";
    let field = signer.sign(msg, NOW).unwrap().unwrap();
    let names: Vec<String> = tags(&field).into_iter().map(|(k, _)| k).collect();
    assert_eq!(names, ["v", "a", "c", "d", "s", "t", "x", "h", "bh", "b"]);
    assert_eq!(tag(&field, "v").unwrap(), "1");
    assert_eq!(tag(&field, "a").unwrap(), "ed25519-sha256");
    assert_eq!(tag(&field, "c").unwrap(), "relaxed/relaxed");
    assert_eq!(tag(&field, "d").unwrap(), "example.com");
    assert_eq!(tag(&field, "s").unwrap(), "sel");
    assert_eq!(tag(&field, "t").unwrap(), NOW.to_string());
    assert_eq!(tag(&field, "x").unwrap(), (NOW + 600).to_string());
    assert_eq!(
        tag(&field, "h").unwrap(),
        "from:to:to:cc:subject:list-unsubscribe:from"
    );
    // sha256 of relaxed "body\r\n" (`printf 'body\r\n' | openssl dgst -sha256 -binary | base64`).
    assert_eq!(
        tag(&field, "bh").unwrap(),
        "Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M="
    );
    assert_eq!(
        tag(&field, "b").unwrap().len(),
        88,
        "Ed25519 signature is 64 bytes"
    );
    assert!(field.ends_with("\r\n") && !field.ends_with("\r\n\r\n"));
    for line in field.trim_end_matches("\r\n").split("\r\n") {
        assert!(line.len() < 78, "{line:?}");
    }
}

#[test]
fn empty_body_hash_and_no_expiry() {
    let signer = Signer::new(vec![key("example.com", "sel")]);
    let field = signer
        .sign(b"From: a@example.com\r\n\r\n", NOW)
        .unwrap()
        .unwrap();
    // sha256 of the empty string.
    assert_eq!(
        tag(&field, "bh").unwrap(),
        "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
    );
    assert_eq!(tag(&field, "x"), None);
    assert_eq!(tag(&field, "h").unwrap(), "from:from");
}

#[test]
fn long_header_list_and_rsa_signature_fold() {
    let (rsa, _) = SigningKey::generate(
        Algorithm::RsaSha256,
        "example.com",
        "a-rather-long-selector-name",
    )
    .unwrap();
    let signer = Signer::new(vec![rsa]);
    let mut msg = String::from("From: a@example.com\r\n");
    for i in 0..12 {
        msg.push_str(&format!("To: r{i}@example.net\r\nReferences: <{i}@x>\r\n"));
    }
    msg.push_str("\r\nHi\r\n");
    let field = signer.sign(msg.as_bytes(), NOW).unwrap().unwrap();
    let lines: Vec<&str> = field.trim_end_matches("\r\n").split("\r\n").collect();
    assert!(lines.len() > 8, "{field}");
    assert!(lines.iter().all(|l| l.len() < 78));
    assert!(lines[1..].iter().all(|l| l.starts_with(' ')));
    assert_eq!(
        tag(&field, "b").unwrap().len(),
        344,
        "RSA-2048 signature is 256 bytes"
    );
    assert_eq!(tag(&field, "h").unwrap().matches("to").count(), 12);
    assert_eq!(tags(&field).last().unwrap().0, "b");
}

#[test]
fn key_choice_by_from_domain() {
    let signer = Signer::new(vec![
        key("example.com", "parent"),
        key("news.example.com", "child"),
        SigningKey::from_pem("example.com", "rsa", RSA2048).unwrap(),
    ]);
    let sign = |from: &str| {
        signer
            .sign(format!("From: {from}\r\n\r\nx").as_bytes(), NOW)
            .unwrap()
    };
    // Exact match: both example.com keys sign (dual signing).
    let both = sign("a@EXAMPLE.com").unwrap();
    assert_eq!(both.matches("DKIM-Signature:").count(), 2);
    assert!(both.contains("s=parent;") && both.contains("s=rsa;"));
    // The most specific domain wins.
    let child = sign("<a@news.example.com>").unwrap();
    assert_eq!(child.matches("DKIM-Signature:").count(), 1);
    assert!(child.contains("d=news.example.com;") && child.contains("s=child;"));
    // A deeper subdomain is signed by its nearest parent key.
    let deep = sign("a@x.news.example.com").unwrap();
    assert!(deep.contains("d=news.example.com;"));
    // Suffix without a label boundary, and foreign domains, are not signed.
    assert_eq!(sign("a@badexample.com"), None);
    assert_eq!(sign("a@example.org"), None);
    assert_eq!(sign("undisclosed-recipients:;"), None);
}

#[test]
fn unsigned_and_rejected_messages() {
    let signer = Signer::new(vec![key("example.com", "s")]);
    assert_eq!(
        signer.sign(b"To: a@example.com\r\n\r\nx", NOW).unwrap(),
        None
    );
    assert_eq!(signer.sign(b"", NOW).unwrap(), None);
    let err = signer
        .sign(b"From: a@example.com\r\nFrom: b@example.com\r\n\r\n", NOW)
        .unwrap_err();
    assert!(matches!(err, DkimError::InvalidMessage(_)), "{err}");
    assert_eq!(
        Signer::new(vec![])
            .sign(b"From: a@example.com\r\n\r\n", NOW)
            .unwrap(),
        None
    );
}

#[test]
fn bare_lf_and_crlf_give_the_same_signature() {
    let signer = Signer::new(vec![key("example.com", "s")]);
    let crlf = b"From: a@example.com\r\nSubject: x\r\n\r\nHello\r\n \r\n";
    let lf = b"From: a@example.com\nSubject: x\n\nHello\n \n";
    // Ed25519 signatures are deterministic, so equal inputs give equal fields.
    assert_eq!(
        signer.sign(crlf, NOW).unwrap(),
        signer.sign(lf, NOW).unwrap()
    );
}

#[test]
fn body_canonicalization_drives_the_body_hash() {
    let signer = Signer::new(vec![key("example.com", "s")]);
    let bh = |body: &str| {
        let msg = format!("From: a@example.com\r\n\r\n{body}");
        tag(&signer.sign(msg.as_bytes(), NOW).unwrap().unwrap(), "bh").unwrap()
    };
    assert_eq!(bh("Hello\r\n \r\n\t\r\n"), bh("Hello\r\n"));
    assert_eq!(bh("Hello  \t world \r\n"), bh("Hello world\r\n"));
    assert_ne!(bh("Hello\r\n"), bh("Hello\r\n.\r\n"));
    assert_ne!(bh("Hello world\r\n"), bh("Helloworld\r\n"));
}

proptest! {
    #[test]
    fn sign_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400), pick in 0usize..4) {
        let signer = Signer::new(vec![key("example.com", "s")]);
        let prefixes: [&[u8]; 4] = [b"", b"From: a@example.com\r\n", b"From: <a@example.com\n", b"From:\r\n "];
        let msg = [prefixes[pick], &raw].concat();
        let _ = signer.sign(&msg, NOW);
    }
}
