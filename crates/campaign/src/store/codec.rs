//! How model values become compact columns and back: small integers for enums, dictionary ids
//! for domains and failures, a JSON array for attempts (NULL when there are none).

use super::{StoreError, Tx, in_list};
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

const REASONS: [Reason; 12] = [
    Reason::NotDefined,
    Reason::UserUnknown,
    Reason::InvalidDomain,
    Reason::Unreachable,
    Reason::AccountDisabled,
    Reason::MailboxFull,
    Reason::AddressNotSpecified,
    Reason::Denylisted,
    Reason::Quarantine,
    Reason::Duplicate,
    Reason::Refused,
    Reason::ErrorIgnored,
];

pub(crate) fn reason_from(v: i64) -> Result<Reason, StoreError> {
    REASONS
        .iter()
        .copied()
        .find(|r| i64::from(r.value()) == v)
        .ok_or_else(|| corrupt("reason", v))
}

pub(crate) fn ftype_code(t: FailureType) -> i64 {
    match t {
        FailureType::Hard => 1,
        FailureType::Soft => 2,
        FailureType::Ignored => 3,
    }
}

fn ftype_from(v: i64) -> Result<FailureType, StoreError> {
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

/// `[[at,"kind","text"],…]`, or NULL for no attempts.
pub(crate) fn encode_attempts(attempts: &[Attempt]) -> Option<String> {
    if attempts.is_empty() {
        return None;
    }
    let tuples: Vec<(u64, &str, &str)> = attempts
        .iter()
        .map(|a| (a.at, a.kind.as_str(), a.text.as_str()))
        .collect();
    serde_json::to_string(&tuples).ok()
}

pub(crate) fn decode_attempts(json: Option<&str>) -> Result<Vec<Attempt>, StoreError> {
    let Some(json) = json else {
        return Ok(Vec::new());
    };
    let tuples: Vec<(u64, String, String)> =
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            column: "attempts",
            value: e.to_string(),
        })?;
    Ok(tuples
        .into_iter()
        .map(|(at, kind, text)| Attempt { at, kind, text })
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
    for chunk in wanted.chunks(500) {
        let sql = format!(
            "SELECT id, name FROM domain WHERE name IN ({})",
            in_list(1, chunk.len())
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
        for r in REASONS {
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
        assert_eq!(encode_attempts(&[]), None);
        let a = vec![Attempt {
            at: 5,
            kind: "delay".into(),
            text: "451 \"later\"".into(),
        }];
        let json = encode_attempts(&a).unwrap();
        assert_eq!(decode_attempts(Some(&json)).unwrap(), a);
    }
}
