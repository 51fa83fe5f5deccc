//! The ledger: posting double-entry transactions and announcing them.

mod post;

pub use post::{Posted, post};

use ates_messaging::Outbox;

/// The producer name on accounting's events.
pub const OUTBOX: Outbox = Outbox::new("accounting");
