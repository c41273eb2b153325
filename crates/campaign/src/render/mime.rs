//! The message around the rendered fields, built with `mail-builder`: it encodes non-ASCII
//! headers (RFC 2047), folds long ones, and picks 7bit, quoted-printable or base64 per body so
//! that no line exceeds 998 bytes (RFC 5322 §2.1.1) whatever a template printed. What it cannot
//! know — a line break in a rendered subject, a NUL in a body, a header handed to us that would
//! end the header section — is refused here before building.

use super::error::{Field, RenderError, TemplateError, TemplateErrorKind};
use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use std::borrow::Cow;

/// Header fields the template itself sets: a second one from `extra_headers` would make the
/// message ambiguous (two From: fields, RFC 5322 §3.6). `Content-*` are refused too.
const STRUCTURAL: &[&str] = &[
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
];
/// Longest extra header name. RFC 5322 sets no limit below the line's; this keeps the name and
/// a maximal word on one line.
const MAX_HEADER_NAME: usize = 76;
/// Longest run of an ASCII extra header value without whitespace: folding happens only at
/// whitespace, so a longer run could make a line longer than 998 bytes.
const MAX_HEADER_WORD: usize = 900;

/// The parsed From value.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    name: Option<String>,
    address: String,
    /// Right-hand side of the Message-IDs: the From address's domain, lower-cased.
    id_domain: String,
}

impl Sender {
    /// Reads `address` or `Name <address>` (the name may be a quoted string).
    pub(crate) fn parse(value: &str) -> Result<Self, TemplateError> {
        let invalid = |message: String| {
            TemplateError::new(Field::From, None, TemplateErrorKind::InvalidFrom, message)
        };
        if value.contains(char::is_control) {
            return Err(invalid(
                "contains a control character (CR, LF, ...): it must be one line".into(),
            ));
        }
        let value = value.trim();
        let (name, address) = match value.strip_suffix('>').and_then(|v| v.rsplit_once('<')) {
            Some((name, address)) => (unquote(name.trim()), address.trim()),
            None => (None, value),
        };
        cartero_address::check_mailbox(address)
            .map_err(|e| invalid(format!("invalid address {address:?}: {e}")))?;
        let domain = address.rsplit_once('@').map_or("", |(_, d)| d);
        Ok(Self {
            name,
            address: address.to_string(),
            id_domain: domain.to_ascii_lowercase(),
        })
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }
}

/// A display name without its quotes and quoted pairs; `None` when empty.
fn unquote(name: &str) -> Option<String> {
    let name = match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' {
                    chars.next().unwrap_or(c)
                } else {
                    c
                });
            }
            out
        }
        None => name.to_string(),
    };
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// One recipient's rendered fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
}

/// A rendered subject is a header value: a line break in it would end the field and let the
/// rest be read as headers (or as the body).
pub(crate) fn check_subject(subject: &str) -> Result<(), TemplateError> {
    if subject.contains(['\r', '\n']) {
        return Err(TemplateError::new(
            Field::Subject,
            None,
            TemplateErrorKind::LineBreakInSubject,
            "the rendered subject contains a line break (CR or LF); a subject must be one line \
             (check the template and the attributes it prints)",
        ));
    }
    Ok(())
}

/// Bodies travel as text: every line ending becomes CRLF in the message, so a lone CR is read as
/// one too (left alone it would reach the wire bare, which RFC 5322 forbids), and the last line
/// is ended (SMTP's DATA needs the message to end with CRLF). A NUL, which no text encoding may
/// carry, is refused.
pub(crate) fn normalize_body(field: Field, body: String) -> Result<String, TemplateError> {
    if body.contains('\0') {
        return Err(TemplateError::new(
            field,
            None,
            TemplateErrorKind::NulInBody,
            "the rendered body contains a NUL character",
        ));
    }
    let mut body = if body.contains('\r') {
        body.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        body
    };
    if !body.ends_with('\n') {
        body.push('\n');
    }
    Ok(body)
}

/// `extra_headers` must be well-formed single-line fields that do not collide with the ones the
/// template sets.
pub(crate) fn check_extra_headers(headers: &[(String, String)]) -> Result<(), RenderError> {
    for (name, value) in headers {
        let refuse = |reason: &str| {
            Err(RenderError::Header {
                name: name.clone(),
                reason: reason.to_string(),
            })
        };
        if name.is_empty()
            || name.len() > MAX_HEADER_NAME
            || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
        {
            return refuse("invalid header name (printable ASCII without ':', 1 to 76 bytes)");
        }
        let lower = name.to_ascii_lowercase();
        if STRUCTURAL.contains(&lower.as_str()) || lower.starts_with("content-") {
            return refuse("set from the template itself; it cannot be added");
        }
        if value.contains(['\r', '\n']) {
            return refuse("the value must be one line: it contains CR or LF");
        }
        if value.contains(|c: char| c.is_control() && c != '\t') {
            return refuse("the value contains a control character");
        }
        if value.is_ascii()
            && value
                .split([' ', '\t'])
                .any(|word| word.len() > MAX_HEADER_WORD)
        {
            return refuse("the value has a word longer than 900 bytes, which cannot be folded");
        }
    }
    Ok(())
}

/// The complete message, CRLF line endings. `headers` were checked by [`check_extra_headers`].
pub(crate) fn build(
    sender: &Sender,
    to: &str,
    content: &Rendered,
    headers: &[(String, String)],
    now_ms: u64,
) -> Vec<u8> {
    let message_id = format!("{now_ms:x}.{:016x}@{}", fastrand::u64(..), sender.id_domain);
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(
            sender.name.as_deref(),
            sender.address.as_str(),
        ))
        .to(Address::new_address(None::<&str>, to))
        .subject(Text::new(content.subject.as_str()))
        .date(Date::new((now_ms / 1000) as i64))
        .message_id(MessageId::new(message_id));
    for (name, value) in headers {
        // ASCII values go as written (folded at whitespace): structured fields such as
        // List-Unsubscribe must not be turned into encoded words. Others need RFC 2047.
        let value: HeaderType<'_> = if value.is_ascii() {
            Raw::new(value.as_str()).into()
        } else {
            Text::new(value.as_str()).into()
        };
        builder = builder.header(Cow::Borrowed(name.as_str()), value);
    }
    if let Some(text) = &content.text {
        builder = builder.text_body(text.as_str());
    }
    if let Some(html) = &content.html {
        builder = builder.html_body(html.as_str());
    }
    let mut out = Vec::new();
    builder.serialize(&mut out);
    out
}
