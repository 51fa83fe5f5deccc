//! Every event analytics handles, one file per stream it consumes: the task additions and
//! completions and accounting's transactions feed the dashboards
//! ([`crate::dashboards::Dashboards`] applies a batch by asking each file for its part),
//! `accounts.*` the accounts replica behind token checks.

pub mod accounting;
pub mod accounts;
pub mod tasks;
