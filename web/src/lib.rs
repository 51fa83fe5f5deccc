//! The HTTP conventions every aTES service follows, in one place:
//!
//! - errors are `application/problem+json` ([`Problem`]), and a bad JSON body gets one too
//!   ([`Json`]);
//! - `/healthz`, `/readyz` (database and NATS reachable) and `/metrics` (Prometheus)
//!   ([`ops_routes`]);
//! - request logging, size limits and metrics ([`layers`]);
//! - `/api/openapi.json` ([`openapi_route`]) and `/api/asyncapi.json` ([`asyncapi_route`]);
//! - serving until SIGTERM or Ctrl-C, finishing requests in flight ([`serve`]).

mod asyncapi;
pub mod correlation;
mod dates;
mod error;
mod extract;
mod health;
mod layers;
pub mod metrics;
pub mod openapi;
mod problem;
mod serve;
mod standalone;
pub mod telemetry;
pub mod text;

pub use asyncapi::asyncapi_route;
pub use correlation::CorrelationId;
pub use dates::{Calendar, check_date, date_range, parse_time_zone};
pub use error::{Error, Result};
pub use extract::{Json, Path, Query};
pub use health::{Readiness, ops_routes};
pub use layers::{MAX_BODY_BYTES, layers};
pub use metrics::prometheus;
pub use openapi::{BearerAuth, ProblemResponses, openapi_route};
pub use problem::{Problem, ProblemBody};
pub use serve::{serve, shutdown_signal};
pub use standalone::{app, init_logging, run_standalone};
