//! System tests: every service running against real nats-server and PostgreSQL, driven
//! through HTTP.

mod accounting;
mod analytics;
mod asyncapi;
mod auth;
mod deploy;
mod deployment;
mod hardening;
mod isolation;
mod monitoring;
mod observability;
mod tracker;
mod ui;
