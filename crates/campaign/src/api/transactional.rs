//! Transactional templates and calls (SPEC §3.7, docs/transactional.md).

use super::deliveries::parse;
use super::{ApiContext, ApiError, ApiResult, ErrorBody, TAG_TRANSACTIONAL};
use crate::engine::{Call, CallAccepted, OutboxStatus};
use crate::model::{DEFAULT_VALIDITY_MS, ListId, LogId, LogRow, LogStatus, UnixMillis};
use crate::store::{NewDelivery, TxCall, TxFilter, TxTemplate, TxVersion};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::time::Duration;
use utoipa::{IntoParams, ToSchema};

/// The header that carries a single call's idempotency key.
const KEY_HEADER: &str = "idempotency-key";
/// Most calls one listing page returns.
const MAX_PAGE: u32 = 1_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    /// The From header.
    #[schema(example = "Shop <orders@example.com>")]
    from: String,
    /// A template, as `text` and `html`: `{{ recipient }}` and the call's data.
    subject: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    html: Option<String>,
    /// How long a call's message keeps trying, e.g. `"1day"`; default 5 days (the MTA caps it).
    #[serde(default, with = "humantime_serde")]
    #[schema(value_type = Option<String>, example = "1day")]
    validity: Option<Duration>,
    /// The MTA egress pool; absent = its default pool.
    #[serde(default)]
    pool: Option<String>,
}

/// Adds a version to a template (creating it); calls made from now on use it. Its content is
/// compiled first: a syntax error is a 422 naming the field and line.
#[utoipa::path(put, path = "/api/v1/transactional/templates/{name}", operation_id = "put_tx_template",
    tag = TAG_TRANSACTIONAL,
    params(("name" = String, Path, description = "Letters, digits, `.`, `_`, `-`")),
    request_body = TemplateBody,
    responses(
        (status = 200, description = "The new version, now in force", body = TxVersion),
        (status = 422, description = "Bad name or payload, template syntax error", body = ErrorBody),
    ))]
pub(super) async fn put_template(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<TxVersion> {
    let t: TemplateBody = parse(&body)?;
    let content = NewDelivery {
        name: String::new(),
        from: t.from,
        subject: t.subject,
        text_template: t.text,
        html_template: t.html,
        list: ListId(0),
        validity_ms: t.validity.map_or(DEFAULT_VALIDITY_MS, |v| {
            u64::try_from(v.as_millis()).unwrap_or(u64::MAX)
        }),
        pool: t.pool,
    };
    Ok(Json(ctx.engine.put_tx_template(&name, &content).await?))
}

/// Every template with its versions, newest first.
#[utoipa::path(get, path = "/api/v1/transactional/templates", operation_id = "list_tx_templates",
    tag = TAG_TRANSACTIONAL,
    responses((status = 200, description = "The templates", body = Vec<TxTemplate>)))]
pub(super) async fn list_templates(State(ctx): State<ApiContext>) -> ApiResult<Vec<TxTemplate>> {
    Ok(Json(ctx.engine.store().tx_templates().await?))
}

/// A template: the version in force and every version.
#[utoipa::path(get, path = "/api/v1/transactional/templates/{name}", operation_id = "show_tx_template",
    tag = TAG_TRANSACTIONAL,
    params(("name" = String, Path, description = "The template")),
    responses(
        (status = 200, description = "The template", body = TxTemplate),
        (status = 404, description = "No such template", body = ErrorBody),
    ))]
pub(super) async fn show_template(
    State(ctx): State<ApiContext>,
    Path(name): Path<String>,
) -> ApiResult<TxTemplate> {
    ctx.engine
        .store()
        .tx_template(&name)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no transactional template {name:?}"),
            )
        })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CallBody {
    /// The address to send to.
    recipient: String,
    /// What the template personalizes with.
    #[serde(default)]
    #[schema(value_type = Object)]
    data: Map<String, Value>,
    /// Instead of the `Idempotency-Key` header (they must agree when both are given).
    #[serde(default)]
    idempotency_key: Option<String>,
}

impl CallBody {
    fn into_call(self) -> Call {
        Call {
            recipient: self.recipient,
            data: self.data,
            idempotency_key: self.idempotency_key,
        }
    }
}

/// Sends one message with the template's version in force. `202` once the call is stored in
/// the campaign database; the outbox hands it to the MTA (at once when it is up). The same
/// idempotency key again within the window (default 24 h) answers with the original call and
/// sends nothing; with another payload it is a `409`.
#[utoipa::path(post, path = "/api/v1/transactional/{template}", operation_id = "send_tx",
    tag = TAG_TRANSACTIONAL,
    params(("template" = String, Path, description = "The template"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 printable ASCII characters")),
    request_body = CallBody,
    responses(
        (status = 202, description = "Stored (or a repeat of a stored call)", body = CallAccepted),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 409, description = "The key was used with another payload", body = ErrorBody),
        (status = 422, description = "Bad payload, or the call cannot be personalized (naming the field)", body = ErrorBody),
    ))]
pub(super) async fn send(
    State(ctx): State<ApiContext>,
    Path(template): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<CallAccepted>), ApiError> {
    let mut call: CallBody = parse(&body)?;
    if let Some(h) = headers.get(KEY_HEADER) {
        let h = h
            .to_str()
            .map_err(|_| ApiError::bad("Idempotency-Key: not printable ASCII"))?;
        match &call.idempotency_key {
            Some(k) if k != h => {
                return Err(ApiError::bad(
                    "the Idempotency-Key header and the body's idempotency_key differ",
                ));
            }
            _ => call.idempotency_key = Some(h.to_string()),
        }
    }
    let mut answers = ctx
        .engine
        .send_transactional(&template, vec![call.into_call()])
        .await?;
    let answer = answers
        .pop()
        .ok_or_else(|| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "no answer"))?;
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    /// 1 to 1,000 calls, each with its own key.
    calls: Vec<CallBody>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct BatchAccepted {
    /// One answer per call, in order.
    results: Vec<CallAccepted>,
}

/// Many calls in one request, stored in one transaction: all are answered, or (a bad call, a
/// key conflict) none is stored and the error names the call's index.
#[utoipa::path(post, path = "/api/v1/transactional/{template}/batch", operation_id = "send_tx_batch",
    tag = TAG_TRANSACTIONAL,
    params(("template" = String, Path, description = "The template")),
    request_body = BatchBody,
    responses(
        (status = 202, description = "Every call stored (or a repeat)", body = BatchAccepted),
        (status = 404, description = "No such template", body = ErrorBody),
        (status = 409, description = "A key was used with another payload; nothing stored", body = ErrorBody),
        (status = 422, description = "A bad call (its index and field); nothing stored", body = ErrorBody),
    ))]
pub(super) async fn send_batch(
    State(ctx): State<ApiContext>,
    Path(template): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<BatchAccepted>), ApiError> {
    let b: BatchBody = parse(&body)?;
    let calls = b.calls.into_iter().map(CallBody::into_call).collect();
    let results = ctx.engine.send_transactional(&template, calls).await?;
    Ok((StatusCode::ACCEPTED, Json(BatchAccepted { results })))
}

/// A stored call: its status is its log row's (`pending` = queued for the MTA, `taken` = the
/// MTA has it, then `sent` or `failed`; `ignored` = not sent, the address is excluded).
#[derive(Serialize, ToSchema)]
pub(super) struct TxMessage {
    id: LogId,
    template: String,
    version: u32,
    status: LogStatus,
    idempotency_key: Option<String>,
    created_at: UnixMillis,
    /// The log row: address, MTA message id, last reply, attempts.
    row: LogRow,
}

impl From<TxCall> for TxMessage {
    fn from(c: TxCall) -> Self {
        Self {
            id: c.row.id,
            template: c.template,
            version: c.version,
            status: c.row.status,
            idempotency_key: c.idempotency_key,
            created_at: c.created_at,
            row: c.row,
        }
    }
}

/// A call by id.
#[utoipa::path(get, path = "/api/v1/transactional/messages/{id}", operation_id = "tx_message",
    tag = TAG_TRANSACTIONAL,
    params(("id" = i64, Path, description = "The call's id")),
    responses(
        (status = 200, description = "The call", body = TxMessage),
        (status = 404, description = "No such call", body = ErrorBody),
    ))]
pub(super) async fn message(
    State(ctx): State<ApiContext>,
    Path(id): Path<i64>,
) -> ApiResult<TxMessage> {
    ctx.engine
        .store()
        .tx_call(LogId(id))
        .await?
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no transactional call {id}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct MessagesQuery {
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    #[param(value_type = Option<String>)]
    status: Option<LogStatus>,
    /// The address exactly as the call gave it.
    #[serde(default)]
    address: Option<String>,
    /// The `next` of the previous page.
    #[serde(default)]
    after: Option<i64>,
    /// 1 to 1,000 (default 100).
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct MessagesPage {
    messages: Vec<TxMessage>,
    /// `after` for the next page; absent on the last.
    next: Option<i64>,
}

/// Calls in id order, filtered.
#[utoipa::path(get, path = "/api/v1/transactional/messages", operation_id = "tx_messages",
    tag = TAG_TRANSACTIONAL,
    params(MessagesQuery),
    responses(
        (status = 200, description = "A page of calls", body = MessagesPage),
        (status = 422, description = "Bad filter", body = ErrorBody),
    ))]
pub(super) async fn messages(
    State(ctx): State<ApiContext>,
    Query(q): Query<MessagesQuery>,
) -> ApiResult<MessagesPage> {
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad(format!("limit: 1 to {MAX_PAGE}")));
    }
    let filter = TxFilter {
        template: q.template,
        status: q.status,
        address: q.address,
    };
    let calls = ctx
        .engine
        .store()
        .list_tx_calls(&filter, q.after.map(LogId), limit)
        .await?;
    let next = (calls.len() == limit as usize)
        .then(|| calls.last().map(|c| c.row.id.0))
        .flatten();
    Ok(Json(MessagesPage {
        messages: calls.into_iter().map(TxMessage::from).collect(),
        next,
    }))
}

/// The calls waiting for the MTA: how many, the oldest one's age, and whether it is over
/// `[campaign] outbox_warn_age`.
#[utoipa::path(get, path = "/api/v1/transactional/outbox", operation_id = "tx_outbox",
    tag = TAG_TRANSACTIONAL,
    responses((status = 200, description = "The outbox", body = OutboxStatus)))]
pub(super) async fn outbox(State(ctx): State<ApiContext>) -> ApiResult<OutboxStatus> {
    Ok(Json(ctx.engine.outbox_status().await?))
}
