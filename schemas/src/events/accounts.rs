//! `accounts.*`: produced by auth whenever an account is created or changed.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{event, require_all_fields};

/// What a person may do in aTES.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Manages accounts and sees everything.
    Admin,
    /// Shuffles tasks.
    Manager,
    /// Sees every account's money.
    Accountant,
    /// Gets tasks assigned and paid.
    Worker,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Manager, Role::Accountant, Role::Worker];

    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Accountant => "accountant",
            Role::Worker => "worker",
        }
    }

    /// Whether tasks may be assigned to an account with this role.
    pub fn is_assignable(self) -> bool {
        !matches!(self, Role::Admin | Role::Manager)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for Role {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        value.parse()
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`: use admin, manager, accountant or worker"))
    }
}

/// An account was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct AccountCreatedV1 {
    /// The account's id, used as `sub` in its tokens.
    pub account_id: Uuid,
    /// Where payout mail goes.
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    /// The person's name.
    #[schemars(length(max = 200))]
    pub full_name: String,
    /// The account's role.
    pub role: Role,
    /// Whether the account may sign in and receive tasks.
    pub active: bool,
}
event!(AccountCreatedV1, "accounts.created", 1);

/// An account changed; carries the full new state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct AccountUpdatedV1 {
    /// The account's id.
    pub account_id: Uuid,
    /// Where payout mail goes.
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
    /// The person's name.
    #[schemars(length(max = 200))]
    pub full_name: String,
    /// The account's role.
    pub role: Role,
    /// Whether the account may sign in and receive tasks.
    pub active: bool,
}
event!(AccountUpdatedV1, "accounts.updated", 1);

/// An account's role changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct AccountRoleChangedV1 {
    /// The account's id.
    pub account_id: Uuid,
    /// The role before the change.
    pub old_role: Role,
    /// The role after the change.
    pub new_role: Role,
}
event!(AccountRoleChangedV1, "accounts.role_changed", 1);
