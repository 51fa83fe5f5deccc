//! Accounting's own errors: what its stores, the ledger, the close and the mailer fail with.
//!
//! Nothing here knows HTTP: `http/error.rs` maps these to problem+json once, and the
//! consumers turn them into the messaging crate's retry decisions.

use chrono::NaiveDate;

/// Why an accounting operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The day has not begun in the company's time zone, so it cannot be closed.
    #[error("{0} has not begun yet; only days up to today can be closed")]
    NotBegun(NaiveDate),
    /// The day is further back than anyone closes on demand.
    #[error("{date} is more than a year back; only days from {earliest} on can be closed on demand")]
    TooOld { date: NaiveDate, earliest: NaiveDate },
    /// A payout email cannot go out before `accounts.created` has brought the payee's address.
    #[error("the account's email is not known yet")]
    EmailUnknown,
    /// The payee's address is not one a mail server takes.
    #[error("{email:?} is not an address: {reason}")]
    NotAnAddress { email: String, reason: String },
    /// The mail could not be written, sent or stored (the mail server's or file system's words).
    #[error("{0}")]
    Mail(String),
    /// A stored value accounting does not know, such as a transaction kind or role.
    #[error("the ledger holds an unknown value: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Outbox(#[from] ates_messaging::OutboxError),
}

/// `Result` with accounting's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for ates_messaging::HandlerError {
    /// A database failure keeps its meaning (unavailable or transient); an invalid event is a
    /// bug that retries until it is parked.
    fn from(error: Error) -> Self {
        use ates_messaging::{HandlerError, OutboxError};
        match error {
            Error::Database(e) | Error::Outbox(OutboxError::Database(e)) => e.into(),
            Error::Outbox(invalid) => HandlerError::Transient(invalid.into()),
            other => HandlerError::Transient(other.into()),
        }
    }
}
