//! Listing a delivery's log with filters and keyset paging. Every filter has an index that
//! starts with the delivery and ends in the order of the page, so a page costs the same at row
//! 100 or row 10,000,000 (docs/campaign.md lists which index serves which filter).

use super::codec::ms_from;
use super::logs::{SELECT_ROWS, stored_from_row};
use super::{Param, Store, StoreError, bind_params, check_limit, push_param};
use crate::model::{DeliveryId, LogId, LogRow, LogStatus};
use cartero_bounce::Reason;
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

/// Which rows of a delivery to list; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogFilter {
    pub status: Option<LogStatus>,
    /// The reason of the row's failure (Failed, Ignored, or a soft failure on its way).
    pub reason: Option<Reason>,
    /// The recipient domain (compared lower-cased).
    pub domain: Option<String>,
    /// The start of the address as targeted (case-sensitive). Pages then come in address order.
    pub address_prefix: Option<String>,
}

/// Where the next page starts: the last row of the previous one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogCursor {
    pub id: LogId,
    /// Set when the listing is in address order (an address prefix was given).
    pub address: Option<String>,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub rows: Vec<LogRow>,
    /// `None` when this page is the last.
    pub next: Option<LogCursor>,
}

impl Store {
    /// A page of a delivery's log: in id order, or in (address, id) order with an address
    /// prefix; `after` is the previous page's [`LogPage::next`].
    pub async fn list_log_rows(
        &self,
        delivery: DeliveryId,
        filter: &LogFilter,
        after: Option<&LogCursor>,
        limit: u32,
    ) -> Result<LogPage, StoreError> {
        let limit = check_limit(limit)?;
        let Some((sql, params)) = self.log_query(delivery, filter, after, limit).await? else {
            return Ok(LogPage {
                rows: Vec::new(),
                next: None,
            });
        };
        let rows = bind_params(sqlx::query(AssertSqlSafe(sql)), &params)
            .fetch_all(&self.read)
            .await?;
        let rows = rows
            .iter()
            .map(|r| stored_from_row(r).map(|s| s.row))
            .collect::<Result<Vec<_>, _>>()?;
        let next = match rows.last() {
            Some(last) if rows.len() as i64 == limit => Some(LogCursor {
                id: last.id,
                address: filter.address_prefix.as_ref().map(|_| last.address.clone()),
            }),
            _ => None,
        };
        Ok(LogPage { rows, next })
    }

    /// SQLite's plan for a listing (`EXPLAIN QUERY PLAN`), one step a line: which index serves
    /// a filter. Empty on PostgreSQL.
    #[doc(hidden)]
    pub async fn explain_log_listing(
        &self,
        delivery: DeliveryId,
        filter: &LogFilter,
    ) -> Result<String, StoreError> {
        let Some((sql, params)) = self.log_query(delivery, filter, None, 10).await? else {
            return Ok(String::new());
        };
        self.explain(&sql, &params).await
    }

    /// SQLite's `EXPLAIN QUERY PLAN` of a statement, one step a line; empty on PostgreSQL.
    pub(super) async fn explain(&self, sql: &str, params: &[Param]) -> Result<String, StoreError> {
        if self.backend != super::Backend::Sqlite {
            return Ok(String::new());
        }
        let rows = bind_params(
            sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"))),
            params,
        )
        .fetch_all(&self.read)
        .await?;
        let steps: Vec<String> = rows
            .iter()
            .map(|r| r.try_get::<String, _>("detail"))
            .collect::<Result<_, _>>()?;
        Ok(steps.join("\n"))
    }

    /// The listing's SQL and parameters; `None` when it cannot match anything (unknown domain).
    async fn log_query(
        &self,
        delivery: DeliveryId,
        filter: &LogFilter,
        after: Option<&LogCursor>,
        limit: i64,
    ) -> Result<Option<(String, Vec<Param>)>, StoreError> {
        let mut params = Vec::new();
        let mut conds = vec![format!(
            "l.delivery_id = {}",
            push_param(&mut params, Param::Int(delivery.0))
        )];
        if let Some(s) = filter.status {
            let p = push_param(&mut params, Param::Int(i64::from(s.as_u8())));
            conds.push(format!("l.status = {p}"));
            if s != LogStatus::Sent {
                // Spelled out so that SQLite sees the partial index log_by_status applies.
                conds.push("l.status <> 2".into());
            }
        }
        if let Some(r) = filter.reason {
            let p = push_param(&mut params, Param::Int(i64::from(r.value())));
            conds.push(format!("l.reason = {p}"));
        }
        if let Some(domain) = &filter.domain {
            let id: Option<i64> = sqlx::query_scalar("SELECT id FROM domain WHERE name = $1")
                .bind(domain.to_lowercase())
                .fetch_optional(&self.read)
                .await?;
            let Some(id) = id else { return Ok(None) };
            conds.push(format!(
                "l.domain_id = {}",
                push_param(&mut params, Param::Int(id))
            ));
        }
        let order = match &filter.address_prefix {
            Some(prefix) => {
                let p = push_param(&mut params, Param::Text(prefix.clone()));
                conds.push(format!("l.address >= {p}"));
                if let Some(end) = prefix_end(prefix) {
                    let p = push_param(&mut params, Param::Text(end));
                    conds.push(format!("l.address < {p}"));
                }
                if let Some(c) = after {
                    let a = push_param(
                        &mut params,
                        Param::Text(c.address.clone().unwrap_or_default()),
                    );
                    let i = push_param(&mut params, Param::Int(c.id.0));
                    conds.push(format!("(l.address, l.id) > ({a}, {i})"));
                }
                "l.address, l.id"
            }
            None => {
                if let Some(c) = after {
                    let i = push_param(&mut params, Param::Int(c.id.0));
                    conds.push(format!("l.id > {i}"));
                }
                "l.id"
            }
        };
        let lim = push_param(&mut params, Param::Int(limit));
        let sql = format!(
            "{SELECT_ROWS} WHERE {} ORDER BY {order} LIMIT {lim}",
            conds.join(" AND ")
        );
        Ok(Some((sql, params)))
    }

    /// How many rows of a delivery there are by status (a check of the counters).
    pub async fn count_log_rows(&self, delivery: DeliveryId) -> Result<[u64; 5], StoreError> {
        let rows = sqlx::query(
            "SELECT status, COUNT(*) AS n FROM log_row WHERE delivery_id = $1 GROUP BY status",
        )
        .bind(delivery.0)
        .fetch_all(&self.read)
        .await?;
        let mut out = [0; 5];
        for r in rows {
            let s: i64 = r.try_get("status")?;
            if let Some(slot) = usize::try_from(s).ok().and_then(|i| out.get_mut(i)) {
                *slot = ms_from(r.try_get("n")?);
            }
        }
        Ok(out)
    }
}

/// The smallest string greater than every string starting with `prefix` (code-point order,
/// which is UTF-8 byte order): the prefix with its last character incremented, dropping
/// characters that cannot be. `None` when every string is below nothing (empty, or all
/// `char::MAX`).
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn prefix_end_bounds_every_extension_of_the_prefix() {
        assert_eq!(prefix_end("abc").as_deref(), Some("abd"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end(""), None);
        let end = prefix_end("bob@").unwrap();
        assert!("bob@x.org" < end.as_str() && "bob@\u{10FFFF}" < end.as_str());
        assert!("boba" >= end.as_str());
    }
}
