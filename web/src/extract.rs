//! Extractors whose rejections are problems: JSON bodies, query strings and path parameters.
//!
//! The only place axum's own extractors are used (`clippy.toml` keeps them out elsewhere).
#![allow(clippy::disallowed_types)]

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Problem;

/// `axum::Json`, except that a body it cannot read becomes a problem+json response that says
/// what is wrong: 400 for malformed JSON, 422 for wrong fields or values, 415 for a missing
/// `Content-Type`, 413 for a body over the limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(Json(value)),
            Err(rejection) => Err(problem_for(rejection)),
        }
    }
}

fn problem_for(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(e) => Problem::unprocessable(format!(
            "The request body has the wrong shape: {}",
            std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string())
        )),
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request(format!(
            "The request body is not valid JSON: {}",
            std::error::Error::source(&e).map_or_else(|| e.body_text(), |s| s.to_string())
        )),
        JsonRejection::MissingJsonContentType(_) => Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Send the body as JSON with `Content-Type: application/json`.",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("The request body is larger than {} bytes.", crate::MAX_BODY_BYTES),
        ),
        other => Problem::bad_request(format!("The request body cannot be read: {}", other.body_text())),
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query`, with a 400 problem naming the bad parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| Problem::bad_request(format!("The query string is not valid: {}", detail_of(&e))))
    }
}

/// `axum::extract::Path`, with a 400 problem naming the bad segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|e| Problem::bad_request(format!("The URL is not valid: {}", detail_of(&e))))
    }
}

/// The innermost message of a rejection.
fn detail_of(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
