//! Which transactions a task event causes, and the running balances they leave.

use std::collections::HashMap;

use ates_schemas::events::TransactionKind;
use ates_schemas::{DomainEvent, ReceivedEvent};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::pricing::Price;

/// The company's own account: the other side of every transaction.
pub const COMPANY: Uuid = Uuid::nil();

/// Namespace of transaction ids, which derive from what caused them.
const TRANSACTION_IDS: Uuid = Uuid::from_u128(0x6a7e_5c1d_0b4e_4f2a_9d3c_7e8f_1a2b_3c4d);

/// A transaction to post, before its balance is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Derived from the cause: the same cause always gives the same id.
    pub transaction_id: Uuid,
    /// The popug's account.
    pub account_id: Uuid,
    pub kind: TransactionKind,
    /// Signed cents: fees and payouts are negative.
    pub amount: i64,
    pub task_id: Option<Uuid>,
    /// When the cause happened.
    pub business_time: DateTime<Utc>,
    /// The event that caused it.
    pub cause_event_id: Uuid,
    /// The correlation id its `accounting.transaction_applied` carries: its cause's.
    pub correlation_id: Option<Uuid>,
}

/// The deterministic id of the transaction of `kind` caused by `cause`.
pub fn transaction_id(kind: TransactionKind, cause: &str) -> Uuid {
    Uuid::new_v5(&TRANSACTION_IDS, format!("{}:{cause}", kind.as_str()).as_bytes())
}

/// The task a task event is about.
pub fn task_of(event: &ReceivedEvent) -> Option<Uuid> {
    match &event.event {
        DomainEvent::TaskAdded(e) => Some(e.task_id),
        DomainEvent::TaskAssigned(e) => Some(e.task_id),
        DomainEvent::TaskCompleted(e) => Some(e.task_id),
        _ => None,
    }
}

/// The transaction an event causes, priced with its task's `price`: an assignment debits the
/// new assignee the fee, a completion credits the completer the reward.
pub fn posting_for(event: &ReceivedEvent, price: Price) -> Option<Posting> {
    let (kind, account_id, amount, task_id) = match &event.event {
        DomainEvent::TaskAssigned(e) => {
            (TransactionKind::AssignFee, e.assignee_id, -price.assign_fee, e.task_id)
        }
        DomainEvent::TaskCompleted(e) => {
            (TransactionKind::CompletionReward, e.assignee_id, price.completion_reward, e.task_id)
        }
        _ => return None,
    };
    Some(Posting {
        transaction_id: transaction_id(kind, &event.meta.event_id.to_string()),
        account_id,
        kind,
        amount,
        task_id: Some(task_id),
        business_time: event.meta.event_time,
        cause_event_id: event.meta.event_id,
        correlation_id: event.meta.correlation_id,
    })
}

/// Applies `postings` in order to `balances` (which must hold every popug involved) and
/// returns each one's balance afterwards. (The company's side is an entry; its balance is not
/// kept.)
pub fn running_balances(postings: &[Posting], balances: &mut HashMap<Uuid, i64>) -> Vec<i64> {
    postings
        .iter()
        .map(|p| {
            let balance = balances.get_mut(&p.account_id).expect("every balance is loaded");
            *balance += p.amount;
            *balance
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(account_id: Uuid, amount: i64) -> Posting {
        Posting {
            transaction_id: Uuid::new_v4(),
            account_id,
            kind: TransactionKind::AssignFee,
            amount,
            task_id: None,
            business_time: Utc::now(),
            cause_event_id: Uuid::new_v4(),
            correlation_id: None,
        }
    }

    #[test]
    fn balances_run_per_account() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut balances = HashMap::from([(a, 500), (b, 0)]);
        let postings = [posting(a, -1500), posting(b, 3000), posting(a, 2500)];

        let after = running_balances(&postings, &mut balances);

        assert_eq!(after, [-1000, 3000, 1500]);
        assert_eq!(balances, HashMap::from([(a, 1500), (b, 3000)]));
    }

    #[test]
    fn the_same_cause_always_gives_the_same_transaction_id() {
        let id = Uuid::new_v4().to_string();
        assert_eq!(
            transaction_id(TransactionKind::AssignFee, &id),
            transaction_id(TransactionKind::AssignFee, &id)
        );
        assert_ne!(
            transaction_id(TransactionKind::AssignFee, &id),
            transaction_id(TransactionKind::CompletionReward, &id)
        );
    }
}
