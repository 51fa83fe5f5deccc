//! OpenAPI documents: the bearer scheme, the one shape of every error, and serving a document.

use axum::Router;
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response};
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

/// Gives every operation the error answers any of them may give (400, 503, and 401 when it needs
/// a token, 413, 415 and 422 when it takes a body), and every error response (4xx and 5xx) that
/// has no content of its own the one error format: `application/problem+json` with a
/// [`ProblemBody`]. Handlers only say which other statuses they answer and why.
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
                let answers = &mut operation.responses.responses;
                let mut generic = vec![
                    ("400", "A parameter or the body cannot be read"),
                    ("503", "Something it depends on is down; try again"),
                ];
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    generic.push(("401", "Not signed in, or the access token is not valid"));
                }
                if operation.request_body.is_some() {
                    generic.extend([
                        ("413", "The body is larger than 64 KiB"),
                        ("415", "The body is not JSON"),
                        ("422", "A field breaks a rule"),
                    ]);
                }
                for (status, description) in generic {
                    answers.entry(status.to_owned()).or_insert_with(|| RefOr::T(Response::new(description)));
                }
                for (status, response) in answers {
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

/// Merges the documents of several services into `into`. Two different definitions under one
/// component name are refused: the document would describe one service's answers with the
/// other's shape.
pub fn merge(mut into: OpenApi, docs: impl IntoIterator<Item = OpenApi>) -> Result<OpenApi, String> {
    for doc in docs {
        if let (Some(have), Some(new)) = (&into.components, &doc.components) {
            for (name, schema) in &new.schemas {
                if have.schemas.get(name).is_some_and(|existing| as_json(existing) != as_json(schema)) {
                    return Err(format!("two services define the schema {name:?} differently"));
                }
            }
        }
        into.merge(doc);
    }
    Ok(into)
}

/// `doc` as it is served: with the bearer scheme and the error answers every operation may give.
pub fn finish(mut doc: OpenApi) -> OpenApi {
    BearerAuth.modify(&mut doc);
    ProblemResponses.modify(&mut doc);
    doc
}

/// The references in `doc` to components it does not define: a client generator or a fuzzer
/// cannot resolve them.
pub fn dangling_references(doc: &OpenApi) -> Vec<String> {
    unresolved_references(&as_json(doc))
}

/// The local `$ref`s (`#/…`) anywhere in the JSON document `root` (OpenAPI or AsyncAPI) that
/// point at nothing in it.
pub fn unresolved_references(root: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, root: &serde_json::Value, dangling: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(fields) => {
                if let Some(serde_json::Value::String(target)) = fields.get("$ref") {
                    let pointer = target.strip_prefix('#').unwrap_or(target);
                    if root.pointer(pointer).is_none() && !dangling.contains(target) {
                        dangling.push(target.clone());
                    }
                }
                fields.values().for_each(|v| walk(v, root, dangling));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, root, dangling)),
            _ => {}
        }
    }
    let mut dangling = Vec::new();
    walk(root, root, &mut dangling);
    dangling
}

fn as_json(value: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(value).expect("OpenAPI parts serialize")
}

/// `GET /api/openapi.json` serving `doc`.
pub fn openapi_route(doc: OpenApi) -> Router {
    let doc = finish(doc);
    json_route("/api/openapi.json", doc.to_json().expect("an OpenAPI document serializes"))
}

/// `GET path` answering `json` as `application/json`.
pub(crate) fn json_route(path: &str, json: String) -> Router {
    Router::new().route(
        path,
        get(move || {
            let json = json.clone();
            async move { ([(axum::http::header::CONTENT_TYPE, "application/json")], json) }
        }),
    )
}
