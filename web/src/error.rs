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

/// Any other error is internal. (`Problem` is deliberately not a `std::error::Error`, so the
/// two conversions cannot overlap.)
impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(error: E) -> Self {
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
