//! `accounting.*`: produced by accounting as money moves.

use chrono::NaiveDate;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{event, require_all_fields};

/// A task got its price; happens once per task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct TaskPricedV1 {
    /// The task's id.
    pub task_id: Uuid,
    /// Cents debited from the assignee on every assignment.
    #[schemars(range(min = 1))]
    pub assign_fee: i64,
    /// Cents credited to the assignee on completion.
    #[schemars(range(min = 1))]
    pub completion_reward: i64,
}
event!(TaskPricedV1, "accounting.task_priced", 1);

/// What a ledger transaction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    /// A task was assigned: the assignee pays the fee.
    AssignFee,
    /// A task was completed: the assignee earns the reward.
    CompletionReward,
    /// The end-of-day payout of a positive balance.
    Payout,
}

impl TryFrom<String> for TransactionKind {
    type Error = String;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        [TransactionKind::AssignFee, TransactionKind::CompletionReward, TransactionKind::Payout]
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| format!("unknown transaction kind {value}"))
    }
}

impl TransactionKind {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TransactionKind::AssignFee => "assign_fee",
            TransactionKind::CompletionReward => "completion_reward",
            TransactionKind::Payout => "payout",
        }
    }
}

/// A transaction was posted to an account's ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct TransactionAppliedV1 {
    /// The transaction's id.
    pub transaction_id: Uuid,
    /// The account whose balance changed.
    pub account_id: Uuid,
    /// What the transaction is for.
    pub kind: TransactionKind,
    /// Signed cents: fees and payouts are negative.
    pub amount: i64,
    /// The account's balance in cents after this transaction.
    pub balance_after: i64,
    /// The task that caused it, if any.
    pub task_id: Option<Uuid>,
    /// The billing day it belongs to.
    pub billing_date: NaiveDate,
}
event!(TransactionAppliedV1, "accounting.transaction_applied", 1);

/// A billing day was closed and positive balances were paid out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct BillingDayClosedV1 {
    /// The closed day.
    pub billing_date: NaiveDate,
    /// How many accounts got a payout.
    #[schemars(range(min = 0))]
    pub accounts_paid: i64,
    /// The sum of all payouts in cents.
    #[schemars(range(min = 0))]
    pub total_paid: i64,
    /// Fees collected minus rewards paid that day, in cents.
    pub management_earnings: i64,
}
event!(BillingDayClosedV1, "accounting.billing_day_closed", 1);

/// The payout email of one account was accepted by the mail server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = require_all_fields)]
pub struct PayoutSentV1 {
    /// The payout transaction.
    pub transaction_id: Uuid,
    /// The account that was paid.
    pub account_id: Uuid,
    /// The day that was closed.
    pub billing_date: NaiveDate,
    /// The amount paid in cents.
    #[schemars(range(min = 1))]
    pub amount: i64,
    /// Where the email went.
    #[schemars(length(min = 3, max = 254))]
    pub email: String,
}
event!(PayoutSentV1, "accounting.payout_sent", 1);
