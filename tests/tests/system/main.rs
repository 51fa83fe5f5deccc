//! System tests: every service running against real nats-server and PostgreSQL, driven
//! through HTTP.

mod accounting;
mod auth;
mod tracker;
