//! Event delivery for aTES: the transactional outbox and its relay, JetStream streams,
//! idempotent consumers with a dead-letter queue, and replay.
//!
//! The guarantees: a committed state change always gets its events published (the outbox
//! keeps them until JetStream acknowledges); a consumer applies each event at most once (the
//! event id is recorded in the same transaction as the effect) and at least once (it acks only
//! after commit); a message that can never be applied is parked on the `DLQ` stream instead of
//! blocking the ones behind it.

mod backbone;
pub mod backoff;
mod batch;
pub mod consumer;
pub mod db;
pub mod dlq;
pub mod event_log;
pub mod nats;
pub mod ops;
pub mod outbox;
pub mod permissions;
pub mod projection;
pub mod replay;
pub mod streams;
pub mod waiting;

pub use backbone::{Backbone, BackboneConfig, NatsConnection};
pub use consumer::{BoxError, Consumer, ConsumerSpec, Handler, HandlerError};
pub use outbox::{Outbox, OutboxError, Relay, RelayError, RelayRound, RelaySettings};
