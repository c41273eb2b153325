//! Choosing keys for a message and producing `DKIM-Signature` header fields.

use std::borrow::Cow;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::canon::{normalize_line_endings, relaxed_body, relaxed_header};
use crate::message::{HeaderField, parse, select};
use crate::{DkimError, SigningKey};

/// Header fields signed when present, in `h=` order. Each is listed once per instance in
/// the message; `from` is then listed one extra time (over-signing), so a From: field added
/// in transit breaks the signature instead of being displayed next to a valid one.
pub const SIGNED_HEADERS: &[&str] = &[
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-language",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-help",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "feedback-id",
    "precedence",
    "auto-submitted",
];

/// Longest line emitted in the signature field, CRLF not counted (RFC 5322 recommends < 78).
const MAX_LINE: usize = 76;

/// Signs messages with the keys of their From: domain.
#[derive(Debug)]
pub struct Signer {
    keys: Vec<SigningKey>,
    expiry_secs: Option<u64>,
}

impl Signer {
    /// A signer holding `keys`; several keys may share a domain (for instance RSA and
    /// Ed25519 for dual signing, RFC 8463 §4), and every one of them will sign.
    pub fn new(keys: Vec<SigningKey>) -> Self {
        Self {
            keys,
            expiry_secs: None,
        }
    }

    /// Adds `x=` (signature expiry) `secs` seconds after `t=`; 0 is treated as 1 because
    /// RFC 6376 requires `x=` to be later than `t=`.
    pub fn with_expiry(mut self, secs: u64) -> Self {
        self.expiry_secs = Some(secs.max(1));
        self
    }

    /// The keys this signer holds.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The keys that sign mail from `from_domain`: those whose domain equals it or is a
    /// parent of it (case-insensitive), keeping only the most specific matching domain. A key
    /// for `example.com` therefore signs `news.example.com` (relaxed DMARC alignment) unless
    /// a key for `news.example.com` itself exists.
    pub fn keys_for(&self, from_domain: &str) -> Vec<&SigningKey> {
        let from = from_domain.trim_end_matches('.').to_ascii_lowercase();
        let matches = |key: &&SigningKey| {
            let d = key.domain();
            from == d
                || (from.len() > d.len()
                    && from.ends_with(d)
                    && from.as_bytes().get(from.len() - d.len() - 1) == Some(&b'.'))
        };
        let best = self
            .keys
            .iter()
            .filter(matches)
            .map(|k| k.domain().len())
            .max();
        self.keys
            .iter()
            .filter(matches)
            .filter(|k| Some(k.domain().len()) == best)
            .collect()
    }

    /// Signs `message` (header block, empty line, body) at time `now_unix_secs` (`t=`).
    ///
    /// Returns the `DKIM-Signature: ...\r\n` field(s) to prepend, one per matching key, each
    /// folded to lines under 78 columns with `b=` last; `None` when the message has no From:
    /// field, its address has no parseable domain, or no key matches that domain. Fails with
    /// [`DkimError::InvalidMessage`] when the message has more than one From: field.
    ///
    /// Bare LF line endings are hashed as CRLF: the message must be transmitted with CRLF
    /// (as SMTP requires) for the signature to verify. Header bytes are hashed as they are,
    /// so 8-bit UTF-8 (RFC 6532) headers are fine.
    pub fn sign(&self, message: &[u8], now_unix_secs: u64) -> Result<Option<String>, DkimError> {
        let message: Cow<'_, [u8]> = if message.contains(&b'\n') {
            Cow::Owned(normalize_line_endings(message))
        } else {
            Cow::Borrowed(message)
        };
        let parsed = parse(&message);
        let mut froms = parsed.headers.iter().filter(|h| h.is_named("from"));
        let Some(from) = froms.next() else {
            return Ok(None);
        };
        if froms.next().is_some() {
            return Err(DkimError::InvalidMessage(
                "more than one From: header field",
            ));
        }
        let Some(domain) = crate::message::from_domain(from.value) else {
            return Ok(None);
        };
        let keys = self.keys_for(&domain);
        if keys.is_empty() {
            return Ok(None);
        }
        let body_hash = B64.encode(sha256(&relaxed_body(parsed.body)));
        let names = header_names(&parsed.headers);
        let selected = select(&parsed.headers, &names);
        let mut out = String::new();
        for key in keys {
            let tags = TagValues {
                key,
                t: now_unix_secs,
                x: self
                    .expiry_secs
                    .map(|secs| now_unix_secs.saturating_add(secs)),
                h: &names,
                bh: &body_hash,
            };
            out.push_str(&sign_one(&tags, &selected)?);
        }
        Ok(Some(out))
    }
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// The `h=` list for a message: every instance of the [`SIGNED_HEADERS`] present, then
/// `from` once more.
fn header_names(headers: &[HeaderField<'_>]) -> Vec<&'static str> {
    let mut names = Vec::new();
    for name in SIGNED_HEADERS {
        let count = headers.iter().filter(|h| h.is_named(name)).count();
        names.extend(std::iter::repeat_n(*name, count));
    }
    names.push("from");
    names
}

/// Values of the tags of one signature, before `b=`.
struct TagValues<'a> {
    key: &'a SigningKey,
    t: u64,
    x: Option<u64>,
    h: &'a [&'static str],
    bh: &'a str,
}

/// Builds, hashes and signs one `DKIM-Signature` field; returns it with its final CRLF.
fn sign_one(
    tags: &TagValues<'_>,
    selected: &[Option<HeaderField<'_>>],
) -> Result<String, DkimError> {
    let mut field = Folder::new("DKIM-Signature:");
    field.token(" ", "v=1;");
    field.token(" ", &format!("a={};", tags.key.algorithm().tag()));
    field.token(" ", "c=relaxed/relaxed;");
    field.token(" ", &format!("d={};", tags.key.domain()));
    field.token(" ", &format!("s={};", tags.key.selector()));
    field.token(" ", &format!("t={};", tags.t));
    if let Some(x) = tags.x {
        field.token(" ", &format!("x={x};"));
    }
    for (i, name) in tags.h.iter().enumerate() {
        let last = i + 1 == tags.h.len();
        let token = match (i, last) {
            (0, true) => format!("h={name};"),
            (0, false) => format!("h={name}:"),
            (_, true) => format!("{name};"),
            (_, false) => format!("{name}:"),
        };
        field.token(if i == 0 { " " } else { "" }, &token);
    }
    field.token(" ", &format!("bh={};", tags.bh));
    // Keep a few signature characters on the line of "b=" so it is never left dangling.
    field.token_with_room(" ", "b=", 8);

    let mut data = Vec::new();
    for header in selected.iter().flatten() {
        data.extend_from_slice(&relaxed_header(header.name, header.value));
        data.extend_from_slice(b"\r\n");
    }
    // The field itself is hashed with an empty b= and without its final CRLF (§3.7).
    let unsigned = field.text();
    let value = unsigned.strip_prefix("DKIM-Signature:").unwrap_or(unsigned);
    data.extend_from_slice(&relaxed_header(b"DKIM-Signature", value.as_bytes()));

    let signature = B64.encode(tags.key.sign_data(&data)?);
    field.fill(&signature);
    let mut out = field.into_text();
    out.push_str("\r\n");
    Ok(out)
}

/// Accumulates a header field, folding with CRLF SP before a token that would overflow.
struct Folder {
    text: String,
    line_len: usize,
}

impl Folder {
    fn new(start: &str) -> Self {
        Self {
            text: start.to_owned(),
            line_len: start.len(),
        }
    }

    /// Appends `sep` + `token`, or a fold + `token` when it would not fit on the line.
    fn token(&mut self, sep: &str, token: &str) {
        self.token_with_room(sep, token, 0);
    }

    /// Like [`Folder::token`], but also folds unless `room` more columns stay free after it.
    fn token_with_room(&mut self, sep: &str, token: &str, room: usize) {
        if self.line_len + sep.len() + token.len() + room > MAX_LINE {
            self.text.push_str("\r\n ");
            self.line_len = 1;
        } else {
            self.text.push_str(sep);
            self.line_len += sep.len();
        }
        self.text.push_str(token);
        self.line_len += token.len();
    }

    /// Appends ASCII `value` without separators, folding whenever a line is full.
    fn fill(&mut self, value: &str) {
        let mut rest = value;
        while !rest.is_empty() {
            if self.line_len >= MAX_LINE {
                self.text.push_str("\r\n ");
                self.line_len = 1;
            }
            let take = (MAX_LINE - self.line_len).min(rest.len());
            let (head, tail) = rest.split_at(take);
            self.text.push_str(head);
            self.line_len += head.len();
            rest = tail;
        }
    }

    fn text(&self) -> &str {
        &self.text
    }

    fn into_text(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_keeps_lines_short() {
        let mut f = Folder::new("DKIM-Signature:");
        for _ in 0..20 {
            f.token(" ", "abcdefghij;");
        }
        f.token_with_room(" ", "b=", 8);
        f.fill(&"Z".repeat(400));
        let text = f.into_text();
        for line in text.split("\r\n") {
            assert!(line.len() <= MAX_LINE, "{line:?}");
        }
        let continuation: Vec<&str> = text.split("\r\n").skip(1).collect();
        assert!(!continuation.is_empty());
        assert!(continuation.iter().all(|l| l.starts_with(' ')));
        assert_eq!(text.matches('Z').count(), 400);
        assert_eq!(text.replace("\r\n ", "").matches("abcdefghij;").count(), 20);
    }

    #[test]
    fn header_names_lists_present_instances_and_oversigns_from() {
        let msg = b"Received: x\r\nTo: a@x.test\r\nFrom: f@x.test\r\nTo: b@x.test\r\nX-Custom: 1\r\nSubject: s\r\n\r\n";
        let parsed = parse(msg);
        assert_eq!(
            header_names(&parsed.headers),
            vec!["from", "to", "to", "subject", "from"]
        );
    }
}
