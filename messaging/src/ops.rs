//! The operations view of one service, as `GET /api/ops/<service>` serves it to admins: where
//! its work waits, and the messages consumers parked from its own stream, which it re-drives.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::backbone::Backbone;
use crate::dlq::{Dlq, Parked, RedriveError, Redriven};
use crate::waiting::Waiting;

/// The most parked messages one view lists.
const PARKED_SHOWN: usize = 100;

/// One service's operations view.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Operations {
    /// The service (its schema).
    pub service: String,
    /// Where its work waits.
    pub waiting: Waiting,
    /// Messages consumers parked from this service's stream, oldest first; each can be re-driven
    /// here. Empty for a service that produces no events.
    pub parked: Vec<ParkedMessage>,
    /// Whether more are parked than listed.
    pub parked_more: bool,
    /// Whether the parked messages could be read (false while NATS does not answer).
    pub parked_known: bool,
    /// The last closed billing day (accounting only; absent before the first activity).
    pub last_closed_day: Option<NaiveDate>,
}

/// A parked message as the operations view shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ParkedMessage {
    /// Its DLQ sequence.
    pub sequence: u64,
    pub parked_at: DateTime<Utc>,
    /// The consumer that gave up on it.
    pub consumer: String,
    /// The kind of failure (`handler_failed`, `invalid`, …).
    pub reason: String,
    /// What went wrong.
    pub detail: String,
    /// The stream and subject it came from, and its sequence there.
    pub stream: String,
    pub subject: String,
    pub stream_sequence: u64,
    /// How often it had been delivered.
    pub deliveries: i64,
    /// The event's id and name, when it is an event.
    pub event_id: Option<Uuid>,
    pub event_name: Option<String>,
    /// Where to `POST` to re-drive it.
    pub redrive: String,
}

impl Backbone {
    /// `/api/ops/<service>` of this service: the path its operations view is served at.
    pub fn ops_path(&self) -> String {
        format!("/api/ops/{}", self.bus.user)
    }

    /// This service's operations view now.
    pub async fn operations(&self) -> Operations {
        let (waiting, parked) = tokio::join!(self.waiting(), self.parked_from_own_stream());
        let (parked, parked_more, parked_known) = match parked {
            Ok((parked, more)) => (parked, more, true),
            Err(e) => {
                tracing::debug!("parked messages: {e}");
                (Vec::new(), false, false)
            }
        };
        Operations {
            service: self.schema.to_owned(),
            waiting,
            parked,
            parked_more,
            parked_known,
            last_closed_day: None,
        }
    }

    async fn parked_from_own_stream(&self) -> Result<(Vec<ParkedMessage>, bool), crate::BoxError> {
        let Some(stream) = self.bus.produces else { return Ok((Vec::new(), false)) };
        let dlq = Dlq::new(self.js.clone());
        let read = dlq.parked_from(stream, PARKED_SHOWN);
        let (parked, more) = tokio::time::timeout(std::time::Duration::from_secs(5), read)
            .await
            .map_err(|_| "the DLQ did not answer within 5 s")??;
        let view = parked.into_iter().map(|p| self.parked_message(p)).collect();
        Ok((view, more))
    }

    fn parked_message(&self, parked: Parked) -> ParkedMessage {
        let event = parked.event();
        ParkedMessage {
            redrive: format!("{}/parked/{}/redrive", self.ops_path(), parked.sequence),
            sequence: parked.sequence,
            parked_at: parked.parked_at,
            consumer: parked.consumer,
            reason: parked.reason,
            detail: parked.detail,
            stream: parked.stream,
            subject: parked.subject,
            stream_sequence: parked.stream_sequence,
            deliveries: parked.deliveries,
            event_id: event.as_ref().map(|e| e.id),
            event_name: event.map(|e| e.name),
        }
    }

    /// Re-drives DLQ message `sequence` if it was parked from this service's stream: the same
    /// operation as `ates dlq redrive`.
    pub async fn redrive(&self, sequence: u64) -> Result<Redriven, RedriveError> {
        let own = self.bus.produces.unwrap_or("this service (it produces no events)");
        Dlq::new(self.js.clone()).redrive(sequence, Some(own)).await
    }
}

/// What the operations routes need of a service's router state.
pub trait OpsState: Clone + Send + Sync + 'static {
    /// The service's connections.
    fn backbone(&self) -> &Backbone;

    /// The service's operations view (accounting adds its last closed day).
    fn operations(&self) -> impl Future<Output = ates_web::Result<Operations>> + Send {
        async { Ok(self.backbone().operations().await) }
    }
}

/// The operations routes of a service, in the module it is invoked in: `operations` serving
/// the view at `view`, and for a producer `redrive` at `redrive` (`…/parked/{sequence}/redrive`).
/// `$state` implements [`OpsState`]. (A macro only because OpenAPI paths are per service.)
#[macro_export]
macro_rules! ops_routes {
    ($state:ty, view = $view:tt $(, redrive = $redrive:tt)?) => {
        /// Where this service's work waits, and what consumers parked from its stream (admins).
        #[utoipa::path(get, path = $view, tag = "operations", security(("bearer" = [])),
            responses(
                (status = 200, description = "The operations view", body = $crate::ops::Operations),
                (status = 403, description = "Not an admin"),
            ))]
        pub async fn operations(
            axum::extract::State(state): axum::extract::State<$state>,
            caller: ates_tokens::Caller,
        ) -> ates_web::Result<ates_web::Json<$crate::ops::Operations>> {
            caller.require(&[ates_schemas::events::Role::Admin])?;
            Ok(ates_web::Json($crate::ops::OpsState::operations(&state).await?))
        }

        $(
        /// Re-drives a message consumers parked from this service's stream (admins): the same
        /// operation as `ates dlq redrive`.
        #[utoipa::path(post, path = $redrive, tag = "operations", security(("bearer" = [])),
            params(("sequence" = u64, Path, minimum = 1, description = "Its DLQ sequence, as the operations view lists it")),
            responses(
                (status = 200, description = "Published again and removed from the DLQ", body = $crate::dlq::Redriven),
                (status = 403, description = "Not an admin"),
                (status = 404, description = "No such parked message"),
                (status = 409, description = "Not parked from this service's stream, or no longer the original"),
                (status = 503, description = "NATS did not answer"),
            ))]
        pub async fn redrive(
            axum::extract::State(state): axum::extract::State<$state>,
            caller: ates_tokens::Caller,
            ates_web::Path(sequence): ates_web::Path<u64>,
        ) -> ates_web::Result<ates_web::Json<$crate::dlq::Redriven>> {
            caller.require(&[ates_schemas::events::Role::Admin])?;
            let backbone = $crate::ops::OpsState::backbone(&state);
            Ok(ates_web::Json(backbone.redrive(sequence).await.map_err(ates_web::Problem::from)?))
        }
        )?
    };
}
