//! The read side: every answer comes from the per-day tables of one generation, read in one
//! snapshot (`projection::read_current`).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

/// Today's (or a day's) headline figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub date: NaiveDate,
    /// Fees collected minus rewards paid that day, in cents.
    pub management_earnings: i64,
    /// Popugs whose balance was below zero at the end of that day (now, for today).
    pub negative_balance_accounts: i64,
}

/// The task with the highest completion reward among tasks completed in a period (by the
/// business date of its completion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ExpensiveTask {
    pub task_id: Uuid,
    /// Known once `tasks.added` has arrived.
    pub title: Option<String>,
    pub jira_id: Option<String>,
    /// In cents.
    pub completion_reward: i64,
    /// Known once `tasks.completed` has arrived.
    pub completed_at: Option<DateTime<Utc>>,
}

/// One day of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Day {
    pub date: NaiveDate,
    pub management_earnings: i64,
    pub negative_balance_accounts: i64,
    pub most_expensive_task: Option<ExpensiveTask>,
}

/// The top task of each day in `[$2, $3]` of generation `$1`, with its details.
const TOP_TASKS: &str =
    "SELECT t.day, t.task_id, k.title, k.jira_id, t.reward AS completion_reward, k.completed_at
     FROM day_top_tasks t
     LEFT JOIN tasks k ON k.generation = t.generation AND k.task_id = t.task_id
     WHERE t.generation = $1 AND t.day BETWEEN $2 AND $3";

/// A day's top task, as read.
#[derive(sqlx::FromRow)]
struct DayTop {
    day: NaiveDate,
    #[sqlx(flatten)]
    task: ExpensiveTask,
}

/// `date`'s earnings and negative popugs.
pub async fn summary(
    conn: &mut PgConnection,
    generation: i64,
    date: NaiveDate,
) -> Result<Summary, sqlx::Error> {
    let (earnings, negatives): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(-(assign_fees + completion_rewards)) FILTER (WHERE day = $2), 0)::bigint,
                coalesce(sum(negative_change), 0)::bigint
         FROM days WHERE generation = $1 AND day <= $2",
    )
    .bind(generation)
    .bind(date)
    .fetch_one(conn)
    .await?;
    Ok(Summary { date, management_earnings: earnings, negative_balance_accounts: negatives })
}

/// The most expensive task completed between `from` and `to`, if any.
pub async fn most_expensive(
    conn: &mut PgConnection,
    generation: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Option<ExpensiveTask>, sqlx::Error> {
    let top: Option<DayTop> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{TOP_TASKS} ORDER BY t.reward DESC, t.task_id DESC LIMIT 1"
    )))
    .bind(generation)
    .bind(from)
    .bind(to)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(top.map(|top| top.task))
}

/// Every day from `from` to `to`.
pub async fn days(
    conn: &mut PgConnection,
    generation: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Day>, sqlx::Error> {
    let negative_before: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(negative_change), 0)::bigint FROM days WHERE generation = $1 AND day < $2",
    )
    .bind(generation)
    .bind(from)
    .fetch_one(&mut *conn)
    .await?;
    let rows: HashMap<NaiveDate, (i64, i64)> = sqlx::query_as::<_, (NaiveDate, i64, i64)>(
        "SELECT day, -(assign_fees + completion_rewards), negative_change FROM days
         WHERE generation = $1 AND day BETWEEN $2 AND $3",
    )
    .bind(generation)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(day, earnings, change)| (day, (earnings, change)))
    .collect();
    let mut tops: HashMap<NaiveDate, ExpensiveTask> = sqlx::query_as::<_, DayTop>(TOP_TASKS)
        .bind(generation)
        .bind(from)
        .bind(to)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|top| (top.day, top.task))
        .collect();
    let mut negatives = negative_before;
    Ok(from
        .iter_days()
        .take_while(|day| *day <= to)
        .map(|date| {
            let (earnings, change) = rows.get(&date).copied().unwrap_or_default();
            negatives += change;
            Day {
                date,
                management_earnings: earnings,
                negative_balance_accounts: negatives,
                most_expensive_task: tops.remove(&date),
            }
        })
        .collect())
}
