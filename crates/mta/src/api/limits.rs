//! What one injection request may carry. A JSON map of many small keys costs ten times its text
//! in memory, and metadata is repeated in every event of every recipient, so maps are not parsed
//! while the request is read: they stay raw text, borrowed from the body, and are parsed one at a
//! time only when their text fits the budget. The recipient list stops growing at its maximum.

use crate::config::HttpConfig;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

pub(crate) type Data = Map<String, Value>;

/// Most recipients per request.
pub(crate) const MAX_RECIPIENTS: usize = 10_000;
/// `content.headers`: at most this many fields and bytes of JSON.
pub(crate) const HEADERS: Budget = Budget {
    keys: 100,
    bytes: 64 * 1024,
};
/// A map's text may be this many times its byte budget before it is refused unparsed: compact
/// JSON is what counts, and indentation should not make a fitting map fail.
const TEXT_SLACK: usize = 4;

/// Keys and bytes (of compact JSON) one map may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    pub keys: usize,
    pub bytes: usize,
}

/// What the API accepts besides well-formed JSON: the `[http]` budgets and the configured pools.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    pub metadata: Budget,
    pub substitution: Budget,
    pub request_data_bytes: usize,
    pub rendered_bytes: usize,
    pub pools: BTreeSet<String>,
}

impl Policy {
    pub fn new(http: &HttpConfig, pools: impl IntoIterator<Item = String>) -> Self {
        Self {
            metadata: Budget {
                keys: http.max_metadata_keys,
                bytes: http.max_metadata_bytes,
            },
            substitution: Budget {
                keys: http.max_substitution_keys,
                bytes: http.max_substitution_bytes,
            },
            request_data_bytes: http.max_request_data_bytes,
            rendered_bytes: http.max_rendered_bytes,
            pools: pools.into_iter().collect(),
        }
    }
}

/// Counts bytes written, to size JSON without building it.
struct Count(usize);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Size of `map` as compact JSON.
pub(crate) fn json_size(map: &Data) -> usize {
    let mut c = Count(0);
    // Writing to a counter cannot fail, and a map of JSON values always serializes.
    let _ = serde_json::to_writer(&mut c, map);
    c.0
}

/// Checks `map` against `budget`; returns its size. `field` names it in the error.
pub(crate) fn check(map: &Data, field: &str, budget: Budget) -> Result<usize, String> {
    if map.len() > budget.keys {
        return Err(format!(
            "{field} has {} keys, at most {} allowed",
            map.len(),
            budget.keys
        ));
    }
    let size = json_size(map);
    if size > budget.bytes {
        return Err(format!(
            "{field} is {size} bytes of JSON, at most {} allowed",
            budget.bytes
        ));
    }
    Ok(size)
}

/// Parses a JSON object kept as raw text, within `budget`; returns it and its compact size.
/// Absent (or `null`) is empty.
pub(crate) fn object(
    raw: Option<&RawValue>,
    field: &str,
    budget: Budget,
) -> Result<(Data, usize), String> {
    let Some(raw) = raw else {
        return Ok((Data::new(), 2));
    };
    let text = raw.get();
    let most = budget.bytes.saturating_mul(TEXT_SLACK).saturating_add(64);
    if text.len() > most {
        return Err(format!(
            "{field} is {} bytes of JSON, at most {} allowed",
            text.len(),
            budget.bytes
        ));
    }
    let map = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        Ok(Value::Null) => Data::new(),
        Ok(_) => return Err(format!("{field} must be a JSON object")),
        Err(e) => return Err(format!("{field}: {e}")),
    };
    let size = check(&map, field, budget)?;
    Ok((map, size))
}

/// A recipient: an address, or an object with per-recipient data.
// The data is kept raw (see the module). `untagged` only tells the schema the two forms the
// visitor below accepts (there is no serde derive).
#[derive(Debug, utoipa::ToSchema)]
#[serde(untagged)]
pub enum RecipientSpec<'a> {
    #[schema(example = "a@example.net")]
    Address(String),
    Full {
        address: String,
        /// Merged over the request's `metadata`; echoed in events.
        #[schema(value_type = Option<Object>)]
        metadata: Option<&'a RawValue>,
        /// Merged over the request's `substitution_data`.
        #[schema(value_type = Option<Object>)]
        substitution_data: Option<&'a RawValue>,
        /// 1–256 bytes; a key seen within `delivery.idempotency_window` spools nothing again.
        #[schema(min_length = 1, max_length = 256)]
        idempotency_key: Option<String>,
    },
}

impl RecipientSpec<'_> {
    pub fn address(&self) -> &str {
        match self {
            RecipientSpec::Address(a) | RecipientSpec::Full { address: a, .. } => a,
        }
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        match self {
            RecipientSpec::Full {
                idempotency_key, ..
            } => idempotency_key.as_deref(),
            RecipientSpec::Address(_) => None,
        }
    }

    /// Whether the recipient brings data of its own (so its message is rendered apart).
    pub fn has_data(&self) -> bool {
        matches!(
            self,
            RecipientSpec::Full { metadata, substitution_data, .. }
                if metadata.is_some() || substitution_data.is_some()
        )
    }
}

struct RecipientVisitor;

impl<'de> Visitor<'de> for RecipientVisitor {
    type Value = RecipientSpec<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(
            "an address or {\"address\", \"metadata\", \"substitution_data\", \"idempotency_key\"}",
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RecipientSpec::Address(v.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut address, mut metadata, mut substitution_data) = (None, None, None);
        let mut idempotency_key = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "address" => address = Some(map.next_value::<String>()?),
                "metadata" => metadata = map.next_value::<Option<&'de RawValue>>()?,
                "substitution_data" => {
                    substitution_data = map.next_value::<Option<&'de RawValue>>()?;
                }
                "idempotency_key" => idempotency_key = map.next_value::<Option<String>>()?,
                // Unknown keys were always ignored here; they are skipped without being kept.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let address = address.ok_or_else(|| de::Error::missing_field("address"))?;
        Ok(RecipientSpec::Full {
            address,
            metadata,
            substitution_data,
            idempotency_key,
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RecipientSpec<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RecipientVisitor)
    }
}

/// The recipient list: at most [`MAX_RECIPIENTS`] kept, the rest only counted.
#[derive(Debug, Default)]
pub struct Recipients<'a> {
    pub list: Vec<RecipientSpec<'a>>,
    /// Entries in the request, kept or not.
    pub count: usize,
}

struct RecipientsVisitor;

impl<'de> Visitor<'de> for RecipientsVisitor {
    type Value = Recipients<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of recipients")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Recipients::default();
        while out.count < MAX_RECIPIENTS {
            match seq.next_element::<RecipientSpec<'de>>()? {
                Some(r) => out.list.push(r),
                None => return Ok(out),
            }
            out.count += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            out.count += 1;
        }
        Ok(out)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Recipients<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_seq(RecipientsVisitor)
    }
}

/// What a request has used of the per-request budgets so far.
pub(crate) struct Spent<'p> {
    policy: &'p Policy,
    data: usize,
    rendered: usize,
}

impl<'p> Spent<'p> {
    pub fn new(policy: &'p Policy) -> Self {
        Self {
            policy,
            data: 0,
            rendered: 0,
        }
    }

    /// One more message: `data` bytes of metadata and substitution data, `body` bytes rendered.
    pub fn add(&mut self, data: usize, body: usize) -> Result<(), String> {
        self.data = self.data.saturating_add(data);
        self.rendered = self.rendered.saturating_add(body);
        if self.data > self.policy.request_data_bytes {
            return Err(format!(
                "metadata and substitution_data of all recipients exceed {} bytes per request; split the request",
                self.policy.request_data_bytes
            ));
        }
        if self.rendered > self.policy.rendered_bytes {
            return Err(format!(
                "the request renders to more than {} bytes of messages; split the request",
                self.policy.rendered_bytes
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budget = Budget { keys: 2, bytes: 20 };

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn maps_are_measured_as_compact_json() {
        let r = raw("{ \"a\" : 1 ,\n  \"b\": \"xy\" }");
        let (m, size) = object(Some(&r), "metadata", B).unwrap();
        assert_eq!(size, r#"{"a":1,"b":"xy"}"#.len());
        assert_eq!(json_size(&m), size);
        let e = object(Some(&raw(r#"{"a":1,"b":2,"c":3}"#)), "metadata", B).unwrap_err();
        assert_eq!(e, "metadata has 3 keys, at most 2 allowed");
        let e = object(Some(&raw(r#"{"a":"0123456789abcdef"}"#)), "metadata", B).unwrap_err();
        assert_eq!(e, "metadata is 24 bytes of JSON, at most 20 allowed");
        assert!(object(Some(&raw("[1]")), "metadata", B).is_err());
        assert_eq!(
            object(Some(&raw("null")), "metadata", B).unwrap().0.len(),
            0
        );
    }

    #[test]
    fn oversized_text_is_refused_unparsed() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(200));
        let e = object(Some(&raw(&big)), "substitution_data", B).unwrap_err();
        assert!(e.starts_with("substitution_data is 208 bytes"), "{e}");
    }

    #[test]
    fn recipient_lists_stop_growing_at_the_maximum() {
        let many = format!(
            "[{}\"last@x.test\"]",
            "\"a@x.test\",".repeat(MAX_RECIPIENTS + 5)
        );
        let r: Recipients = serde_json::from_str(&many).unwrap();
        assert_eq!(
            (r.list.len(), r.count),
            (MAX_RECIPIENTS, MAX_RECIPIENTS + 6)
        );
        let r: Recipients = serde_json::from_str(
            r#"["a@x.test", {"address": "b@x.test", "metadata": {"k": 1}, "other": [1]}]"#,
        )
        .unwrap();
        assert_eq!(r.list[1].address(), "b@x.test");
        let RecipientSpec::Full { metadata, .. } = &r.list[1] else {
            panic!("not full")
        };
        assert_eq!(metadata.map(RawValue::get), Some(r#"{"k": 1}"#));
        assert!(serde_json::from_str::<Recipients>(r#"[{"metadata": {}}]"#).is_err());
    }
}
