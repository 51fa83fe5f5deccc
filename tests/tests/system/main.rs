//! System tests: every service running against real nats-server and PostgreSQL, driven
//! through HTTP.

mod auth;
mod tracker;
