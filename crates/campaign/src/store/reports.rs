//! Reports of a delivery (SPEC §3.6): throughput over time, from the per-minute counters the
//! row transactions keep, and the qualification table, from the distinct failures of its rows.

use super::codec::{ms, ms_from};
use super::kpis::MINUTE_MS;
use super::{Store, StoreError};
use crate::model::{DeliveryId, UnixMillis};
use cartero_bounce::{FailureType, Reason};
use serde::Serialize;
use sqlx::Row;
use std::collections::BTreeMap;

/// Most steps one throughput read returns.
pub const MAX_STEPS: u64 = 1_440;

/// One step of a throughput series: what happened in `[at, at + step)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ThroughputPoint {
    pub at: UnixMillis,
    /// Handed to the MTA (Taken into account), and their bytes.
    pub relayed: u64,
    pub bytes: u64,
    /// Became Sent (a 2xx from the receiving server).
    pub sent: u64,
    /// Became Failed (hard bounce, expiry, asynchronous bounce).
    pub failed: u64,
}

/// One line of the qualification table: a failure text as normalized (addresses and long
/// numbers replaced), how it was qualified, and how many rows of the delivery last had it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct QualificationLine {
    pub text: String,
    pub r#type: FailureType,
    pub reason: Reason,
    pub class: Option<u16>,
    pub rule: String,
    pub rows: u64,
}

impl Store {
    /// The delivery's throughput from `from` to `to` in steps of `step_ms` (rounded to whole
    /// minutes, at least one); every step is present, empty ones as zeros. At most
    /// [`MAX_STEPS`] steps.
    pub async fn throughput(
        &self,
        delivery: DeliveryId,
        from: UnixMillis,
        to: UnixMillis,
        step_ms: u64,
    ) -> Result<Vec<ThroughputPoint>, StoreError> {
        let step = (step_ms / MINUTE_MS).max(1) * MINUTE_MS;
        let start = from / step * step;
        let steps = to.saturating_sub(start).div_ceil(step);
        if steps > MAX_STEPS {
            return Err(StoreError::Invalid(format!(
                "at most {MAX_STEPS} steps per throughput read (asked {steps})"
            )));
        }
        let rows = sqlx::query(
            "SELECT minute, relayed, sent, failed, bytes FROM kpi_minute \
             WHERE delivery_id = $1 AND minute >= $2 AND minute < $3 ORDER BY minute",
        )
        .bind(delivery.0)
        .bind(ms(start / MINUTE_MS))
        .bind(ms(to.div_ceil(MINUTE_MS)))
        .fetch_all(&self.read)
        .await?;
        let mut out: Vec<ThroughputPoint> = (0..steps)
            .map(|i| ThroughputPoint {
                at: start + i * step,
                ..ThroughputPoint::default()
            })
            .collect();
        for r in rows {
            let at = ms_from(r.try_get("minute")?) * MINUTE_MS;
            let Some(p) = out.get_mut(usize::try_from((at - start) / step).unwrap_or(usize::MAX))
            else {
                continue;
            };
            p.relayed += ms_from(r.try_get("relayed")?);
            p.sent += ms_from(r.try_get("sent")?);
            p.failed += ms_from(r.try_get("failed")?);
            p.bytes += ms_from(r.try_get("bytes")?);
        }
        Ok(out)
    }

    /// The qualification table of a delivery: its rows' last failures grouped by normalized
    /// text and qualification, most frequent first, at most `limit` lines.
    pub async fn qualification_table(
        &self,
        delivery: DeliveryId,
        limit: usize,
    ) -> Result<Vec<QualificationLine>, StoreError> {
        // The rows per failure are counters kept with the rows (store/kpis.rs): the read costs
        // the same at 100 or 10,000,000 rows.
        let rows = sqlx::query(
            "SELECT f.ftype, f.reason, f.class, f.text, f.rule, b.count AS n \
             FROM kpi_breakdown b JOIN failure f ON f.id = b.item \
             WHERE b.delivery_id = $1 AND b.kind = 4 AND b.count > 0",
        )
        .bind(delivery.0)
        .fetch_all(&self.read)
        .await?;
        let mut merged: BTreeMap<(String, u8, u8, u16, String), u64> = BTreeMap::new();
        for r in rows {
            let key = (
                normalize(&r.try_get::<String, _>("text")?),
                small(r.try_get("ftype")?),
                small(r.try_get("reason")?),
                u16::try_from(r.try_get::<i64, _>("class")?).unwrap_or(0),
                r.try_get::<String, _>("rule")?,
            );
            *merged.entry(key).or_default() += ms_from(r.try_get("n")?);
        }
        let mut lines: Vec<QualificationLine> = merged
            .into_iter()
            .filter_map(|((text, t, reason, class, rule), rows)| {
                Some(QualificationLine {
                    text,
                    r#type: super::codec::ftype_from(i64::from(t)).ok()?,
                    reason: Reason::from_value(reason)?,
                    class: (class != 0).then_some(class),
                    rule,
                    rows,
                })
            })
            .collect();
        lines.sort_by(|a, b| b.rows.cmp(&a.rows).then_with(|| a.text.cmp(&b.text)));
        lines.truncate(limit);
        Ok(lines)
    }
}

fn small(v: i64) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

/// A failure text with what varies per recipient or per message replaced: e-mail addresses by
/// `<address>` and runs of 4 or more digits or hex digits mixed with digits by `#`, so the
/// same reply to many recipients is one line of the table.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_inclusive(|c: char| c.is_whitespace()) {
        let (core, space) = match word.char_indices().last() {
            Some((i, c)) if c.is_whitespace() => (&word[..i], &word[i..]),
            _ => (word, ""),
        };
        out.push_str(&normalize_word(core));
        out.push_str(space);
    }
    out
}

fn normalize_word(word: &str) -> String {
    let trimmed = word.trim_matches(|c: char| {
        matches!(
            c,
            '<' | '>' | '(' | ')' | '"' | '\'' | ',' | ';' | ':' | '[' | ']'
        )
    });
    if trimmed.contains('@') && trimmed.len() > 2 {
        let bracketed = format!("<{trimmed}>");
        return match word.contains(&bracketed) {
            true => word.replace(&bracketed, "<address>"),
            false => word.replace(trimmed, "<address>"),
        };
    }
    let mut out = String::with_capacity(word.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.bytes().filter(u8::is_ascii_digit).count();
        if run.len() >= 4 && digits > 0 {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in word.chars() {
        if c.is_ascii_hexdigit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn texts_that_differ_only_by_address_or_id_normalize_to_one() {
        let a = normalize("550 5.1.1 <ana@example.com>: Recipient address rejected (id 8F3A21B9)");
        let b = normalize("550 5.1.1 <bob@example.com>: Recipient address rejected (id 77AA1230)");
        assert_eq!(a, b);
        assert_eq!(a, "550 5.1.1 <address>: Recipient address rejected (id #)");
        // Words of letters only, and short numbers, stay.
        assert_eq!(
            normalize("452 4.2.2 mailbox full"),
            "452 4.2.2 mailbox full"
        );
        assert_eq!(normalize("deadbeef cafe"), "deadbeef cafe");
    }
}
