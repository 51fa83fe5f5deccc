//! The ledger: posting double-entry transactions and announcing them.

mod post;

pub use post::{Posted, post};

use ates_messaging::Outbox;

/// The producer name on accounting's events.
pub const OUTBOX: Outbox = Outbox::new("accounting");

/// Why posting failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Outbox(#[from] ates_messaging::OutboxError),
}

impl From<LedgerError> for ates_messaging::HandlerError {
    /// A database failure keeps its meaning (unavailable or transient); an invalid event is a
    /// bug that retries until it is parked.
    fn from(error: LedgerError) -> Self {
        match error {
            LedgerError::Database(e) | LedgerError::Outbox(ates_messaging::OutboxError::Database(e)) => {
                e.into()
            }
            LedgerError::Outbox(invalid) => ates_messaging::HandlerError::Transient(invalid.into()),
        }
    }
}
