//! Auth's rules, free of I/O: what a valid account is, and how passwords and refresh tokens
//! are kept.

pub mod account;
pub mod password;
pub mod refresh;
