use super::*;

#[test]
fn mailbox_syntax_follows_rfc_5321() {
    for ok in [
        "a@b.test",
        "a.b+c@x",
        "\"odd\"@b.test",
        r#""a>b@c"@d.test"#,
        "\"a b\"@d.test",
        "\"a\\\"b\"@d.test",
        "a@[192.0.2.1]",
        "a@[IPv6:2001:db8::1]",
        "jörg@bücher.example",
    ] {
        assert_eq!(check_mailbox(ok), Ok(()), "{ok}");
    }
    for (bad, why) in [
        ("no-at", AddressError::MissingAt),
        ("@b.test", AddressError::EmptyLocalPart),
        ("a@", AddressError::EmptyDomain),
        ("a b@c.test", AddressError::BadLocalPart),
        ("a..b@c.test", AddressError::BadLocalPart),
        (".a@c.test", AddressError::BadLocalPart),
        ("\"open@c.test", AddressError::BadLocalPart),
        ("\"a\tb\"@c.test", AddressError::BadLocalPart),
        ("\"a\\\"@c.test", AddressError::BadLocalPart),
        ("a@-b.test", AddressError::BadDomain),
        ("a@b..test", AddressError::BadDomain),
        ("a@b.test.", AddressError::BadDomain),
        ("a@b_c.test", AddressError::BadDomain),
        ("a@[]", AddressError::BadDomain),
        ("a@[1.2.3.4", AddressError::BadDomain),
        ("a@c.test\r\nRCPT TO:<x@y>", AddressError::BadLocalPart),
        ("a@c.test\r\n", AddressError::BadDomain),
        ("a>@c.test", AddressError::BadLocalPart),
    ] {
        assert_eq!(check_mailbox(bad), Err(why), "{bad:?}");
    }
}

/// The three validators allowed 320 or 512 octets and no per-part limit; RFC 5321 §4.5.3.1
/// allows 64 for the local part, 255 for the domain and 256 for the path with its brackets.
#[test]
fn one_limit_rfc_5321_local_64_domain_255_path_256() {
    let local64 = "l".repeat(64);
    assert_eq!(check_mailbox(&format!("{local64}@x.test")), Ok(()));
    assert_eq!(
        check_mailbox(&format!("{local64}l@x.test")),
        Err(AddressError::LocalPartTooLong)
    );
    let fits = format!("a@{}.test", "d".repeat(MAX_MAILBOX - 7));
    assert_eq!(fits.len(), MAX_MAILBOX);
    assert_eq!(check_mailbox(&fits), Ok(()));
    let over = format!("a@{}.test", "d".repeat(MAX_MAILBOX - 6));
    assert_eq!(check_mailbox(&over), Err(AddressError::TooLong));
    // What the old 320-octet rule let through.
    let old = format!("{local64}@{}.test", "d".repeat(250));
    assert_eq!(old.len(), 320);
    assert!(!is_mailbox(&old));
    assert_eq!(
        Domain::parse(&"d".repeat(256)),
        Err(AddressError::DomainTooLong)
    );
}

#[test]
fn domains_normalise_like_routing() {
    let d = Domain::parse("Example.COM.").unwrap();
    assert_eq!(d.as_str(), "example.com");
    assert_eq!(d, Domain::parse("example.com").unwrap());
    assert_eq!(Domain::parse("."), Err(AddressError::EmptyDomain));
    assert_eq!(Domain::parse("a..b"), Err(AddressError::BadDomain));
    assert_eq!(
        Domain::parse("[192.0.2.1]").unwrap().to_string(),
        "[192.0.2.1]"
    );
}

#[test]
fn addresses_keep_the_local_part_and_normalise_the_domain() {
    let a = Address::parse("Bob.Smith@Example.ORG").unwrap();
    assert_eq!(a.local_part(), "Bob.Smith");
    assert_eq!(a.domain().as_str(), "example.org");
    assert_eq!(a.to_string(), "Bob.Smith@example.org");
    let q = Address::parse(r#""a@b"@C.test"#).unwrap();
    assert_eq!(q.local_part(), r#""a@b""#);
    assert_eq!(q.domain().as_str(), "c.test");
    assert_eq!(Address::parse("x@y.test."), Err(AddressError::BadDomain));
}
