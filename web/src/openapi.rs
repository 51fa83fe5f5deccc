//! OpenAPI documents: the bearer scheme, the one shape of every error, and serving a document.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::ProblemBody;

/// Adds the `bearer` (JWT) security scheme that protected operations refer to.
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build(),
            ),
        );
    }
}

/// Gives every error response (4xx and 5xx) that has no content of its own the one error format:
/// `application/problem+json` with a [`ProblemBody`]. Handlers only say which statuses they
/// answer and why.
pub struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.schemas.insert(ProblemBody::name().into_owned(), ProblemBody::schema());
        let problem: RefOr<Content> =
            Content::new(Some(Ref::from_schema_name(ProblemBody::name().into_owned()))).into();
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in &mut operation.responses.responses {
                    let is_error = status.parse::<u16>().is_ok_and(|code| code >= 400);
                    if let (true, RefOr::T(response)) = (is_error, response)
                        && response.content.is_empty()
                    {
                        response.content.insert("application/problem+json".into(), problem.clone());
                    }
                }
            }
        }
    }
}

/// `GET /api/openapi.json` serving `doc`.
pub fn openapi_route(mut doc: OpenApi) -> Router {
    BearerAuth.modify(&mut doc);
    ProblemResponses.modify(&mut doc);
    let json = doc.to_json().expect("an OpenAPI document serializes");
    Router::new().route(
        "/api/openapi.json",
        get(move || {
            let json = json.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], json) }
        }),
    )
}
