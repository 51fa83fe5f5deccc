//! The consumer of `accounts.*`: accounting's replica of the accounts.
//!
//! Payout mail needs each payee's email and name, and the account list shows names and roles;
//! the replica crate keeps them, in any order the events arrive.

use ates_accounts_replica::AccountsReplica;
use ates_messaging::{Backbone, Consumer};

/// The durable consumer of `accounts.*` that keeps the replica.
pub const NAME: &str = "accounting-accounts";

/// The consumer that keeps the accounts replica in `backbone`'s schema up to date.
pub fn consumer(backbone: &Backbone) -> Consumer<AccountsReplica> {
    ates_accounts_replica::consumer(backbone, NAME)
}
