//! SMTP replies (RFC 5321 §4.2) with optional enhanced status codes (RFC 3463).

use std::fmt;

/// An enhanced status code such as `5.1.1`: class (2, 4 or 5), subject and detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl EnhancedCode {
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }

    /// Parses `x.y.z` at the start of `text`; returns the code and the rest after one space.
    pub fn parse_prefix(text: &str) -> Option<(Self, &str)> {
        let end = text.find([' ', '\t']).unwrap_or(text.len());
        let mut parts = text[..end].split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        let rest = text[end..]
            .strip_prefix([' ', '\t'])
            .unwrap_or(&text[end..]);
        Some((Self::new(class, subject, detail), rest))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete SMTP reply. Multi-line replies keep their lines separated by `\n` in `text`
/// (without the code and enhanced code that repeat on each wire line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<EnhancedCode>,
    pub text: String,
}

/// What a reply code means for the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// 2xx and 3xx.
    Positive,
    /// 4xx: try again later.
    Transient,
    /// 5xx: do not try again.
    Permanent,
}

impl Reply {
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            text: text.into(),
        }
    }

    /// Shorthand for a reply with an enhanced code given as (class, subject, detail).
    pub fn with_code(code: u16, e: (u8, u16, u16), text: impl Into<String>) -> Self {
        Self::new(code, Some(EnhancedCode::new(e.0, e.1, e.2)), text)
    }

    pub fn severity(&self) -> Severity {
        match self.code {
            400..=499 => Severity::Transient,
            500..=599 => Severity::Permanent,
            _ => Severity::Positive,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.severity() == Severity::Positive
    }

    /// Writes the reply in wire format, one `code-` line per text line and `code ` on the last.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = if self.text.is_empty() {
            vec![""]
        } else {
            self.text.split('\n').collect()
        };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let line = line.trim_end_matches('\r');
            let mut s = format!("{}{}", self.code, sep);
            if let Some(e) = self.enhanced {
                s.push_str(&e.to_string());
                s.push(' ');
            }
            s.push_str(line);
            out.extend_from_slice(s.trim_end().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_wire(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.text.len() + 16);
        self.write_to(&mut v);
        v
    }

    /// Builds a reply from wire lines such as `["550-5.1.1 first", "550 5.1.1 second"]`, the way a
    /// client sees it. Returns `None` when the lines do not form one reply.
    pub fn from_lines<S: AsRef<str>>(lines: &[S]) -> Option<Self> {
        let first = lines.first()?.as_ref();
        let code: u16 = first.get(..3)?.parse().ok()?;
        if !(200..=599).contains(&code) {
            return None;
        }
        let mut enhanced = None;
        let mut texts = Vec::with_capacity(lines.len());
        for (i, line) in lines.iter().enumerate() {
            let line = line.as_ref();
            if line.get(..3)?.parse::<u16>().ok()? != code {
                return None;
            }
            let rest = line.get(4..).unwrap_or("");
            let rest = match EnhancedCode::parse_prefix(rest) {
                Some((e, r)) if e.class as u16 == code / 100 => {
                    if i == 0 {
                        enhanced = Some(e);
                    }
                    r
                }
                _ => rest,
            };
            texts.push(rest.to_string());
        }
        Some(Self::new(code, enhanced, texts.join("\n")))
    }
}

impl fmt::Display for Reply {
    /// One line, the way logs and events show it: `550 5.1.1 No such user`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(e) = self.enhanced {
            write!(f, " {e}")?;
        }
        if !self.text.is_empty() {
            write!(f, " {}", self.text.replace('\n', " "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_reply_round_trips_through_wire_lines() {
        let r = Reply::with_code(550, (5, 1, 1), "No such user\nSee https://x/y");
        let wire = String::from_utf8(r.to_wire()).unwrap();
        assert_eq!(
            wire,
            "550-5.1.1 No such user\r\n550 5.1.1 See https://x/y\r\n"
        );
        let lines: Vec<&str> = wire.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(Reply::from_lines(&lines), Some(r));
    }

    #[test]
    fn enhanced_code_must_match_reply_class() {
        let r = Reply::from_lines(&["421 5.7.0 odd"]).unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.text, "5.7.0 odd");
    }

    #[test]
    fn display_is_one_line() {
        let r = Reply::with_code(451, (4, 7, 1), "a\nb");
        assert_eq!(r.to_string(), "451 4.7.1 a b");
        assert_eq!(r.severity(), Severity::Transient);
    }

    #[test]
    fn bad_lines_give_none() {
        assert!(Reply::from_lines::<&str>(&[]).is_none());
        assert!(Reply::from_lines(&["abc"]).is_none());
        assert!(Reply::from_lines(&["250-a", "251 b"]).is_none());
        assert!(Reply::from_lines(&["999 x"]).is_none());
    }
}
