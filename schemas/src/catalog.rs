//! Every (event name, version) aTES knows, with the JSON Schema generated from its Rust type.

use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::envelope::{Envelope, Event, EventMeta};
use crate::events::*;
use crate::registry::RegistryError;

/// One version of one event in the catalog.
pub struct Entry {
    /// The event name, e.g. `tasks.added`.
    pub name: &'static str,
    /// The data version.
    pub version: u32,
    /// A legacy version: consumers still accept it (upcast to the current one), no service
    /// produces it any more.
    pub legacy: bool,
    generate: fn() -> Value,
}

impl Entry {
    /// The JSON Schema (2020-12) of the whole envelope with this event's data inline.
    pub fn schema(&self) -> Value {
        (self.generate)()
    }

    /// Where the committed schema lives, relative to the schemas folder:
    /// `<domain>/<event>/<version>.json`.
    pub fn file(&self) -> String {
        let (domain, event) = self.name.split_once('.').expect("event names are domain.event");
        format!("{domain}/{event}/{}.json", self.version)
    }
}

/// The one list of events: each line is a [`DomainEvent`] variant with the current type of its
/// data and the legacy types still accepted (upcast with `From`). From it come the
/// `DomainEvent` enum, the [`CATALOG`] of every version with its schema (the committed files),
/// and decoding by name and version. Adding an event is one line here plus its type.
macro_rules! catalog {
    ($($(#[$doc:meta])* $variant:ident($current:ty) $([$($legacy:ty),+])?),* $(,)?) => {
        /// The data of any event a consumer may receive, at its current version.
        #[derive(Debug, Clone, PartialEq)]
        pub enum DomainEvent {
            $($(#[$doc])* $variant($current),)*
        }

        /// The whole catalog: every version of every event, legacy versions first.
        pub static CATALOG: &[Entry] = &[$(
            $($(Entry::legacy::<$legacy>(),)+)?
            Entry::of::<$current>(),
        )*];

        /// Decodes validated `data` of the event `meta` names, upcasting a legacy version.
        pub(crate) fn decode_data(meta: &EventMeta, data: Value) -> Result<DomainEvent, RegistryError> {
            let is = |name: &str, version: u32| meta.event_name == name && meta.event_version == version;
            $(
                if is(<$current as Event>::NAME, <$current as Event>::VERSION) {
                    return Ok(DomainEvent::$variant(data_of::<$current>(meta, data)?));
                }
                $($(
                    if is(<$legacy as Event>::NAME, <$legacy as Event>::VERSION) {
                        return Ok(DomainEvent::$variant(data_of::<$legacy>(meta, data)?.into()));
                    }
                )+)?
            )*
            Err(RegistryError::UnknownEvent { name: meta.event_name.clone(), version: meta.event_version })
        }
    };
}

catalog![
    /// `accounts.created`.
    AccountCreated(AccountCreatedV1),
    /// `accounts.updated`.
    AccountUpdated(AccountUpdatedV1),
    /// `accounts.role_changed`.
    AccountRoleChanged(AccountRoleChangedV1),
    /// `tasks.added`: v1 is upcast to v2.
    TaskAdded(TaskAddedV2)[TaskAddedV1],
    /// `tasks.assigned`.
    TaskAssigned(TaskAssignedV1),
    /// `tasks.completed`.
    TaskCompleted(TaskCompletedV1),
    /// `accounting.task_priced`.
    TaskPriced(TaskPricedV1),
    /// `accounting.transaction_applied`.
    TransactionApplied(TransactionAppliedV1),
    /// `accounting.billing_day_closed`.
    BillingDayClosed(BillingDayClosedV1),
    /// `accounting.payout_sent`.
    PayoutSent(PayoutSentV1),
];

impl Entry {
    const fn of<E: Event>() -> Self {
        Entry { name: E::NAME, version: E::VERSION, legacy: false, generate: schema_of::<E> }
    }

    const fn legacy<E: Event>() -> Self {
        Entry { legacy: true, ..Self::of::<E>() }
    }
}

fn data_of<T: DeserializeOwned>(meta: &EventMeta, data: Value) -> Result<T, RegistryError> {
    serde_json::from_value(data).map_err(|e| RegistryError::Invalid {
        name: meta.event_name.clone(),
        version: meta.event_version,
        detail: e.to_string(),
    })
}

/// Finds the catalog entry of an event name and version.
pub fn entry(name: &str, version: u32) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.name == name && e.version == version)
}

/// Generates the envelope schema for `E`: everything inline, the name and version pinned.
pub fn schema_of<E: Event>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .for_deserialize()
        .into_generator();
    let mut schema = generator.into_root_schema_for::<Envelope<E>>().to_value();
    let object = schema.as_object_mut().expect("a struct's schema is an object");
    object.insert("title".into(), json!(format!("{} v{}", E::NAME, E::VERSION)));
    let properties =
        object.get_mut("properties").and_then(Value::as_object_mut).expect("the envelope has properties");
    properties.insert("event_name".into(), json!({ "description": "The catalog name.", "const": E::NAME }));
    properties.insert(
        "event_version".into(),
        json!({ "description": "The version of the data shape.", "const": E::VERSION }),
    );
    schema
}
