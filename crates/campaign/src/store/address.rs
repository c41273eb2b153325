//! Address quality states (shared by all deliveries) and their release from quarantine, one
//! address or in bulk by filter, each release leaving an audit row in the same transaction.

use super::codec::{
    FailureIds, address_status_code, address_status_from, failure_from_row, ms, ms_from,
    reason_from,
};
use super::{Backend, Param, Store, StoreError, Tx, bind_params, check_limit, push_param};
use super::{Marks, in_list, rows_per_statement, statement_chunks, values_list, wire_len};
use crate::model::{AddressState, AddressStatus, UnixMillis};
use cartero_bounce::Reason;
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::BTreeMap;

const SELECT_STATES: &str = "SELECT a.address, a.status, a.error_count, a.last_counted_at, \
     a.last_error_at, a.since, a.reason, f.ftype, f.reason AS freason, f.class, f.text, f.rule \
     FROM address_state a LEFT JOIN failure f ON f.id = a.last_error_id";

/// Which addresses a release (or a quarantine listing) concerns; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseFilter {
    /// Empty means Quarantine only. Valid is refused (there is nothing to release).
    #[serde(default)]
    pub statuses: Vec<AddressStatus>,
    /// One address (lower-cased before comparing).
    pub address: Option<String>,
    /// The reason it entered quarantine or the denylist.
    pub reason: Option<Reason>,
    /// A piece of the last error's reply text (case-insensitive; ASCII letters only on SQLite).
    pub text_contains: Option<String>,
    /// Entered quarantine at or after this time.
    pub since_from: Option<UnixMillis>,
    /// Entered quarantine before this time.
    pub since_until: Option<UnixMillis>,
    /// The address's domain (lower-cased before comparing).
    pub domain: Option<String>,
}

/// One release: who, when, why, with which filter, how many addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReleaseAudit {
    pub id: i64,
    pub at: UnixMillis,
    pub actor: String,
    pub why: String,
    pub filter: ReleaseFilter,
    pub count: u64,
}

impl Store {
    /// The state of one address (looked up lower-cased); `None` if never recorded.
    pub async fn address_state(&self, address: &str) -> Result<Option<AddressState>, StoreError> {
        let mut conn = self.read.acquire().await?;
        let key = address.to_lowercase();
        let mut found = self
            .address_states_in(&mut conn, std::slice::from_ref(&key))
            .await?;
        Ok(found.remove(&key))
    }

    /// The recorded states among `addresses` (lower-cased keys), as analysis checks them.
    pub async fn address_states(
        &self,
        addresses: &[String],
    ) -> Result<BTreeMap<String, AddressState>, StoreError> {
        let keys: Vec<String> = addresses.iter().map(|a| a.to_lowercase()).collect();
        let mut conn = self.read.acquire().await?;
        self.address_states_in(&mut conn, &keys).await
    }

    /// Writes address states (insert or replace), in one transaction.
    pub async fn upsert_address_states(&self, states: &[AddressState]) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        self.write_address_states(&mut tx, states).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A page of the addresses matching `filter`, in address order after `after`.
    pub async fn list_addresses(
        &self,
        filter: &ReleaseFilter,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<AddressState>, StoreError> {
        let (mut conds, mut params) = self.filter_conditions(filter)?;
        if let Some(after) = after {
            let p = push_param(&mut params, Param::Text(after.to_string()));
            conds.push(format!("a.address > {p}"));
        }
        let lim = push_param(&mut params, Param::Int(check_limit(limit)?));
        let sql = format!(
            "{SELECT_STATES} WHERE {} ORDER BY a.address LIMIT {lim}",
            conds.join(" AND ")
        );
        let rows = bind_params(sqlx::query(AssertSqlSafe(sql)), &params)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(state_from_row).collect()
    }

    /// How many addresses a release with `filter` would release (the preview).
    pub async fn count_release(&self, filter: &ReleaseFilter) -> Result<u64, StoreError> {
        let (conds, params) = self.filter_conditions(filter)?;
        let sql = format!(
            "SELECT COUNT(*) FROM address_state a LEFT JOIN failure f ON f.id = a.last_error_id \
             WHERE {}",
            conds.join(" AND ")
        );
        let row = bind_params(sqlx::query(AssertSqlSafe(sql)), &params)
            .fetch_one(&self.read)
            .await?;
        Ok(ms_from(row.try_get(0)?))
    }

    /// Releases the matching addresses to Valid (error count and quarantine cleared, the last
    /// error kept for the record) and writes the audit row, in one transaction.
    pub async fn release(
        &self,
        filter: &ReleaseFilter,
        actor: &str,
        why: &str,
        now: UnixMillis,
    ) -> Result<ReleaseAudit, StoreError> {
        if actor.trim().is_empty() || why.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a release needs who releases and why".into(),
            ));
        }
        let (conds, mut params) = self.filter_conditions(filter)?;
        let valid = push_param(
            &mut params,
            Param::Int(address_status_code(AddressStatus::Valid)),
        );
        let sql = format!(
            "UPDATE address_state SET status = {valid}, error_count = 0, last_counted_at = NULL, \
             since = NULL, reason = NULL WHERE address IN (SELECT a.address FROM address_state a \
             LEFT JOIN failure f ON f.id = a.last_error_id WHERE {})",
            conds.join(" AND ")
        );
        let filter_json = serde_json::to_string(filter)
            .map_err(|e| StoreError::Invalid(format!("filter: {e}")))?;
        let mut tx = self.begin().await?;
        let count = bind_params(sqlx::query(AssertSqlSafe(sql)), &params)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO quarantine_release (at, actor, why, filter, count) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(ms(now))
        .bind(actor)
        .bind(why)
        .bind(filter_json)
        .bind(i64::try_from(count).unwrap_or(i64::MAX))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ReleaseAudit {
            id,
            at: now,
            actor: actor.to_string(),
            why: why.to_string(),
            filter: filter.clone(),
            count,
        })
    }

    /// The latest releases, newest first.
    pub async fn release_audit(&self, limit: u32) -> Result<Vec<ReleaseAudit>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, why, filter, count FROM quarantine_release \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(check_limit(limit)?)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let filter: String = r.try_get("filter")?;
                Ok(ReleaseAudit {
                    id: r.try_get("id")?,
                    at: ms_from(r.try_get("at")?),
                    actor: r.try_get("actor")?,
                    why: r.try_get("why")?,
                    filter: serde_json::from_str(&filter).map_err(|e| StoreError::Corrupt {
                        column: "quarantine_release.filter",
                        value: e.to_string(),
                    })?,
                    count: ms_from(r.try_get("count")?),
                })
            })
            .collect()
    }

    /// States of the given lower-cased addresses (locked on PostgreSQL inside a transaction).
    pub(super) async fn address_states_in(
        &self,
        conn: &mut AnyConnection,
        keys: &[String],
    ) -> Result<BTreeMap<String, AddressState>, StoreError> {
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE OF a",
        };
        let mut out = BTreeMap::new();
        let bytes = |k: &String| wire_len(k.len());
        for chunk in statement_chunks(self.backend, keys, rows_per_statement(1), bytes) {
            let sql = format!(
                "{SELECT_STATES} WHERE a.address IN ({}){lock}",
                in_list(Marks::of(conn), 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for k in chunk {
                q = q.bind(k.as_str());
            }
            for row in q.fetch_all(&mut *conn).await? {
                let s = state_from_row(&row)?;
                out.insert(s.address.clone(), s);
            }
        }
        Ok(out)
    }

    pub(super) async fn write_address_states(
        &self,
        tx: &mut Tx,
        states: &[AddressState],
    ) -> Result<(), StoreError> {
        let mut failures = FailureIds::default();
        let bytes = |s: &AddressState| 8 * wire_len(8) + s.address.len();
        for chunk in statement_chunks(self.backend, states, rows_per_statement(8), bytes) {
            let mut error_ids = Vec::with_capacity(chunk.len());
            for s in chunk {
                error_ids.push(match &s.last_error {
                    Some(f) => Some(failures.id(tx, f).await?),
                    None => None,
                });
            }
            let sql = format!(
                "INSERT INTO address_state (address, status, error_count, last_counted_at, \
                 last_error_id, last_error_at, since, reason) VALUES {} \
                 ON CONFLICT (address) DO UPDATE SET status = excluded.status, \
                 error_count = excluded.error_count, last_counted_at = excluded.last_counted_at, \
                 last_error_id = excluded.last_error_id, last_error_at = excluded.last_error_at, \
                 since = excluded.since, reason = excluded.reason",
                values_list(Marks::of(tx), chunk.len(), 8)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (s, error_id) in chunk.iter().zip(error_ids) {
                q = q
                    .bind(s.address.to_lowercase())
                    .bind(address_status_code(s.status))
                    .bind(i64::from(s.error_count))
                    .bind(s.last_counted_at.map(ms))
                    .bind(error_id)
                    .bind(s.last_error_at.map(ms))
                    .bind(s.since.map(ms))
                    .bind(s.reason.map(|r| i64::from(r.value())));
            }
            q.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// The WHERE conditions (over `a` and `f`) of a filter, with their parameters.
    fn filter_conditions(
        &self,
        filter: &ReleaseFilter,
    ) -> Result<(Vec<String>, Vec<Param>), StoreError> {
        let mut params = Vec::new();
        let statuses = if filter.statuses.is_empty() {
            vec![AddressStatus::Quarantine]
        } else {
            filter.statuses.clone()
        };
        if statuses.contains(&AddressStatus::Valid) {
            return Err(StoreError::Invalid(
                "valid addresses have nothing to release".into(),
            ));
        }
        let list: Vec<String> = statuses
            .iter()
            .map(|s| push_param(&mut params, Param::Int(address_status_code(*s))))
            .collect();
        let mut conds = vec![format!("a.status IN ({})", list.join(","))];
        if let Some(a) = &filter.address {
            let p = push_param(&mut params, Param::Text(a.to_lowercase()));
            conds.push(format!("a.address = {p}"));
        }
        if let Some(r) = filter.reason {
            let p = push_param(&mut params, Param::Int(i64::from(r.value())));
            conds.push(format!("a.reason = {p}"));
        }
        if let Some(text) = &filter.text_contains {
            let p = push_param(&mut params, Param::Text(format!("%{}%", escape_like(text))));
            let like = match self.backend {
                Backend::Sqlite => "LIKE",
                Backend::Postgres => "ILIKE",
            };
            conds.push(format!("f.text {like} {p} ESCAPE '\\'"));
        }
        if let Some(t) = filter.since_from {
            let p = push_param(&mut params, Param::Int(ms(t)));
            conds.push(format!("a.since >= {p}"));
        }
        if let Some(t) = filter.since_until {
            let p = push_param(&mut params, Param::Int(ms(t)));
            conds.push(format!("a.since < {p}"));
        }
        if let Some(d) = &filter.domain {
            let p = push_param(
                &mut params,
                Param::Text(format!("%@{}", escape_like(&d.to_lowercase()))),
            );
            conds.push(format!("a.address LIKE {p} ESCAPE '\\'"));
        }
        Ok((conds, params))
    }
}

/// `text` matched literally by LIKE (its `%`, `_` and `\` escaped with `\`).
fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

fn state_from_row(r: &AnyRow) -> Result<AddressState, StoreError> {
    let last_error = failure_from_row(r)?;
    Ok(AddressState {
        address: r.try_get("address")?,
        status: address_status_from(r.try_get("status")?)?,
        error_count: u32::try_from(r.try_get::<i64, _>("error_count")?).unwrap_or(u32::MAX),
        last_counted_at: r.try_get::<Option<i64>, _>("last_counted_at")?.map(ms_from),
        last_error,
        last_error_at: r.try_get::<Option<i64>, _>("last_error_at")?.map(ms_from),
        since: r.try_get::<Option<i64>, _>("since")?.map(ms_from),
        reason: r
            .try_get::<Option<i64>, _>("reason")?
            .map(reason_from)
            .transpose()?,
    })
}
