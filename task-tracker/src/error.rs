//! What can go wrong below HTTP, in the task tracker's own words.

use uuid::Uuid;

/// Why a task operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A new task or a shuffle found no active worker or accountant; nothing was changed.
    #[error("there is no active worker or accountant to assign to")]
    NobodyToAssign { creating: bool },
    #[error("there is no task {0}")]
    NoSuchTask(Uuid),
    /// Only the current assignee may complete a task.
    #[error("only the task's assignee can complete it")]
    NotAssignee,
    #[error("the task is already completed")]
    AlreadyDone,
    /// The Idempotency-Key was used before for a request with other fields.
    #[error("the idempotency key was used for a different task")]
    KeyReused,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Outbox(#[from] ates_messaging::OutboxError),
}

/// `Result` with the task tracker's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
