//! Accounting: the ledger under duplicates, reordering and several instances; the API.

mod api;
mod ledger;
mod workload;
