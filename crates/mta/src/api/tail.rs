//! `GET /api/v1/events/tail`: the MTA's events as they happen, one JSON object a line
//! (`cartero events tail`). A live view, not a record: a subscriber that falls more than a few
//! thousand events behind is told how many it missed (`{"lagged": n}`) and goes on; the durable
//! ways to consume events are the outbox, the webhooks and the event log files.

use super::doc::{ErrorBody, TAG_OPS};
use super::{ApiError, ApiState};
use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use cartero_events::{Event, EventType};
use serde::Deserialize;
use std::collections::HashSet;
use std::convert::Infallible;
use tokio::sync::{broadcast, watch};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub(super) struct TailQuery {
    /// Event types to show, comma-separated (e.g. `delivery,bounce`); all when absent.
    r#type: Option<String>,
}

fn types(q: &TailQuery) -> Result<HashSet<EventType>, ApiError> {
    let Some(list) = &q.r#type else {
        return Ok(HashSet::new());
    };
    list.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            serde_json::from_value(serde_json::Value::String(t.to_string())).map_err(|_| {
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("type: no event type {t:?}"),
                )
            })
        })
        .collect()
}

/// Streams events until the client goes away or the MTA stops.
#[utoipa::path(get, path = "/api/v1/events/tail", operation_id = "events_tail", tag = TAG_OPS,
    params(TailQuery),
    responses(
        (status = 200, description = "Events as they happen, one JSON object a line; \
            `{\"lagged\": n}` when n were missed", content_type = "application/x-ndjson", body = String),
        (status = 422, description = "Unknown event type", body = ErrorBody),
    ))]
pub(super) async fn tail(
    State(s): State<ApiState>,
    Query(q): Query<TailQuery>,
) -> Result<Response, ApiError> {
    let wanted = types(&q)?;
    let state = (s.mta.tail.subscribe(), s.mta.stop.subscribe(), wanted);
    let stream = futures_util::stream::unfold(state, |(mut rx, mut stop, wanted)| async move {
        let line = next_line(&mut rx, &mut stop, &wanted).await?;
        Some((Ok::<_, Infallible>(line), (rx, stop, wanted)))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// The next line to send; `None` ends the stream (the MTA stops).
async fn next_line(
    rx: &mut broadcast::Receiver<Event>,
    stop: &mut watch::Receiver<bool>,
    wanted: &HashSet<EventType>,
) -> Option<Bytes> {
    loop {
        if *stop.borrow() {
            return None;
        }
        let got = tokio::select! {
            got = rx.recv() => got,
            _ = stop.changed() => return None,
        };
        match got {
            Ok(e) if wanted.is_empty() || wanted.contains(&e.r#type) => {
                let mut line = serde_json::to_vec(&e).ok()?;
                line.push(b'\n');
                return Some(Bytes::from(line));
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                return Some(Bytes::from(format!("{{\"lagged\":{n}}}\n")));
            }
            Err(broadcast::error::RecvError::Closed) => return None,
        }
    }
}
