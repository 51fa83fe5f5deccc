//! The delivery guarantees, proven against real nats-server and PostgreSQL servers.

mod audit;
mod cluster;
mod consumer;
mod dlq;
mod faults;
mod indexes;
mod outbox;
mod position;
mod replay;
mod support;
