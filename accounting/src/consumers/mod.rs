//! Every event accounting consumes, one file per stream.

pub mod accounts;
pub mod tasks;
