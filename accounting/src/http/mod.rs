//! Accounting's HTTP API.

mod accounts;
mod dashboard;
mod days;
mod error;
mod ops;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "aTES accounting", description = "Balances, audit logs and the management's earnings."),
    tags((name = "accounting", description = "Balances and the ledger"))
)]
struct ApiDoc;

/// Every accounting route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(accounts::me))
        .routes(routes!(accounts::list))
        .routes(routes!(accounts::one))
        .routes(routes!(dashboard::dashboard))
        .routes(routes!(dashboard::invariants))
        .routes(routes!(days::close))
        .routes(routes!(days::payout_emails))
        .routes(routes!(ops::operations))
        .routes(routes!(ops::redrive))
}
