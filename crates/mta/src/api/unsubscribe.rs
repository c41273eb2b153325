//! RFC 8058 one-click unsubscribe: `POST /unsubscribe/{token}` emits `list_unsubscribe` (once per
//! recipient: a repeated POST is answered the same and emits nothing); `GET`
//! only shows a confirmation form, because link scanners fetch URLs and must never unsubscribe
//! anyone. No bearer token: the signed token is the credential.

use super::doc::{ErrorBody, TAG_UNSUBSCRIBE};
use super::{ApiError, ApiState};
use crate::inmail::Unsubscribed;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use serde::Serialize;

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct UnsubscribeReply {
    pub unsubscribed: bool,
}

fn not_enabled() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "unsubscribe is not enabled".into())
}

fn invalid() -> ApiError {
    ApiError(
        StatusCode::BAD_REQUEST,
        "invalid or expired unsubscribe token".into(),
    )
}

/// One-click unsubscribe (RFC 8058): the signed token is the credential.
#[utoipa::path(post, path = "/unsubscribe/{token}", operation_id = "unsubscribe", tag = TAG_UNSUBSCRIBE, security(()),
    params(("token" = String, Path, description = "The signed token of the List-Unsubscribe URL")),
    request_body(content = String, content_type = "application/x-www-form-urlencoded",
        description = "Normally `List-Unsubscribe=One-Click`; any body is accepted"),
    responses(
        (status = 200, description = "Unsubscribed (also when it already was)", body = UnsubscribeReply),
        (status = 400, description = "Invalid or expired token", body = ErrorBody),
        (status = 404, description = "inMail is off", body = ErrorBody),
        (status = 503, description = "Could not be recorded now: retry", body = ErrorBody),
    ))]
// The body is normally `List-Unsubscribe=One-Click`; any body is accepted because the token
// alone decides, and some clients post form-data instead.
pub(super) async fn post(
    State(s): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Json<UnsubscribeReply>, ApiError> {
    let inmail = s.mta.inmail.as_ref().ok_or_else(not_enabled)?;
    // A repeated request gets the same answer as the first, but no second event.
    match inmail.unsubscribe(&token, "one_click").await {
        Unsubscribed::Done => Ok(Json(UnsubscribeReply { unsubscribed: true })),
        Unsubscribed::Invalid => Err(invalid()),
        Unsubscribed::Failed => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "cannot record the request now, try again later".into(),
        )),
    }
}

/// A confirmation page whose form POSTs back to the same URL; a GET never unsubscribes.
#[utoipa::path(get, path = "/unsubscribe/{token}", operation_id = "unsubscribe_page", tag = TAG_UNSUBSCRIBE, security(()),
    params(("token" = String, Path, description = "The signed token of the List-Unsubscribe URL")),
    responses(
        (status = 200, description = "The confirmation form", body = String, content_type = "text/html"),
        (status = 400, description = "Invalid or expired token", body = ErrorBody),
        (status = 404, description = "inMail is off", body = ErrorBody),
    ))]
// Only tokens that verify get the form, so the page cannot be used to reflect arbitrary text.
pub(super) async fn page(
    State(s): State<ApiState>,
    Path(token): Path<String>,
) -> Result<Html<String>, ApiError> {
    let inmail = s.mta.inmail.as_ref().ok_or_else(not_enabled)?;
    if inmail.check(&token).is_none() {
        return Err(invalid());
    }
    // The token is base32 (checked above), so it needs no HTML escaping.
    Ok(Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
<body><h1>Unsubscribe</h1><p>Stop receiving these messages?</p>\
<form method=\"post\" action=\"/unsubscribe/{token}\">\
<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
<button type=\"submit\">Unsubscribe</button></form></body></html>"
    )))
}
