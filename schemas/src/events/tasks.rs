//! `tasks.*`: produced by the task tracker.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{event, require_all_fields};
use crate::jira;

/// Legacy: a task was created, with the jira id (if any) as a `[ABC-12]` prefix of the title.
/// Consumers still accept it and upcast it to [`TaskAddedV2`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct TaskAddedV1 {
    /// The task's id.
    pub task_id: Uuid,
    /// The title, possibly starting with `[ABC-12]`.
    #[schemars(length(min = 1, max = 300))]
    pub title: String,
    /// Free text.
    #[schemars(length(max = 10000))]
    pub description: String,
    /// The account that created it.
    pub created_by: Uuid,
}
event!(TaskAddedV1, "tasks.added", 1);

/// A task was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct TaskAddedV2 {
    /// The task's id.
    pub task_id: Uuid,
    /// The title; never contains `[` or `]` (the jira id has its own field).
    #[schemars(length(min = 1, max = 300), pattern(r"^[^\[\]]*$"))]
    pub title: String,
    /// The Jira issue key, e.g. `ABC-12`.
    #[schemars(pattern(r"^[A-Z][A-Z0-9_]*-[0-9]+$"), length(max = 32))]
    pub jira_id: Option<String>,
    /// Free text.
    #[schemars(length(max = 10000))]
    pub description: String,
    /// The account that created it.
    pub created_by: Uuid,
}
event!(TaskAddedV2, "tasks.added", 2);

impl From<TaskAddedV1> for TaskAddedV2 {
    /// Moves a leading `[ABC-12]` out of the title into `jira_id`.
    fn from(v1: TaskAddedV1) -> Self {
        let (jira_id, title) = jira::split_legacy_title(&v1.title);
        TaskAddedV2 {
            task_id: v1.task_id,
            title,
            jira_id,
            description: v1.description,
            created_by: v1.created_by,
        }
    }
}

/// Why a task got its assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignReason {
    /// The first assignment, when the task was created.
    Created,
    /// A manager or admin shuffled the open tasks.
    Shuffle,
}

/// A task was assigned to an account (on creation and on every shuffle).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct TaskAssignedV1 {
    /// The task's id.
    pub task_id: Uuid,
    /// The new assignee, who pays the assignment fee.
    pub assignee_id: Uuid,
    /// The assignee before this assignment, if any.
    pub previous_assignee_id: Option<Uuid>,
    /// Why it was assigned.
    pub reason: AssignReason,
}
event!(TaskAssignedV1, "tasks.assigned", 1);

/// A task was completed by its assignee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct TaskCompletedV1 {
    /// The task's id.
    pub task_id: Uuid,
    /// The assignee who completed it and earns the reward.
    pub assignee_id: Uuid,
}
event!(TaskCompletedV1, "tasks.completed", 1);
