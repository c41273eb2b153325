//! Splits a reply as people paste it (`550-5.1.1 first line` / `550 5.1.1 last line`, or a bare
//! description of a local failure) into the parts a [`FailureInput`] carries.

use crate::FailureInput;

/// A reply split into code, enhanced code and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedReply {
    /// The reply code, or 0 when the text does not start with one (a local failure).
    pub code: u16,
    /// The enhanced status code of the first line, when its class agrees with the reply code.
    pub enhanced: Option<(u8, u16, u16)>,
    /// The text of all lines, codes removed, joined with spaces.
    pub text: String,
}

impl ParsedReply {
    /// The classifier input for this reply.
    pub fn input<'a>(&'a self, host: Option<&'a str>) -> FailureInput<'a> {
        FailureInput {
            code: self.code,
            enhanced: self.enhanced,
            text: &self.text,
            host,
        }
    }
}

/// Reads `NNN`, `NNN-` or `NNN ` at the start of a line.
fn split_code(line: &str) -> Option<(u16, &str)> {
    let digits = line.get(..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = digits.parse().ok()?;
    if !(200..=599).contains(&code) {
        return None;
    }
    let rest = line.get(3..)?;
    match rest.as_bytes().first() {
        None => Some((code, "")),
        Some(b' ' | b'-' | b'\t') => Some((code, rest.get(1..).unwrap_or(""))),
        Some(_) => None,
    }
}

/// Reads `c.sss.ddd` (RFC 3463) at the start of `s`, followed by a space or the end.
fn split_enhanced(s: &str) -> Option<((u8, u16, u16), &str)> {
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    let (word, rest) = s.split_at(end);
    let mut parts = word.split('.');
    let mut num = |max: usize| {
        parts
            .next()
            .filter(|p| !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u16>().ok())
    };
    let class = num(1)?;
    let subject = num(3)?;
    let detail = num(3)?;
    if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
        return None;
    }
    Some(((class as u8, subject, detail), rest.trim_start()))
}

/// Parses a reply line (or several, separated by newlines). Never fails: text that is not a reply
/// becomes code 0 with the whole text.
pub fn parse_reply(reply: &str) -> ParsedReply {
    let mut lines = reply.lines().map(str::trim).filter(|l| !l.is_empty());
    let Some(first) = lines.next() else {
        return ParsedReply {
            code: 0,
            enhanced: None,
            text: String::new(),
        };
    };
    let Some((code, rest)) = split_code(first) else {
        return ParsedReply {
            code: 0,
            enhanced: None,
            text: reply.split_whitespace().collect::<Vec<_>>().join(" "),
        };
    };
    let mut enhanced = None;
    let mut text = String::with_capacity(reply.len());
    let mut push = |part: &str, first_line: bool| {
        let part = match split_enhanced(part) {
            Some((e, r)) if u16::from(e.0) == code / 100 => {
                if first_line {
                    enhanced = Some(e);
                }
                r
            }
            _ => part,
        };
        if !part.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(part.trim());
        }
    };
    push(rest, true);
    for line in lines {
        match split_code(line) {
            Some((c, r)) if c == code => push(r, false),
            _ => push(line, false),
        }
    }
    ParsedReply {
        code,
        enhanced,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_multi_line_replies() {
        let r = parse_reply("550 5.1.1 <a@b>: user unknown");
        assert_eq!(
            (r.code, r.enhanced, r.text.as_str()),
            (550, Some((5, 1, 1)), "<a@b>: user unknown")
        );
        let r =
            parse_reply("550-5.7.1 The user or domain\r\n550-5.7.1 has a policy\r\n550 5.7.1 x");
        assert_eq!(r.code, 550);
        assert_eq!(r.enhanced, Some((5, 7, 1)));
        assert_eq!(r.text, "The user or domain has a policy x");
    }

    #[test]
    fn mismatched_enhanced_stays_text_and_local_failures_have_code_zero() {
        let r = parse_reply("450 5.1.1 odd");
        assert_eq!(
            (r.code, r.enhanced, r.text.as_str()),
            (450, None, "5.1.1 odd")
        );
        let r = parse_reply("connection timed out");
        assert_eq!((r.code, r.text.as_str()), (0, "connection timed out"));
        assert_eq!(parse_reply("5500 x").code, 0);
        assert_eq!(parse_reply("").code, 0);
        assert_eq!(parse_reply("421").code, 421);
        assert_eq!(parse_reply("554 5.7.1").enhanced, Some((5, 7, 1)));
        assert_eq!(parse_reply("554 5.7.1000 x").enhanced, None);
    }
}
