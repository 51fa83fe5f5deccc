//! A consuming service's own copy of the accounts, built from `accounts.*` events.
//!
//! Events may arrive in any order and more than once: a full state applies only if it is
//! newer than the one kept, and a role change or deactivation moves `credentials_changed_at`
//! forward, which is what makes older tokens "outdated" ([`ReplicaFreshness`]).

mod freshness;
mod replica;

pub use freshness::ReplicaFreshness;
pub use replica::{AccountsReplica, apply};

/// The replica's table, applied to every consuming service's schema.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/accounts_replica");

/// The durable consumer `name` that keeps the replica in `backbone`'s schema up to date.
pub fn consumer(
    backbone: &ates_messaging::Backbone,
    name: &'static str,
) -> ates_messaging::Consumer<AccountsReplica> {
    let subscription =
        ates_messaging::permissions::Subscription::all(ates_messaging::streams::ACCOUNTS, name);
    backbone.consumer(&subscription, std::sync::Arc::new(AccountsReplica))
}
