//! The task store: every change commits together with its `tasks.*` events.

use ates_messaging::Outbox;
use ates_messaging::outbox::Events;
use ates_schemas::Envelope;
use ates_schemas::events::{AssignReason, TaskAddedV2, TaskAssignedV1, TaskCompletedV1};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::cursor::Cursor;
use crate::domain::task::NewTask;
use crate::error::{Error, Result};

/// The producer name on the task tracker's events.
pub const OUTBOX: Outbox = Outbox::new("task-tracker");

/// Whether a task is still to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[sqlx(type_name = "text", rename_all = "lowercase")]
pub enum TaskStatus {
    /// Assigned and not done yet.
    Open,
    /// Completed by its assignee.
    Done,
}

impl TaskStatus {
    fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Open => "open",
            TaskStatus::Done => "done",
        }
    }
}

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Task {
    pub task_id: Uuid,
    pub title: String,
    /// The Jira issue key, e.g. `POP-12`.
    pub jira_id: Option<String>,
    pub description: String,
    pub status: TaskStatus,
    /// Who has to do it.
    pub assignee_id: Uuid,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

/// Creates the task with id `task_id`, assigned to a random assignable account (active, a
/// worker or an accountant: one of `assignees`, drawn by its slot), and writes `tasks.added`
/// and `tasks.assigned`. With nobody to assign it to nothing is stored. The events carry
/// `correlation`, the request's id. Two statements: the task with its assignee drawn, then
/// both events.
pub async fn create(
    tx: &mut PgConnection,
    task_id: Uuid,
    creator: Uuid,
    new: &NewTask,
    correlation: Uuid,
) -> Result<Task> {
    let task = sqlx::query_as!(
        Task,
        r#"INSERT INTO tasks (task_id, title, jira_id, description, assignee_id, created_by)
           SELECT $1, $2, $3, $4, account_id, $5 FROM assignees
           WHERE slot = (SELECT floor(random() * (max(slot) + 1))::int FROM assignees)
           RETURNING task_id, title, jira_id, description, status AS "status: TaskStatus",
                     assignee_id, created_by, created_at, completed_at"#,
        task_id,
        new.title,
        new.jira_id,
        new.description,
        creator,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NobodyToAssign { creating: true })?;
    let added = TaskAddedV2 {
        task_id,
        title: task.title.clone(),
        jira_id: task.jira_id.clone(),
        description: task.description.clone(),
        created_by: creator,
    };
    let assigned = TaskAssignedV1 {
        task_id,
        assignee_id: task.assignee_id,
        previous_assignee_id: None,
        reason: AssignReason::Created,
    };
    let correlation = Some(correlation);
    let events = Events::default()
        .with(&[Envelope::at(OUTBOX.producer(), task.created_at, added).correlated(correlation)])?
        .with(&[Envelope::at(OUTBOX.producer(), task.created_at, assigned).correlated(correlation)])?;
    OUTBOX.write(tx, events).await?;
    Ok(task)
}

/// Marks the task done if `caller` is its assignee and it is open, and writes `tasks.completed`
/// carrying `correlation`.
pub async fn complete(tx: &mut PgConnection, task_id: Uuid, caller: Uuid, correlation: Uuid) -> Result<Task> {
    let done = sqlx::query_as!(
        Task,
        r#"UPDATE tasks SET status = 'done', completed_at = now()
           WHERE task_id = $1 AND status = 'open' AND assignee_id = $2
           RETURNING task_id, title, jira_id, description, status AS "status: TaskStatus",
                     assignee_id, created_by, created_at, completed_at"#,
        task_id,
        caller,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(task) = done else {
        let current = find(tx, task_id).await?.ok_or(Error::NoSuchTask(task_id))?;
        return Err(if current.assignee_id != caller { Error::NotAssignee } else { Error::AlreadyDone });
    };
    let completed = TaskCompletedV1 { task_id, assignee_id: caller };
    let when = task.completed_at.unwrap_or_else(Utc::now);
    OUTBOX
        .add_all(tx, &[Envelope::at(OUTBOX.producer(), when, completed).correlated(Some(correlation))])
        .await?;
    Ok(task)
}

/// Reassigns every open task to a random assignable account (the same one may be drawn again),
/// in one set-based statement, and writes one `tasks.assigned` per task, each carrying
/// `correlation`. Returns how many.
///
/// Who can be drawn and which tasks are open are read in the statement's one snapshot, so an
/// account deactivated meanwhile is either drawn from or, if it was the last, makes it a
/// conflict; never a task without an assignee. Open tasks are locked in id order: a completion
/// waits for the shuffle and is then refused if its caller is no longer the assignee; a task
/// completed first is no longer open here.
pub async fn shuffle(tx: &mut PgConnection, correlation: Uuid) -> Result<usize> {
    let shuffled = sqlx::query!(
        r#"WITH pool AS (
               SELECT array_agg(account_id) AS ids FROM assignees
           ), open AS (
               SELECT task_id, assignee_id FROM tasks
               WHERE status = 'open' AND (SELECT ids FROM pool) IS NOT NULL
               ORDER BY task_id FOR UPDATE
           ), drawn AS (
               SELECT open.task_id, open.assignee_id AS previous,
                      pool.ids[1 + floor(random() * cardinality(pool.ids))::int] AS assignee
               FROM open CROSS JOIN pool
           ), moved AS (
               UPDATE tasks SET assignee_id = drawn.assignee FROM drawn WHERE tasks.task_id = drawn.task_id
               RETURNING tasks.task_id, drawn.previous, tasks.assignee_id
           )
           SELECT (SELECT ids IS NULL FROM pool) AS "nobody!",
                  coalesce(array_agg(task_id), '{}') AS "task_ids!: Vec<Uuid>",
                  coalesce(array_agg(previous), '{}') AS "previous!: Vec<Uuid>",
                  coalesce(array_agg(assignee_id), '{}') AS "assignees!: Vec<Uuid>"
           FROM moved"#
    )
    .fetch_one(&mut *tx)
    .await?;
    if shuffled.nobody {
        return Err(Error::NobodyToAssign { creating: false });
    }
    let now = Utc::now();
    let events: Vec<Envelope<TaskAssignedV1>> = shuffled
        .task_ids
        .iter()
        .zip(&shuffled.previous)
        .zip(&shuffled.assignees)
        .map(|((&task_id, &previous), &assignee_id)| {
            let data = TaskAssignedV1 {
                task_id,
                assignee_id,
                previous_assignee_id: Some(previous),
                reason: AssignReason::Shuffle,
            };
            Envelope::at(OUTBOX.producer(), now, data).correlated(Some(correlation))
        })
        .collect();
    for chunk in events.chunks(SHUFFLE_WRITE) {
        OUTBOX.add_all(tx, chunk).await?;
    }
    Ok(events.len())
}

/// The most `tasks.assigned` a shuffle writes to the outbox in one statement. A statement's rows
/// are encoded in one buffer that its connection keeps: in 10,000-row statements the task
/// tracker peaked at 57–75 MiB under `ates bench system`, in 1,000-row ones at 34–43 MiB.
pub const SHUFFLE_WRITE: usize = 1_000;

/// The task with `task_id`, if any.
pub async fn find(conn: &mut PgConnection, task_id: Uuid) -> Result<Option<Task>> {
    Ok(sqlx::query_as!(
        Task,
        r#"SELECT task_id, title, jira_id, description, status AS "status: TaskStatus",
                  assignee_id, created_by, created_at, completed_at
           FROM tasks WHERE task_id = $1"#,
        task_id,
    )
    .fetch_optional(conn)
    .await?)
}

/// Which tasks to list.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub status: Option<TaskStatus>,
    pub assignee_id: Option<Uuid>,
    pub after: Option<Cursor>,
    pub limit: i64,
}

/// One page of tasks, newest first, and the cursor of the next page if there is one.
pub async fn list(conn: &mut PgConnection, filter: &Filter) -> Result<(Vec<Task>, Option<Cursor>)> {
    let mut tasks = sqlx::query_as!(
        Task,
        r#"SELECT task_id, title, jira_id, description, status AS "status: TaskStatus",
                  assignee_id, created_by, created_at, completed_at
           FROM tasks
           WHERE ($1::text IS NULL OR status = $1)
             AND ($2::uuid IS NULL OR assignee_id = $2)
             AND ($3::timestamptz IS NULL OR (created_at, task_id) < ($3, $4))
           ORDER BY created_at DESC, task_id DESC
           LIMIT $5"#,
        filter.status.map(TaskStatus::as_str),
        filter.assignee_id,
        filter.after.map(|c| c.created_at),
        filter.after.map(|c| c.task_id),
        filter.limit + 1,
    )
    .fetch_all(conn)
    .await?;
    let more = usize::try_from(filter.limit).is_ok_and(|limit| tasks.len() > limit);
    if more {
        tasks.pop();
    }
    let next =
        more.then(|| tasks.last().map(|t| Cursor { created_at: t.created_at, task_id: t.task_id })).flatten();
    Ok((tasks, next))
}
