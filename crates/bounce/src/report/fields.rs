//! Header-like field blocks (RFC 3464 delivery-status bodies, RFC 5965 feedback reports, the
//! headers of a returned message) and the small value parsers shared by the report readers.

/// Most fields a block may yield; a real report has a dozen, this only bounds hostile input.
const MAX_FIELDS_PER_BLOCK: usize = 256;
/// Longest value kept; longer values are truncated (a diagnostic is a few hundred bytes).
const MAX_VALUE_LEN: usize = 4096;

/// One block of `Name: value` fields, names kept as written, continuation lines unfolded.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields(pub(crate) Vec<(String, String)>);

impl Fields {
    /// The first value of `name` (case-insensitive), trimmed; `None` when absent or empty.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn get_owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_string)
    }
}

/// Splits `text` into blocks separated by blank lines and parses each as fields. Lines that are
/// not `name: value` and not continuations are skipped: real reports contain stray text.
pub(crate) fn parse_blocks(text: &str, max_blocks: usize) -> Vec<Fields> {
    let mut blocks = Vec::new();
    let mut current = Fields::default();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            if !current.0.is_empty() {
                if blocks.len() >= max_blocks {
                    return blocks;
                }
                blocks.push(std::mem::take(&mut current));
            }
            continue;
        }
        push_line(&mut current, line);
    }
    if !current.0.is_empty() && blocks.len() < max_blocks {
        blocks.push(current);
    }
    blocks
}

/// Parses one header block (up to the first blank line).
pub(crate) fn parse_header_block(text: &str) -> Fields {
    let mut fields = Fields::default();
    for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            break;
        }
        push_line(&mut fields, line);
    }
    fields
}

fn push_line(fields: &mut Fields, line: &str) {
    if line.starts_with([' ', '\t']) {
        if let Some((_, value)) = fields.0.last_mut() {
            append_capped(value, " ");
            append_capped(value, line.trim());
        }
        return;
    }
    let Some((name, value)) = line.split_once(':') else {
        return;
    };
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
    if !valid || fields.0.len() >= MAX_FIELDS_PER_BLOCK {
        return;
    }
    let mut v = String::new();
    append_capped(&mut v, value.trim());
    fields.0.push((name.to_string(), v));
}

fn append_capped(value: &mut String, extra: &str) {
    let room = MAX_VALUE_LEN.saturating_sub(value.len());
    if room == 0 {
        return;
    }
    let mut end = extra.len().min(room);
    while !extra.is_char_boundary(end) {
        end -= 1;
    }
    value.push_str(extra.get(..end).unwrap_or(""));
}

/// `rfc822; <User@Example.org>` → `User@Example.org`. Address types other than rfc822/utf-8
/// (e.g. `x400`) are kept verbatim after the `;` since they still name the recipient.
pub(crate) fn typed_address(value: &str) -> Option<String> {
    let v = match value.split_once(';') {
        Some((_, rest)) => rest,
        None => value,
    };
    clean_address(v)
}

/// Trims spaces, angle brackets and quotes; `None` unless a mailbox (by the rule every cartero
/// component applies, `cartero_address`) is left.
pub(crate) fn clean_address(v: &str) -> Option<String> {
    let junk = |c: char| "<>\"'.,:;".contains(c) || c.is_whitespace();
    let v = v.trim_matches(junk);
    cartero_address::is_mailbox(v).then(|| v.to_string())
}

/// The address in a header value such as `"Bob" <bob@example.org>` or `bob@example.org (Bob)`.
pub(crate) fn header_address(v: &str) -> Option<String> {
    if let Some((_, rest)) = v.rsplit_once('<')
        && let Some((inner, _)) = rest.split_once('>')
    {
        return clean_address(inner);
    }
    clean_address(v.split_whitespace().find(|w| w.contains('@')).unwrap_or(v))
}

/// Appends `a` unless an address equal to it (ASCII case-insensitively) is already there.
pub(crate) fn push_distinct<S: AsRef<str>>(out: &mut Vec<S>, a: S) {
    if !out
        .iter()
        .any(|o| o.as_ref().eq_ignore_ascii_case(a.as_ref()))
    {
        out.push(a);
    }
}

/// Whom a returned original was addressed to: its `To`, else the `for <…>` of its first
/// `Received` (feedback loops and list servers rewrite `To` to "undisclosed-recipients").
pub(crate) fn original_recipient(original: &Fields) -> Option<String> {
    if let Some(to) = original.get("To").and_then(header_address) {
        return Some(to);
    }
    original
        .0
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("Received"))
        .take(3)
        .find_map(|(_, v)| {
            let (_, rest) = v.split_once(" for ")?;
            header_address(rest.split(';').next().unwrap_or(rest).trim())
        })
}

/// A reply code and enhanced status code found in a diagnostic such as
/// `smtp; 550 5.1.1 <a@b>: Recipient address rejected` or `#5.1.1`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Codes {
    pub(crate) code: Option<u16>,
    pub(crate) enhanced: Option<(u8, u16, u16)>,
}

/// Parses `X.Y.Z` (RFC 3463) where X is 2, 4 or 5 and Y, Z have at most three digits.
pub(crate) fn parse_enhanced(s: &str) -> Option<(u8, u16, u16)> {
    let mut it = s.trim().splitn(3, '.');
    let class: u8 = it.next()?.parse().ok()?;
    let subject = it.next()?;
    let detail = it.next()?;
    let detail = detail
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap_or("");
    if ![2, 4, 5].contains(&class) || !short_number(subject) || !short_number(detail) {
        return None;
    }
    Some((class, subject.parse().ok()?, detail.parse().ok()?))
}

fn short_number(s: &str) -> bool {
    !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Finds the first SMTP reply code (`[245]xx` followed by space, `-` or end) and the first
/// enhanced status code in a diagnostic text, whatever precedes them (`smtp;`, `Remote Server
/// returned '`, `<<< `). Scans a bounded prefix so a hostile value costs little.
pub(crate) fn find_codes(text: &str) -> Codes {
    let text = text.get(..text.len().min(2048)).unwrap_or(text);
    let mut codes = Codes::default();
    for token in text.split(|c: char| c.is_whitespace() || "'\"();<>[]=,-".contains(c)) {
        let token = token.trim_start_matches('#');
        if codes.enhanced.is_none() && token.contains('.') {
            codes.enhanced = parse_enhanced(token.trim_end_matches(['.', ':']));
        }
        let digits = token.trim_end_matches(['-', ':']);
        if codes.code.is_none()
            && digits.len() == 3
            && digits.bytes().all(|b| b.is_ascii_digit())
            && matches!(digits.as_bytes().first(), Some(b'2' | b'4' | b'5'))
        {
            codes.code = digits.parse().ok();
        }
        if codes.code.is_some() && codes.enhanced.is_some() {
            break;
        }
    }
    codes
}

/// Formats an enhanced code as `X.Y.Z`.
pub(crate) fn enhanced_string(e: (u8, u16, u16)) -> String {
    format!("{}.{}.{}", e.0, e.1, e.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_unfold_continuations_and_split_on_blank_lines() {
        let text = "Reporting-MTA: dns; mx.example.com\r\n\r\nFinal-Recipient: rfc822; a@b.org\r\n\
                    Diagnostic-Code: smtp; 550 5.1.1 user\r\n  unknown here\r\n\r\n\r\nAction: delayed\n";
        let blocks = parse_blocks(text, 10);
        assert_eq!(blocks.len(), 3);
        assert_eq!(
            blocks[1].get("diagnostic-code"),
            Some("smtp; 550 5.1.1 user unknown here")
        );
        assert_eq!(blocks[2].get("ACTION"), Some("delayed"));
        assert_eq!(parse_blocks(text, 1).len(), 1);
    }

    #[test]
    fn addresses_lose_their_type_and_brackets() {
        assert_eq!(
            typed_address("rfc822; <Bob@Example.org>").as_deref(),
            Some("Bob@Example.org")
        );
        assert_eq!(typed_address("rfc822;").as_deref(), None);
        assert_eq!(clean_address("'x@y.z'.").as_deref(), Some("x@y.z"));
    }

    /// Reports used their own 320-octet, "contains an @" rule; they now take the mailbox rule
    /// the listener and the API apply (RFC 5321 §4.5.3.1 limits).
    #[test]
    fn report_addresses_follow_the_shared_mailbox_rule() {
        let long_local = format!("{}@example.org", "a".repeat(65));
        assert_eq!(clean_address(&long_local), None);
        assert_eq!(typed_address("rfc822; a b@example.org"), None);
        assert_eq!(header_address("Bob <bob@@example.org>"), None);
        assert_eq!(
            header_address("\"Bob\" <bob@example.org>").as_deref(),
            Some("bob@example.org")
        );
    }

    #[test]
    fn codes_are_found_in_all_the_usual_wrappings() {
        let c = find_codes("smtp; 550 5.1.1 <a@b>: Recipient address rejected");
        assert_eq!(c.code, Some(550));
        assert_eq!(c.enhanced, Some((5, 1, 1)));
        let c = find_codes("Remote Server returned '554 5.4.14 Hop count exceeded'");
        assert_eq!((c.code, c.enhanced), (Some(554), Some((5, 4, 14))));
        let c = find_codes("Sorry, no mailbox here by that name. (#5.1.1)");
        assert_eq!((c.code, c.enhanced), (None, Some((5, 1, 1))));
        let c = find_codes("host 10.0.0.1 said 452-4.2.2 full");
        assert_eq!((c.code, c.enhanced), (Some(452), Some((4, 2, 2))));
        assert_eq!(find_codes("version 1.2.3 at 127.0.0.1").enhanced, None);
    }
}
