//! The campaign layer's HTTP API (docs/api.md, "Campaign"): lists and imports, deliveries and
//! their verbs, logs, addresses and quarantine. The router is served by the MTA's HTTP
//! listener behind its token check (the binary passes it in); every handler is one call into
//! the [`Engine`] or the store, and every error is a JSON `{"error": …}` with a 4xx status
//! naming what is wrong (5xx only for the database).

mod addresses;
mod deliveries;

use crate::engine::{AnalysisError, Engine, EngineError};
use crate::import::ImportError;
use crate::store::StoreError;
use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use cartero_clock::SharedClock;
use serde_json::json;

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
    let import_limit = ctx.max_import_bytes;
    Router::new()
        .route(
            "/api/v1/lists/{name}/import",
            post(deliveries::import).layer(DefaultBodyLimit::max(import_limit)),
        )
        .route("/api/v1/lists/{name}/recipients", post(deliveries::add))
        .route(
            "/api/v1/deliveries",
            get(deliveries::list).post(deliveries::create),
        )
        .route("/api/v1/deliveries/{id}", get(deliveries::status))
        .route("/api/v1/deliveries/{id}/logs", get(deliveries::logs))
        .route(
            "/api/v1/deliveries/{id}/throughput",
            get(deliveries::throughput),
        )
        .route(
            "/api/v1/deliveries/{id}/qualification",
            get(deliveries::qualification),
        )
        .route("/api/v1/deliveries/{id}/{verb}", post(deliveries::verb))
        .route("/api/v1/addresses/{address}", get(addresses::show))
        .route(
            "/api/v1/addresses/{address}/release",
            post(addresses::release_one),
        )
        .route("/api/v1/quarantine", get(addresses::list))
        .route("/api/v1/quarantine/release", post(addresses::release))
        .route("/api/v1/quarantine/releases", get(addresses::audit))
        .with_state(ctx)
}

/// A JSON error with its status.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub serde_json::Value);

impl ApiError {
    fn new(status: StatusCode, message: impl std::fmt::Display) -> Self {
        Self(status, json!({ "error": message.to_string() }))
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
                json!({ "error": e.to_string(), "total": total, "recipients": errors }),
            ),
            EngineError::Template(_) | EngineError::Invalid(_) => Self::bad(e),
        }
    }
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
