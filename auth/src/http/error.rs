//! The one place auth's errors become problem+json: the status and sentence of each.

use ates_web::Problem;

use crate::Error;

impl From<Error> for ates_web::Error {
    fn from(error: Error) -> Self {
        let detail = error.to_string();
        let problem = match error {
            Error::Invalid(_) => Problem::unprocessable(detail),
            Error::EmailTaken(_) | Error::LastAdmin => Problem::conflict(detail),
            Error::NoSuchAccount(_) => Problem::not_found(detail),
            Error::BadCredentials
            | Error::Deactivated
            | Error::UnknownRefreshToken
            | Error::SessionEnded
            | Error::RefreshTokenReused
            | Error::SessionExpired => Problem::unauthorized(detail),
            Error::TooManyAttempts { retry_after } => Problem::too_many_requests(detail, retry_after),
            Error::StoredRole(_)
            | Error::PasswordHash(_)
            | Error::Signing(_)
            | Error::Outbox(_)
            | Error::Database(_) => return ates_web::Error::internal(error),
        };
        problem.into()
    }
}
