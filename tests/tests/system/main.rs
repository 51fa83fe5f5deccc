//! System tests: every service running against real nats-server and PostgreSQL, driven
//! through HTTP.

mod accounting;
mod analytics;
mod auth;
mod deploy;
mod deployment;
mod hardening;
mod isolation;
mod tracker;
mod ui;
