//! Analytics' pure rules: no I/O, unit-tested on their own.

pub mod periods;
pub mod timeline;
