//! Analytics' HTTP API: the admin dashboards.

mod dashboards;
mod error;
mod ops;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "aTES analytics", description = "The admins' dashboards, built from events."),
    tags((name = "analytics", description = "Earnings, negative popugs and the most expensive tasks (admins only)"))
)]
struct ApiDoc;

/// Every analytics route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(dashboards::summary))
        .routes(routes!(dashboards::most_expensive_task))
        .routes(routes!(dashboards::days))
        .routes(routes!(ops::operations))
}
