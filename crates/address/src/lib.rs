//! The one rule for what a mailbox is, shared by the SMTP listener, the outbound client, the
//! injection API and the bounce parser, plus the [`Domain`] and [`Address`] types that carry the
//! normalisation routing uses (lower-case domain, no trailing dot).
//!
//! Syntax follows RFC 5321 §4.1.2 (`Mailbox = Local-part "@" ( Domain / address-literal )`),
//! widened by RFC 6531 to UTF-8 in atoms and labels. Lengths follow RFC 5321 §4.5.3.1: a local
//! part of at most 64 octets (§4.5.3.1.1), a domain of at most 255 octets (§4.5.3.1.2) and a
//! path of at most 256 octets including the angle brackets (§4.5.3.1.3), so a mailbox written
//! without its brackets has at most 254. Longer objects are refused everywhere alike: what the
//! API accepts, the listener accepts and the client can put on the wire.
//!
//! The crate has no dependencies of its own so that low crates (`cartero-smtp`,
//! `cartero-bounce`) can use it without pulling each other in.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

use std::fmt;

/// Longest local part in octets (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL_PART: usize = 64;
/// Longest domain in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path in octets, the `<` and `>` included (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;
/// Longest mailbox in octets: a path without its two brackets.
pub const MAX_MAILBOX: usize = MAX_PATH - 2;

/// Why a text is not a mailbox (or a domain). The input is not repeated: callers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("no @ between local part and domain")]
    MissingAt,
    #[error("empty local part")]
    EmptyLocalPart,
    #[error("local part longer than {MAX_LOCAL_PART} octets")]
    LocalPartTooLong,
    #[error("invalid character or dot in the local part")]
    BadLocalPart,
    #[error("empty domain")]
    EmptyDomain,
    #[error("domain longer than {MAX_DOMAIN} octets")]
    DomainTooLong,
    #[error("invalid domain or address literal")]
    BadDomain,
    #[error("address longer than {MAX_MAILBOX} octets")]
    TooLong,
}

/// Checks `mailbox` (no angle brackets) against the syntax and length rules above.
pub fn check_mailbox(mailbox: &str) -> Result<(), AddressError> {
    if mailbox.len() > MAX_MAILBOX {
        return Err(AddressError::TooLong);
    }
    // The last `@` separates: a quoted local part may hold more of them.
    let (local, domain) = mailbox.rsplit_once('@').ok_or(AddressError::MissingAt)?;
    check_local(local)?;
    check_domain(domain)
}

/// Whether `mailbox` passes [`check_mailbox`].
pub fn is_mailbox(mailbox: &str) -> bool {
    check_mailbox(mailbox).is_ok()
}

/// RFC 5321 `atext` plus RFC 6531 UTF-8 (control characters never).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control())
}

fn check_local(local: &str) -> Result<(), AddressError> {
    if local.is_empty() {
        return Err(AddressError::EmptyLocalPart);
    }
    if local.len() > MAX_LOCAL_PART {
        return Err(AddressError::LocalPartTooLong);
    }
    let ok = match local.strip_prefix('"') {
        Some(quoted) => quoted.strip_suffix('"').is_some_and(valid_quoted),
        None => local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext)),
    };
    ok.then_some(()).ok_or(AddressError::BadLocalPart)
}

/// The inside of a `Quoted-string`: `qtextSMTP` (printable ASCII but `"` and `\`, or UTF-8) and
/// `quoted-pairSMTP` (`\` and a printable ASCII character). No control character may hide here,
/// so a quoted local part can never break a command line.
fn valid_quoted(body: &str) -> bool {
    let mut escaped = false;
    for c in body.chars() {
        let printable = (' '..='~').contains(&c);
        match c {
            _ if escaped => {
                if !printable {
                    return false;
                }
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => return false,
            _ if printable || (!c.is_ascii() && !c.is_control()) => {}
            _ => return false,
        }
    }
    !escaped
}

fn check_domain(domain: &str) -> Result<(), AddressError> {
    if domain.is_empty() {
        return Err(AddressError::EmptyDomain);
    }
    if domain.len() > MAX_DOMAIN {
        return Err(AddressError::DomainTooLong);
    }
    let ok = match domain.strip_prefix('[') {
        // An address literal; its contents are checked where it is used (routing).
        Some(lit) => lit.strip_suffix(']').is_some_and(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_graphic() && c != '[' && c != ']')
        }),
        None => domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && !c.is_control())
                })
        }),
    };
    ok.then_some(()).ok_or(AddressError::BadDomain)
}

/// A mail domain as routing compares it: ASCII letters lower-cased, the trailing dot of an
/// absolute name removed. (IDNA to A-labels happens in `cartero-dns`, which needs the resolver.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Normalises and checks a domain or address literal.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let name = input.strip_suffix('.').unwrap_or(input);
        check_domain(name)?;
        Ok(Self(name.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A checked mailbox. The local part is kept as written (RFC 5321 §2.4: only the receiving host
/// may interpret its case); the domain is a [`Domain`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: Domain,
}

impl Address {
    /// Checks `mailbox` with [`check_mailbox`] and normalises its domain.
    pub fn parse(mailbox: &str) -> Result<Self, AddressError> {
        check_mailbox(mailbox)?;
        let (local, domain) = mailbox.rsplit_once('@').ok_or(AddressError::MissingAt)?;
        Ok(Self {
            local: local.to_string(),
            domain: Domain(domain.to_ascii_lowercase()),
        })
    }

    pub fn local_part(&self) -> &str {
        &self.local
    }

    pub fn domain(&self) -> &Domain {
        &self.domain
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// The domain part of an address as the queues key it: lower-cased, without a closing `>`;
/// empty for an address without `@`. Lenient on purpose: it keys what was already accepted.
pub fn routing_domain(address: &str) -> String {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
