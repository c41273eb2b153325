//! Event intake (remote MTA mode, docs/transactional.md): the MTA's durable webhook posts its
//! events here, a JSON array per batch, and they are applied to the logs, the KPIs and the
//! address quarantine as the in-process outbox pump applies them. Idempotent by event id: a
//! replayed batch changes nothing.

use super::deliveries::parse;
use super::{ApiContext, ApiError, ApiResult, ErrorBody, TAG_DELIVERIES};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use cartero_events::Event;
use serde::Serialize;
use utoipa::ToSchema;

/// Most events one post carries (the MTA's webhooks send `batch_size`, 100 by default).
const MAX_EVENTS: usize = 10_000;
/// Events applied per store transaction.
const CHUNK: usize = 1_000;

/// What a post did.
#[derive(Serialize, ToSchema)]
pub(super) struct Intake {
    /// Events that changed a row.
    applied: u64,
    /// Events already applied (a replay, or twice in the post).
    duplicates: u64,
    /// Events about no campaign row (other injections, shaping, ...).
    skipped: u64,
    /// Events naming a row that does not exist, or refused by it.
    unmatched: u64,
}

/// Applies MTA events (the JSON objects of docs/events.md) to the delivery logs. A malformed
/// post is a 422 and nothing of it is applied; a database failure is a 500, which the MTA's
/// webhook retries.
#[utoipa::path(post, path = "/api/v1/events", operation_id = "intake_events", tag = TAG_DELIVERIES,
    request_body(content = Vec<Object>, description = "At most 10,000 events, as the MTA's webhooks post them"),
    responses(
        (status = 200, description = "Applied (idempotently)", body = Intake),
        (status = 422, description = "Not a JSON array of events, or too many", body = ErrorBody),
    ))]
pub(super) async fn intake(State(ctx): State<ApiContext>, body: Bytes) -> ApiResult<Intake> {
    let events: Vec<Event> = parse(&body)?;
    if events.len() > MAX_EVENTS {
        return Err(ApiError::bad(format!(
            "at most {MAX_EVENTS} events per post (got {})",
            events.len()
        )));
    }
    let mut out = Intake {
        applied: 0,
        duplicates: 0,
        skipped: 0,
        unmatched: 0,
    };
    for chunk in events.chunks(CHUNK) {
        let r = ctx.engine.apply_events(chunk).await?;
        out.applied += r.applied;
        out.duplicates += r.duplicates;
        out.skipped += r.skipped;
        out.unmatched += r.unmatched;
    }
    Ok(Json(out))
}
