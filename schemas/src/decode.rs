//! Typed decoding of validated events, with legacy versions upcast to the current one.

use serde_json::Value;

pub use crate::catalog::DomainEvent;
use crate::catalog::decode_data;
use crate::envelope::{Envelope, EventMeta};
use crate::registry::{Registry, RegistryError};

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
        let event = decode_data(&meta, envelope.data)?;
        Ok(ReceivedEvent { meta, event })
    }
}
