//! Minimal RFC 5322 message parsing: header fields, body, and the From: domain.

/// One header field as it appears in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField<'a> {
    /// Bytes before the first colon.
    pub name: &'a [u8],
    /// Bytes after the colon up to the CRLF ending the field; folds (CRLF WSP) included.
    pub value: &'a [u8],
}

impl HeaderField<'_> {
    /// Case-insensitive comparison of the field name, ignoring WSP before the colon.
    pub fn is_named(&self, name: &str) -> bool {
        self.name
            .trim_ascii_end()
            .eq_ignore_ascii_case(name.as_bytes())
    }
}

/// A message split into header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMessage<'a> {
    /// Header fields in message order.
    pub headers: Vec<HeaderField<'a>>,
    /// Everything after the empty line that ends the header block.
    pub body: &'a [u8],
}

/// Splits a CRLF message at the first empty line. Without an empty line the whole message is
/// header block and the body is empty. Lines that are neither a field (no colon) nor a
/// continuation of one are skipped, so garbage is never signed but never makes this fail.
pub fn parse(message: &[u8]) -> ParsedMessage<'_> {
    let (header_block, body): (&[u8], &[u8]) = if message.starts_with(b"\r\n") {
        (&[], message.get(2..).unwrap_or_default())
    } else {
        match find(message, b"\r\n\r\n") {
            // Keep the CRLF ending the last field inside the header block.
            Some(pos) => (
                message.get(..pos + 2).unwrap_or_default(),
                message.get(pos + 4..).unwrap_or_default(),
            ),
            None => (message, &[]),
        }
    };
    ParsedMessage {
        headers: parse_fields(header_block),
        body,
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Byte ranges of the lines of `block`, each without its CRLF.
fn line_ranges(block: &[u8]) -> Vec<(usize, usize)> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < block.len() {
        let rest = block.get(start..).unwrap_or_default();
        match find(rest, b"\r\n") {
            Some(len) => {
                ranges.push((start, start + len));
                start += len + 2;
            }
            None => {
                ranges.push((start, block.len()));
                break;
            }
        }
    }
    ranges
}

fn parse_fields(block: &[u8]) -> Vec<HeaderField<'_>> {
    // (start, end) of the field being assembled; continuation lines move `end`.
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut open = false;
    for (start, end) in line_ranges(block) {
        let line = block.get(start..end).unwrap_or_default();
        let is_continuation = matches!(line.first(), Some(b' ' | b'\t'));
        if is_continuation {
            if open && let Some(last) = spans.last_mut() {
                last.1 = end;
            }
            continue;
        }
        open = line.contains(&b':');
        if open {
            spans.push((start, end));
        }
    }
    spans
        .into_iter()
        .filter_map(|(start, end)| {
            let raw = block.get(start..end)?;
            let colon = raw.iter().position(|b| *b == b':')?;
            Some(HeaderField {
                name: raw.get(..colon)?,
                value: raw.get(colon + 1..)?,
            })
        })
        .collect()
}

/// Picks header fields for the `h=` list following RFC 6376 §5.4.2: for a name listed n
/// times, the last instance is used first, then the one above it, and so on. A name listed
/// more often than it occurs yields `None` (over-signing: it contributes nothing to the hash,
/// but a field added later would).
pub fn select<'a>(headers: &[HeaderField<'a>], names: &[&str]) -> Vec<Option<HeaderField<'a>>> {
    let mut used: Vec<(String, usize)> = Vec::new();
    names
        .iter()
        .map(|name| {
            let lower = name.to_ascii_lowercase();
            let skip = match used.iter_mut().find(|(n, _)| *n == lower) {
                Some((_, count)) => {
                    *count += 1;
                    *count - 1
                }
                None => {
                    used.push((lower, 1));
                    0
                }
            };
            headers
                .iter()
                .rev()
                .filter(|h| h.is_named(name))
                .nth(skip)
                .copied()
        })
        .collect()
}

/// Removes comments and the contents of quoted strings (display names may contain `@`, `<`
/// or `,`), turning line breaks into spaces.
fn strip_comments_and_quotes(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len());
    let mut depth = 0usize;
    let mut in_quote = false;
    let mut escaped = false;
    for &b in value {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quote || depth > 0 => escaped = true,
            b'"' if depth == 0 => in_quote = !in_quote,
            b'(' if !in_quote => depth += 1,
            b')' if !in_quote && depth > 0 => depth -= 1,
            _ if in_quote || depth > 0 => {}
            b'\r' | b'\n' => out.push(b' '),
            _ => out.push(b),
        }
    }
    out
}

/// The lowercased domain of the first mailbox in a From: value, without a trailing dot.
/// Handles display names, angle addresses, comments and group syntax; `None` when no
/// `local@domain` can be found.
pub fn from_domain(value: &[u8]) -> Option<String> {
    let clean = strip_comments_and_quotes(value);
    let address: &[u8] = if let Some(open) = clean.iter().position(|b| *b == b'<') {
        let rest = clean.get(open + 1..)?;
        let close = rest.iter().position(|b| *b == b'>').unwrap_or(rest.len());
        rest.get(..close)?
    } else {
        // "group: a@b, c@d;" -> the first member; otherwise the first of a mailbox list.
        let after_group = match clean.iter().position(|b| *b == b':') {
            Some(colon) => clean.get(colon + 1..)?,
            None => &clean,
        };
        after_group.split(|b| *b == b',').next()?
    };
    let at = address.iter().rposition(|b| *b == b'@')?;
    let domain = address.get(at + 1..)?.trim_ascii();
    let domain = domain.strip_suffix(b";").unwrap_or(domain).trim_ascii();
    let domain = domain.strip_suffix(b".").unwrap_or(domain);
    if domain.is_empty() || domain.iter().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    Some(String::from_utf8_lossy(domain).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_values(m: &ParsedMessage<'_>) -> Vec<(String, String)> {
        m.headers
            .iter()
            .map(|h| {
                (
                    String::from_utf8_lossy(h.name).into_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn splits_headers_and_body_with_folds() {
        let msg = b"From: a@b.c\r\nSubject: one\r\n two\r\n\tthree\r\nTo: x@y.z\r\n\r\nbody\r\n\r\nmore\r\n";
        let m = parse(msg);
        assert_eq!(
            names_values(&m),
            vec![
                ("From".into(), " a@b.c".into()),
                ("Subject".into(), " one\r\n two\r\n\tthree".into()),
                ("To".into(), " x@y.z".into()),
            ]
        );
        assert_eq!(m.body, b"body\r\n\r\nmore\r\n");
    }

    #[test]
    fn no_separator_means_empty_body() {
        let m = parse(b"From: a@b.c\r\nSubject: x");
        assert_eq!(m.headers.len(), 2);
        assert_eq!(m.body, b"");
        let m = parse(b"From: a@b.c\r\n\r\n");
        assert_eq!(m.headers.len(), 1);
        assert_eq!(m.body, b"");
    }

    #[test]
    fn empty_header_block_and_garbage() {
        let m = parse(b"\r\nbody");
        assert!(m.headers.is_empty());
        assert_eq!(m.body, b"body");
        // Leading continuation, colon-less line and its continuation are all skipped.
        let m = parse(b" orphan\r\nnot a header\r\n cont\r\nA: 1\r\n\r\n");
        assert_eq!(names_values(&m), vec![("A".into(), " 1".into())]);
        assert!(parse(b"").headers.is_empty());
        assert!(parse(b"\xff\xfe\x00:\r\n").headers.len() == 1);
    }

    #[test]
    fn selection_takes_last_instance_first() {
        let m = parse(b"To: first\r\nFrom: f\r\nTO: second\r\nto: third\r\n\r\n");
        let picked = select(&m.headers, &["to", "from", "to", "to", "to", "from"]);
        let values: Vec<Option<&[u8]>> = picked.iter().map(|h| h.map(|h| h.value)).collect();
        assert_eq!(
            values,
            vec![
                Some(&b" third"[..]),
                Some(&b" f"[..]),
                Some(&b" second"[..]),
                Some(&b" first"[..]),
                None,
                None,
            ]
        );
    }

    #[test]
    fn from_domain_variants() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (b" user@Example.COM", Some("example.com")),
            (
                b" \"Doe, John\" <john@news.example.com>",
                Some("news.example.com"),
            ),
            (b" \"a@evil.test\" <x@good.test>", Some("good.test")),
            (b" x@good.test (comment @evil.test)", Some("good.test")),
            (b" Team: a@one.test, b@two.test;", Some("one.test")),
            (b" a@one.test, b@two.test", Some("one.test")),
            (b" =?utf-8?q?J=C3=B6rg?= <j@ex.test.>", Some("ex.test")),
            (
                " Jörg <jörg@bücher.example>".as_bytes(),
                Some("bücher.example"),
            ),
            (b" Name\r\n <folded@fold.test>", Some("fold.test")),
            (b" undisclosed", None),
            (b" <user@>", None),
            (b"", None),
        ];
        for (value, want) in cases {
            assert_eq!(
                from_domain(value).as_deref(),
                *want,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }
}
