//! `/api/tasks`: create, list, complete, shuffle.

use ates_schemas::events::Role;
use ates_tokens::Caller;
use ates_web::{CorrelationId, Json, Path, Problem, Query};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::cursor::Cursor;
use crate::domain::task::NewTask;
use crate::error::Error;
use crate::idempotency;
use crate::state::AppState;
use crate::tasks::{self, Filter, Task, TaskStatus};
use ates_web::Result;

/// A new task.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTask {
    /// What to do: one line, not blank, no `[` or `]`, at most 300 characters.
    #[schema(
        example = "Feed the birds",
        max_length = 300,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\[\]]*[^\s\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\[\]][^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069\[\]]*$"
    )]
    title: String,
    /// The Jira issue key, e.g. `POP-12`.
    #[schema(max_length = 32, pattern = r"^([A-Z][A-Z0-9_]*-[0-9]+)?$")]
    jira_id: Option<String>,
    /// Details: tabs and line breaks allowed, no other control characters.
    #[schema(max_length = 10000, pattern = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$")]
    description: Option<String>,
}

/// Creates a task assigned to a random worker or accountant. With an `Idempotency-Key`
/// header, repeating the request returns the same task instead of creating another.
#[utoipa::path(post, path = "/api/tasks", tag = "tasks", security(("bearer" = [])), request_body = CreateTask,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: same key and body, same task",
        pattern = r"^[\u0021-\u007e]{1,255}$")),
    responses(
        (status = 201, description = "Created and assigned", body = Task),
        (status = 409, description = "Nobody can be assigned"),
        (status = 422, description = "A field breaks a rule, or the key was used for another request"),
    ))]
#[tracing::instrument(skip_all, fields(caller = %caller.account_id))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    headers: HeaderMap,
    Json(request): Json<CreateTask>,
) -> Result<Response> {
    let new = NewTask::parse(&request.title, request.jira_id.as_deref(), request.description.as_deref())
        .map_err(Problem::unprocessable)?;
    let key = idempotency_key(&headers)?;
    let task_id = Uuid::now_v7();
    let mut tx = state.pool.begin().await?;
    if let Some(key) = &key
        && !idempotency::claim(&mut tx, caller.account_id, key, &new.request_hash(), task_id, correlation.0)
            .await?
    {
        drop(tx);
        return replay(&state, caller.account_id, key, &new).await;
    }
    let task = tasks::create(&mut tx, task_id, caller.account_id, &new, correlation.0).await?;
    tx.commit().await?;
    metrics::counter!("ates_tasks_created_total").increment(1);
    Ok((StatusCode::CREATED, Json(task)).into_response())
}

/// The answer to a repeated `Idempotency-Key`: the same task, or 422 for another request.
async fn replay(state: &AppState, account_id: Uuid, key: &str, new: &NewTask) -> Result<Response> {
    let mut conn = state.pool.acquire().await?;
    let (task_id, earlier) =
        idempotency::earlier_task(&mut conn, account_id, key, &new.request_hash()).await?;
    let task = tasks::find(&mut conn, task_id).await?.ok_or(Error::NoSuchTask(task_id))?;
    // The task's events carry the first request's id: answer with it, so it is the one to follow.
    tracing::info!(%task_id, earlier_correlation_id = ?earlier, "a repeated create is answered with the earlier task");
    let mut response = (StatusCode::CREATED, Json(task)).into_response();
    if let Some(earlier) = earlier {
        response
            .headers_mut()
            .insert(ates_web::correlation::HEADER, earlier.to_string().parse().expect("a UUID"));
    }
    Ok(response)
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value.to_str().unwrap_or_default().trim();
    if key.is_empty() || key.len() > 255 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(Problem::bad_request("Idempotency-Key must be 1 to 255 visible ASCII characters.").into());
    }
    Ok(Some(key.to_owned()))
}

/// Filters of the task list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only open or only done tasks.
    status: Option<TaskStatus>,
    /// Only this account's tasks.
    assignee_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of tasks, newest first.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    items: Vec<Task>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// Lists tasks, newest first.
#[utoipa::path(get, path = "/api/tasks", tag = "tasks", security(("bearer" = [])), params(ListQuery),
    responses(
        (status = 200, description = "A page of tasks", body = TaskPage),
        (status = 400, description = "A bad filter or cursor"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<TaskPage>> {
    page(&state, query).await
}

/// Filters of the caller's own tasks.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MineQuery {
    /// Only open or only done tasks.
    status: Option<TaskStatus>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists the caller's tasks, newest first.
#[utoipa::path(get, path = "/api/tasks/mine", tag = "tasks", security(("bearer" = [])), params(MineQuery),
    responses((status = 200, description = "A page of the caller's tasks", body = TaskPage)))]
pub async fn mine(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<MineQuery>,
) -> Result<Json<TaskPage>> {
    let query = ListQuery {
        status: query.status,
        assignee_id: Some(caller.account_id),
        limit: query.limit,
        cursor: query.cursor,
    };
    page(&state, query).await
}

async fn page(state: &AppState, query: ListQuery) -> Result<Json<TaskPage>> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::bad_request("limit must be between 1 and 200.").into());
    }
    let after = query.cursor.as_deref().map(Cursor::decode).transpose().map_err(Problem::bad_request)?;
    let filter = Filter { status: query.status, assignee_id: query.assignee_id, after, limit };
    let mut conn = state.pool.acquire().await?;
    let (items, next) = tasks::list(&mut conn, &filter).await?;
    Ok(Json(TaskPage { items, next_cursor: next.map(|c| c.encode()) }))
}

/// One task.
#[utoipa::path(get, path = "/api/tasks/{task_id}", tag = "tasks", security(("bearer" = [])),
    params(("task_id" = Uuid, Path, description = "The task")),
    responses(
        (status = 200, description = "The task", body = Task),
        (status = 404, description = "No such task"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(task_id): Path<Uuid>,
) -> Result<Json<Task>> {
    let mut conn = state.pool.acquire().await?;
    Ok(Json(tasks::find(&mut conn, task_id).await?.ok_or(Error::NoSuchTask(task_id))?))
}

/// Completes a task; only its assignee can, and only once.
#[utoipa::path(post, path = "/api/tasks/{task_id}/complete", tag = "tasks", security(("bearer" = [])),
    params(("task_id" = Uuid, Path, description = "The task")),
    responses(
        (status = 200, description = "Completed", body = Task),
        (status = 403, description = "Not the assignee"),
        (status = 404, description = "No such task"),
        (status = 409, description = "Already completed"),
    ))]
#[tracing::instrument(skip_all, fields(caller = %caller.account_id, %task_id))]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    Path(task_id): Path<Uuid>,
) -> Result<Json<Task>> {
    let mut tx = state.pool.begin().await?;
    let task = tasks::complete(&mut tx, task_id, caller.account_id, correlation.0).await?;
    tx.commit().await?;
    metrics::counter!("ates_tasks_completed_total").increment(1);
    Ok(Json(task))
}

/// How many tasks a shuffle reassigned.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Shuffled {
    reassigned: usize,
}

/// Reassigns every open task to a random worker or accountant (managers and admins).
#[utoipa::path(post, path = "/api/tasks/shuffle", tag = "tasks", security(("bearer" = [])),
    responses(
        (status = 200, description = "Reassigned", body = Shuffled),
        (status = 403, description = "Not a manager or admin"),
        (status = 409, description = "Nobody can be assigned"),
    ))]
#[tracing::instrument(skip_all, fields(caller = %caller.account_id))]
pub async fn shuffle(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
) -> Result<Json<Shuffled>> {
    caller.require(&[Role::Admin, Role::Manager])?;
    let mut tx = state.pool.begin().await?;
    let reassigned = tasks::shuffle(&mut tx, correlation.0).await?;
    tx.commit().await?;
    metrics::counter!("ates_tasks_reassigned_total").increment(reassigned as u64);
    Ok(Json(Shuffled { reassigned }))
}
