//! The OpenAPI document of the HTTP API, served at `GET /api/v1/openapi.json` behind the token.
//! The operations come from the handlers' `#[utoipa::path]` attributes, collected by the same
//! routers that serve them (`public_routes`, `token_routes`).

use super::{ApiError, ApiState, public_routes, token_routes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, ResponseBuilder};
use utoipa::{Modify, ToSchema};

/// The name of the bearer security scheme in the document.
pub const BEARER: &str = "bearer";

pub(super) const TAG_MESSAGES: &str = "messages";
pub(super) const TAG_QUEUE: &str = "queue";
pub(super) const TAG_SHAPING: &str = "shaping";
pub(super) const TAG_UNSUBSCRIBE: &str = "unsubscribe";
pub(super) const TAG_OPS: &str = "operations";

/// Every error answer: a status and this body.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody {
    pub error: String,
}

#[derive(utoipa::OpenApi)]
#[openapi(modifiers(&BearerScheme), components(schemas(ErrorBody)))]
struct Base;

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, doc: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The token of `data_dir/api-token` (or `http.tokens`), as \
                 `Authorization: Bearer <token>`; the scheme name is case-insensitive.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(BEARER, SecurityScheme::Http(scheme));
        // Required everywhere; the open operations say `security: [{}]` themselves.
        doc.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
    }
}

/// The MTA's own document: its routes, the bearer scheme required by all but `/healthz` and
/// `/unsubscribe/{token}`.
pub fn openapi() -> OpenApi {
    openapi_with(OpenApi::default())
}

/// The document of the MTA serving `extra` too: the operations of the routes given in
/// [`StartOptions::routes`](crate::StartOptions), which it serves behind the same token check.
/// `info` is the MTA crate's; an embedding program sets its own.
pub fn openapi_with(extra: OpenApi) -> OpenApi {
    use utoipa::OpenApi as _;
    let mut doc = Base::openapi();
    doc.merge(public_routes().merge(token_routes()).into_openapi());
    doc.merge(extra);
    let unauthorized = ResponseBuilder::new()
        .description("Missing or invalid API token")
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build();
    for item in doc.paths.paths.values_mut() {
        // An operation that sets its own `security` is open; the others inherit the token.
        for op in operations(item).filter(|op| op.security.is_none()) {
            op.responses
                .responses
                .entry("401".into())
                .or_insert_with(|| unauthorized.clone().into());
        }
    }
    doc
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// This document (OpenAPI 3.1), to feed a client generator.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = TAG_OPS,
    responses((status = 200, description = "The OpenAPI document of this API", body = Object)))]
pub(super) async fn served(State(s): State<ApiState>) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(s.openapi.as_ref()).map_err(|e| {
        ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the document: {e}"),
        )
    })?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}
