//! Turns an injection request into messages: raw RFC 5322 content, or parts built with
//! `mail-builder` (headers are encoded by the library, never concatenated by hand), with
//! `{{ name }}` substitution per recipient.

use crate::inject::Injection;
use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::time::Duration;

/// `POST /api/v1/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InjectRequest {
    /// Envelope sender; defaults to the address in `content.from`.
    #[serde(default)]
    pub mail_from: Option<String>,
    pub recipients: Vec<RecipientSpec>,
    pub content: Content,
    /// Metadata for every recipient (e.g. `delivery_id`, `campaign_id`); echoed in events.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Substitution data for every recipient.
    #[serde(default)]
    pub substitution_data: Map<String, Value>,
    /// e.g. `"2d"`; capped by `delivery.max_validity`.
    #[serde(default, with = "humantime_serde")]
    pub validity: Option<Duration>,
    #[serde(default)]
    pub pool: Option<String>,
}

/// A recipient: an address, or an object with per-recipient data.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RecipientSpec {
    Address(String),
    Full {
        address: String,
        #[serde(default)]
        metadata: Map<String, Value>,
        #[serde(default)]
        substitution_data: Map<String, Value>,
    },
}

/// The message: `raw`, or parts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    #[serde(default)]
    pub raw: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub html: Option<String>,
    #[serde(default)]
    pub headers: Map<String, Value>,
}

const MAX_RECIPIENTS: usize = 10_000;

type Data = Map<String, Value>;

impl RecipientSpec {
    fn parts(&self) -> (&str, Option<&Data>, Option<&Data>) {
        match self {
            RecipientSpec::Address(a) => (a, None, None),
            RecipientSpec::Full {
                address,
                metadata,
                substitution_data,
            } => (address, Some(metadata), Some(substitution_data)),
        }
    }
}

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

fn build_parts(c: &Content, to: &str, data: &Map<String, Value>) -> Result<Vec<u8>, String> {
    let from = c
        .from
        .as_deref()
        .ok_or("content.from is required when content.raw is not given")?;
    let (from_name, from_addr) = parse_mailbox(from);
    let mut b = MessageBuilder::new()
        .from(Address::new_address(from_name, from_addr))
        .to(Address::new_address(None::<String>, to.to_string()))
        .subject(substitute(c.subject.as_deref().unwrap_or(""), data, false));
    if let Some(r) = &c.reply_to {
        let (n, a) = parse_mailbox(r);
        b = b.reply_to(Address::new_address(n, a));
    }
    for (name, value) in &c.headers {
        let v = value
            .as_str()
            .ok_or_else(|| format!("header {name:?} must be a string"))?;
        if name.is_empty() || !name.bytes().all(|ch| ch.is_ascii_graphic() && ch != b':') {
            return Err(format!("invalid header name {name:?}"));
        }
        b = b.header(
            name.clone(),
            mail_builder::headers::text::Text::new(substitute(v, data, false)),
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

/// Renders raw content with CRLF line ends. In the header section, line breaks inside substituted
/// values become spaces: a value must never add a header or end the header section.
fn render_raw(raw: &str, data: &Data) -> String {
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
    out.replace("\r\n", "\n").replace('\n', "\r\n")
}

/// Every address must be valid before anything is spooled, so a request is accepted whole or
/// refused whole (a partly accepted request that reports an error would be retried and duplicated).
fn validate(injections: &[Injection]) -> Result<(), String> {
    for inj in injections {
        if !inj.sender.is_empty() && !crate::inject::valid_address(&inj.sender) {
            return Err(format!("invalid sender address {:?}", inj.sender));
        }
        if let Some(bad) = inj
            .recipients
            .iter()
            .find(|r| !crate::inject::valid_address(r))
        {
            return Err(format!("invalid recipient address {bad:?}"));
        }
    }
    Ok(())
}

/// Raw content with no per-recipient data is stored once for all recipients; everything else is
/// rendered per recipient.
pub(crate) fn injections(req: InjectRequest) -> Result<Vec<Injection>, String> {
    let all = render(req)?;
    validate(&all)?;
    Ok(all)
}

fn render(req: InjectRequest) -> Result<Vec<Injection>, String> {
    if req.recipients.is_empty() {
        return Err("recipients is empty".into());
    }
    if req.recipients.len() > MAX_RECIPIENTS {
        return Err(format!("at most {MAX_RECIPIENTS} recipients per request"));
    }
    let sender = match (&req.mail_from, &req.content.from) {
        (Some(s), _) => s.clone(),
        (None, Some(f)) => parse_mailbox(f).1,
        (None, None) => return Err("mail_from or content.from is required".into()),
    };
    let personal = req
        .recipients
        .iter()
        .any(|r| matches!(r, RecipientSpec::Full { .. }));
    let base = Injection {
        sender,
        metadata: req.metadata.clone(),
        validity: req.validity,
        pool: req.pool.clone(),
        ..Injection::default()
    };
    if let (Some(raw), false) = (&req.content.raw, personal) {
        let body = render_raw(raw, &req.substitution_data);
        let recipients = req
            .recipients
            .iter()
            .map(|r| r.parts().0.to_string())
            .collect();
        return Ok(vec![Injection {
            recipients,
            body: body.into_bytes(),
            ..base
        }]);
    }
    req.recipients
        .iter()
        .map(|r| {
            let (addr, meta, subst) = r.parts();
            let mut data = req.substitution_data.clone();
            data.extend(subst.cloned().unwrap_or_default());
            let mut metadata = base.metadata.clone();
            metadata.extend(meta.cloned().unwrap_or_default());
            let body = match &req.content.raw {
                Some(raw) => render_raw(raw, &data).into_bytes(),
                None => build_parts(&req.content, addr, &data)?,
            };
            Ok(Injection {
                recipients: vec![addr.to_string()],
                body,
                metadata,
                ..base.clone()
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> InjectRequest {
        serde_json::from_value(v).unwrap()
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
        let r = req(
            json!({"mail_from": "s@a.test", "recipients": ["x@b.test", "y@c.test"],
            "content": {"raw": "Subject: hi\n\nbody\n"}}),
        );
        let inj = injections(r).unwrap();
        assert_eq!(inj.len(), 1);
        assert_eq!(inj[0].recipients, vec!["x@b.test", "y@c.test"]);
        assert_eq!(inj[0].body, b"Subject: hi\r\n\r\nbody\r\n");
    }

    #[test]
    fn parts_are_rendered_per_recipient_with_metadata_merged() {
        let r = req(json!({"recipients": [
                {"address": "x@b.test", "metadata": {"user": 1}, "substitution_data": {"first": "Xavier"}},
                "y@c.test"],
            "content": {"from": "News <news@a.test>", "subject": "Hola {{first}} ñ", "text": "Hi {{first}}"},
            "metadata": {"campaign_id": "c1"}}));
        let inj = injections(r).unwrap();
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
        let r = req(
            json!({"mail_from": "s@a.test", "recipients": [{"address": "x@b.test",
                "substitution_data": {"name": "x\r\nBcc: victim@c.test\r\n\r\nowned"}}],
            "content": {"raw": "Subject: Hi {{name}}\n\nDear {{name}}\n"}}),
        );
        let body = String::from_utf8(injections(r).unwrap().remove(0).body).unwrap();
        let (head, rest) = body.split_once("\r\n\r\n").unwrap();
        assert_eq!(head, "Subject: Hi x  Bcc: victim@c.test    owned");
        assert!(
            rest.starts_with("Dear x\r\nBcc"),
            "the body keeps its line breaks: {rest}"
        );
    }

    #[test]
    fn one_bad_address_refuses_the_whole_request() {
        let r = req(json!({"mail_from": "s@a.test",
            "recipients": [{"address": "ok@b.test", "metadata": {}}, "not-an-address"],
            "content": {"raw": "Subject: x\n\nbody\n"}}));
        let e = injections(r).unwrap_err();
        assert!(e.contains("not-an-address"), "{e}");
    }

    #[test]
    fn bad_requests_are_explained() {
        let e = injections(req(
            json!({"recipients": [], "content": {"raw": "x"}, "mail_from": "a@b"}),
        ))
        .unwrap_err();
        assert!(e.contains("empty"));
        let e = injections(req(
            json!({"recipients": ["a@b.test"], "content": {"text": "x"}}),
        ))
        .unwrap_err();
        assert!(e.contains("from"), "{e}");
        let e = injections(req(json!({"recipients": ["a@b.test"], "content": {"from": "a@b.test", "headers": {"Bad Name": "v"}, "text": "x"}})))
            .unwrap_err();
        assert!(e.contains("header"), "{e}");
        assert!(
            serde_json::from_value::<InjectRequest>(
                json!({"recipients": [], "content": {}, "bogus": 1})
            )
            .is_err()
        );
    }
}
