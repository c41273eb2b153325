//! Lists, imports and deliveries.

use super::{
    ApiContext, ApiError, ApiResult, ErrorBody, TAG_DELIVERIES, TAG_LISTS, TemplateErrors,
};
use crate::analysis::Counts;
use crate::engine::DeliveryStatus;
use crate::import::{ImportOptions, ImportReport, import_csv};
use crate::model::{DEFAULT_VALIDITY_MS, Delivery, DeliveryId, ListId, LogId, LogRow, LogStatus};
use crate::store::{
    ImportTarget, LogCursor, LogFilter, NewDelivery, NewRecipient, QualificationLine,
    ThroughputPoint,
};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use cartero_bounce::Reason;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// Most recipients one `recipients` call adds.
const MAX_ADD: usize = 10_000;
/// Most log rows one page returns.
const MAX_LOG_PAGE: u32 = 1_000;

/// A JSON body, refused with a 422 naming the problem (axum's own rejection is plain text).
pub(super) fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid JSON body: {e}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportQuery {
    /// The header of the e-mail column (default `email`).
    #[serde(default)]
    email_column: Option<String>,
    /// Add to the existing list of that name instead of creating it.
    #[serde(default)]
    append: bool,
}

/// Imports a CSV (header row = attributes) into a new list, or into an existing one with
/// `append`. Nothing is kept of a failed import.
#[utoipa::path(post, path = "/api/v1/lists/{name}/import", operation_id = "import_list", tag = TAG_LISTS,
    params(("name" = String, Path, description = "The list"), ImportQuery),
    request_body(content = String, content_type = "text/csv",
        description = "UTF-8 CSV, at most 256 MiB, lines at most 64 KiB"),
    responses(
        (status = 200, description = "Rows read, imported, bad rows with their line numbers", body = ImportReport),
        (status = 404, description = "`append` to a list that does not exist", body = ErrorBody),
        (status = 409, description = "A list of that name exists (without `append`)", body = ErrorBody),
        (status = 413, description = "Body over the import limit", body = ErrorBody),
        (status = 422, description = "Bad encoding, a line too long, no e-mail column", body = ErrorBody),
    ))]
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct AddRecipient {
    email: String,
    /// What templates personalize with.
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: serde_json::Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Added {
    added: usize,
    list: ListId,
    /// Recipients of the list now.
    total: u64,
}

/// Adds recipients to a list, created when absent.
#[utoipa::path(post, path = "/api/v1/lists/{name}/recipients", operation_id = "add_recipients", tag = TAG_LISTS,
    params(("name" = String, Path, description = "The list")),
    request_body(content = Vec<AddRecipient>, description = "At most 10,000"),
    responses(
        (status = 200, description = "Added", body = Added),
        (status = 422, description = "Bad payload, naming the field", body = ErrorBody),
    ))]
pub(super) async fn add(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Added> {
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
    Ok(Json(Added {
        added: recipients.len(),
        list,
        total: store.count_recipients(list).await?,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateDelivery {
    name: String,
    /// The From header.
    #[schema(example = "News <news@example.com>")]
    from: String,
    /// A template, as `text` and `html`.
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    /// The target list, by name.
    list: String,
    /// e.g. `"5days"` (the default); the MTA caps each message at its own maximum.
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "5days")]
    validity: Option<Duration>,
    /// The MTA egress pool; absent = its default pool.
    #[serde(default)]
    pool: Option<String>,
}

/// Creates a Draft delivery; its templates are compiled.
#[utoipa::path(post, path = "/api/v1/deliveries", operation_id = "create_delivery", tag = TAG_DELIVERIES,
    request_body = CreateDelivery,
    responses(
        (status = 200, description = "The Draft delivery", body = Delivery),
        (status = 422, description = "Bad payload, unknown list, template syntax error (naming the field and line)", body = ErrorBody),
    ))]
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

/// Every delivery.
#[utoipa::path(get, path = "/api/v1/deliveries", operation_id = "list_deliveries", tag = TAG_DELIVERIES,
    responses((status = 200, description = "Every delivery", body = Vec<Delivery>)))]
pub(super) async fn list(State(ctx): State<ApiContext>) -> ApiResult<Vec<Delivery>> {
    Ok(Json(ctx.engine.store().deliveries().await?))
}

/// A delivery with its figures (SPEC §3.3).
#[utoipa::path(get, path = "/api/v1/deliveries/{id}", operation_id = "delivery_status", tag = TAG_DELIVERIES,
    params(("id" = i64, Path, description = "The delivery")),
    responses(
        (status = 200, description = "The delivery, its counters and both views", body = DeliveryStatus),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ))]
pub(super) async fn status(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
) -> ApiResult<DeliveryStatus> {
    Ok(Json(ctx.engine.status(DeliveryId(id)).await?))
}

/// A delivery verb.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // The path segment is matched as text; this only names the values.
enum Verb {
    Analyze,
    Start,
    Pause,
    Resume,
    Stop,
}

/// What a verb answers.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum VerbReply {
    /// `analyze`: the counts.
    Counts(Counts),
    /// The other verbs: the delivery's new status.
    Status(Box<DeliveryStatus>),
}

/// `analyze` (Draft or Analyzed → Analyzed), `start` (Analyzed → Running), `pause`, `resume`,
/// `stop`. Pause and stop answer once the batch being handed to the MTA is finished; stop fails
/// what the MTA has not taken.
#[utoipa::path(post, path = "/api/v1/deliveries/{id}/{verb}", operation_id = "delivery_verb", tag = TAG_DELIVERIES,
    params(("id" = i64, Path, description = "The delivery"), ("verb" = inline(Verb), Path)),
    responses(
        (status = 200, description = "`analyze`: the counts; the others: the new status", body = VerbReply),
        (status = 404, description = "No such delivery or verb", body = ErrorBody),
        (status = 409, description = "The delivery's state does not allow the verb", body = ErrorBody),
        (status = 422, description = "Template errors at analysis; the delivery stays a Draft", body = TemplateErrors),
    ))]
pub(super) async fn verb(
    State(ctx): State<ApiContext>,
    Path((id, verb)): Path<(i64, String)>,
) -> ApiResult<VerbReply> {
    let (e, id) = (&ctx.engine, DeliveryId(id));
    match verb.as_str() {
        "analyze" => {
            let counts: Counts = e.analyze(id, &|_| {}).await?;
            return Ok(Json(VerbReply::Counts(counts)));
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
    Ok(Json(VerbReply::Status(Box::new(e.status(id).await?))))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct LogQuery {
    #[param(inline)]
    status: Option<LogStatus>,
    /// A reason's technical value (SPEC §3.4).
    reason: Option<u8>,
    domain: Option<String>,
    /// The start of the address.
    address: Option<String>,
    /// `next.id` of the previous page.
    after: Option<i64>,
    /// `next.address` of the previous page (with an address filter).
    after_address: Option<String>,
    /// 1–1000, default 100.
    limit: Option<u32>,
}

/// A keyset page of a log.
#[derive(Serialize, ToSchema)]
pub(super) struct LogsPage {
    /// Absent on the last page.
    next: Option<LogCursor>,
    rows: Vec<LogRow>,
}

/// A page of a delivery's log, in id order (in address order with an address filter).
#[utoipa::path(get, path = "/api/v1/deliveries/{id}/logs", operation_id = "delivery_logs", tag = TAG_DELIVERIES,
    params(("id" = i64, Path, description = "The delivery"), LogQuery),
    responses(
        (status = 200, description = "The rows and where the next page starts", body = LogsPage),
        (status = 422, description = "A bad filter", body = ErrorBody),
    ))]
pub(super) async fn logs(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
    Query(q): Query<LogQuery>,
) -> ApiResult<LogsPage> {
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
    Ok(Json(LogsPage {
        next: page.next,
        rows: page.rows,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ThroughputQuery {
    /// The window, ending now: 1, 3 or 24 hours (default 1).
    hours: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Throughput {
    points: Vec<ThroughputPoint>,
    step_ms: u64,
}

/// Throughput over the last 1, 3 or 24 hours: steps of 1, 5 and 15 minutes, every step present.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}/throughput", operation_id = "delivery_throughput", tag = TAG_DELIVERIES,
    params(("id" = i64, Path, description = "The delivery"), ThroughputQuery),
    responses(
        (status = 200, description = "The series", body = Throughput),
        (status = 404, description = "No such delivery", body = ErrorBody),
        (status = 422, description = "`hours` not 1, 3 or 24", body = ErrorBody),
    ))]
pub(super) async fn throughput(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
    Query(q): Query<ThroughputQuery>,
) -> ApiResult<Throughput> {
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
    Ok(Json(Throughput {
        points,
        step_ms: step,
    }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct Qualification {
    lines: Vec<QualificationLine>,
}

/// The failure texts of a delivery as qualified (normalized), with their row counts.
#[utoipa::path(get, path = "/api/v1/deliveries/{id}/qualification", operation_id = "delivery_qualification", tag = TAG_DELIVERIES,
    params(("id" = i64, Path, description = "The delivery")),
    responses(
        (status = 200, description = "At most 200 lines, most rows first", body = Qualification),
        (status = 404, description = "No such delivery", body = ErrorBody),
    ))]
pub(super) async fn qualification(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
) -> ApiResult<Qualification> {
    let id = DeliveryId(id);
    ctx.engine.delivery(id).await?;
    let lines = ctx.engine.store().qualification_table(id, 200).await?;
    Ok(Json(Qualification { lines }))
}
