//! Every (event name, version) aTES knows, with the JSON Schema generated from its Rust type.

use schemars::generate::SchemaSettings;
use serde_json::{Value, json};

use crate::envelope::{Envelope, Event};
use crate::events::*;

/// One version of one event in the catalog.
pub struct Entry {
    /// The event name, e.g. `tasks.added`.
    pub name: &'static str,
    /// The data version.
    pub version: u32,
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

macro_rules! catalog {
    ($($ty:ty),* $(,)?) => {
        /// The whole catalog, in the order of the design document.
        pub static CATALOG: &[Entry] = &[$(
            Entry {
                name: <$ty as Event>::NAME,
                version: <$ty as Event>::VERSION,
                generate: schema_of::<$ty>,
            },
        )*];
    };
}

catalog![
    AccountCreatedV1,
    AccountUpdatedV1,
    AccountRoleChangedV1,
    TaskAddedV1,
    TaskAddedV2,
    TaskAssignedV1,
    TaskCompletedV1,
    TaskPricedV1,
    TransactionAppliedV1,
    BillingDayClosedV1,
    PayoutSentV1,
];

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
