//! Typed decoding of validated events, with legacy versions upcast to the current one.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::envelope::{Envelope, EventMeta};
use crate::events::*;
use crate::registry::{Registry, RegistryError};

/// The data of any event a consumer may receive, at its current version.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    /// `accounts.created` v1.
    AccountCreated(AccountCreatedV1),
    /// `accounts.updated` v1.
    AccountUpdated(AccountUpdatedV1),
    /// `accounts.role_changed` v1.
    AccountRoleChanged(AccountRoleChangedV1),
    /// `tasks.added` v2, or v1 upcast to v2.
    TaskAdded(TaskAddedV2),
    /// `tasks.assigned` v1.
    TaskAssigned(TaskAssignedV1),
    /// `tasks.completed` v1.
    TaskCompleted(TaskCompletedV1),
    /// `accounting.task_priced` v1.
    TaskPriced(TaskPricedV1),
    /// `accounting.transaction_applied` v1.
    TransactionApplied(TransactionAppliedV1),
    /// `accounting.billing_day_closed` v1.
    BillingDayClosed(BillingDayClosedV1),
    /// `accounting.payout_sent` v1.
    PayoutSent(PayoutSentV1),
}

/// A validated event as a consumer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The envelope fields.
    pub meta: EventMeta,
    /// The data, upcast to the current version.
    pub event: DomainEvent,
}

impl ReceivedEvent {
    /// Validates `bytes` against the registry and decodes them.
    pub fn decode(bytes: &[u8]) -> Result<Self, RegistryError> {
        let value = Registry::global().validate(bytes)?;
        Self::from_validated(value)
    }

    /// Decodes JSON that has already passed validation.
    pub fn from_validated(value: Value) -> Result<Self, RegistryError> {
        let envelope: Envelope<Value> = serde_json::from_value(value)
            .map_err(|e| RegistryError::Undecodable(format!("bad envelope: {e}")))?;
        let meta = envelope.meta();
        let (name, version) = (meta.event_name.as_str(), meta.event_version);
        let data = envelope.data;
        let event = match (name, version) {
            ("accounts.created", 1) => DomainEvent::AccountCreated(data_of(&meta, data)?),
            ("accounts.updated", 1) => DomainEvent::AccountUpdated(data_of(&meta, data)?),
            ("accounts.role_changed", 1) => DomainEvent::AccountRoleChanged(data_of(&meta, data)?),
            ("tasks.added", 1) => DomainEvent::TaskAdded(data_of::<TaskAddedV1>(&meta, data)?.into()),
            ("tasks.added", 2) => DomainEvent::TaskAdded(data_of(&meta, data)?),
            ("tasks.assigned", 1) => DomainEvent::TaskAssigned(data_of(&meta, data)?),
            ("tasks.completed", 1) => DomainEvent::TaskCompleted(data_of(&meta, data)?),
            ("accounting.task_priced", 1) => DomainEvent::TaskPriced(data_of(&meta, data)?),
            ("accounting.transaction_applied", 1) => DomainEvent::TransactionApplied(data_of(&meta, data)?),
            ("accounting.billing_day_closed", 1) => DomainEvent::BillingDayClosed(data_of(&meta, data)?),
            ("accounting.payout_sent", 1) => DomainEvent::PayoutSent(data_of(&meta, data)?),
            _ => {
                return Err(RegistryError::UnknownEvent { name: name.to_owned(), version });
            }
        };
        Ok(ReceivedEvent { meta, event })
    }
}

fn data_of<T: DeserializeOwned>(meta: &EventMeta, data: Value) -> Result<T, RegistryError> {
    serde_json::from_value(data).map_err(|e| RegistryError::Invalid {
        name: meta.event_name.clone(),
        version: meta.event_version,
        detail: e.to_string(),
    })
}
