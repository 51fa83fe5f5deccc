//! The data of every event in the catalog, one module per domain.

pub mod accounting;
pub mod accounts;
pub mod tasks;

pub use accounting::{BillingDayClosedV1, PayoutSentV1, TaskPricedV1, TransactionAppliedV1, TransactionKind};
pub use accounts::{AccountCreatedV1, AccountRoleChangedV1, AccountUpdatedV1, Role};
pub use tasks::{AssignReason, TaskAddedV1, TaskAddedV2, TaskAssignedV1, TaskCompletedV1};

/// Declares which catalog entry a data type is.
macro_rules! event {
    ($ty:ty, $name:literal, $version:literal) => {
        impl $crate::envelope::Event for $ty {
            const NAME: &'static str = $name;
            const VERSION: u32 = $version;
        }
    };
}
pub(crate) use event;

/// Makes every field of an event's data required, the nullable ones included: producers always
/// write the full shape, so a missing field is a bug, not a default.
pub(crate) fn require_all_fields(schema: &mut schemars::Schema) {
    let names: Vec<serde_json::Value> = schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|properties| properties.keys().cloned().map(Into::into).collect())
        .unwrap_or_default();
    schema.insert("required".into(), names.into());
}
