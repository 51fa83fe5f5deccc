//! Serving the AsyncAPI document of the events a service sends and receives.

use axum::Router;

use crate::openapi::json_route;

/// `GET /api/asyncapi.json` serving `doc`.
pub fn asyncapi_route(doc: &serde_json::Value) -> Router {
    json_route("/api/asyncapi.json", doc.to_string())
}
