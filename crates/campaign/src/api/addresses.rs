//! Address records and quarantine releases (SPEC §3.5).

use super::deliveries::parse;
use super::{ApiContext, ApiError, ApiResult, ErrorBody, TAG_ADDRESSES};
use crate::model::{AddressState, AddressStatus};
use crate::store::{ReleaseAudit, ReleaseFilter};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

const MAX_PAGE: u32 = 1_000;

/// The quality record of an address.
#[utoipa::path(get, path = "/api/v1/addresses/{address}", operation_id = "show_address", tag = TAG_ADDRESSES,
    params(("address" = String, Path, description = "Any case")),
    responses(
        (status = 200, description = "The record", body = AddressState),
        (status = 404, description = "Never seen (Valid)", body = ErrorBody),
    ))]
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

#[derive(Debug, Deserialize, ToSchema)]
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

/// Who releases and why, both required (kept in the audit trail).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReleaseOne {
    actor: String,
    why: String,
}

/// What a dry run would release.
#[derive(Serialize, ToSchema)]
pub(super) struct DryRun {
    count: u64,
    dry_run: bool,
}

/// What a release answers.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum ReleaseReply {
    DryRun(DryRun),
    Released(ReleaseAudit),
}

/// Releases one address from Quarantine or Denylisted back to Valid.
#[utoipa::path(post, path = "/api/v1/addresses/{address}/release", operation_id = "release_address", tag = TAG_ADDRESSES,
    params(("address" = String, Path, description = "Any case")),
    request_body = ReleaseOne,
    responses(
        (status = 200, description = "The audit record", body = ReleaseAudit),
        (status = 422, description = "Bad payload, or no actor or why", body = ErrorBody),
    ))]
pub(super) async fn release_one(
    State(ctx): State<ApiContext>,
    Path(address): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ReleaseAudit> {
    let mut r: ReleaseOne = parse(&body)?;
    r.actor = actor(&headers, r.actor);
    let filter = ReleaseFilter {
        statuses: vec![AddressStatus::Quarantine, AddressStatus::Denylisted],
        address: Some(address),
        ..ReleaseFilter::default()
    };
    released(&ctx, &filter, &r.actor, &r.why).await
}

/// Releases every address the filter matches (or counts them, with `dry_run`).
#[utoipa::path(post, path = "/api/v1/quarantine/release", operation_id = "release_quarantine", tag = TAG_ADDRESSES,
    request_body = Release,
    responses(
        (status = 200, description = "The audit record, or the count of a dry run", body = ReleaseReply),
        (status = 422, description = "Bad payload or filter, or no actor or why", body = ErrorBody),
    ))]
pub(super) async fn release(
    State(ctx): State<ApiContext>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<ReleaseReply> {
    let mut r: Release = parse(&body)?;
    r.actor = actor(&headers, r.actor);
    if r.dry_run {
        let n = ctx.engine.store().count_release(&r.filter).await?;
        return Ok(Json(ReleaseReply::DryRun(DryRun {
            count: n,
            dry_run: true,
        })));
    }
    let Json(audit) = released(&ctx, &r.filter, &r.actor, &r.why).await?;
    Ok(Json(ReleaseReply::Released(audit)))
}

/// Who the audit trail names: the operator the server authenticated (a dashboard session,
/// named by the listener in `x-cartero-operator`, which no client can set), else the body's.
fn actor(headers: &HeaderMap, given: String) -> String {
    headers
        .get("x-cartero-operator")
        .and_then(|v| v.to_str().ok())
        .map_or(given, str::to_string)
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

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Default: quarantine.
    #[param(inline)]
    status: Option<AddressStatus>,
    /// A reason's technical value (SPEC §3.4).
    reason: Option<u8>,
    domain: Option<String>,
    /// A piece of the last error's text.
    text: Option<String>,
    /// `next` of the previous page.
    after: Option<String>,
    /// 1–1000, default 100.
    limit: Option<u32>,
}

/// A page of address records, in address order.
#[derive(Serialize, ToSchema)]
pub(super) struct AddressPage {
    addresses: Vec<AddressState>,
    /// Absent on the last page.
    next: Option<String>,
}

/// The addresses in quarantine (or another status), filtered.
#[utoipa::path(get, path = "/api/v1/quarantine", operation_id = "list_quarantine", tag = TAG_ADDRESSES,
    params(ListQuery),
    responses(
        (status = 200, description = "A page and where the next one starts", body = AddressPage),
        (status = 422, description = "A bad filter", body = ErrorBody),
    ))]
pub(super) async fn list(
    State(ctx): State<ApiContext>,
    Query(q): Query<ListQuery>,
) -> ApiResult<AddressPage> {
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
    Ok(Json(AddressPage {
        addresses: rows,
        next,
    }))
}

/// The last 100 releases: who, when, why, with which filter, how many.
#[utoipa::path(get, path = "/api/v1/quarantine/releases", operation_id = "list_releases", tag = TAG_ADDRESSES,
    responses((status = 200, description = "Newest first", body = Vec<ReleaseAudit>)))]
pub(super) async fn audit(State(ctx): State<ApiContext>) -> ApiResult<Vec<ReleaseAudit>> {
    Ok(Json(ctx.engine.store().release_audit(100).await?))
}
