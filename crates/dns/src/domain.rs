//! Validation and normalization of mail domains, host names and address literals.
//!
//! Everything is checked before any query is sent, so garbage from a recipient address never
//! reaches the network and always fails permanently.

use std::net::IpAddr;

use hickory_proto::rr::Name;

use crate::DnsError;

/// Longest name in presentation form without the trailing dot (RFC 1035 §2.3.4: 255 octets
/// on the wire, which leaves 253 characters).
const MAX_NAME_LEN: usize = 253;
/// Longest label (RFC 1035 §2.3.4).
const MAX_LABEL_LEN: usize = 63;

/// What a routing input turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// An address literal (`[1.2.3.4]`, `[IPv6:::1]`) or a bare IP: no DNS needed.
    Literal(IpAddr),
    /// A valid host name: ASCII (A-labels), lowercase, without the trailing dot.
    Name(String),
}

/// Classifies and normalizes `input`. IDN U-labels are converted to A-labels (UTS #46, via
/// hickory's IDNA support); the result is always ASCII.
pub(crate) fn parse_target(input: &str) -> Result<Target, DnsError> {
    if let Some(ip) = parse_literal(input)? {
        return Ok(Target::Literal(ip));
    }
    normalize_name(input).map(Target::Name)
}

/// Recognizes `[IPv4]`, `[IPv6:addr]` (RFC 5321 §4.1.3) and bare IPs. `Ok(None)` means "not a
/// literal"; a bracketed text that is not an address is an error.
fn parse_literal(input: &str) -> Result<Option<IpAddr>, DnsError> {
    if let Ok(ip) = input.parse::<IpAddr>() {
        return Ok(Some(ip));
    }
    let Some(inner) = input.strip_prefix('[').and_then(|s| s.strip_suffix(']')) else {
        return Ok(None);
    };
    let v6 = inner
        .get(..5)
        .filter(|tag| tag.eq_ignore_ascii_case("IPv6:"))
        .and_then(|_| inner.get(5..));
    let parsed = match v6 {
        Some(addr) => addr.parse::<std::net::Ipv6Addr>().map(IpAddr::V6).ok(),
        None => inner.parse::<std::net::Ipv4Addr>().map(IpAddr::V4).ok(),
    };
    parsed
        .map(Some)
        .ok_or_else(|| invalid(input, "malformed address literal"))
}

/// Normalizes a DNS name: IDNA to A-labels, lowercase, no trailing dot; rejects anything that
/// is not a multi-label LDH host name.
pub(crate) fn normalize_name(input: &str) -> Result<String, DnsError> {
    let ascii = if input.is_ascii() {
        input.to_ascii_lowercase()
    } else {
        Name::from_utf8(input)
            .map_err(|e| invalid(input, &format!("not a valid internationalized name: {e}")))?
            .to_ascii()
            .to_ascii_lowercase()
    };
    let name = ascii.strip_suffix('.').unwrap_or(&ascii);
    check_name(input, name)?;
    Ok(name.to_owned())
}

fn check_name(input: &str, name: &str) -> Result<(), DnsError> {
    if name.is_empty() {
        return Err(invalid(input, "empty name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(invalid(input, "name longer than 253 characters"));
    }
    let mut labels = 0usize;
    let mut last = "";
    for label in name.split('.') {
        check_label(input, label)?;
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err(invalid(input, "single-label name"));
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(input, "numeric top-level label"));
    }
    Ok(())
}

fn check_label(input: &str, label: &str) -> Result<(), DnsError> {
    if label.is_empty() {
        return Err(invalid(input, "empty label"));
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(invalid(input, "label longer than 63 characters"));
    }
    if !label
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(invalid(
            input,
            "label with characters other than letters, digits and '-'",
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(invalid(input, "label starts or ends with '-'"));
    }
    Ok(())
}

fn invalid(input: &str, reason: &str) -> DnsError {
    DnsError::InvalidDomain {
        domain: input.to_owned(),
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(s: &str) -> Target {
        Target::Name(s.to_owned())
    }

    #[test]
    fn normalizes_names() {
        assert_eq!(parse_target("Example.COM").unwrap(), name("example.com"));
        assert_eq!(parse_target("example.com.").unwrap(), name("example.com"));
        assert_eq!(
            parse_target("a-b.c0.example").unwrap(),
            name("a-b.c0.example")
        );
        assert_eq!(
            parse_target("bücher.example").unwrap(),
            name("xn--bcher-kva.example")
        );
    }

    #[test]
    fn recognizes_literals() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_target("[192.0.2.1]").unwrap(), Target::Literal(v4));
        assert_eq!(parse_target("192.0.2.1").unwrap(), Target::Literal(v4));
        assert_eq!(
            parse_target("[IPv6:2001:db8::1]").unwrap(),
            Target::Literal(v6)
        );
        assert_eq!(
            parse_target("[ipv6:2001:db8::1]").unwrap(),
            Target::Literal(v6)
        );
        assert_eq!(parse_target("2001:db8::1").unwrap(), Target::Literal(v6));
        for bad in [
            "[2001:db8::1]",
            "[IPv6:192.0.2.1.]",
            "[example.com]",
            "[]",
            "[IPv6:",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rejects_odd_names() {
        let long_label = format!("{}.example", "a".repeat(64));
        let long_name = format!("{}example", "abcdefghi.".repeat(25));
        for bad in [
            "",
            ".",
            "..",
            "example..com",
            ".example.com",
            "localhost",
            "-a.example",
            "a-.example",
            "a_b.example",
            "a b.example",
            "a@b.example",
            "1.2.3.999",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            let err = parse_target(bad).unwrap_err();
            assert!(
                matches!(err, DnsError::InvalidDomain { .. }),
                "{bad}: {err}"
            );
            assert!(err.is_permanent());
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_output_is_clean(input in "\\PC{0,300}") {
            if let Ok(Target::Name(n)) = parse_target(&input) {
                prop_assert!(n.is_ascii() && n.len() <= MAX_NAME_LEN);
                prop_assert_eq!(n.to_ascii_lowercase(), n.clone());
                prop_assert!(!n.ends_with('.'));
            }
        }
    }
}
