//! Shaping operations: the live view, operator suspensions and configuration reload.

use super::doc::{ErrorBody, TAG_SHAPING};
use super::{ApiError, ApiState, parse};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cartero_shaping::{Scope, ShapingAction, ShapingView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /api/v1/shaping/suspend`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SuspendBody {
    /// `domain:NAME`, `site:NAME` or `source:NAME` (also `queue:SOURCE/SITE` and
    /// `source-domain:SOURCE/DOMAIN`, as the view shows them).
    #[schema(example = "domain:example.net")]
    scope: String,
    /// humantime duration (`"2h"`); absent = until resumed.
    #[serde(default, rename = "for")]
    #[schema(example = "2h")]
    for_: Option<String>,
    /// Defaults to `operator`.
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/shaping/resume`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ResumeBody {
    #[schema(example = "domain:example.net")]
    scope: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Reloaded {
    pub reloaded: bool,
}

fn bad_request(msg: String) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg)
}

fn stopped() -> ApiError {
    ApiError(StatusCode::SERVICE_UNAVAILABLE, "scheduler stopped".into())
}

fn scope(s: &str) -> Result<Scope, ApiError> {
    Scope::parse(s).map_err(|e| bad_request(format!("invalid scope: {e}")))
}

/// A zero duration would create a suspension that is already over: refused as a mistake.
fn duration(s: &str) -> Result<std::time::Duration, ApiError> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| bad_request(format!("invalid duration {s:?} in \"for\": {e}")))?;
    if d.is_zero() {
        return Err(bad_request(format!(
            "\"for\" must be longer than zero, got {s:?}"
        )));
    }
    Ok(d)
}

/// The live shaping view (times in ms since the epoch, rates in messages per hour).
#[utoipa::path(get, path = "/api/v1/shaping", operation_id = "shaping_view", tag = TAG_SHAPING,
    responses((status = 200, description = "Queues, suspensions and warm-up", body = ShapingView)))]
pub(super) async fn view(State(s): State<ApiState>) -> Json<ShapingView> {
    Json(s.mta.shaping_view())
}

/// Suspends a scope: what it covers waits without using attempts.
#[utoipa::path(post, path = "/api/v1/shaping/suspend", operation_id = "suspend", tag = TAG_SHAPING,
    request_body = SuspendBody,
    responses(
        (status = 200, description = "The suspend action", body = ShapingAction),
        (status = 400, description = "Bad scope, duration or body", body = ErrorBody),
        (status = 503, description = "Scheduler stopped", body = ErrorBody),
    ))]
pub(super) async fn suspend(
    State(s): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<ShapingAction>, ApiError> {
    let b: SuspendBody = parse(&body)?;
    let scope = scope(&b.scope)?;
    let until = match b.for_.as_deref() {
        Some(f) => {
            let ms = u64::try_from(duration(f)?.as_millis()).unwrap_or(u64::MAX);
            Some(s.mta.clock().now_ms().saturating_add(ms))
        }
        None => None,
    };
    let reason = b
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "operator".into());
    let action = s
        .mta
        .suspend(scope, until, reason)
        .await
        .ok_or_else(stopped)?;
    Ok(Json(action))
}

/// Resumes a suspended scope.
#[utoipa::path(post, path = "/api/v1/shaping/resume", operation_id = "resume", tag = TAG_SHAPING,
    request_body = ResumeBody,
    responses(
        (status = 200, description = "The resume action", body = ShapingAction),
        (status = 400, description = "Bad scope or body", body = ErrorBody),
        (status = 404, description = "That scope is not suspended", body = ErrorBody),
    ))]
pub(super) async fn resume(
    State(s): State<ApiState>,
    body: axum::body::Bytes,
) -> Result<Json<ShapingAction>, ApiError> {
    let b: ResumeBody = parse(&body)?;
    let scope = scope(&b.scope)?;
    let shown = scope.to_string();
    s.mta
        .resume(scope)
        .await
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("{shown} is not suspended")))
}

/// Re-reads the configuration file (as SIGHUP) and applies its `[shaping]` section and the
/// sources' warm-up flags.
#[utoipa::path(post, path = "/api/v1/shaping/reload", operation_id = "reload_shaping", tag = TAG_SHAPING,
    responses(
        (status = 200, description = "Applied", body = Reloaded),
        (status = 400, description = "The file does not parse or validate; the running configuration stays", body = ErrorBody),
        (status = 409, description = "Started without a configuration file", body = ErrorBody),
    ))]
// The reloader reads a file, so it runs off the async workers.
pub(super) async fn reload(State(s): State<ApiState>) -> Result<Json<Reloaded>, ApiError> {
    if s.mta.reloader.is_none() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "no configuration file to reload (started without --config)".into(),
        ));
    }
    let mta = s.mta.clone();
    let result = tokio::task::spawn_blocking(move || mta.reload_shaping())
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("reload task failed: {e}"),
            )
        })?;
    match result {
        Ok(()) => Ok(Json(Reloaded { reloaded: true })),
        Err(e) => Err(bad_request(format!(
            "{e}; keeping the running configuration"
        ))),
    }
}
