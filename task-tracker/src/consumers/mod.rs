//! Every event the task tracker consumes, one file per stream.

pub mod accounts;
