//! The HTTP API: injection (SPEC §2.1), queue and shaping operations and Prometheus metrics. Every route except
//! `/healthz` and the one-click `/unsubscribe/{token}` (whose signed token is its credential)
//! requires `Authorization: Bearer <token>`.

use crate::Mta;
use crate::auth::token_matches;
use crate::inject::{InjectError, Injected};
use crate::queue::{Cmd, SchedulerHandle};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

mod build;
mod limits;
mod shaping;
mod unsubscribe;

pub use build::{Content, InjectRequest};
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
}

/// A JSON error body with a status.
pub(crate) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<InjectError> for ApiError {
    fn from(e: InjectError) -> Self {
        let status = match e {
            InjectError::KeyInFlight(_) => StatusCode::CONFLICT,
            _ if e.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        };
        ApiError(status, e.to_string())
    }
}

pub(crate) fn router(state: ApiState, max_body: usize) -> Router {
    let api = Router::new()
        .route("/api/v1/messages", post(inject))
        .route("/api/v1/messages/{id}", get(inspect))
        .route("/api/v1/queue", get(queue))
        .route("/api/v1/queue/flush", post(flush))
        .route("/api/v1/queue/drain", post(drain))
        .route("/api/v1/shaping", get(shaping::view))
        .route("/api/v1/shaping/suspend", post(shaping::suspend))
        .route("/api/v1/shaping/resume", post(shaping::resume))
        .route("/api/v1/shaping/reload", post(shaping::reload))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    let extra = state.routes.clone().map(|r| {
        r.layer(middleware::from_fn_with_state(state.clone(), require_token))
            .layer(DefaultBodyLimit::max(max_body))
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/unsubscribe/{token}",
            get(unsubscribe::page).post(unsubscribe::post),
        )
        .merge(api)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state);
    match extra {
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
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    if !given.is_empty() && s.tokens.iter().any(|t| token_matches(t, given)) {
        return next.run(req).await;
    }
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

async fn inject(State(s): State<ApiState>, Body(body): Body) -> Result<Json<Value>, ApiError> {
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
            recipients.push(json!({ "address": address, "id": id, "repeated": repeated }));
        }
        messages.push(message_id);
    }
    Ok(Json(json!({
        "total_accepted_recipients": recipients.len(),
        "recipients": recipients,
        "message_ids": messages,
    })))
}

fn sched(s: &ApiState) -> &SchedulerHandle {
    &s.mta.sched
}

async fn queue(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let summary = sched(&s)
        .ask(|reply| Cmd::Summary { reply })
        .await
        .ok_or_else(|| ApiError(StatusCode::SERVICE_UNAVAILABLE, "scheduler stopped".into()))?;
    Ok(Json(json!(summary)))
}

async fn inspect(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
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
        Some(v) => Ok(Json(json!(v))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "no queued recipients for this message".into(),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainBody {
    domain: Option<String>,
}

async fn flush(State(s): State<ApiState>, Body(body): Body) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "flushed": n })))
}

async fn drain(State(s): State<ApiState>, Body(body): Body) -> Result<Json<Value>, ApiError> {
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
    Ok(Json(json!({ "drained": n })))
}

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
