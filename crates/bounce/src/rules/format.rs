//! The rule-file format (TOML) and the small matchers its fields compile to.
//!
//! ```toml
//! [[provider]]
//! name = "gmail"
//! hosts = ["google.com"]        # MX host suffixes
//! domains = ["gmail.com"]       # recipient domain suffixes
//!
//! [[rule]]
//! name = "gmail-user-unknown"
//! provider = "gmail"            # optional: only for hosts of this provider
//! code = "550"                  # optional: "550", "5xx", "55x", "000" (no reply) or a list
//! enhanced = "5.1.1"            # optional: "5.7.*", "*.2.2" or a list
//! text = "(?i)does not exist"   # optional regex on the reply text
//! class = 10
//! catch_all = false             # optional: true when the wording states no reason
//! ```

use serde::Deserialize;

/// One rule file as written by a person.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleFile {
    #[serde(default)]
    pub provider: Vec<ProviderDef>,
    #[serde(default)]
    pub rule: Vec<RuleDef>,
}

/// `[[provider]]`: a name for a set of host/domain suffixes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderDef {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
}

/// `[[rule]]`: conditions (all must hold) and the class they decide.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RuleDef {
    pub name: String,
    pub provider: Option<String>,
    pub code: Option<OneOrMany>,
    pub enhanced: Option<OneOrMany>,
    pub text: Option<String>,
    pub class: u16,
    /// The rule matches wording that states no reason ("blocked", "temporary"); see
    /// [`crate::Classification::specific`].
    #[serde(default)]
    pub catch_all: bool,
}

/// A field that takes one pattern or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn items(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A reply-code pattern: three positions, each a digit or a wildcard (`x`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CodePattern([Option<u8>; 3]);

impl CodePattern {
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.trim().as_bytes();
        if b.len() != 3 {
            return None;
        }
        let mut out = [None; 3];
        for (slot, c) in out.iter_mut().zip(b) {
            *slot = match c {
                b'0'..=b'9' => Some(c - b'0'),
                b'x' | b'X' | b'*' => None,
                _ => return None,
            };
        }
        Some(Self(out))
    }

    pub fn matches(self, code: u16) -> bool {
        if code > 999 {
            return false;
        }
        // Reply codes are three digits; code 0 (no reply) reads as "000".
        let digits = [code / 100, (code / 10) % 10, code % 10];
        self.0
            .iter()
            .zip(digits)
            .all(|(p, d)| p.is_none_or(|p| u16::from(p) == d))
    }
}

/// An enhanced-status-code pattern (RFC 3463 `class.subject.detail`), each part a number or `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EnhancedPattern {
    class: Option<u8>,
    subject: Option<u16>,
    detail: Option<u16>,
}

impl EnhancedPattern {
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('.');
        let class = wild_or_num::<u8>(parts.next()?, 1)?;
        let subject = wild_or_num::<u16>(parts.next()?, 3)?;
        let detail = wild_or_num::<u16>(parts.next()?, 3)?;
        if parts.next().is_some() || class.is_some_and(|c| !matches!(c, 2 | 4 | 5)) {
            return None;
        }
        Some(Self {
            class,
            subject,
            detail,
        })
    }

    pub fn matches(self, e: (u8, u16, u16)) -> bool {
        self.class.is_none_or(|c| c == e.0)
            && self.subject.is_none_or(|s| s == e.1)
            && self.detail.is_none_or(|d| d == e.2)
    }
}

/// `None` for a wildcard, `Some(n)` for a number of at most `max_digits` digits.
fn wild_or_num<T: std::str::FromStr>(s: &str, max_digits: usize) -> Option<Option<T>> {
    match s {
        "*" | "x" | "X" => Some(None),
        _ if !s.is_empty() && s.len() <= max_digits && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok().map(Some)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_patterns() {
        let p = CodePattern::parse("5xx").unwrap();
        assert!(p.matches(550) && p.matches(599) && !p.matches(450));
        let p = CodePattern::parse("55X").unwrap();
        assert!(p.matches(554) && !p.matches(541));
        assert!(CodePattern::parse("000").unwrap().matches(0));
        assert!(!CodePattern::parse("000").unwrap().matches(500));
        assert!(!CodePattern::parse("xxx").unwrap().matches(1000));
        for bad in ["55", "5500", "5a0", "", "5.5"] {
            assert!(CodePattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn enhanced_patterns() {
        let p = EnhancedPattern::parse("5.7.*").unwrap();
        assert!(p.matches((5, 7, 1)) && p.matches((5, 7, 26)) && !p.matches((4, 7, 1)));
        let p = EnhancedPattern::parse("*.2.2").unwrap();
        assert!(p.matches((4, 2, 2)) && p.matches((5, 2, 2)) && !p.matches((5, 2, 1)));
        assert!(
            EnhancedPattern::parse("5.1.10")
                .unwrap()
                .matches((5, 1, 10))
        );
        for bad in ["5.1", "5.1.1.1", "3.1.1", "5.1000.1", "5..1", "a.b.c"] {
            assert!(EnhancedPattern::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn files_parse_with_one_or_many() {
        let f: RuleFile = toml::from_str(
            "[[rule]]\nname = \"a\"\ncode = [\"550\", \"551\"]\nenhanced = \"5.1.1\"\nclass = 10\n",
        )
        .unwrap();
        assert_eq!(f.rule[0].code.as_ref().unwrap().items().len(), 2);
        assert_eq!(f.rule[0].enhanced.as_ref().unwrap().items().len(), 1);
        assert!(toml::from_str::<RuleFile>("[[rule]]\nname = \"a\"\nclas = 10\n").is_err());
    }
}
