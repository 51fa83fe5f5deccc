//! The daily close: at the cut-off, and at start-up for days missed while down.

use chrono_tz::Tz;
use sqlx::PgPool;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

use crate::closing;

/// Closes every ended day now (catching up days missed while accounting was down), then on
/// `schedule` (6-field cron, seconds first) in `zone` until `shutdown`.
pub async fn close_days(pool: PgPool, zone: Tz, schedule: String, shutdown: CancellationToken) {
    close_ended(&pool, zone).await;
    run_schedule(pool, zone, schedule, shutdown).await;
}

/// Closes every ended day on `schedule` in `zone` until `shutdown`.
pub async fn run_schedule(pool: PgPool, zone: Tz, schedule: String, shutdown: CancellationToken) {
    let mut scheduler = match start(&pool, zone, &schedule).await {
        Ok(scheduler) => scheduler,
        Err(e) => {
            tracing::error!("cannot schedule the daily close with {schedule:?}: {e}");
            return;
        }
    };
    shutdown.cancelled().await;
    let _ = scheduler.shutdown().await;
}

async fn start(pool: &PgPool, zone: Tz, schedule: &str) -> Result<JobScheduler, JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    scheduler.add(job(pool.clone(), zone, schedule.to_owned())?).await?;
    scheduler.start().await?;
    Ok(scheduler)
}

/// The close job. It replaces itself after each run: the scheduler fixes a zone's UTC offset
/// when a job is made, so a fresh job keeps the cut-off at local midnight across DST changes.
fn job(pool: PgPool, zone: Tz, schedule: String) -> Result<Job, JobSchedulerError> {
    let expression = schedule.clone();
    Job::new_async_tz(expression.as_str(), zone, move |id, scheduler| {
        let (pool, schedule) = (pool.clone(), schedule.clone());
        Box::pin(async move {
            close_ended(&pool, zone).await;
            if let Ok(next) = job(pool, zone, schedule) {
                let _ = scheduler.remove(&id).await;
                let _ = scheduler.add(next).await;
            }
        })
    })
}

async fn close_ended(pool: &PgPool, zone: Tz) {
    match closing::close_ended_days(pool, zone).await {
        Ok(Some(closed)) => tracing::info!(billing_date = %closed.billing_date, "the daily close ran"),
        Ok(None) => tracing::debug!("no ended day to close"),
        Err(e) => tracing::error!("the daily close failed, it will run again at the next tick or start: {e}"),
    }
}

/// Checks a close schedule before anything starts.
pub fn parse_schedule(text: &str) -> Result<String, String> {
    croner_check(text).map(|()| text.to_owned())
}

fn croner_check(text: &str) -> Result<(), String> {
    Job::new_async(text, |_, _| Box::pin(async {})).map(|_| ()).map_err(|_| {
        format!("{text:?} is not a schedule: use six cron fields, seconds first, e.g. \"0 0 0 * * *\"")
    })
}
