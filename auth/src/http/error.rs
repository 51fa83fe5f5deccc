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
            Error::Busy => Problem::unavailable(detail).retry_after(1),
            Error::BadCredentials
            | Error::WrongPassword
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use uuid::Uuid;

    use crate::Error;

    fn answer(error: Error) -> (StatusCode, String) {
        match ates_web::Error::from(error) {
            ates_web::Error::Problem(problem) => (problem.status(), problem.detail().to_owned()),
            ates_web::Error::Internal(cause) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{cause:#}")),
        }
    }

    #[test]
    fn business_outcomes_get_their_status_and_sentence() {
        let taken = answer(Error::EmailTaken("popug@ates.test".into()));
        assert_eq!(
            taken,
            (StatusCode::CONFLICT, "An account with the email popug@ates.test already exists.".into())
        );
        assert_eq!(answer(Error::LastAdmin).0, StatusCode::CONFLICT);
        assert_eq!(answer(Error::NoSuchAccount(Uuid::nil())).0, StatusCode::NOT_FOUND);
        assert_eq!(
            answer(Error::Invalid("full_name must not be blank".into())).0,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        for refused in
            [Error::BadCredentials, Error::Deactivated, Error::RefreshTokenReused, Error::SessionExpired]
        {
            assert_eq!(answer(refused).0, StatusCode::UNAUTHORIZED);
        }
        let limited = answer(Error::TooManyAttempts { retry_after: 7 });
        assert_eq!(
            limited,
            (StatusCode::TOO_MANY_REQUESTS, "Too many sign-in attempts; try again in 7 seconds.".into())
        );
    }

    #[test]
    fn failures_underneath_are_internal() {
        assert!(matches!(
            ates_web::Error::from(Error::Database(sqlx::Error::PoolTimedOut)),
            ates_web::Error::Internal(_)
        ));
        assert!(matches!(
            ates_web::Error::from(Error::StoredRole("overlord".into())),
            ates_web::Error::Internal(_)
        ));
    }
}
