//! Accounting: the ledger under duplicates, reordering and several instances; the API.

mod api;
mod close;
mod ledger;
mod workload;
