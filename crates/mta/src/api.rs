//! The HTTP API: injection (SPEC §2.1), queue and shaping operations and Prometheus metrics. Every route except
//! `/healthz` and the one-click `/unsubscribe/{token}` (whose signed token is its credential)
//! requires `Authorization: Bearer <token>`.
//!
//! Every route is registered from its handler's `#[utoipa::path]` (method and path), so the
//! OpenAPI document served at `/api/v1/openapi.json` lists exactly what is routed.

use crate::Mta;
use crate::auth::token_matches;
use crate::inject::{InjectError, Injected};
use crate::queue::view::{MessageView, QueueSummary};
use crate::queue::{Cmd, SchedulerHandle};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

mod build;
mod doc;
mod limits;
mod shaping;
mod tail;
mod unsubscribe;

pub use build::{Content, InjectRequest};
pub use doc::{BEARER, openapi, openapi_with};
use doc::{ErrorBody, TAG_MESSAGES, TAG_OPS, TAG_QUEUE};
pub(crate) use limits::Policy;
pub use limits::{RecipientSpec, Recipients};

/// Renders the metrics text; provided by whoever installed the metrics recorder.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub(crate) struct ApiState {
    pub mta: Arc<Mta>,
    pub tokens: Arc<Vec<String>>,
    pub metrics: Option<MetricsRender>,
    /// Budgets and pools an injection request is checked against.
    pub policy: Arc<Policy>,
    /// The embedding program's routes ([`StartOptions::routes`](crate::StartOptions)).
    pub routes: Option<Router>,
    /// Routes served without the token check: they authenticate requests themselves.
    pub public_routes: Option<Router>,
    /// A second credential the token-checked routes accept.
    pub request_auth: Option<SharedRequestAuth>,
    /// Served at `/api/v1/openapi.json`.
    pub openapi: Arc<utoipa::openapi::OpenApi>,
}

/// A second credential the token-checked routes accept besides the bearer token (the
/// dashboard's session cookie with its CSRF header). Asked only when a request carries no
/// valid token.
pub trait RequestAuth: Send + Sync {
    /// The operator the request acts for, when it is authorized.
    fn operator(&self, method: &Method, headers: &header::HeaderMap) -> Option<String>;
}

/// The header that names, to the handlers behind the token check, the operator a
/// [`RequestAuth`] authorized (the audit trail records that name). The check removes it from
/// every incoming request first: a client cannot set it.
pub const OPERATOR_HEADER: &str = "x-cartero-operator";

pub type SharedRequestAuth = Arc<dyn RequestAuth>;

/// A JSON error body with a status.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorBody { error: self.1 })).into_response()
    }
}

impl From<InjectError> for ApiError {
    fn from(e: InjectError) -> Self {
        let status = match e {
            InjectError::KeyInFlight(_) => StatusCode::CONFLICT,
            InjectError::Expired { .. } => StatusCode::GONE,
            _ if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError(status, e.to_string())
    }
}

/// The routes open to anyone.
fn public_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::default()
        .routes(routes!(healthz))
        .routes(routes!(unsubscribe::page, unsubscribe::post))
}

/// The routes behind the token check.
fn token_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::default()
        .routes(routes!(inject))
        .routes(routes!(inspect))
        .routes(routes!(queue))
        .routes(routes!(flush))
        .routes(routes!(drain))
        .routes(routes!(shaping::view))
        .routes(routes!(shaping::suspend))
        .routes(routes!(shaping::resume))
        .routes(routes!(shaping::reload))
        .routes(routes!(metrics))
        .routes(routes!(tail::tail))
        .routes(routes!(doc::served))
}

pub(crate) fn router(state: ApiState, max_body: usize) -> Router {
    let (api, _) = token_routes()
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .split_for_parts();
    let (public, _) = public_routes().split_for_parts();
    let extra = state.routes.clone().map(|r| {
        r.layer(middleware::from_fn_with_state(state.clone(), require_token))
            .layer(DefaultBodyLimit::max(max_body))
    });
    let own_public = state.public_routes.clone();
    let mut app = public
        .merge(api)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    if let Some(r) = extra {
        app = app.merge(r);
    }
    match own_public {
        Some(r) => app.merge(r),
        None => app,
    }
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is case-insensitive (RFC 9110
/// §11.1) and may be followed by more than one space.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' '))
}

async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    match allowed(&s.tokens, s.request_auth.as_deref(), req) {
        Ok(req) => next.run(req).await,
        Err(()) => unauthorized(),
    }
}

/// The request, when it carries one of `tokens` or satisfies `auth` (then with
/// [`OPERATOR_HEADER`] naming its operator); a client's own [`OPERATOR_HEADER`] is dropped.
pub(crate) fn allowed(
    tokens: &[String],
    auth: Option<&dyn RequestAuth>,
    mut req: Request,
) -> Result<Request, ()> {
    req.headers_mut().remove(OPERATOR_HEADER);
    if authorized(tokens, req.headers()) {
        return Ok(req);
    }
    let operator = auth.and_then(|a| a.operator(req.method(), req.headers()));
    let value = operator.and_then(|o| header::HeaderValue::from_str(&o).ok());
    match value {
        Some(v) => {
            req.headers_mut().insert(OPERATOR_HEADER, v);
            Ok(req)
        }
        None => Err(()),
    }
}

/// Whether the request carries one of `tokens` as its bearer token.
pub(crate) fn authorized(tokens: &[String], headers: &header::HeaderMap) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    !given.is_empty() && tokens.iter().any(|t| token_matches(t, given))
}

/// The 401 of a request without a valid token.
pub(crate) fn unauthorized() -> Response {
    let mut r = ApiError(
        StatusCode::UNAUTHORIZED,
        "missing or invalid API token".into(),
    )
    .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    r
}

/// The request body. Over `http.max_body` it is refused with a JSON 413 like any other error.
struct Body(axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => Ok(Body(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError(
                e.status(),
                "request body too large (over http.max_body)".into(),
            )),
            Err(e) => Err(ApiError(e.status(), e.body_text())),
        }
    }
}

/// Parses the JSON body ourselves so every malformed payload gets a JSON error, not a text one.
fn parse<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, format!("invalid JSON body: {e}")))
}

/// One accepted recipient of an injection.
#[derive(Serialize, ToSchema)]
struct Accepted {
    address: String,
    /// `<message id>.<index>`.
    id: String,
    /// The idempotency key was known: `id` is the original one and nothing was spooled.
    repeated: bool,
}

/// The answer to an injection, sent once the messages are durably spooled.
#[derive(Serialize, ToSchema)]
struct InjectReply {
    message_ids: Vec<String>,
    recipients: Vec<Accepted>,
    total_accepted_recipients: usize,
}

/// Injects messages (SPEC §2.1).
#[utoipa::path(post, path = "/api/v1/messages", operation_id = "inject", tag = TAG_MESSAGES,
    request_body = InjectRequest,
    responses(
        (status = 200, description = "Accepted and durably spooled", body = InjectReply),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "The same idempotency key is being injected now: retry", body = ErrorBody),
        (status = 413, description = "Body over `http.max_body`", body = ErrorBody),
        (status = 422, description = "Invalid request, naming the field; nothing spooled", body = ErrorBody),
        (status = 503, description = "Spool failure: retry", body = ErrorBody),
    ))]
async fn inject(
    State(s): State<ApiState>,
    Body(body): Body,
) -> Result<Json<InjectReply>, ApiError> {
    let req: InjectRequest = parse(&body)?;
    let injections = build::injections(req, &s.policy)
        .map_err(|e| ApiError(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let mut recipients = Vec::new();
    let mut messages = Vec::new();
    for inj in injections {
        let addrs = inj.recipients.clone();
        let Injected {
            message_id,
            recipient_ids,
            repeated,
        } = s.mta.inject(inj).await?;
        for ((address, id), repeated) in addrs.into_iter().zip(recipient_ids).zip(repeated) {
            recipients.push(Accepted {
                address,
                id,
                repeated,
            });
        }
        messages.push(message_id);
    }
    Ok(Json(InjectReply {
        total_accepted_recipients: recipients.len(),
        recipients,
        message_ids: messages,
    }))
}

fn sched(s: &ApiState) -> &SchedulerHandle {
    &s.mta.sched
}

/// The queue by destination domain and by ready queue (times in ms since the epoch).
#[utoipa::path(get, path = "/api/v1/queue", operation_id = "queue_summary", tag = TAG_QUEUE,
    responses(
        (status = 200, description = "The queue summary", body = QueueSummary),
        (status = 503, description = "Scheduler stopped", body = ErrorBody),
    ))]
async fn queue(State(s): State<ApiState>) -> Result<Json<QueueSummary>, ApiError> {
    let summary = sched(&s)
        .ask(|reply| Cmd::Summary { reply })
        .await
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "scheduler stopped".into()))?;
    Ok(Json(summary))
}

/// The queued recipients of one message.
#[utoipa::path(get, path = "/api/v1/messages/{id}", operation_id = "inspect_message", tag = TAG_MESSAGES,
    params(("id" = String, Path, description = "Message id, as the injection answered it")),
    responses(
        (status = 200, description = "The message and its queued recipients", body = MessageView),
        (status = 400, description = "Not a message id", body = ErrorBody),
        (status = 404, description = "No queued recipients for this message", body = ErrorBody),
    ))]
async fn inspect(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<MessageView>, ApiError> {
    let id = id.parse().map_err(|_| {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid message id {id:?}"),
        )
    })?;
    match sched(&s)
        .ask(|reply| Cmd::Inspect { id, reply })
        .await
        .flatten()
    {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "no queued recipients for this message".into(),
        )),
    }
}

/// A recipient domain (any case); absent = every domain (flush only).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    domain: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Flushed {
    /// Recipients made due now.
    flushed: usize,
}

#[derive(Serialize, ToSchema)]
struct Drained {
    /// Recipients failed with a `bounce` event, class 25, reason `operator:drain`.
    drained: usize,
}

/// Makes the scheduled recipients of a domain (or of all, with `{}` or no body) due now.
#[utoipa::path(post, path = "/api/v1/queue/flush", operation_id = "flush_queue", tag = TAG_QUEUE,
    request_body(content = Option<DomainBody>, description = "`{}` or no body for every domain"),
    responses(
        (status = 200, description = "How many were made due", body = Flushed),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
    ))]
async fn flush(State(s): State<ApiState>, Body(body): Body) -> Result<Json<Flushed>, ApiError> {
    let b: DomainBody = if body.is_empty() {
        DomainBody { domain: None }
    } else {
        parse(&body)?
    };
    let domain = b.domain.map(|d| d.to_ascii_lowercase());
    let n = sched(&s)
        .ask(|reply| Cmd::Flush { domain, reply })
        .await
        .unwrap_or(0);
    Ok(Json(Flushed { flushed: n }))
}

/// Fails every queued recipient of a domain.
#[utoipa::path(post, path = "/api/v1/queue/drain", operation_id = "drain_queue", tag = TAG_QUEUE,
    request_body = DomainBody,
    responses(
        (status = 200, description = "How many were failed", body = Drained),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 422, description = "No domain given", body = ErrorBody),
    ))]
async fn drain(State(s): State<ApiState>, Body(body): Body) -> Result<Json<Drained>, ApiError> {
    let b: DomainBody = parse(&body)?;
    let domain = b
        .domain
        .ok_or_else(|| {
            ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "drain needs a domain".into(),
            )
        })?
        .to_ascii_lowercase();
    let n = sched(&s)
        .ask(|reply| Cmd::Drain { domain, reply })
        .await
        .unwrap_or(0);
    Ok(Json(Drained { drained: n }))
}

/// Prometheus metrics, as text.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = TAG_OPS,
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String,
         content_type = "text/plain; version=0.0.4"),
        (status = 404, description = "Metrics are not enabled", body = ErrorBody),
    ))]
async fn metrics(State(s): State<ApiState>) -> Response {
    match &s.metrics {
        Some(render) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            render(),
        )
            .into_response(),
        None => ApiError(StatusCode::NOT_FOUND, "metrics are not enabled".into()).into_response(),
    }
}

/// Liveness: answers `ok` while the process serves HTTP.
#[utoipa::path(get, path = "/healthz", operation_id = "healthz", tag = TAG_OPS, security(()),
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}
