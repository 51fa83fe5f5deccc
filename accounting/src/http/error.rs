//! Accounting's errors as problem+json: the one place they meet HTTP.

use ates_web::Problem;

use crate::Error;

impl From<Error> for ates_web::Error {
    /// Business outcomes get their status and sentence; everything else is logged and the
    /// caller gets a generic 500.
    fn from(error: Error) -> Self {
        match error {
            Error::NotBegun(_) | Error::TooOld { .. } => Problem::unprocessable(format!("{error}.")).into(),
            Error::EmailUnknown
            | Error::NotAnAddress { .. }
            | Error::Mail(_)
            | Error::Unreadable(_)
            | Error::Database(_)
            | Error::Outbox(_) => ates_web::Error::internal(error),
        }
    }
}
