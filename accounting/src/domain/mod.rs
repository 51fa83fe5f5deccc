//! Accounting's rules, free of I/O: prices, postings, billing dates.

pub mod calendar;
pub mod money;
pub mod posting;
pub mod pricing;
