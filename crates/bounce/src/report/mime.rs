//! Walks the MIME tree once and keeps what the report readers need: the top headers, the text
//! the report shows a human, the machine-readable report parts and the returned original's
//! headers. mail-parser returns `message/delivery-status` and `message/feedback-report` as
//! opaque parts; their bodies are header-like blocks read by [`super::fields`].

use super::fields::{self, Fields};
use super::{MAX_PARTS, TOKEN_HEADER};
use mail_parser::{HeaderValue, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use std::borrow::Cow;
use std::sync::LazyLock;

/// Human-readable text kept for the text readers; the explanation is at the top of a bounce.
const MAX_TEXT: usize = 256 * 1024;
/// Headers of the message itself, read directly from the raw bytes.
const MAX_TOP_HEADER_BYTES: usize = 256 * 1024;

/// What the readers look at.
#[derive(Debug, Default)]
pub(crate) struct Extracted {
    /// The message's own header fields.
    pub(crate) top: Fields,
    /// The decoded subject.
    pub(crate) subject: Option<String>,
    /// The From address (the auto-replier or the mailer daemon).
    pub(crate) from: Option<String>,
    /// `report-type` of a `multipart/report` found at any level of the report.
    pub(crate) report_type: Option<String>,
    /// Bodies of `message/delivery-status` (and RFC 6533 global) parts.
    pub(crate) delivery_status: Vec<String>,
    /// Body of the `message/feedback-report` part.
    pub(crate) feedback_report: Option<String>,
    /// Text (and tag-stripped HTML) parts outside the returned original, concatenated.
    pub(crate) text: String,
    /// Headers of the returned original (`message/rfc822` or `text/rfc822-headers`).
    pub(crate) original: Option<Fields>,
    /// The raw headers, for the token search.
    pub(crate) raw_headers: String,
}

/// Parses the message. `None` when the MIME parser gives up (or panics: it is a safety net for a
/// third-party parser, the readers themselves do not panic).
pub(crate) fn extract(raw: &[u8]) -> Option<Extracted> {
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw)).ok()??;
    let head_end = header_end(raw);
    let raw_headers = String::from_utf8_lossy(raw.get(..head_end).unwrap_or(raw)).into_owned();
    let mut out = Extracted {
        top: fields::parse_header_block(&raw_headers),
        subject: parsed.subject().map(str::to_string),
        from: parsed
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .and_then(fields::clean_address),
        raw_headers,
        ..Default::default()
    };
    walk(&parsed, &mut out);
    Some(out)
}

fn header_end(raw: &[u8]) -> usize {
    let limit = raw.len().min(MAX_TOP_HEADER_BYTES);
    let head = raw.get(..limit).unwrap_or(raw);
    head.windows(2)
        .position(|w| w == b"\n\n")
        .into_iter()
        .chain(head.windows(4).position(|w| w == b"\r\n\r\n"))
        .min()
        .unwrap_or(limit)
}

fn walk(msg: &Message<'_>, out: &mut Extracted) {
    for part in msg.parts.iter().take(MAX_PARTS) {
        let (ctype, subtype) = part
            .content_type()
            .map(|ct| {
                (
                    ct.ctype().to_ascii_lowercase(),
                    ct.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            })
            .unwrap_or_else(|| ("text".into(), "plain".into()));
        if ctype == "multipart" && subtype == "report" {
            let rt = part
                .content_type()
                .and_then(|ct| ct.attribute("report-type"));
            if out.report_type.is_none() {
                out.report_type = rt.map(str::to_ascii_lowercase);
            }
        }
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                if out.delivery_status.len() < 4 {
                    out.delivery_status.push(body_text(part).into_owned());
                }
            }
            ("message", "feedback-report") => {
                out.feedback_report
                    .get_or_insert_with(|| body_text(part).into_owned());
            }
            ("text" | "message", "rfc822-headers") => {
                if out.original.is_none() {
                    out.original = Some(fields::parse_header_block(&body_text(part)));
                }
            }
            _ => read_content(part, out),
        }
    }
}

fn read_content(part: &MessagePart<'_>, out: &mut Extracted) {
    match &part.body {
        PartType::Message(inner) if out.original.is_none() => {
            out.original = Some(nested_headers(inner));
        }
        PartType::Text(t) => push_text(out, t),
        PartType::Html(h) => push_text(out, &strip_tags(h)),
        _ => {}
    }
}

/// The returned original's header fields, from mail-parser's view of the nested message.
fn nested_headers(inner: &Message<'_>) -> Fields {
    let mut f = Fields::default();
    let Some(root) = inner.parts.first() else {
        return f;
    };
    for h in root.headers.iter().take(200) {
        let value = match &h.value {
            HeaderValue::Text(t) => Some(t.to_string()),
            HeaderValue::TextList(l) => l.first().map(|t| t.to_string()),
            HeaderValue::Address(a) => a.first().and_then(|a| a.address()).map(str::to_string),
            // Only the `for` clause is read from a Received header (the original's recipient).
            HeaderValue::Received(r) => r
                .for_
                .as_deref()
                .map(|f| format!("from original for <{f}>")),
            _ => None,
        };
        if let Some(v) = value {
            f.0.push((h.name.as_str().to_string(), v));
        }
    }
    f
}

fn push_text(out: &mut Extracted, t: &str) {
    let room = MAX_TEXT.saturating_sub(out.text.len());
    if room == 0 {
        return;
    }
    let mut end = t.len().min(room);
    while !t.is_char_boundary(end) {
        end -= 1;
    }
    // Line-anchored patterns downstream expect bare LF.
    out.text
        .push_str(&t.get(..end).unwrap_or("").replace("\r\n", "\n"));
    out.text.push('\n');
}

fn body_text<'a>(part: &'a MessagePart<'_>) -> Cow<'a, str> {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => Cow::Borrowed(t.as_ref()),
        PartType::Binary(b) | PartType::InlineBinary(b) => {
            let b = b.get(..b.len().min(MAX_TEXT)).unwrap_or(b);
            String::from_utf8_lossy(b)
        }
        _ => Cow::Borrowed(""),
    }
}

/// Good enough to read an HTML-only bounce: drops tags, keeps line structure.
fn strip_tags(html: &str) -> String {
    static TAG: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(
            r"(?is)<(script|style)[^>]*>.*?</(script|style)>|<br\s*/?>|</p>|</div>|</tr>|<[^>]*>",
        )
        .ok()
    });
    let html = html.get(..html.len().min(MAX_TEXT)).unwrap_or(html);
    let Some(tag) = TAG.as_ref() else {
        return html.to_string();
    };
    let text = tag.replace_all(html, |c: &regex::Captures<'_>| {
        let t = c.get(0).map_or("", |m| m.as_str()).to_ascii_lowercase();
        if t.starts_with("<br")
            || t.starts_with("</p")
            || t.starts_with("</div")
            || t.starts_with("</tr")
        {
            "\n"
        } else {
            ""
        }
    });
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

impl Extracted {
    /// `multipart/report; report-type=delivery-status`, or a delivery-status part anywhere.
    pub(crate) fn is_delivery_report(&self) -> bool {
        matches!(
            self.report_type.as_deref(),
            Some("delivery-status" | "global-delivery-status")
        ) || !self.delivery_status.is_empty()
    }

    pub(crate) fn original_message_id(&self) -> Option<String> {
        let id = match self.original.as_ref() {
            Some(o) => o.get("Message-ID")?,
            None => message_id_in_text(&self.text)?,
        };
        let id = id
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .trim();
        (!id.is_empty() && id.len() <= 998).then(|| id.to_string())
    }

    /// The token from the original's header, else from a `b-<token>@` address in the report.
    pub(crate) fn token(&self) -> Option<String> {
        if let Some(t) = self.original.as_ref().and_then(|o| o.get(TOKEN_HEADER)) {
            return valid_token(t);
        }
        if let Some(t) = header_token_in_text(&self.text) {
            return Some(t);
        }
        [self.raw_headers.as_str(), self.text.as_str()]
            .into_iter()
            .chain(self.delivery_status.iter().map(String::as_str))
            .chain(self.feedback_report.as_deref())
            .find_map(return_path_token)
    }
}

fn valid_token(t: &str) -> Option<String> {
    let t = t.trim();
    let ok = !t.is_empty()
        && t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.=+".contains(&b));
    ok.then(|| t.to_string())
}

/// A returned original pasted as text (qmail, Exim, Yahoo): `X-Cartero-Token: …` on its own line.
fn header_token_in_text(text: &str) -> Option<String> {
    static RE: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(r"(?mi)^[ \t>]*X-Cartero-Token:[ \t]*([A-Za-z0-9_.=+-]{1,256})[ \t]*\r?$")
            .ok()
    });
    let re = RE.as_ref()?;
    re.captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| valid_token(m.as_str()))
}

/// A returned original pasted as text: its `Message-ID:` line. The report's own Message-ID is a
/// header, never part of the text, so any such line belongs to the original.
fn message_id_in_text(text: &str) -> Option<&str> {
    static RE: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(r"(?mi)^[ \t>]*Message-ID:[ \t]*(<[^<>\s]{1,900}>)").ok()
    });
    RE.as_ref()?.captures(text)?.get(1).map(|m| m.as_str())
}

fn return_path_token(text: &str) -> Option<String> {
    static RE: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
        regex::Regex::new(r"(?i)(?:^|[<\s:;,'(])b-([A-Za-z0-9_.=+-]{1,256})@[A-Za-z0-9.-]+").ok()
    });
    let re = RE.as_ref()?;
    re.captures(text)
        .and_then(|c| c.get(1))
        .and_then(|m| valid_token(m.as_str()))
}
