//! The read side: every answer comes from the per-day tables of one generation, read in one
//! snapshot (`projection::read_current`).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{Error, Result};

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// `date`'s earnings and negative popugs.
pub async fn summary(conn: &mut PgConnection, generation: i64, date: NaiveDate) -> Result<Summary> {
    let figures = sqlx::query!(
        r#"SELECT coalesce(sum(-(assign_fees + completion_rewards)) FILTER (WHERE day = $2), 0)::bigint
                      AS "management_earnings!",
                  coalesce(sum(negative_change), 0)::bigint AS "negative_balance_accounts!"
           FROM days WHERE generation = $1 AND day <= $2"#,
        generation,
        date,
    )
    .fetch_one(conn)
    .await?;
    Ok(Summary {
        date,
        management_earnings: figures.management_earnings,
        negative_balance_accounts: figures.negative_balance_accounts,
    })
}

/// The most expensive task completed between `from` and `to`.
pub async fn most_expensive(
    conn: &mut PgConnection,
    generation: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<ExpensiveTask> {
    let top = sqlx::query_as!(
        ExpensiveTask,
        r#"SELECT t.task_id, k.title AS "title?", k.jira_id AS "jira_id?", t.reward AS completion_reward,
                  k.completed_at AS "completed_at?"
           FROM day_top_tasks t
           LEFT JOIN tasks k ON k.generation = t.generation AND k.task_id = t.task_id
           WHERE t.generation = $1 AND t.day BETWEEN $2 AND $3
           ORDER BY t.reward DESC, t.task_id DESC LIMIT 1"#,
        generation,
        from,
        to,
    )
    .fetch_optional(conn)
    .await?;
    top.ok_or(Error::NoTaskCompleted { from, to })
}

/// A day's money and change in negative popugs, as stored.
struct DayRow {
    day: NaiveDate,
    management_earnings: i64,
    negative_change: i64,
}

/// A day's top task, as read.
struct DayTop {
    day: NaiveDate,
    task_id: Uuid,
    title: Option<String>,
    jira_id: Option<String>,
    completion_reward: i64,
    completed_at: Option<DateTime<Utc>>,
}

impl DayTop {
    /// The day and its task, for a map by day.
    fn keyed_by_day(self) -> (NaiveDate, ExpensiveTask) {
        let task = ExpensiveTask {
            task_id: self.task_id,
            title: self.title,
            jira_id: self.jira_id,
            completion_reward: self.completion_reward,
            completed_at: self.completed_at,
        };
        (self.day, task)
    }
}

/// Every day from `from` to `to`.
pub async fn days(
    conn: &mut PgConnection,
    generation: i64,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<Day>> {
    let negative_before = sqlx::query_scalar!(
        r#"SELECT coalesce(sum(negative_change), 0)::bigint AS "negative!"
           FROM days WHERE generation = $1 AND day < $2"#,
        generation,
        from,
    )
    .fetch_one(&mut *conn)
    .await?;
    let rows: HashMap<NaiveDate, DayRow> = sqlx::query_as!(
        DayRow,
        r#"SELECT day, -(assign_fees + completion_rewards) AS "management_earnings!", negative_change
           FROM days WHERE generation = $1 AND day BETWEEN $2 AND $3"#,
        generation,
        from,
        to,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| (row.day, row))
    .collect();
    let mut tops: HashMap<NaiveDate, ExpensiveTask> = sqlx::query_as!(
        DayTop,
        r#"SELECT t.day, t.task_id, k.title AS "title?", k.jira_id AS "jira_id?", t.reward AS completion_reward,
                  k.completed_at AS "completed_at?"
           FROM day_top_tasks t
           LEFT JOIN tasks k ON k.generation = t.generation AND k.task_id = t.task_id
           WHERE t.generation = $1 AND t.day BETWEEN $2 AND $3"#,
        generation,
        from,
        to,
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(DayTop::keyed_by_day)
    .collect();
    let mut negatives = negative_before;
    Ok(from
        .iter_days()
        .take_while(|day| *day <= to)
        .map(|date| {
            let (earnings, change) =
                rows.get(&date).map_or((0, 0), |row| (row.management_earnings, row.negative_change));
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
