//! The ledger: posting double-entry transactions and announcing them.

mod post;

pub use post::{Posted, TOTAL_SHARDS, post, totals_shard};

use ates_messaging::Outbox;

/// The producer name on accounting's events.
pub const OUTBOX: Outbox = Outbox::new("accounting");
