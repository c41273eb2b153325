//! Recipient lists and their recipients. An import writes into a staging list (state
//! `IMPORTING`) batch by batch and only [`Store::commit_import`] makes the rows part of their
//! target, so a failed or abandoned import never leaves half a list.

use super::codec::{ms, ms_from};
use super::{
    Marks, Store, StoreError, check_limit, in_list, rows_per_statement, statement_chunks,
    values_list, wire_len,
};
use crate::model::{ListId, Recipient, RecipientId, UnixMillis};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

const IMPORTING: i64 = 0;
const READY: i64 = 1;

const INSERT_CHUNK: usize = rows_per_statement(3);

/// A recipient to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecipient {
    pub email: String,
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// Where an import's rows go when it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportTarget {
    /// A new list of that name (the name must be free when the import commits).
    NewList(String),
    /// Appended to an existing list.
    Existing(ListId),
}

/// An import under way: its rows sit in a staging list until commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSession {
    staging: ListId,
    target: ImportTarget,
}

impl ImportSession {
    pub fn staging(&self) -> ListId {
        self.staging
    }
}

impl Store {
    /// Creates an empty list.
    pub async fn create_list(&self, name: &str, now: UnixMillis) -> Result<ListId, StoreError> {
        check_list_name(name)?;
        if self.list_by_name(name).await?.is_some() {
            return Err(StoreError::ListExists(name.to_string()));
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO recipient_list (name, state, created_at, updated_at) \
             VALUES ($1, $2, $3, $3) RETURNING id",
        )
        .bind(name)
        .bind(READY)
        .bind(ms(now))
        .fetch_one(&self.write)
        .await
        .map_err(|e| name_taken_or(e, name))?;
        Ok(ListId(id))
    }

    /// The ready list called `name`.
    pub async fn list_by_name(&self, name: &str) -> Result<Option<ListId>, StoreError> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT id FROM recipient_list WHERE name = $1 AND state = $2")
                .bind(name)
                .bind(READY)
                .fetch_optional(&self.read)
                .await?;
        Ok(id.map(ListId))
    }

    /// Adds recipients to a ready list in one transaction (the API path; imports use
    /// [`Store::begin_import`]).
    pub async fn add_recipients(
        &self,
        list: ListId,
        recipients: &[NewRecipient],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.ready_list(list).await?;
        self.insert_recipients(list, recipients, now).await
    }

    /// Starts an import into `target`: creates its staging list.
    pub async fn begin_import(
        &self,
        target: ImportTarget,
        now: UnixMillis,
    ) -> Result<ImportSession, StoreError> {
        let name = match &target {
            ImportTarget::NewList(name) => {
                check_list_name(name)?;
                if self.list_by_name(name).await?.is_some() {
                    return Err(StoreError::ListExists(name.clone()));
                }
                name.clone()
            }
            ImportTarget::Existing(list) => {
                self.ready_list(*list).await?;
                String::new()
            }
        };
        let existing = match &target {
            ImportTarget::Existing(list) => Some(list.0),
            ImportTarget::NewList(_) => None,
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO recipient_list (name, state, target_id, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(name)
        .bind(IMPORTING)
        .bind(existing)
        .bind(ms(now))
        .fetch_one(&self.write)
        .await?;
        Ok(ImportSession {
            staging: ListId(id),
            target,
        })
    }

    /// Writes one batch of an import (one transaction).
    pub async fn import_batch(
        &self,
        session: &ImportSession,
        recipients: &[NewRecipient],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        self.insert_recipients(session.staging, recipients, now)
            .await
    }

    /// Makes the imported rows part of their target, in one transaction; returns the list.
    pub async fn commit_import(
        &self,
        session: &ImportSession,
        now: UnixMillis,
    ) -> Result<ListId, StoreError> {
        let mut tx = self.begin().await?;
        let list = match &session.target {
            ImportTarget::NewList(name) => {
                sqlx::query("UPDATE recipient_list SET state = $1, updated_at = $2 WHERE id = $3")
                    .bind(READY)
                    .bind(ms(now))
                    .bind(session.staging.0)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| name_taken_or(e, name))?;
                session.staging
            }
            ImportTarget::Existing(list) => {
                sqlx::query("UPDATE recipient SET list_id = $1 WHERE list_id = $2")
                    .bind(list.0)
                    .bind(session.staging.0)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM recipient_list WHERE id = $1")
                    .bind(session.staging.0)
                    .execute(&mut *tx)
                    .await?;
                *list
            }
        };
        tx.commit().await?;
        Ok(list)
    }

    /// Drops an import and every row it wrote.
    pub async fn abort_import(&self, session: &ImportSession) -> Result<(), StoreError> {
        self.drop_staging("id = $1", session.staging.0).await?;
        Ok(())
    }

    /// Drops the imports not written to since `before` (a crashed importer's leftovers; an
    /// import under way writes at least once a batch). Returns how many it dropped.
    pub async fn discard_stale_imports(&self, before: UnixMillis) -> Result<u64, StoreError> {
        self.drop_staging("updated_at < $1", ms(before)).await
    }

    async fn drop_staging(&self, which: &str, value: i64) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let sql = format!(
            "DELETE FROM recipient WHERE list_id IN \
             (SELECT id FROM recipient_list WHERE state = {IMPORTING} AND {which})"
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let sql = format!("DELETE FROM recipient_list WHERE state = {IMPORTING} AND {which}");
        let lists = sqlx::query(AssertSqlSafe(sql))
            .bind(value)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(lists)
    }

    /// How many recipients a list holds.
    pub async fn count_recipients(&self, list: ListId) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM recipient WHERE list_id = $1")
            .bind(list.0)
            .fetch_one(&self.read)
            .await?;
        Ok(ms_from(n))
    }

    /// A page of a list in id order, after `after` (keyset paging, as analysis reads it).
    pub async fn recipients_page(
        &self,
        list: ListId,
        after: Option<RecipientId>,
        limit: u32,
    ) -> Result<Vec<Recipient>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, list_id, email, attributes FROM recipient WHERE list_id = $1 \
             AND id > $2 ORDER BY id LIMIT $3",
        )
        .bind(list.0)
        .bind(after.map(|r| r.0).unwrap_or(0))
        .bind(check_limit(limit)?)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(recipient_from_row).collect()
    }

    /// The recipients with these ids (those that exist), in id order: the profiles a sender
    /// renders its claimed rows with.
    pub async fn recipients_by_id(
        &self,
        ids: &[RecipientId],
    ) -> Result<Vec<Recipient>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(INSERT_CHUNK) {
            let sql = format!(
                "SELECT id, list_id, email, attributes FROM recipient WHERE id IN ({}) ORDER BY id",
                in_list(self.marks(), 1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.0);
            }
            for row in q.fetch_all(&self.read).await? {
                out.push(recipient_from_row(&row)?);
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    pub(super) async fn ready_list(&self, list: ListId) -> Result<(), StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM recipient_list WHERE id = $1 AND state = $2")
                .bind(list.0)
                .bind(READY)
                .fetch_optional(&self.read)
                .await?;
        found.map(|_| ()).ok_or(StoreError::NotFound {
            what: "recipient list",
            id: list.0,
        })
    }

    async fn insert_recipients(
        &self,
        list: ListId,
        recipients: &[NewRecipient],
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let rows: Vec<(&str, String)> = recipients
            .iter()
            .map(|r| {
                let json = serde_json::Value::Object(r.attributes.clone()).to_string();
                (r.email.as_str(), json)
            })
            .collect();
        let mut tx = self.begin().await?;
        let bytes = |(email, json): &(&str, String)| {
            wire_len(8) + wire_len(email.len()) + wire_len(json.len())
        };
        for chunk in statement_chunks(self.backend, &rows, 3, bytes) {
            let sql = format!(
                "INSERT INTO recipient (list_id, email, attributes) VALUES {}",
                values_list(Marks::of(&tx), chunk.len(), 3)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (email, json) in chunk {
                q = q.bind(list.0).bind(*email).bind(json.as_str());
            }
            q.execute(&mut *tx).await?;
        }
        // The heartbeat that keeps a running import from being discarded as stale.
        sqlx::query("UPDATE recipient_list SET updated_at = $1 WHERE id = $2")
            .bind(ms(now))
            .bind(list.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn check_list_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.len() > 200 {
        return Err(StoreError::Invalid(
            "a list name must have 1 to 200 characters".into(),
        ));
    }
    Ok(())
}

/// A unique violation on the list name means another import or call took the name first.
fn name_taken_or(e: sqlx::Error, name: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::ListExists(name.to_string())
        }
        _ => StoreError::Db(e),
    }
}

fn recipient_from_row(row: &AnyRow) -> Result<Recipient, StoreError> {
    let json: String = row.try_get("attributes")?;
    let attributes = serde_json::from_str(&json).map_err(|e| StoreError::Corrupt {
        column: "attributes",
        value: e.to_string(),
    })?;
    Ok(Recipient {
        id: RecipientId(row.try_get("id")?),
        list: ListId(row.try_get("list_id")?),
        email: row.try_get("email")?,
        attributes,
    })
}
