//! Accounting's rules, free of I/O: prices, postings, payouts, billing dates.

pub mod calendar;
pub mod money;
pub mod payout;
pub mod posting;
pub mod pricing;
