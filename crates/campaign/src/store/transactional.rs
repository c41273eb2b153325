//! Transactional templates, their versions and the calls made with them (SPEC §3.7,
//! docs/transactional.md). A version is a delivery of kind Transactional; a call is one row of
//! its log plus a `tx_call` row (the idempotency key and the payload's hash) and a recipient
//! holding the call's data. A batch of calls is stored in one transaction: all or none.

use super::codec::{FailureIds, domain_ids, encode_attempts, fnv1a, ms, ms_from};
use super::deliveries::insert_delivery;
use super::kpis::KpiChanges;
use super::logs::{INSERT_ROWS_WITH_ID, bind_new_row, fetch_rows};
use super::{
    Backend, Marks, NewDelivery, Param, Store, StoreError, Tx, bind_params, check_limit, in_list,
    push_param, rows_per_statement, statement_chunks, values_list, wire_len,
};
use crate::model::{DeliveryId, DeliveryKind, ListId, LogId, LogRow, LogStatus, UnixMillis};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// `recipient_list.state` of a template's list: the calls' data, never imported nor listed.
const TRANSACTIONAL_LIST: i64 = 2;

/// One version of a template: the delivery whose log holds the calls made with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TxVersion {
    pub template: String,
    pub version: u32,
    pub delivery: DeliveryId,
    pub created_at: UnixMillis,
}

/// A template: the version in force (the newest) and every version, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TxTemplate {
    #[serde(skip)]
    pub id: i64,
    pub name: String,
    #[serde(skip)]
    pub list: ListId,
    pub current: TxVersion,
    pub versions: Vec<TxVersion>,
}

/// A call to store: its row (Pending, or Ignored when the address is excluded), the data it
/// personalizes with, its idempotency key and the bytes that identify its payload.
#[derive(Debug, Clone)]
pub struct NewCall {
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub row: LogRow,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Why a transaction of call groups stored nothing: `group` is the one refused for a key
/// conflict (the others may be tried again without it); `None` when it is not about one group.
#[derive(Debug)]
pub struct GroupError {
    pub group: Option<usize>,
    pub error: StoreError,
}

/// What became of one call of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallOutcome {
    /// Stored as a new call with this id.
    Created(LogId),
    /// Its key was used, with the same payload, within the window: the original call's id.
    Repeat(LogId),
}

impl CallOutcome {
    pub fn id(self) -> LogId {
        match self {
            CallOutcome::Created(id) | CallOutcome::Repeat(id) => id,
        }
    }
}

/// A stored call with its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxCall {
    pub template: String,
    pub version: u32,
    pub idempotency_key: Option<String>,
    pub created_at: UnixMillis,
    pub row: LogRow,
}

/// Which calls to list; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxFilter {
    pub template: Option<String>,
    pub status: Option<LogStatus>,
    /// The address as given (exact).
    pub address: Option<String>,
}

/// The calls not yet handed to the MTA: how many, and since when the oldest waits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OutboxState {
    pub depth: u64,
    pub oldest_at: Option<UnixMillis>,
}

const CALL_COLUMNS: &str = "c.log_id, c.idem_key, c.created_at, t.name, v.version \
     FROM tx_call c JOIN tx_template t ON t.id = c.template_id \
     JOIN log_row l ON l.id = c.log_id JOIN tx_version v ON v.delivery_id = l.delivery_id";

impl Store {
    /// Adds a version to the template `name` (creating the template on its first version) and
    /// makes it the one in force. `content`'s name and list are the store's to set.
    pub async fn create_tx_version(
        &self,
        name: &str,
        content: &NewDelivery,
        now: UnixMillis,
    ) -> Result<TxVersion, StoreError> {
        let mut tx = self.begin().await?;
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        };
        let found: Option<(i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT id, list_id FROM tx_template WHERE name = $1{lock}"
        )))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let (template, list) = match found {
            Some(t) => t,
            None => create_template(&mut tx, name, now).await?,
        };
        let version: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM tx_version WHERE template_id = $1",
        )
        .bind(template)
        .fetch_one(&mut *tx)
        .await?;
        let d = NewDelivery {
            name: format!("{name} v{version}"),
            list: ListId(list),
            ..content.clone()
        };
        let delivery = insert_delivery(&mut tx, &d, DeliveryKind::Transactional, now).await?;
        sqlx::query(
            "INSERT INTO tx_version (template_id, version, delivery_id, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(template)
        .bind(version)
        .bind(delivery)
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE tx_template SET current = $1, updated_at = $2 WHERE id = $3")
            .bind(version)
            .bind(ms(now))
            .bind(template)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(TxVersion {
            template: name.to_string(),
            version: u32::try_from(version).unwrap_or(u32::MAX),
            delivery: DeliveryId(delivery),
            created_at: now,
        })
    }

    /// The template `name` with its versions, if it exists.
    pub async fn tx_template(&self, name: &str) -> Result<Option<TxTemplate>, StoreError> {
        Ok(self.tx_templates_where(Some(name)).await?.pop())
    }

    /// Every template, by name.
    pub async fn tx_templates(&self) -> Result<Vec<TxTemplate>, StoreError> {
        self.tx_templates_where(None).await
    }

    async fn tx_templates_where(&self, name: Option<&str>) -> Result<Vec<TxTemplate>, StoreError> {
        let filter = if name.is_some() {
            "WHERE t.name = $1"
        } else {
            ""
        };
        let sql = format!(
            "SELECT t.id, t.name, t.list_id, t.current, v.version, v.delivery_id, v.created_at \
             FROM tx_template t JOIN tx_version v ON v.template_id = t.id {filter} \
             ORDER BY t.name, v.version DESC"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        if let Some(n) = name {
            q = q.bind(n);
        }
        let mut out: Vec<TxTemplate> = Vec::new();
        for r in q.fetch_all(&self.read).await? {
            let name: String = r.try_get("name")?;
            let v = TxVersion {
                template: name.clone(),
                version: u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(u32::MAX),
                delivery: DeliveryId(r.try_get("delivery_id")?),
                created_at: ms_from(r.try_get("created_at")?),
            };
            let current = r.try_get::<i64, _>("current")? == i64::from(v.version);
            match out.last_mut() {
                Some(t) if t.name == name => {
                    if current {
                        t.current = v.clone();
                    }
                    t.versions.push(v);
                }
                _ => out.push(TxTemplate {
                    id: r.try_get("id")?,
                    name,
                    list: ListId(r.try_get("list_id")?),
                    current: v.clone(),
                    versions: vec![v],
                }),
            }
        }
        Ok(out)
    }

    /// Stores groups of calls (each group a request, of one template) in one transaction, so
    /// that calls arriving together share a commit. A key seen since `window_start` with the
    /// same payload answers with the original call; with another payload its whole group is
    /// refused: the error names the group ([`GroupError::group`]) and nothing is stored, so the
    /// caller retries without it. A key last used before the window is taken over by the new
    /// call.
    ///
    /// Two transactions racing with the same new key (PostgreSQL, several connections or
    /// nodes): the loser's insert breaks the key's unique index; it is run once more and then
    /// finds the winner's call.
    pub async fn insert_call_groups(
        &self,
        groups: &[(&TxTemplate, &[NewCall])],
        window_start: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Vec<CallOutcome>>, GroupError> {
        match self.try_insert_groups(groups, window_start, now).await {
            Err(GroupError {
                error: StoreError::Db(e),
                ..
            }) if is_unique_violation(&e) => {
                self.try_insert_groups(groups, window_start, now).await
            }
            other => other,
        }
    }

    async fn try_insert_groups(
        &self,
        groups: &[(&TxTemplate, &[NewCall])],
        window_start: UnixMillis,
        now: UnixMillis,
    ) -> Result<Vec<Vec<CallOutcome>>, GroupError> {
        let all = |error| GroupError { group: None, error };
        let mut tx = self.begin().await.map_err(all)?;
        let mut kpi = KpiChanges::default();
        let mut out: Vec<Vec<CallOutcome>> = vec![Vec::new(); groups.len()];
        for merged in by_template(groups) {
            let calls: Vec<&NewCall> = merged.iter().flat_map(|&g| groups[g].1.iter()).collect();
            let template = groups[merged[0]].0;
            let outcomes = insert_group(&mut tx, template, &calls, window_start, now, &mut kpi)
                .await
                .map_err(|error| blame(groups, &merged, error))?;
            let mut rest = outcomes.into_iter();
            for &g in &merged {
                out[g] = rest.by_ref().take(groups[g].1.len()).collect();
            }
        }
        kpi.apply(&mut tx).await.map_err(all)?;
        tx.commit().await.map_err(|e| all(e.into()))?;
        Ok(out)
    }
}

/// The requests of a transaction, grouped by template in first-seen order, each group in
/// request order: a group's calls are decided and written together, a few statements for
/// all of them rather than a few for every request.
fn by_template(groups: &[(&TxTemplate, &[NewCall])]) -> Vec<Vec<usize>> {
    let mut merged: Vec<Vec<usize>> = Vec::new();
    for (g, (template, _)) in groups.iter().enumerate() {
        match merged.iter_mut().find(|m| groups[m[0]].0.id == template.id) {
            Some(m) => m.push(g),
            None => merged.push(vec![g]),
        }
    }
    merged
}

/// A merged group's error, blamed on the request whose call it is about: a key conflict
/// refuses that request alone, with the call's index within it.
fn blame(groups: &[(&TxTemplate, &[NewCall])], merged: &[usize], error: StoreError) -> GroupError {
    let StoreError::KeyConflict { index, key, id } = error else {
        return GroupError { group: None, error };
    };
    let mut start = 0;
    for &g in merged {
        let n = groups[g].1.len();
        if index < start + n {
            return GroupError {
                group: Some(g),
                error: StoreError::KeyConflict {
                    index: index - start,
                    key,
                    id,
                },
            };
        }
        start += n;
    }
    GroupError {
        group: None,
        error: StoreError::KeyConflict { index, key, id },
    }
}

/// A call of a group that is new: its reserved ids and what its rows hold.
struct Fresh {
    id: i64,
    recipient: i64,
    hash: i64,
    key: Option<String>,
    attributes: String,
    row: LogRow,
    domain_id: i64,
    failure_id: Option<i64>,
    attempts: Option<Vec<u8>>,
}

/// One group's calls, inside the caller's transaction: the calls are decided first (repeat,
/// conflict or new), then the new ones are written with a few multi-row statements, under ids
/// reserved up front, instead of three round trips each.
async fn insert_group(
    tx: &mut Tx,
    template: &TxTemplate,
    calls: &[&NewCall],
    window_start: UnixMillis,
    now: UnixMillis,
    kpi: &mut KpiChanges,
) -> Result<Vec<CallOutcome>, StoreError> {
    let names: Vec<&str> = calls.iter().map(|c| c.row.domain.as_str()).collect();
    let domains = domain_ids(tx, &names).await?;
    let wanted: Vec<_> = calls.iter().map(|c| c.row.failure.as_ref()).collect();
    let failure_ids = FailureIds::default().ids(tx, &wanted).await?;
    let keys: Vec<&str> = calls.iter().filter_map(|c| c.key.as_deref()).collect();
    // Read for the whole group at once; the group's own new keys are added as they are
    // decided, so a key twice in one request is a repeat of its first call.
    let mut known = known_keys(tx, &keys, window_start).await?;
    let log_ids = reserve_ids(tx, "log_row", calls.len()).await?;
    let recipient_ids = reserve_ids(tx, "recipient", calls.len()).await?;
    let mut out = Vec::with_capacity(calls.len());
    let mut fresh: Vec<Fresh> = Vec::with_capacity(calls.len());
    for (index, (call, failure_id)) in calls.iter().zip(failure_ids).enumerate() {
        let hash = fnv1a(&[&call.payload]);
        if let Some(key) = &call.key
            && let Some(&(id, payload)) = known.get(key)
        {
            if payload != hash {
                return Err(StoreError::KeyConflict {
                    index,
                    key: key.clone(),
                    id,
                });
            }
            out.push(CallOutcome::Repeat(LogId(id)));
            continue;
        }
        let (id, recipient) = (log_ids[fresh.len()], recipient_ids[fresh.len()]);
        if let Some(key) = &call.key {
            known.insert(key.clone(), (id, hash));
        }
        let mut row = call.row.clone();
        row.recipient = Some(crate::model::RecipientId(recipient));
        let domain_id = domains
            .get(row.domain.as_str())
            .copied()
            .unwrap_or_default();
        kpi.row(&row, domain_id, 1);
        kpi.failure(row.delivery.0, failure_id, 1);
        fresh.push(Fresh {
            id,
            recipient,
            hash,
            key: call.key.clone(),
            attributes: serde_json::Value::Object(call.attributes.clone()).to_string(),
            attempts: encode_attempts(&row.attempts, row.last_event_at),
            row,
            domain_id,
            failure_id,
        });
        out.push(CallOutcome::Created(LogId(id)));
    }
    write_fresh(tx, template, &fresh, now).await?;
    Ok(out)
}

/// `n` ids for new rows of `table`. SQLite has one writer, and this transaction is it: the
/// ids after the largest are free until it commits. PostgreSQL takes them from the column's
/// sequence, so concurrent nodes never share one.
async fn reserve_ids(tx: &mut Tx, table: &str, n: usize) -> Result<Vec<i64>, StoreError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    if Backend::of(tx) == Backend::Sqlite {
        let sql = format!("SELECT COALESCE(MAX(id), 0) FROM {table}");
        let max: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .fetch_one(&mut **tx)
            .await?;
        return Ok((1..=n as i64).map(|i| max + i).collect());
    }
    let sql = format!(
        "SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, $1)"
    );
    Ok(sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(n as i64)
        .fetch_all(&mut **tx)
        .await?)
}

/// The recipients, log rows and calls of the new calls, in multi-row statements.
async fn write_fresh(
    tx: &mut Tx,
    template: &TxTemplate,
    fresh: &[Fresh],
    now: UnixMillis,
) -> Result<(), StoreError> {
    let backend = Backend::of(tx);
    let bytes = |f: &Fresh| 16 * wire_len(8) + f.attributes.len() + f.row.address.len() * 2;
    for chunk in statement_chunks(backend, fresh, 13, bytes) {
        let sql = format!(
            "INSERT INTO recipient (id, list_id, email, attributes) VALUES {}",
            values_list(Marks::of(tx), chunk.len(), 4)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for f in chunk {
            q = q
                .bind(f.recipient)
                .bind(template.list.0)
                .bind(f.row.address.as_str())
                .bind(f.attributes.as_str());
        }
        q.execute(&mut **tx).await?;
        let sql = format!(
            "{INSERT_ROWS_WITH_ID} VALUES {}",
            values_list(Marks::of(tx), chunk.len(), 13)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for f in chunk {
            q = bind_new_row(
                q.bind(f.id),
                &f.row,
                f.domain_id,
                f.failure_id,
                f.attempts.clone(),
            );
        }
        q.execute(&mut **tx).await?;
        let sql = format!(
            "INSERT INTO tx_call (log_id, template_id, idem_key, payload_hash, created_at) VALUES {}",
            values_list(Marks::of(tx), chunk.len(), 5)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for f in chunk {
            q = q
                .bind(f.id)
                .bind(template.id)
                .bind(f.key.as_deref())
                .bind(f.hash)
                .bind(ms(now));
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// The call `id` with its row, if it is a transactional call.
    pub async fn tx_call(&self, id: LogId) -> Result<Option<TxCall>, StoreError> {
        let sql = format!("SELECT {CALL_COLUMNS} WHERE c.log_id = $1");
        let found = sqlx::query(AssertSqlSafe(sql))
            .bind(id.0)
            .fetch_all(&self.read)
            .await?;
        Ok(self.with_rows(found).await?.pop())
    }

    /// A page of calls in id order after `after`, newest last.
    pub async fn list_tx_calls(
        &self,
        filter: &TxFilter,
        after: Option<LogId>,
        limit: u32,
    ) -> Result<Vec<TxCall>, StoreError> {
        let limit = check_limit(limit)?;
        let mut params = Vec::new();
        let mut conds = vec!["1 = 1".to_string()];
        if let Some(t) = &filter.template {
            conds.push(format!(
                "t.name = {}",
                push_param(&mut params, Param::Text(t.clone()))
            ));
        }
        if let Some(s) = filter.status {
            let p = push_param(&mut params, Param::Int(i64::from(s.as_u8())));
            conds.push(format!("l.status = {p}"));
        }
        if let Some(a) = &filter.address {
            conds.push(format!(
                "l.address = {}",
                push_param(&mut params, Param::Text(a.clone()))
            ));
        }
        if let Some(a) = after {
            conds.push(format!(
                "c.log_id > {}",
                push_param(&mut params, Param::Int(a.0))
            ));
        }
        let lim = push_param(&mut params, Param::Int(limit));
        let sql = format!(
            "SELECT {CALL_COLUMNS} WHERE {} ORDER BY c.log_id LIMIT {lim}",
            conds.join(" AND ")
        );
        let found = bind_params(sqlx::query(AssertSqlSafe(sql)), &params)
            .fetch_all(&self.read)
            .await?;
        self.with_rows(found).await
    }

    async fn with_rows(&self, found: Vec<sqlx::any::AnyRow>) -> Result<Vec<TxCall>, StoreError> {
        let ids: Vec<i64> = found
            .iter()
            .map(|r| r.try_get("log_id"))
            .collect::<Result<_, _>>()?;
        let mut conn = self.read.acquire().await?;
        let mut rows: std::collections::HashMap<i64, LogRow> = fetch_rows(&mut conn, &ids, "")
            .await?
            .into_iter()
            .map(|s| (s.row.id.0, s.row))
            .collect();
        let mut out = Vec::with_capacity(found.len());
        for r in found {
            let Some(row) = rows.remove(&r.try_get::<i64, _>("log_id")?) else {
                continue;
            };
            out.push(TxCall {
                template: r.try_get("name")?,
                version: u32::try_from(r.try_get::<i64, _>("version")?).unwrap_or(u32::MAX),
                idempotency_key: r.try_get("idem_key")?,
                created_at: ms_from(r.try_get("created_at")?),
                row,
            });
        }
        Ok(out)
    }

    /// The template versions with calls still Pending, oldest first.
    pub async fn tx_pending_versions(&self) -> Result<Vec<DeliveryId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT d.id FROM delivery d JOIN kpi k ON k.delivery_id = d.id \
             WHERE d.kind = 1 AND k.pending > 0 ORDER BY d.id",
        )
        .fetch_all(&self.read)
        .await?;
        Ok(ids.into_iter().map(DeliveryId).collect())
    }

    /// How many calls wait for the MTA, and since when the oldest does.
    pub async fn outbox_state(&self) -> Result<OutboxState, StoreError> {
        let depth: Option<i64> = sqlx::query_scalar(
            "SELECT CAST(SUM(k.pending) AS BIGINT) FROM kpi k \
             JOIN delivery d ON d.id = k.delivery_id WHERE d.kind = 1",
        )
        .fetch_one(&self.read)
        .await?;
        let oldest: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(c.created_at) FROM log_row l JOIN tx_call c ON c.log_id = l.id \
             WHERE l.delivery_id IN (SELECT id FROM delivery WHERE kind = 1) \
             AND l.status = 0 AND l.status <> 2",
        )
        .fetch_one(&self.read)
        .await?;
        Ok(OutboxState {
            depth: depth.map_or(0, |d| u64::try_from(d).unwrap_or(0)),
            oldest_at: oldest.map(ms_from),
        })
    }
}

/// A broken unique index: PostgreSQL's SQLSTATE 23505, SQLite's extended code 2067.
fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "23505" || c == "2067")
}

/// A template's first version: its list, then the template.
async fn create_template(
    tx: &mut Tx,
    name: &str,
    now: UnixMillis,
) -> Result<(i64, i64), StoreError> {
    let list: i64 = sqlx::query_scalar(
        "INSERT INTO recipient_list (name, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $3) RETURNING id",
    )
    .bind(format!("transactional:{name}"))
    .bind(TRANSACTIONAL_LIST)
    .bind(ms(now))
    .fetch_one(&mut **tx)
    .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO tx_template (name, list_id, current, created_at, updated_at) \
         VALUES ($1, $2, 0, $3, $3) RETURNING id",
    )
    .bind(name)
    .bind(list)
    .bind(ms(now))
    .fetch_one(&mut **tx)
    .await?;
    Ok((id, list))
}

/// The keys of `keys` stored within the window: key → (call id, payload hash). A key older
/// than the window is cleared, and starts a new call.
async fn known_keys(
    tx: &mut Tx,
    keys: &[&str],
    window_start: UnixMillis,
) -> Result<HashMap<String, (i64, i64)>, StoreError> {
    let mut live = HashMap::with_capacity(keys.len());
    let mut stale = Vec::new();
    for chunk in keys.chunks(rows_per_statement(1)) {
        let sql = format!(
            "SELECT idem_key, log_id, payload_hash, created_at FROM tx_call WHERE idem_key IN ({})",
            in_list(Marks::of(tx), 1, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (String, i64, i64, i64)>(AssertSqlSafe(sql));
        for k in chunk {
            q = q.bind(*k);
        }
        for (key, id, payload, at) in q.fetch_all(&mut **tx).await? {
            if ms_from(at) < window_start {
                stale.push(id);
            } else {
                live.insert(key, (id, payload));
            }
        }
    }
    for chunk in stale.chunks(rows_per_statement(1)) {
        let sql = format!(
            "UPDATE tx_call SET idem_key = NULL WHERE log_id IN ({})",
            in_list(Marks::of(tx), 1, chunk.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(live)
}
