//! The event contract: committed files, the lock, validation and upcasting.

mod files;
mod registry;
mod samples;
