//! Validation of raw message bytes against the schema of their (event name, version).

use std::sync::OnceLock;

use jsonschema::Validator;
use serde::Deserialize;
use serde_json::Value;

use crate::catalog::CATALOG;

/// Compiled validators for every schema of the catalog.
pub struct Registry {
    validators: Vec<(&'static str, u32, Validator)>,
}

/// Why bytes are not a valid event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Not JSON, or no envelope with a name and version.
    #[error("undecodable: {0}")]
    Undecodable(String),
    /// A name or version the catalog does not have.
    #[error("unknown event {name} v{version}")]
    UnknownEvent {
        /// The event name found in the envelope.
        name: String,
        /// The version found in the envelope.
        version: u32,
    },
    /// The bytes do not satisfy the event's schema.
    #[error("{name} v{version} does not match its schema: {detail}")]
    Invalid {
        /// The event name.
        name: String,
        /// The version.
        version: u32,
        /// What is wrong, with the JSON path.
        detail: String,
    },
}

impl RegistryError {
    /// A short, stable name for the kind of failure (used in DLQ headers and metrics).
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryError::Undecodable(_) => "undecodable",
            RegistryError::UnknownEvent { .. } => "unknown_event",
            RegistryError::Invalid { .. } => "invalid",
        }
    }
}

#[derive(Deserialize)]
struct Head {
    event_name: String,
    event_version: u32,
}

impl Registry {
    /// The registry of the whole catalog, compiled once per process.
    pub fn global() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(Registry::compile)
    }

    fn compile() -> Registry {
        let validators = CATALOG
            .iter()
            .map(|entry| {
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&entry.schema())
                    .unwrap_or_else(|e| panic!("schema of {} v{}: {e}", entry.name, entry.version));
                (entry.name, entry.version, validator)
            })
            .collect();
        Registry { validators }
    }

    /// Parses `bytes` and validates them against the schema their envelope names.
    /// Returns the parsed JSON so the caller decodes it without parsing twice.
    pub fn validate(&self, bytes: &[u8]) -> Result<Value, RegistryError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Undecodable(format!("not JSON: {e}")))?;
        let head = Head::deserialize(&value)
            .map_err(|e| RegistryError::Undecodable(format!("no event_name/event_version: {e}")))?;
        self.validate_value(&head.event_name, head.event_version, &value)?;
        Ok(value)
    }

    /// Validates an already parsed event against the schema of `name` v`version`.
    pub fn validate_value(&self, name: &str, version: u32, value: &Value) -> Result<(), RegistryError> {
        let validator = self
            .validators
            .iter()
            .find(|(n, v, _)| *n == name && *v == version)
            .map(|(_, _, validator)| validator)
            .ok_or_else(|| RegistryError::UnknownEvent { name: name.to_owned(), version })?;
        validator.validate(value).map_err(|error| RegistryError::Invalid {
            name: name.to_owned(),
            version,
            detail: format!("{error} at {}", error.instance_path()),
        })
    }
}
