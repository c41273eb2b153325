//! How model values become compact columns and back: small integers for enums, dictionary ids
//! for domains and failures, a JSON array for attempts (NULL when there are none).

use super::{Marks, StoreError, Tx, in_list};
use crate::model::{AddressStatus, Attempt, DeliveryState, FailureInfo, LogStatus};
use cartero_bounce::{BounceClass, FailureType, Reason};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// FNV-1a (64 bits) over the parts, each followed by a 0xFF byte (never found in UTF-8), so that
/// `("ab", "c")` and `("a", "bc")` differ. Stable across releases, unlike `std`'s hasher.
pub(crate) fn fnv1a(parts: &[&[u8]]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(std::iter::once(&0xFF)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h as i64
}

fn corrupt(column: &'static str, value: i64) -> StoreError {
    StoreError::Corrupt {
        column,
        value: value.to_string(),
    }
}

pub(crate) fn status_from(v: i64) -> Result<LogStatus, StoreError> {
    u8::try_from(v)
        .ok()
        .and_then(LogStatus::from_u8)
        .ok_or_else(|| corrupt("status", v))
}

pub(crate) fn reason_from(v: i64) -> Result<Reason, StoreError> {
    u8::try_from(v)
        .ok()
        .and_then(Reason::from_value)
        .ok_or_else(|| corrupt("reason", v))
}

pub(crate) fn ftype_code(t: FailureType) -> i64 {
    match t {
        FailureType::Hard => 1,
        FailureType::Soft => 2,
        FailureType::Ignored => 3,
    }
}

pub(crate) fn ftype_from(v: i64) -> Result<FailureType, StoreError> {
    Ok(match v {
        1 => FailureType::Hard,
        2 => FailureType::Soft,
        3 => FailureType::Ignored,
        _ => return Err(corrupt("ftype", v)),
    })
}

pub(crate) fn address_status_code(s: AddressStatus) -> i64 {
    match s {
        AddressStatus::Valid => 0,
        AddressStatus::WithErrors => 1,
        AddressStatus::Quarantine => 2,
        AddressStatus::Denylisted => 3,
    }
}

pub(crate) fn address_status_from(v: i64) -> Result<AddressStatus, StoreError> {
    Ok(match v {
        0 => AddressStatus::Valid,
        1 => AddressStatus::WithErrors,
        2 => AddressStatus::Quarantine,
        3 => AddressStatus::Denylisted,
        _ => return Err(corrupt("address status", v)),
    })
}

pub(crate) fn delivery_state_code(s: DeliveryState) -> i64 {
    match s {
        DeliveryState::Draft => 0,
        DeliveryState::Analyzed => 1,
        DeliveryState::Running => 2,
        DeliveryState::Paused => 3,
        DeliveryState::Finished => 4,
        DeliveryState::Stopped => 5,
    }
}

pub(crate) fn delivery_state_from(v: i64) -> Result<DeliveryState, StoreError> {
    Ok(match v {
        0 => DeliveryState::Draft,
        1 => DeliveryState::Analyzed,
        2 => DeliveryState::Running,
        3 => DeliveryState::Paused,
        4 => DeliveryState::Finished,
        5 => DeliveryState::Stopped,
        _ => return Err(corrupt("delivery state", v)),
    })
}

/// Millisecond times are stored as BIGINT; anything past i64 is clamped (year 292 million).
pub(crate) fn ms(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn ms_from(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The event types of the MTA, coded as one byte in the attempts blob (0 means spelled out).
const KINDS: [&str; 10] = [
    "reception",
    "delivery",
    "delay",
    "bounce",
    "expiration",
    "out_of_band",
    "spam_complaint",
    "list_unsubscribe",
    "policy_rejection",
    "shaping",
];

/// Attempts as a blob, or NULL for none: a version byte, then per attempt its time as a zigzag
/// varint relative to the row's `last_event_at` (usually 0 or small: one byte), its kind as a
/// [`KINDS`] code (or 0 and the name), and its text with a varint length. A JSON array of the same
/// would spend about 20 more bytes on a one-attempt row.
pub(crate) fn encode_attempts(attempts: &[Attempt], last_event_at: u64) -> Option<Vec<u8>> {
    if attempts.is_empty() {
        return None;
    }
    let mut out = vec![ATTEMPTS_V1];
    for a in attempts {
        // Times past i64 are not real (year 292 million): clamped like every stored time.
        let d = i128::from(last_event_at) - i128::from(a.at);
        let delta = i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX });
        put_varint(&mut out, ((delta << 1) ^ (delta >> 63)) as u64);
        match KINDS.iter().position(|k| *k == a.kind) {
            Some(code) => out.push(code as u8 + 1),
            None => {
                out.push(0);
                put_bytes(&mut out, a.kind.as_bytes());
            }
        }
        put_bytes(&mut out, a.text.as_bytes());
    }
    Some(out)
}

const ATTEMPTS_V1: u8 = 1;

pub(crate) fn decode_attempts(
    blob: Option<&[u8]>,
    last_event_at: u64,
) -> Result<Vec<Attempt>, StoreError> {
    let Some(blob) = blob else {
        return Ok(Vec::new());
    };
    let bad = || StoreError::Corrupt {
        column: "attempts",
        value: format!("{} bytes", blob.len()),
    };
    let (&version, mut rest) = blob.split_first().ok_or_else(bad)?;
    if version != ATTEMPTS_V1 {
        return Err(bad());
    }
    let mut out = Vec::new();
    while !rest.is_empty() {
        let z = take_varint(&mut rest).ok_or_else(bad)?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let at = u64::try_from(i128::from(last_event_at) - i128::from(delta)).map_err(|_| bad())?;
        let (&code, tail) = rest.split_first().ok_or_else(bad)?;
        rest = tail;
        let kind = match code {
            0 => take_string(&mut rest).ok_or_else(bad)?,
            c => (*KINDS.get(usize::from(c) - 1).ok_or_else(bad)?).to_string(),
        };
        let text = take_string(&mut rest).ok_or_else(bad)?;
        out.push(Attempt { at, kind, text });
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn take_varint(rest: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        v |= u64::from(b & 0x7F) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn take_string(rest: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(take_varint(rest)?).ok()?;
    if len > rest.len() {
        return None;
    }
    let (s, tail) = rest.split_at(len);
    *rest = tail;
    String::from_utf8(s.to_vec()).ok()
}

/// The MTA's message ids are 16 lower-case hex digits (a u64): such an id is stored as an
/// integer (8 bytes instead of 17); any other text is stored as is.
pub(crate) fn split_message_id(id: Option<&str>) -> (Option<i64>, Option<&str>) {
    match id {
        None => (None, None),
        Some(s)
            if s.len() == 16
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            match u64::from_str_radix(s, 16) {
                Ok(v) => (Some(v as i64), None),
                Err(_) => (None, Some(s)),
            }
        }
        Some(s) => (None, Some(s)),
    }
}

pub(crate) fn join_message_id(mta_id: Option<i64>, text: Option<String>) -> Option<String> {
    match mta_id {
        Some(v) => Some(format!("{:016x}", v as u64)),
        None => text,
    }
}

/// How many applied-event hashes a row keeps (the oldest go first): more than the events one
/// message normally has (reception, delays, delivery, a late bounce or complaint).
pub(crate) const MAX_EVENTS_KEPT: usize = 32;

/// A row's applied-event hashes: 8 bytes each, little-endian.
pub(crate) fn encode_events(hashes: &[i64]) -> Option<Vec<u8>> {
    if hashes.is_empty() {
        return None;
    }
    Some(hashes.iter().flat_map(|h| h.to_le_bytes()).collect())
}

pub(crate) fn decode_events(blob: Option<&[u8]>) -> Result<Vec<i64>, StoreError> {
    let blob = blob.unwrap_or_default();
    if !blob.len().is_multiple_of(8) {
        return Err(StoreError::Corrupt {
            column: "events",
            value: format!("{} bytes", blob.len()),
        });
    }
    Ok(blob
        .chunks_exact(8)
        .map(|c| {
            let mut b = [0; 8];
            b.copy_from_slice(c);
            i64::from_le_bytes(b)
        })
        .collect())
}

fn failure_hash(f: &FailureInfo) -> i64 {
    let class = f.class.map(|c| c.0).unwrap_or(0).to_le_bytes();
    fnv1a(&[
        &ftype_code(f.r#type).to_le_bytes(),
        &[f.reason.value()],
        &class,
        f.text.as_bytes(),
        f.rule.as_bytes(),
    ])
}

/// A failure dictionary row back into the model.
pub(crate) fn failure_from_columns(
    ftype: i64,
    reason: i64,
    class: i64,
    text: String,
    rule: String,
) -> Result<FailureInfo, StoreError> {
    Ok(FailureInfo {
        r#type: ftype_from(ftype)?,
        reason: reason_from(reason)?,
        class: match u16::try_from(class) {
            Ok(0) => None,
            Ok(c) => Some(BounceClass(c)),
            Err(_) => return Err(corrupt("class", class)),
        },
        text,
        rule,
    })
}

/// The failure joined as `f` (columns ftype, freason, class, text, rule), if the row has one.
pub(crate) fn failure_from_row(r: &AnyRow) -> Result<Option<FailureInfo>, StoreError> {
    let Some(ftype) = r.try_get::<Option<i64>, _>("ftype")? else {
        return Ok(None);
    };
    failure_from_columns(
        ftype,
        r.try_get("freason")?,
        r.try_get("class")?,
        r.try_get("text")?,
        r.try_get("rule")?,
    )
    .map(Some)
}

/// Ids of failures already interned in this transaction, by hash.
#[derive(Default)]
pub(crate) struct FailureIds(HashMap<i64, Vec<(FailureInfo, i64)>>);

impl FailureIds {
    /// The dictionary id of `f`, inserting it when new.
    pub(crate) async fn id(&mut self, tx: &mut Tx, f: &FailureInfo) -> Result<i64, StoreError> {
        let hash = failure_hash(f);
        if let Some(id) = self.find(hash, f) {
            return Ok(id);
        }
        let rows =
            sqlx::query("SELECT id, ftype, reason, class, text, rule FROM failure WHERE hash = $1")
                .bind(hash)
                .fetch_all(&mut **tx)
                .await?;
        for row in rows {
            let known = failure_from_columns(
                row.try_get("ftype")?,
                row.try_get("reason")?,
                row.try_get("class")?,
                row.try_get("text")?,
                row.try_get("rule")?,
            )?;
            let id: i64 = row.try_get("id")?;
            self.0.entry(hash).or_default().push((known, id));
        }
        if let Some(id) = self.find(hash, f) {
            return Ok(id);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO failure (hash, ftype, reason, class, text, rule) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(hash)
        .bind(ftype_code(f.r#type))
        .bind(i64::from(f.reason.value()))
        .bind(i64::from(f.class.map(|c| c.0).unwrap_or(0)))
        .bind(f.text.as_str())
        .bind(f.rule.as_str())
        .fetch_one(&mut **tx)
        .await?;
        self.0.entry(hash).or_default().push((f.clone(), id));
        Ok(id)
    }

    fn find(&self, hash: i64, f: &FailureInfo) -> Option<i64> {
        self.0
            .get(&hash)?
            .iter()
            .find(|(known, _)| known == f)
            .map(|(_, id)| *id)
    }
}

/// The ids of `names` in the domain dictionary, inserting the new ones.
pub(crate) async fn domain_ids(
    tx: &mut Tx,
    names: &[&str],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut wanted: Vec<&str> = names.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let mut ids = HashMap::with_capacity(wanted.len());
    let backend = super::Backend::of(tx);
    let bytes = |name: &&str| super::wire_len(name.len());
    for chunk in super::statement_chunks(backend, &wanted, super::rows_per_statement(1), bytes) {
        let sql = format!(
            "SELECT id, name FROM domain WHERE name IN ({})",
            in_list(Marks::of(tx), 1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for name in chunk {
            q = q.bind(*name);
        }
        for row in q.fetch_all(&mut **tx).await? {
            ids.insert(row.try_get::<String, _>("name")?, row.try_get("id")?);
        }
    }
    for name in wanted {
        if !ids.contains_key(name) {
            // Another node may insert the same name meanwhile: let its row win.
            sqlx::query("INSERT INTO domain (name) VALUES ($1) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .execute(&mut **tx)
                .await?;
            let id: i64 = sqlx::query_scalar("SELECT id FROM domain WHERE name = $1")
                .bind(name)
                .fetch_one(&mut **tx)
                .await?;
            ids.insert(name.to_string(), id);
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_value() {
        for r in Reason::ALL {
            assert_eq!(reason_from(i64::from(r.value())).unwrap(), r);
        }
        assert!(reason_from(6).is_err());
    }

    #[test]
    fn hash_separates_parts() {
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
    }

    #[test]
    fn attempts_round_trip_and_none_is_null() {
        assert_eq!(encode_attempts(&[], 0), None);
        let a = vec![
            Attempt {
                at: 1_700_000_000_000,
                kind: "delay".into(),
                text: "451 \"later\" é".into(),
            },
            Attempt {
                at: 1_700_000_900_000,
                kind: "custom kind".into(),
                text: String::new(),
            },
            Attempt {
                at: 0,
                kind: "delivery".into(),
                text: "250 ok".into(),
            },
        ];
        let blob = encode_attempts(&a, 1_700_000_500_000).unwrap();
        assert_eq!(decode_attempts(Some(&blob), 1_700_000_500_000).unwrap(), a);
        assert!(decode_attempts(Some(&blob[..blob.len() - 1]), 0).is_err());
        assert!(decode_attempts(Some(&[9]), 0).is_err());
    }

    #[test]
    fn canonical_message_ids_become_integers_and_others_stay_text() {
        for id in ["00000001000000ff", "ffffffffffffffff"] {
            let (n, t) = split_message_id(Some(id));
            assert!(n.is_some() && t.is_none());
            assert_eq!(join_message_id(n, None).as_deref(), Some(id));
        }
        for id in ["00000001000000FF", "m1", "00000001000000fff"] {
            assert_eq!(split_message_id(Some(id)), (None, Some(id)));
        }
    }

    #[test]
    fn event_hashes_round_trip() {
        let h = vec![-1, 0, i64::MAX];
        assert_eq!(decode_events(encode_events(&h).as_deref()).unwrap(), h);
        assert!(decode_events(Some(&[1, 2, 3])).is_err());
    }
}
