//! The daily close: at the cut-off, and at start-up for days missed while down.
//!
//! Before closing, the job waits (a bounded time) for the task consumer to apply what the
//! `TASKS` stream already holds, so a backlog of yesterday's events (after downtime, or just
//! before midnight) is billed to the days it belongs to. A close that fails is retried with
//! backoff until it succeeds.

use std::time::Duration;

use async_nats::jetstream;
use ates_messaging::backoff::Backoff;
use ates_messaging::consumer::{Backlog, wait_for_backlog};
use ates_messaging::permissions::Subscription;
use chrono_tz::Tz;
use futures::future::join_all;
use sqlx::PgPool;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

use crate::closing;
use crate::config::CloseSchedule;
use crate::domain::calendar;

/// What the daily close needs.
#[derive(Clone)]
pub struct DailyClose {
    pub pool: PgPool,
    pub js: jetstream::Context,
    /// The company's time zone: when days end.
    pub zone: Tz,
    /// When, in `zone`.
    pub schedule: CloseSchedule,
    /// The durable consumers whose backlogs are applied before a close.
    pub tasks: &'static [Subscription],
    /// The longest wait for those backlogs (they are waited for at once).
    pub backlog_wait: Duration,
    /// The first retry delay after a failed close; doubles up to a minute.
    pub retry_initial: Duration,
}

impl DailyClose {
    /// Closes every ended day now (catching up days missed while accounting was down), then on
    /// the schedule until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        self.close_ended(&shutdown).await;
        self.run_schedule(shutdown).await;
    }

    /// Closes every ended day on the schedule until `shutdown`.
    pub async fn run_schedule(self, shutdown: CancellationToken) {
        let mut scheduler = match self.start(&shutdown).await {
            Ok(scheduler) => scheduler,
            Err(e) => {
                tracing::error!("cannot schedule the daily close with {:?}: {e}", self.schedule);
                return;
            }
        };
        shutdown.cancelled().await;
        let _ = scheduler.shutdown().await;
    }

    async fn start(&self, shutdown: &CancellationToken) -> Result<JobScheduler, JobSchedulerError> {
        let scheduler = JobScheduler::new().await?;
        scheduler.add(self.clone().job(shutdown.clone())?).await?;
        scheduler.start().await?;
        Ok(scheduler)
    }

    /// The close job. It replaces itself after each run: the scheduler fixes a zone's UTC
    /// offset when a job is made, so a fresh job keeps the cut-off at local midnight across
    /// DST changes.
    fn job(self, shutdown: CancellationToken) -> Result<Job, JobSchedulerError> {
        let expression = self.schedule.to_string();
        let zone = self.zone;
        Job::new_async_tz(expression.as_str(), zone, move |id, scheduler| {
            let (close, shutdown) = (self.clone(), shutdown.clone());
            Box::pin(async move {
                close.close_ended(&shutdown).await;
                if let Ok(next) = close.job(shutdown) {
                    let _ = scheduler.remove(&id).await;
                    let _ = scheduler.add(next).await;
                }
            })
        })
    }

    /// Waits for the task backlog, then closes every ended day, retrying until it succeeds or
    /// `shutdown`.
    pub async fn close_ended(&self, shutdown: &CancellationToken) {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = self.apply_backlog() => {}
        }
        let mut backoff = Backoff::new(self.retry_initial, Duration::from_secs(60));
        for attempt in 1.. {
            match closing::close_ended_days(&self.pool, self.zone).await {
                Ok(Some(closed)) => {
                    tracing::info!(billing_date = %closed.billing_date, attempt, "the daily close ran");
                    return;
                }
                Ok(None) => {
                    tracing::debug!("no ended day to close");
                    return;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(attempt, "the daily close failed, retrying in {delay:?}: {e}");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    /// Waits (at most `backlog_wait`) for the task consumers to apply what their stream holds.
    async fn apply_backlog(&self) {
        join_all(self.tasks.iter().map(|subscription| self.apply_backlog_of(subscription))).await;
    }

    async fn apply_backlog_of(&self, &Subscription { stream, consumer, .. }: &Subscription) {
        match wait_for_backlog(&self.js, stream, consumer, self.backlog_wait).await {
            Backlog::Empty => {}
            Backlog::Applied { waited } if waited < Duration::from_secs(1) => {}
            Backlog::Applied { waited } => {
                tracing::info!(%consumer, "applied the {stream} backlog in {waited:?} before closing days");
            }
            Backlog::Behind { pending } => tracing::warn!(
                %consumer,
                pending,
                "the {stream} backlog is not applied after {:?}; closing days anyway, later events go to the next open day",
                self.backlog_wait
            ),
        }
    }
}

/// Sets `ates_billing_last_closed_day_age_days` every `interval` until `shutdown`. While the
/// database cannot say, the age still grows from the last closed day it did say: a close that
/// cannot run because the database is down must still raise the alert.
pub async fn report_last_closed_day(pool: PgPool, zone: Tz, interval: Duration, shutdown: CancellationToken) {
    let mut known = None;
    loop {
        match closing::closed_through_day(&pool).await {
            Ok(closed) => known = Some(closed),
            Err(e) => tracing::debug!("last closed day: {e}"),
        }
        if let Some(closed) = known {
            let today = calendar::business_date(chrono::Utc::now(), zone);
            let age = calendar::days_since_close(today, closed);
            metrics::gauge!("ates_billing_last_closed_day_age_days").set(age as f64);
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}
