//! The one place the task tracker's errors become problem+json.

use ates_web::Problem;

/// The one place the task tracker's errors become problem+json.
impl From<crate::Error> for ates_web::Error {
    fn from(error: crate::Error) -> Self {
        use crate::Error;
        match error {
            Error::NobodyToAssign { creating: true } => Problem::conflict(
                "There is no active worker or accountant to assign the task to; nothing was created.",
            )
            .into(),
            Error::NobodyToAssign { creating: false } => {
                Problem::conflict("There is no active worker or accountant to assign tasks to.").into()
            }
            Error::NoSuchTask(task_id) => Problem::not_found(format!("There is no task {task_id}.")).into(),
            Error::NotAssignee => Problem::forbidden("Only the task's assignee can complete it.").into(),
            Error::AlreadyDone => Problem::conflict("This task is already completed.").into(),
            Error::KeyReused => Problem::unprocessable(
                "This Idempotency-Key was already used for a different task; use a new key for a new task.",
            )
            .into(),
            Error::Database(e) => ates_web::Error::Internal(e.into()),
            Error::Outbox(e) => ates_web::Error::Internal(e.into()),
        }
    }
}
