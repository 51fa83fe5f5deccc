//! Auth through HTTP, against real PostgreSQL and NATS.

mod accounts;
mod freshness;
mod logs;
mod sessions;
mod support;
mod tokens;
