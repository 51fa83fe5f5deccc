//! Auth's HTTP API: one module per resource, merged here.

mod accounts;
mod error;
mod keys;
mod ops;
mod sessions;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "aTES auth", description = "Accounts, sign-in and the keys that sign access tokens."),
    tags((name = "auth", description = "Sign-in and sessions"), (name = "accounts", description = "Account administration"))
)]
struct ApiDoc;

/// Every auth route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(sessions::login))
        .routes(routes!(sessions::refresh))
        .routes(routes!(sessions::logout))
        .routes(routes!(sessions::change_password))
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::list, accounts::create))
        .routes(routes!(accounts::update))
        .routes(routes!(keys::jwks))
        .routes(routes!(keys::rotate))
        .routes(routes!(keys::retire))
        .routes(routes!(ops::operations))
        .routes(routes!(ops::redrive))
}
