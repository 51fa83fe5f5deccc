//! `accounts.*`: the replica of who can be assigned tasks (active workers and accountants).

use ates_accounts_replica::AccountsReplica;
use ates_messaging::{Backbone, Consumer};

/// The durable consumer of `accounts.*`.
pub const NAME: &str = "task-tracker-accounts";

/// The consumer that keeps the replica.
pub fn consumer(backbone: &Backbone) -> Consumer<AccountsReplica> {
    ates_accounts_replica::consumer(backbone, NAME)
}
