//! `accounts.*`: analytics' copy of the accounts, which token checks read to refuse tokens
//! of deactivated accounts or changed roles. The replica crate does the work.

use ates_accounts_replica::AccountsReplica;
use ates_messaging::{Backbone, Consumer};

/// The durable consumer that keeps analytics' replica up to date.
pub const NAME: &str = "analytics-accounts";

/// The accounts replica's consumer in `backbone`'s schema.
pub fn consumer(backbone: &Backbone) -> Consumer<AccountsReplica> {
    ates_accounts_replica::consumer(backbone, NAME)
}
