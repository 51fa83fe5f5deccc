//! Auth's error type, mapped once to problem+json.

use ates_messaging::OutboxError;
use ates_web::Problem;
use axum::response::{IntoResponse, Response};

/// Everything an auth request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 401 with a sentence.
    #[error("{0}")]
    Unauthorized(String),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 422.
    #[error("{0}")]
    Invalid(String),
    /// 429 with Retry-After seconds.
    #[error("{0}")]
    RateLimited(String, u64),
    /// Already a problem (e.g. from an extractor or a role check).
    #[error("{0}")]
    Problem(#[from] Problem),
    /// 500: logged, not shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// `Result` with auth's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Internal(error.into())
    }
}

impl From<OutboxError> for Error {
    fn from(error: OutboxError) -> Self {
        Error::Internal(error.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let problem = match self {
            Error::Unauthorized(detail) => Problem::unauthorized(detail),
            Error::NotFound(detail) => Problem::not_found(detail),
            Error::Conflict(detail) => Problem::conflict(detail),
            Error::Invalid(detail) => Problem::unprocessable(detail),
            Error::RateLimited(detail, retry_after) => Problem::too_many_requests(detail, retry_after),
            Error::Problem(problem) => problem,
            Error::Internal(cause) => Problem::internal(format!("{cause:#}")),
        };
        problem.into_response()
    }
}
