//! The task tracker's HTTP API: the only place that knows HTTP.

mod error;
mod ops;
mod tasks;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "aTES task tracker", description = "Tasks, each assigned to a random popug."),
    tags((name = "tasks", description = "Creating, listing, completing and shuffling tasks"))
)]
struct ApiDoc;

/// Every task tracker route, with its OpenAPI description.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(tasks::list, tasks::create))
        .routes(routes!(tasks::mine))
        .routes(routes!(tasks::shuffle))
        .routes(routes!(tasks::get))
        .routes(routes!(tasks::complete))
        .routes(routes!(ops::operations))
        .routes(routes!(ops::redrive))
}
