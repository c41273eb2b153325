//! Lists, imports and deliveries.

use super::{ApiContext, ApiError, ApiResult};
use crate::analysis::Counts;
use crate::engine::DeliveryStatus;
use crate::import::{ImportOptions, ImportReport, import_csv};
use crate::model::{DEFAULT_VALIDITY_MS, Delivery, DeliveryId, LogId, LogRow, LogStatus};
use crate::store::{ImportTarget, LogCursor, LogFilter, NewDelivery, NewRecipient};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use cartero_bounce::Reason;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

/// Most recipients one `recipients` call adds.
const MAX_ADD: usize = 10_000;
/// Most log rows one page returns.
const MAX_LOG_PAGE: u32 = 1_000;

/// A JSON body, refused with a 422 naming the problem (axum's own rejection is plain text).
pub(super) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ImportQuery {
    #[serde(default)]
    email_column: Option<String>,
    /// Add to the existing list of that name instead of creating it.
    #[serde(default)]
    append: bool,
}

pub(super) async fn import(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> ApiResult<ImportReport> {
    let store = ctx.engine.store();
    let target = if q.append {
        let id = store.list_by_name(&name).await?.ok_or_else(|| {
            ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("no list {name:?}"),
            )
        })?;
        ImportTarget::Existing(id)
    } else {
        ImportTarget::NewList(name)
    };
    let mut options = ImportOptions::default();
    if let Some(c) = q.email_column {
        options.email_column = c;
    }
    let report = import_csv(
        store,
        std::io::Cursor::new(body),
        target,
        &options,
        ctx.clock.as_ref(),
        &mut |_| {},
    )
    .await?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddRecipient {
    email: String,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
}

pub(super) async fn add(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Value> {
    let items: Vec<AddRecipient> = parse(&body)?;
    if items.len() > MAX_ADD {
        return Err(ApiError::bad(format!(
            "at most {MAX_ADD} recipients per call (got {})",
            items.len()
        )));
    }
    let store = ctx.engine.store();
    let list = match store.list_by_name(&name).await? {
        Some(id) => id,
        None => store.create_list(&name, ctx.clock.now_ms()).await?,
    };
    let recipients: Vec<NewRecipient> = items
        .into_iter()
        .map(|r| NewRecipient {
            email: r.email,
            attributes: r.attributes,
        })
        .collect();
    store
        .add_recipients(list, &recipients, ctx.clock.now_ms())
        .await?;
    Ok(Json(
        json!({ "list": list.0, "added": recipients.len(), "total": store.count_recipients(list).await? }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateDelivery {
    name: String,
    from: String,
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    /// The target list, by name.
    list: String,
    /// e.g. `"5days"`; the MTA caps each message at its own maximum.
    #[serde(default, with = "humantime_serde")]
    validity: Option<Duration>,
    #[serde(default)]
    pool: Option<String>,
}

pub(super) async fn create(State(ctx): State<ApiContext>, body: Bytes) -> ApiResult<Delivery> {
    let c: CreateDelivery = parse(&body)?;
    let store = ctx.engine.store();
    let list = store
        .list_by_name(&c.list)
        .await?
        .ok_or_else(|| ApiError::bad(format!("list: no list named {:?}", c.list)))?;
    let validity_ms = match c.validity {
        Some(v) => u64::try_from(v.as_millis()).unwrap_or(u64::MAX),
        None => DEFAULT_VALIDITY_MS,
    };
    let d = NewDelivery {
        name: c.name,
        from: c.from,
        subject: c.subject,
        text_template: c.text,
        html_template: c.html,
        list,
        validity_ms,
        pool: c.pool,
    };
    Ok(Json(ctx.engine.create_delivery(&d).await?))
}

pub(super) async fn list(State(ctx): State<ApiContext>) -> ApiResult<Vec<Delivery>> {
    Ok(Json(ctx.engine.store().deliveries().await?))
}

pub(super) async fn status(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
) -> ApiResult<DeliveryStatus> {
    Ok(Json(ctx.engine.status(DeliveryId(id)).await?))
}

/// `analyze` answers with the counts; the other verbs with the delivery's new status.
pub(super) async fn verb(
    State(ctx): State<ApiContext>,
    Path((id, verb)): Path<(i64, String)>,
) -> Result<Json<Value>, ApiError> {
    let (e, id) = (&ctx.engine, DeliveryId(id));
    match verb.as_str() {
        "analyze" => {
            let counts: Counts = e.analyze(id, &|_| {}).await?;
            return Ok(Json(json!(counts)));
        }
        "start" => e.start(id).await?,
        "pause" => e.pause(id).await?,
        "resume" => e.resume(id).await?,
        "stop" => e.stop(id).await?,
        other => {
            return Err(ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                format!("no verb {other:?}: analyze, start, pause, resume or stop"),
            ));
        }
    }
    Ok(Json(json!(e.status(id).await?)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogQuery {
    status: Option<LogStatus>,
    reason: Option<u8>,
    domain: Option<String>,
    /// The start of the address.
    address: Option<String>,
    /// The `next` of the previous page.
    after: Option<i64>,
    after_address: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn logs(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> ApiResult<Value> {
    let reason = match q.reason {
        Some(v) => Some(
            Reason::from_value(v).ok_or_else(|| ApiError::bad(format!("reason: no reason {v}")))?,
        ),
        None => None,
    };
    let filter = LogFilter {
        status: q.status,
        reason,
        domain: q.domain,
        address_prefix: q.address,
    };
    let after = q.after.map(|a| LogCursor {
        id: LogId(a),
        address: q.after_address,
    });
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_LOG_PAGE);
    let page = ctx
        .engine
        .store()
        .list_log_rows(DeliveryId(id), &filter, after.as_ref(), limit)
        .await?;
    let rows: Vec<&LogRow> = page.rows.iter().collect();
    Ok(Json(json!({ "rows": rows, "next": page.next })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ThroughputQuery {
    /// The window, ending now: 1, 3 or 24 hours (default 1).
    hours: Option<u64>,
}

/// Throughput over the last 1, 3 or 24 hours: steps of 1, 5 and 15 minutes.
pub(super) async fn throughput(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
    Query(q): Query<ThroughputQuery>,
) -> ApiResult<Value> {
    let hours = q.hours.unwrap_or(1);
    let step_min = match hours {
        1 => 1,
        3 => 5,
        24 => 15,
        other => return Err(ApiError::bad(format!("hours: 1, 3 or 24 (got {other})"))),
    };
    let id = DeliveryId(id);
    ctx.engine.delivery(id).await?;
    let now = ctx.clock.now_ms();
    let step = step_min * 60_000;
    let points = ctx
        .engine
        .store()
        .throughput(id, now.saturating_sub(hours * 3_600_000), now, step)
        .await?;
    Ok(Json(json!({ "step_ms": step, "points": points })))
}

pub(super) async fn qualification(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
) -> ApiResult<Value> {
    let id = DeliveryId(id);
    ctx.engine.delivery(id).await?;
    let lines = ctx.engine.store().qualification_table(id, 200).await?;
    Ok(Json(json!({ "lines": lines })))
}
