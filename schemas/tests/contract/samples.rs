//! One valid envelope of every event version in the catalog.

use ates_schemas::events::*;
use ates_schemas::{Envelope, Event};
use chrono::NaiveDate;
use serde_json::Value;
use uuid::Uuid;

fn envelope<E: Event>(data: E) -> Value {
    serde_json::to_value(Envelope::new("test", data)).unwrap()
}

pub fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 21).unwrap()
}

/// A valid event of every (name, version) in the catalog.
pub fn all() -> Vec<Value> {
    let id = Uuid::new_v4;
    vec![
        envelope(AccountCreatedV1 {
            account_id: id(),
            email: "popug@example.com".into(),
            full_name: "Popug".into(),
            role: Role::Worker,
            active: true,
        }),
        envelope(AccountUpdatedV1 {
            account_id: id(),
            email: "popug@example.com".into(),
            full_name: "Popug".into(),
            role: Role::Accountant,
            active: false,
        }),
        envelope(AccountRoleChangedV1 { account_id: id(), old_role: Role::Worker, new_role: Role::Manager }),
        envelope(TaskAddedV1 {
            task_id: id(),
            title: "[POP-1] Feed the birds".into(),
            description: String::new(),
            created_by: id(),
        }),
        task_added_v2(Some("POP-1")),
        envelope(TaskAssignedV1 {
            task_id: id(),
            assignee_id: id(),
            previous_assignee_id: None,
            reason: AssignReason::Created,
        }),
        envelope(TaskCompletedV1 { task_id: id(), assignee_id: id() }),
        envelope(TaskPricedV1 { task_id: id(), assign_fee: 1000, completion_reward: 4000 }),
        envelope(TransactionAppliedV1 {
            transaction_id: id(),
            account_id: id(),
            kind: TransactionKind::AssignFee,
            amount: -1500,
            balance_after: -1500,
            task_id: Some(id()),
            billing_date: day(),
        }),
        envelope(BillingDayClosedV1 {
            billing_date: day(),
            accounts_paid: 2,
            total_paid: 5000,
            management_earnings: -200,
        }),
        envelope(PayoutSentV1 {
            transaction_id: id(),
            account_id: id(),
            billing_date: day(),
            amount: 2500,
            email: "popug@example.com".into(),
        }),
    ]
}

pub fn task_added_v2(jira_id: Option<&str>) -> Value {
    envelope(TaskAddedV2 {
        task_id: Uuid::new_v4(),
        title: "Feed the birds".into(),
        jira_id: jira_id.map(Into::into),
        description: "twice a day".into(),
        created_by: Uuid::new_v4(),
    })
}
