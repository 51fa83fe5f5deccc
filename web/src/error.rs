//! The error type of every handler: a problem for the caller, or an internal failure for the log.

use axum::response::{IntoResponse, Response};

use crate::Problem;

/// Why a request failed. A [`Problem`] is shown as it is; anything else (a database error, a
/// bug) is logged with its cause and the caller gets a generic 500.
#[derive(Debug)]
pub enum Error {
    /// Shown to the caller.
    Problem(Problem),
    /// Logged, not shown.
    Internal(anyhow::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Problem> for Error {
    fn from(problem: Problem) -> Self {
        Error::Problem(problem)
    }
}

/// A failure of the database is internal. Services map their own error enums with their own
/// `From<service::Error> for ates_web::Error`, which a blanket conversion would forbid.
impl From<sqlx::Error> for Error {
    fn from(error: sqlx::Error) -> Self {
        Error::Internal(error.into())
    }
}

impl From<anyhow::Error> for Error {
    fn from(error: anyhow::Error) -> Self {
        Error::Internal(error)
    }
}

impl Error {
    /// Any other failure, as internal: logged, a generic 500 for the caller.
    pub fn internal(error: impl Into<anyhow::Error>) -> Self {
        Error::Internal(error.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Problem(problem) => problem.into_response(),
            Error::Internal(cause) => Problem::internal(format!("{cause:#}")).into_response(),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Problem(problem) => write!(f, "{problem}"),
            Error::Internal(cause) => write!(f, "{cause:#}"),
        }
    }
}
