//! The aTES event contract: the envelope, every event of the catalog as a Rust type, the
//! committed JSON Schema files generated from those types, the AsyncAPI document of the bus, and
//! a registry that validates raw message bytes against them.
//!
//! A producer builds an [`Envelope`] around one of the [`events`] and hands it to the outbox;
//! a consumer validates the bytes with the [`Registry`] and decodes them into a
//! [`DomainEvent`], where legacy versions are already upcast to the current one.

pub mod asyncapi;
pub mod catalog;
mod decode;
pub mod envelope;
pub mod events;
pub mod files;
pub mod jira;
mod registry;

pub use decode::{DomainEvent, ReceivedEvent};
pub use envelope::{Envelope, Event, EventMeta};
pub use registry::{Registry, RegistryError};
