//! Turns an injection request into messages: raw RFC 5322 content, or parts built with
//! `mail-builder` (headers are encoded by the library, never concatenated by hand), with
//! `{{ name }}` substitution per recipient.

use super::limits::{
    self, Data, HEADERS, MAX_RECIPIENTS, Policy, RecipientSpec, Recipients, Spent,
};
use crate::inject::{Injection, valid_address};
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::time::Duration;

/// An injection (`POST /api/v1/messages`).
// Maps are kept as raw text borrowed from the body (see `limits`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectRequest<'a> {
    /// Envelope sender; defaults to the address in `content.from`.
    #[serde(default)]
    pub mail_from: Option<String>,
    /// At most 10,000.
    #[serde(borrow)]
    #[schema(value_type = Vec<RecipientSpec>, min_items = 1, max_items = 10_000)]
    pub recipients: Recipients<'a>,
    #[serde(borrow)]
    pub content: Content<'a>,
    /// Metadata for every recipient (e.g. `delivery_id`, `campaign_id`); echoed in events.
    #[serde(default, borrow)]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<&'a RawValue>,
    /// Substitution data for every recipient.
    #[serde(default, borrow)]
    #[schema(value_type = Option<Object>)]
    pub substitution_data: Option<&'a RawValue>,
    /// e.g. `"2d"`; capped by `delivery.max_validity`.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "2d")]
    pub validity: Option<Duration>,
    /// Not to be sent after this time (RFC 3339), whatever `validity` says: for a message
    /// whose validity counts from an earlier moment. Past it, recipients whose idempotency
    /// key is known are answered as repeats; the request is otherwise refused with `410`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-12-04T10:00:00Z")]
    pub expires_at: Option<String>,
    /// A configured pool (`delivery.pools`); absent = `default`.
    #[serde(default)]
    pub pool: Option<String>,
}

/// The message: `raw`, or parts (`from` required, `text` and/or `html`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Content<'a> {
    /// A whole RFC 5322 message; lines at most 998 bytes.
    #[serde(default)]
    pub raw: Option<String>,
    #[serde(default)]
    #[schema(example = "News <news@example.com>")]
    pub from: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// `{{ key }}` is replaced from the substitution data.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// Substituted values are HTML-escaped.
    #[serde(default)]
    pub html: Option<String>,
    /// Extra header fields (string values on one line), at most 100; not one the content sets
    /// itself (`From`, `To`, `Subject`, `Content-*`...).
    #[serde(default, borrow)]
    #[schema(value_type = Option<HashMap<String, String>>)]
    pub headers: Option<&'a RawValue>,
}

/// Header fields the message's own fields or the builder set: a second one from `headers`
/// would make the message ambiguous (two From: fields, RFC 5322 §3.6).
const STRUCTURAL: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "mime-version",
];
/// RFC 5322 §2.1.1: at most 998 characters per line, CRLF excluded.
const MAX_LINE: usize = 998;

/// Splits `Name <addr>` into its parts.
fn parse_mailbox(s: &str) -> (Option<String>, String) {
    match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => {
            let name = s[..a].trim().trim_matches('"').trim();
            let name = (!name.is_empty()).then(|| name.to_string());
            (name, s[a + 1..b].trim().to_string())
        }
        _ => (None, s.trim().to_string()),
    }
}

/// Replaces `{{ key }}` with values from `data`; unknown keys become empty (documented).
pub(crate) fn substitute(template: &str, data: &Map<String, Value>, escape_html: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let key = after[..end].trim();
        let value = match data.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        };
        if escape_html {
            out.push_str(
                &value
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
                    .replace('"', "&quot;"),
            );
        } else {
            out.push_str(&value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// `Name <addr>` from `content.from` or `content.reply_to`: one line, a valid address.
fn mailbox(field: &str, value: &str) -> Result<(Option<String>, String), String> {
    if value.contains(char::is_control) {
        return Err(format!(
            "{field} must be one line: it contains a control character (CR, LF, ...)"
        ));
    }
    let (name, addr) = parse_mailbox(value);
    if !valid_address(&addr) {
        return Err(format!("{field}: invalid address {addr:?}"));
    }
    Ok((name, addr))
}

/// `content.headers`, checked: string values on one line, and no field the builder sets itself.
fn extra_headers(raw: Option<&RawValue>) -> Result<Vec<(String, String)>, String> {
    let (map, _) = limits::object(raw, "content.headers", HEADERS)?;
    map.into_iter()
        .map(|(name, value)| {
            let Value::String(v) = value else {
                return Err(format!("content.headers: header {name:?} must be a string"));
            };
            if name.is_empty() || !name.bytes().all(|ch| ch.is_ascii_graphic() && ch != b':') {
                return Err(format!("content.headers: invalid header name {name:?}"));
            }
            let lower = name.to_ascii_lowercase();
            if STRUCTURAL.contains(&lower.as_str()) || lower.starts_with("content-") {
                return Err(format!(
                    "content.headers: header {name:?} is set from the content itself \
                     (from, reply_to, subject, the recipient, the body) and cannot be added"
                ));
            }
            if v.contains(['\r', '\n']) {
                return Err(format!(
                    "content.headers: header {name:?} must be one line: its value contains CR or LF"
                ));
            }
            Ok((name, v))
        })
        .collect()
}

/// The parts of a request shared by all its recipients, checked once.
struct Shared<'r> {
    content: &'r Content<'r>,
    from: Option<(Option<String>, String)>,
    reply_to: Option<(Option<String>, String)>,
    headers: Vec<(String, String)>,
    metadata: Data,
    substitution: Data,
    /// Compact JSON size of both maps.
    data_bytes: usize,
}

impl<'r> Shared<'r> {
    fn new(req: &'r InjectRequest<'r>, policy: &Policy) -> Result<Self, String> {
        let c = &req.content;
        let from = c
            .from
            .as_deref()
            .map(|f| mailbox("content.from", f))
            .transpose()?;
        let reply_to = c
            .reply_to
            .as_deref()
            .map(|r| mailbox("content.reply_to", r))
            .transpose()?;
        let (metadata, m) = limits::object(req.metadata, "metadata", policy.metadata)?;
        let (substitution, s) = limits::object(
            req.substitution_data,
            "substitution_data",
            policy.substitution,
        )?;
        Ok(Self {
            content: c,
            from,
            reply_to,
            headers: extra_headers(c.headers)?,
            metadata,
            substitution,
            data_bytes: m + s,
        })
    }

    /// Recipient `i`'s metadata and substitution data (the request's, overridden by its own),
    /// within the per-recipient budgets, and their size.
    fn merged(
        &self,
        i: usize,
        r: &RecipientSpec<'_>,
        policy: &Policy,
    ) -> Result<(Data, Data, usize), String> {
        let RecipientSpec::Full {
            metadata,
            substitution_data,
            ..
        } = r
        else {
            return Ok((
                self.metadata.clone(),
                self.substitution.clone(),
                self.data_bytes,
            ));
        };
        let merge = |base: &Data, raw: Option<&RawValue>, field: &str, budget| {
            let (own, _) = limits::object(raw, &format!("recipients[{i}].{field}"), budget)?;
            let mut all = base.clone();
            all.extend(own);
            let merged = format!("recipients[{i}].{field} merged with the request's {field}");
            let size = limits::check(&all, &merged, budget)?;
            Ok::<_, String>((all, size))
        };
        let (meta, m) = merge(&self.metadata, *metadata, "metadata", policy.metadata)?;
        let (subst, s) = merge(
            &self.substitution,
            *substitution_data,
            "substitution_data",
            policy.substitution,
        )?;
        Ok((meta, subst, m + s))
    }

    fn build_parts(&self, to: &str, data: &Data) -> Result<Vec<u8>, String> {
        let c = self.content;
        let (from_name, from_addr) = self
            .from
            .clone()
            .ok_or("content.from is required when content.raw is not given")?;
        let mut b = MessageBuilder::new()
            .from(Address::new_address(from_name, from_addr))
            .to(Address::new_address(None::<String>, to.to_string()))
            .subject(substitute(c.subject.as_deref().unwrap_or(""), data, false));
        if let Some((n, a)) = self.reply_to.clone() {
            b = b.reply_to(Address::new_address(n, a));
        }
        for (name, value) in &self.headers {
            b = b.header(
                name.clone(),
                mail_builder::headers::text::Text::new(substitute(value, data, false)),
            );
        }
        if c.text.is_none() && c.html.is_none() {
            return Err("content needs raw, text or html".into());
        }
        if let Some(t) = &c.text {
            b = b.text_body(substitute(t, data, false));
        }
        if let Some(h) = &c.html {
            b = b.html_body(substitute(h, data, true));
        }
        b.write_to_vec()
            .map_err(|e| format!("building the message: {e}"))
    }
}

/// Renders raw content with CRLF line ends. In the header section, line breaks inside substituted
/// values become spaces: a value must never add a header or end the header section. A line over
/// 998 bytes is refused rather than relayed (receivers truncate or reject it).
fn render_raw(raw: &str, data: &Data) -> Result<Vec<u8>, String> {
    let split = raw
        .find("\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| raw.find("\n\n").map(|i| i + 2))
        .unwrap_or(raw.len());
    let (head, body) = raw.split_at(split);
    let one_line: Data = data
        .iter()
        .map(|(k, v)| match v {
            Value::String(t) => (k.clone(), Value::String(t.replace(['\r', '\n'], " "))),
            other => (k.clone(), other.clone()),
        })
        .collect();
    let mut out = substitute(head, &one_line, false);
    out.push_str(&substitute(body, data, false));
    let out = out.replace("\r\n", "\n").replace('\n', "\r\n");
    if let Some((n, line)) = out
        .split("\r\n")
        .enumerate()
        .find(|(_, l)| l.len() > MAX_LINE)
    {
        return Err(format!(
            "content.raw line {} is {} bytes long (as rendered); RFC 5322 §2.1.1 allows at most \
             {MAX_LINE}: fold long header fields and encode long body lines (quoted-printable)",
            n + 1,
            line.len()
        ));
    }
    Ok(out.into_bytes())
}

/// Every address must be valid before anything is spooled, so a request is accepted whole or
/// refused whole (a partly accepted request that reports an error would be retried and duplicated).
fn validate(injections: &[Injection]) -> Result<(), String> {
    for inj in injections {
        if !inj.sender.is_empty() && !valid_address(&inj.sender) {
            return Err(format!("invalid sender address {:?}", inj.sender));
        }
        if let Some(bad) = inj.recipients.iter().find(|r| !valid_address(r)) {
            return Err(format!("invalid recipient address {bad:?}"));
        }
    }
    Ok(())
}

/// Raw content with no per-recipient data is stored once for all recipients; everything else is
/// rendered per recipient. Nothing is spooled here: any error refuses the whole request.
pub(crate) fn injections(
    req: InjectRequest<'_>,
    policy: &Policy,
) -> Result<Vec<Injection>, String> {
    let all = render(&req, policy)?;
    validate(&all)?;
    Ok(all)
}

fn render(req: &InjectRequest<'_>, policy: &Policy) -> Result<Vec<Injection>, String> {
    let count = req.recipients.count;
    if count == 0 {
        return Err("recipients is empty".into());
    }
    if count > MAX_RECIPIENTS {
        return Err(format!(
            "at most {MAX_RECIPIENTS} recipients per request, got {count}"
        ));
    }
    if let Some(p) = req.pool.as_deref().filter(|p| !policy.pools.contains(*p)) {
        let known: Vec<&String> = policy.pools.iter().collect();
        return Err(format!("unknown pool {p:?}; configured pools: {known:?}"));
    }
    let shared = Shared::new(req, policy)?;
    let sender = match (&req.mail_from, &shared.from) {
        (Some(s), _) => s.clone(),
        (None, Some((_, addr))) => addr.clone(),
        (None, None) => return Err("mail_from or content.from is required".into()),
    };
    let list = &req.recipients.list;
    // A key alone does not make a message personal: it is kept per recipient either way.
    let personal = list.iter().any(RecipientSpec::has_data);
    let keys = |rs: &mut dyn Iterator<Item = &RecipientSpec<'_>>| -> Vec<Option<String>> {
        let keys: Vec<Option<String>> = rs
            .map(|r| r.idempotency_key().map(str::to_string))
            .collect();
        match keys.iter().any(Option::is_some) {
            true => keys,
            false => Vec::new(),
        }
    };
    let expires_at = req.expires_at.as_deref().map(rfc3339_ms).transpose()?;
    let mut spent = Spent::new(policy);
    let base = Injection {
        sender,
        validity: req.validity,
        expires_at,
        pool: req.pool.clone(),
        ..Injection::default()
    };
    if let (Some(raw), false) = (&req.content.raw, personal) {
        let body = render_raw(raw, &shared.substitution)?;
        spent.add(shared.data_bytes, body.len())?;
        return Ok(vec![Injection {
            recipients: list.iter().map(|r| r.address().to_string()).collect(),
            idempotency_keys: keys(&mut list.iter()),
            body,
            metadata: shared.metadata,
            ..base
        }]);
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, r) in list.iter().enumerate() {
        let (metadata, data, bytes) = shared.merged(i, r, policy)?;
        let body = match &req.content.raw {
            Some(raw) => render_raw(raw, &data)?,
            None => shared.build_parts(r.address(), &data)?,
        };
        spent.add(bytes, body.len())?;
        out.push(Injection {
            recipients: vec![r.address().to_string()],
            idempotency_keys: keys(&mut std::iter::once(r)),
            body,
            metadata,
            ..base.clone()
        });
    }
    Ok(out)
}

/// `expires_at` as ms since the epoch; a time before 1970 is refused with the rest.
fn rfc3339_ms(text: &str) -> Result<u64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
        .ok_or_else(|| format!("expires_at: {text:?} is not an RFC 3339 time after 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Parses `v` as a request body and renders it under the default `[http]` budgets.
    fn injections_of(v: Value) -> Result<Vec<Injection>, String> {
        let text = v.to_string();
        let req: InjectRequest = serde_json::from_str(&text).unwrap();
        let policy = Policy::new(
            &crate::config::HttpConfig::default(),
            ["default".to_string()],
        );
        injections(req, &policy)
    }

    #[test]
    fn substitution_replaces_known_keys_escapes_html_and_blanks_unknown() {
        let data = json!({"name": "<Ana>", "n": 3})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            substitute("Hi {{ name }} #{{n}} {{missing}}!", &data, false),
            "Hi <Ana> #3 !"
        );
        assert_eq!(
            substitute("<b>{{name}}</b>", &data, true),
            "<b>&lt;Ana&gt;</b>"
        );
        assert_eq!(substitute("broken {{ name", &data, false), "broken {{ name");
    }

    #[test]
    fn raw_content_for_many_plain_recipients_is_one_message() {
        let r = json!({"mail_from": "s@a.test", "recipients": ["x@b.test", "y@c.test"],
            "content": {"raw": "Subject: hi\n\nbody\n"}});
        let inj = injections_of(r).unwrap();
        assert_eq!(inj.len(), 1);
        assert_eq!(inj[0].recipients, vec!["x@b.test", "y@c.test"]);
        assert_eq!(inj[0].body, b"Subject: hi\r\n\r\nbody\r\n");
    }

    #[test]
    fn parts_are_rendered_per_recipient_with_metadata_merged() {
        let r = json!({"recipients": [
                {"address": "x@b.test", "metadata": {"user": 1}, "substitution_data": {"first": "Xavier"}},
                "y@c.test"],
            "content": {"from": "News <news@a.test>", "subject": "Hola {{first}} ñ", "text": "Hi {{first}}"},
            "metadata": {"campaign_id": "c1"}});
        let inj = injections_of(r).unwrap();
        assert_eq!(inj.len(), 2);
        assert_eq!(inj[0].sender, "news@a.test");
        assert_eq!(inj[0].metadata.get("user"), Some(&json!(1)));
        assert_eq!(inj[1].metadata.get("campaign_id"), Some(&json!("c1")));
        let m = String::from_utf8(inj[0].body.clone()).unwrap();
        assert!(
            m.contains("Subject: =?utf-8?") || m.contains("Subject: Hola"),
            "{m}"
        );
        assert!(m.contains("Hi Xavier"), "{m}");
        assert!(
            m.contains("To: <x@b.test>") || m.contains("To: x@b.test"),
            "{m}"
        );
    }

    #[test]
    fn substituted_values_cannot_add_headers_to_raw_content() {
        let r = json!({"mail_from": "s@a.test", "recipients": [{"address": "x@b.test",
                "substitution_data": {"name": "x\r\nBcc: victim@c.test\r\n\r\nowned"}}],
            "content": {"raw": "Subject: Hi {{name}}\n\nDear {{name}}\n"}});
        let body = String::from_utf8(injections_of(r).unwrap().remove(0).body).unwrap();
        let (head, rest) = body.split_once("\r\n\r\n").unwrap();
        assert_eq!(head, "Subject: Hi x  Bcc: victim@c.test    owned");
        assert!(
            rest.starts_with("Dear x\r\nBcc"),
            "the body keeps its line breaks: {rest}"
        );
    }

    #[test]
    fn one_bad_address_refuses_the_whole_request() {
        let r = json!({"mail_from": "s@a.test",
            "recipients": [{"address": "ok@b.test", "metadata": {}}, "not-an-address"],
            "content": {"raw": "Subject: x\n\nbody\n"}});
        let e = injections_of(r).unwrap_err();
        assert!(e.contains("not-an-address"), "{e}");
    }

    #[test]
    fn bad_requests_are_explained() {
        let e =
            injections_of(json!({"recipients": [], "content": {"raw": "x"}, "mail_from": "a@b"}))
                .unwrap_err();
        assert!(e.contains("empty"));
        let e = injections_of(json!({"recipients": ["a@b.test"], "content": {"text": "x"}}))
            .unwrap_err();
        assert!(e.contains("from"), "{e}");
        let e = injections_of(json!({"recipients": ["a@b.test"], "content": {"from": "a@b.test", "headers": {"Bad Name": "v"}, "text": "x"}}))
            .unwrap_err();
        assert!(e.contains("header"), "{e}");
        assert!(
            serde_json::from_str::<InjectRequest>(
                r#"{"recipients": [], "content": {}, "bogus": 1}"#
            )
            .is_err()
        );
    }
}
