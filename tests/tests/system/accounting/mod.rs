//! Accounting: the ledger under duplicates, reordering and several instances; the API.

mod api;
mod close;
mod cutoff;
mod ledger;
mod payouts;
mod workload;
