//! Address records and quarantine releases (SPEC §3.5).

use super::deliveries::parse;
use super::{ApiContext, ApiError, ApiResult};
use crate::model::{AddressState, AddressStatus};
use crate::store::{ReleaseAudit, ReleaseFilter};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

const MAX_PAGE: u32 = 1_000;

pub(super) async fn show(
    State(ctx): State<ApiContext>,
    Path(address): Path<String>,
) -> ApiResult<AddressState> {
    match ctx.engine.store().address_state(&address).await? {
        Some(s) => Ok(Json(s)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("{address}: never seen (Valid)"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Release {
    /// Who asked (kept in the audit trail).
    actor: String,
    why: String,
    #[serde(default)]
    filter: ReleaseFilter,
    /// Count what would be released, release nothing.
    #[serde(default)]
    dry_run: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseOne {
    actor: String,
    why: String,
}

pub(super) async fn release_one(
    State(ctx): State<ApiContext>,
    Path(address): Path<String>,
    body: Bytes,
) -> ApiResult<ReleaseAudit> {
    let r: ReleaseOne = parse(&body)?;
    let filter = ReleaseFilter {
        statuses: vec![AddressStatus::Quarantine, AddressStatus::Denylisted],
        address: Some(address),
        ..ReleaseFilter::default()
    };
    released(&ctx, &filter, &r.actor, &r.why).await
}

pub(super) async fn release(State(ctx): State<ApiContext>, body: Bytes) -> ApiResult<Value> {
    let r: Release = parse(&body)?;
    if r.dry_run {
        let n = ctx.engine.store().count_release(&r.filter).await?;
        return Ok(Json(json!({ "dry_run": true, "count": n })));
    }
    let Json(audit) = released(&ctx, &r.filter, &r.actor, &r.why).await?;
    Ok(Json(json!(audit)))
}

async fn released(
    ctx: &ApiContext,
    filter: &ReleaseFilter,
    actor: &str,
    why: &str,
) -> ApiResult<ReleaseAudit> {
    if actor.trim().is_empty() || why.trim().is_empty() {
        return Err(ApiError::bad(
            "actor and why are required: releases are audited",
        ));
    }
    let audit = ctx
        .engine
        .store()
        .release(filter, actor, why, ctx.clock.now_ms())
        .await?;
    Ok(Json(audit))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    status: Option<AddressStatus>,
    reason: Option<u8>,
    domain: Option<String>,
    text: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list(
    State(ctx): State<ApiContext>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Value> {
    let reason = match q.reason {
        Some(v) => Some(
            cartero_bounce::Reason::from_value(v)
                .ok_or_else(|| ApiError::bad(format!("reason: no reason {v}")))?,
        ),
        None => None,
    };
    let filter = ReleaseFilter {
        statuses: q.status.into_iter().collect(),
        reason,
        domain: q.domain,
        text_contains: q.text,
        ..ReleaseFilter::default()
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let store = ctx.engine.store();
    let rows = store
        .list_addresses(&filter, q.after.as_deref(), limit)
        .await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| r.address.clone()))
        .flatten();
    Ok(Json(json!({ "addresses": rows, "next": next })))
}

pub(super) async fn audit(State(ctx): State<ApiContext>) -> ApiResult<Vec<ReleaseAudit>> {
    Ok(Json(ctx.engine.store().release_audit(100).await?))
}
