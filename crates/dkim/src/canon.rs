//! Relaxed canonicalization (RFC 6376 §3.4.2 and §3.4.4) and line-ending normalisation.

/// Space or horizontal tab: the only characters RFC 6376 counts as WSP.
fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Turns every bare LF into CRLF; existing CRLF pairs and lone CRs are kept as they are.
///
/// Submitted messages sometimes use Unix line endings, but SMTP transmits CRLF, and the
/// receiver verifies what it received, so the hash must be computed over the CRLF form.
pub fn normalize_line_endings(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 32);
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// Splits `data` into lines at each CRLF. The CRLF itself is not part of any line. The
/// returned flag tells whether the data ended in CRLF (then the last line is complete).
fn split_crlf(data: &[u8]) -> (Vec<&[u8]>, bool) {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < data.len() {
        if data.get(i) == Some(&b'\r') && data.get(i + 1) == Some(&b'\n') {
            lines.push(data.get(start..i).unwrap_or_default());
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    let rest = data.get(start..).unwrap_or_default();
    let ended_with_crlf = rest.is_empty();
    if !ended_with_crlf {
        lines.push(rest);
    }
    (lines, ended_with_crlf)
}

/// Appends `text` with every run of WSP collapsed to one SP and trailing WSP dropped;
/// leading WSP is dropped too when `trim_start` is set.
fn push_collapsed(out: &mut Vec<u8>, text: &[u8], trim_start: bool) {
    let mut pending_space = false;
    let mut wrote_any = false;
    for &b in text {
        if is_wsp(b) {
            pending_space = true;
            continue;
        }
        if pending_space && (wrote_any || !trim_start) {
            out.push(b' ');
        }
        pending_space = false;
        wrote_any = true;
        out.push(b);
    }
}

/// Relaxed body canonicalization (RFC 6376 §3.4.4).
///
/// Within each line, runs of WSP become one SP and trailing WSP is removed; then all empty
/// lines at the end of the body are dropped. A non-empty result always ends in CRLF and an
/// empty body canonicalizes to nothing. Expects CRLF line endings (see
/// [`normalize_line_endings`]); a lone CR or LF is treated as ordinary line content.
pub fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let (lines, _) = split_crlf(body);
    let mut out = Vec::with_capacity(body.len());
    // Empty lines are only written once a later non-empty line proves they are not trailing.
    let mut held_empty_lines = 0usize;
    for line in lines {
        let start = out.len();
        push_collapsed(&mut out, line, false);
        if out.len() == start {
            held_empty_lines += 1;
            continue;
        }
        let content = out.split_off(start);
        for _ in 0..held_empty_lines {
            out.extend_from_slice(b"\r\n");
        }
        held_empty_lines = 0;
        out.extend_from_slice(&content);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Relaxed header canonicalization (RFC 6376 §3.4.2) of one field, without the final CRLF.
///
/// `name` is the field name as it appears before the colon, `value` everything after the
/// colon up to (not including) the CRLF that ends the field, folds included. The name is
/// lowercased, the value unfolded, WSP runs collapsed to one SP and WSP removed at both ends
/// of the value. Non-ASCII bytes (RFC 6532 UTF-8 headers) pass through unchanged.
pub fn relaxed_header(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 1);
    out.extend(
        name.iter()
            .filter(|b| !is_wsp(**b))
            .map(u8::to_ascii_lowercase),
    );
    out.push(b':');
    // Unfolding removes each CRLF but keeps the WSP that follows it, which the collapsing
    // below then turns into a single SP.
    let (pieces, _) = split_crlf(value);
    let unfolded = pieces.concat();
    push_collapsed(&mut out, &unfolded, true);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> String {
        String::from_utf8(relaxed_body(s.as_bytes())).unwrap()
    }

    fn header(name: &str, value: &str) -> String {
        String::from_utf8(relaxed_header(name.as_bytes(), value.as_bytes())).unwrap()
    }

    #[test]
    fn whitespace_only_trailing_lines_are_removed() {
        assert_eq!(body("Hello\r\n \r\n\t\r\n"), "Hello\r\n");
        assert_eq!(body("Hello\r\n\r\n\r\n"), "Hello\r\n");
        assert_eq!(body("Hello \t \r\n  \t\r\n"), "Hello\r\n");
    }

    #[test]
    fn wsp_runs_collapse_and_trailing_wsp_is_stripped() {
        // RFC 6376 §3.4.6 example body.
        assert_eq!(body(" C \r\nD \t E\r\n\r\n\r\n"), " C\r\nD E\r\n");
        assert_eq!(body("a\t\tb  c \t\r\n"), "a b c\r\n");
    }

    #[test]
    fn inner_empty_lines_are_kept() {
        assert_eq!(body("a\r\n\r\n \r\nb\r\n\r\n"), "a\r\n\r\n\r\nb\r\n");
    }

    #[test]
    fn empty_and_blank_bodies_hash_as_empty() {
        assert_eq!(body(""), "");
        assert_eq!(body("\r\n"), "");
        assert_eq!(body(" \r\n\t\r\n\r\n"), "");
    }

    #[test]
    fn missing_final_crlf_is_added() {
        assert_eq!(body("Hello"), "Hello\r\n");
        assert_eq!(body("Hello  "), "Hello\r\n");
    }

    #[test]
    fn lone_cr_and_lf_are_content() {
        assert_eq!(body("a\rb\r\n"), "a\rb\r\n");
        assert_eq!(body("a\r\r\n"), "a\r\r\n");
    }

    #[test]
    fn header_relaxed_examples() {
        // RFC 6376 §3.4.6 example headers.
        assert_eq!(header("A", " X"), "a:X");
        assert_eq!(header("B ", " Y\t\r\n\tZ  "), "b:Y Z");
        assert_eq!(
            header("Subject", "  hello \t  world  "),
            "subject:hello world"
        );
        assert_eq!(header("To", ""), "to:");
        assert_eq!(header("X", " a\r\n b\r\n\t c"), "x:a b c");
    }

    #[test]
    fn header_keeps_utf8_bytes() {
        assert_eq!(
            header("Subject", " Grüße  aus  Köln"),
            "subject:Grüße aus Köln"
        );
    }

    #[test]
    fn bare_lf_becomes_crlf() {
        assert_eq!(
            normalize_line_endings(b"a\nb\r\nc\rd\n"),
            b"a\r\nb\r\nc\rd\r\n"
        );
        assert_eq!(normalize_line_endings(b"\n\n"), b"\r\n\r\n");
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
            // Biased towards the characters that matter for canonicalization.
            proptest::collection::vec(
                prop_oneof![
                    Just(b' '),
                    Just(b'\t'),
                    Just(b'\r'),
                    Just(b'\n'),
                    Just(b'a'),
                    any::<u8>()
                ],
                0..200,
            )
        }

        proptest! {
            #[test]
            fn relaxed_body_is_idempotent(input in body_bytes()) {
                let once = relaxed_body(&input);
                prop_assert_eq!(relaxed_body(&once), once.clone());
                prop_assert!(once.is_empty() || once.ends_with(b"\r\n"));
                prop_assert!(!once.ends_with(b"\r\n\r\n"));
            }

            #[test]
            fn relaxed_body_on_normalized_input_never_panics(input in body_bytes()) {
                let normalized = normalize_line_endings(&input);
                let once = relaxed_body(&normalized);
                prop_assert_eq!(relaxed_body(&once), once.clone());
            }

            #[test]
            fn relaxed_header_has_no_wsp_runs(value in body_bytes()) {
                let out = relaxed_header(b"X", &value);
                prop_assert!(!out.windows(2).any(|w| w == b"  "));
                prop_assert!(!out.contains(&b'\t'));
                prop_assert!(!out.ends_with(b" "));
            }
        }
    }
}
