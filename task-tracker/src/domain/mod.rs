//! The task tracker's rules, free of I/O.

pub mod cursor;
pub mod task;
