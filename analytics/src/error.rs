//! Analytics' own errors: what its stores and rules answer, below HTTP (`http/` maps them to
//! problem+json once).

use ates_messaging::HandlerError;
use chrono::NaiveDate;

/// Why an analytics operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No task was completed in the period asked about.
    #[error("No task was completed between {from} and {to}")]
    NoTaskCompleted { from: NaiveDate, to: NaiveDate },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// `Result` with analytics' [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a failed projection batch is retried: a database outage holds the batch, any other
/// failure counts a delivery.
impl From<Error> for HandlerError {
    fn from(error: Error) -> Self {
        match error {
            Error::Database(e) => HandlerError::from(e),
            other @ Error::NoTaskCompleted { .. } => HandlerError::Transient(Box::new(other)),
        }
    }
}
