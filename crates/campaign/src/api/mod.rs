//! The campaign layer's HTTP API (docs/api.md, "Campaign"): lists and imports, deliveries and
//! their verbs, logs, addresses and quarantine. The router is served by the MTA's HTTP
//! listener behind its token check (the binary passes it in); every handler is one call into
//! the [`Engine`] or the store, and every error is a JSON `{"error": …}` with a 4xx status
//! naming what is wrong (5xx only for the database).
//!
//! Every route is registered from its handler's `#[utoipa::path]`, so [`openapi`] documents
//! exactly what [`router`] serves.

mod addresses;
mod deliveries;
mod events;
mod transactional;

use crate::engine::{AnalysisError, Engine, EngineError};
use crate::import::ImportError;
use crate::store::StoreError;
use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cartero_clock::SharedClock;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouterExt};
use utoipa_axum::routes;

const TAG_LISTS: &str = "lists";
const TAG_DELIVERIES: &str = "deliveries";
const TAG_ADDRESSES: &str = "addresses";
const TAG_TRANSACTIONAL: &str = "transactional";

/// What the handlers share.
#[derive(Clone)]
pub struct ApiContext {
    pub engine: Engine,
    pub clock: SharedClock,
    /// The largest CSV body an import accepts.
    pub max_import_bytes: usize,
}

/// The routes, with their state applied.
pub fn router(ctx: ApiContext) -> Router {
    let (routes, _) = routes(ctx.max_import_bytes).split_for_parts();
    routes.with_state(ctx)
}

/// The OpenAPI operations and schemas of [`router`]'s routes. The token check and the
/// document's `info` are the server's (the MTA's listener, the binary).
pub fn openapi() -> utoipa::openapi::OpenApi {
    // The body limit changes nothing in the document.
    routes(0).into_openapi()
}

fn routes(import_limit: usize) -> OpenApiRouter<ApiContext> {
    OpenApiRouter::default()
        .routes(routes!(deliveries::import).layer(DefaultBodyLimit::max(import_limit)))
        .routes(routes!(deliveries::add))
        .routes(routes!(deliveries::list, deliveries::create))
        .routes(routes!(deliveries::status))
        .routes(routes!(deliveries::logs))
        .routes(routes!(deliveries::throughput))
        .routes(routes!(deliveries::qualification))
        .routes(routes!(deliveries::verb))
        .routes(routes!(addresses::show))
        .routes(routes!(addresses::release_one))
        .routes(routes!(addresses::list))
        .routes(routes!(addresses::release))
        .routes(routes!(addresses::audit))
        .routes(routes!(transactional::list_templates))
        .routes(routes!(
            transactional::put_template,
            transactional::show_template
        ))
        .routes(routes!(transactional::send))
        .routes(routes!(transactional::send_batch))
        .routes(routes!(transactional::messages))
        .routes(routes!(transactional::message))
        .routes(routes!(transactional::outbox))
        .routes(routes!(events::intake))
}

/// Every error answer: a status and this body.
#[derive(Serialize, ToSchema)]
struct ErrorBody {
    error: String,
}

/// The 422 of an analysis refused for template errors; the delivery stays a Draft.
#[derive(Serialize, ToSchema)]
struct TemplateErrors {
    error: String,
    /// Recipients whose message cannot be personalized.
    total: u64,
    /// The first of them.
    recipients: Vec<crate::engine::RecipientError>,
}

/// A JSON error with its status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub serde_json::Value);

impl ApiError {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self(
            status,
            json!(ErrorBody {
                error: message.to_string()
            }),
        )
    }

    fn bad(message: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, e),
            StoreError::ListExists(_) | StoreError::StateConflict { .. } => {
                Self::new(StatusCode::CONFLICT, e)
            }
            StoreError::Invalid(_) => Self::bad(e),
            StoreError::KeyConflict { index, id, .. } => Self(
                StatusCode::CONFLICT,
                json!({ "error": e.to_string(), "index": index, "id": id }),
            ),
            other => {
                tracing::error!(error = %other, "campaign API: database error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "campaign database error")
            }
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            EngineError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, e),
            EngineError::State { .. } | EngineError::Analysis(AnalysisError::Busy(_)) => {
                Self::new(StatusCode::CONFLICT, e)
            }
            EngineError::Analysis(AnalysisError::Templates { total, ref errors }) => Self(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!(TemplateErrors {
                    error: e.to_string(),
                    total,
                    recipients: errors.clone(),
                }),
            ),
            EngineError::Analysis(AnalysisError::Aborted(_)) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, e)
            }
            EngineError::Template(_) | EngineError::Invalid(_) => Self::bad(e),
            EngineError::UnknownTemplate(_) => Self::new(StatusCode::NOT_FOUND, e),
            EngineError::Call(ref c) => Self(
                StatusCode::UNPROCESSABLE_ENTITY,
                call_error_body(&e.to_string(), c),
            ),
        }
    }
}

/// A refused transactional call: which one, which field, and (when known) the template line
/// and the variable it lacked.
fn call_error_body(message: &str, c: &crate::engine::CallError) -> serde_json::Value {
    use crate::render::{RenderError, TemplateErrorKind};
    let (field, line, variable) = match &c.error {
        RenderError::Template(t) => (
            t.field.name().to_string(),
            t.line,
            match &t.kind {
                TemplateErrorKind::Undefined(v) => Some(v.clone()),
                _ => None,
            },
        ),
        RenderError::Recipient { .. } => ("recipient".into(), None, None),
        RenderError::Attribute { name, .. } => (format!("data.{name}"), None, None),
        RenderError::Header { name, .. } => (format!("header {name}"), None, None),
    };
    json!({ "error": message, "index": c.index, "field": field, "line": line, "variable": variable })
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Store(s) => s.into(),
            other => Self::bad(other),
        }
    }
}

pub type ApiResult<T> = Result<Json<T>, ApiError>;
