//! The envelope every event travels in, identical for every event name and version.

use chrono::{DateTime, SubsecRound, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// One version of one event of the catalog: its data type and where it is published.
pub trait Event: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The event name, e.g. `tasks.added`.
    const NAME: &'static str;
    /// The schema version of this data shape.
    const VERSION: u32;

    /// The NATS subject the event is published on: `<event_name>.v<event_version>`.
    fn subject() -> String {
        subject_for(Self::NAME, Self::VERSION)
    }
}

/// The NATS subject for an event name and version.
pub fn subject_for(name: &str, version: u32) -> String {
    format!("{name}.v{version}")
}

/// The JSON envelope around the data of every event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T> {
    /// Unique id of this event; consumers de-duplicate by it.
    pub event_id: Uuid,
    /// The catalog name, e.g. `tasks.added`.
    pub event_name: String,
    /// The version of the data shape.
    pub event_version: u32,
    /// When the event happened (the business time of the change).
    pub event_time: DateTime<Utc>,
    /// The service that produced the event.
    #[schemars(length(min = 1, max = 64))]
    pub producer: String,
    /// Ties together the events caused by one request, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event's own payload.
    pub data: T,
}

impl<T: Event> Envelope<T> {
    /// Wraps `data` in a new envelope with a fresh, time-ordered id and the current time.
    pub fn new(producer: &str, data: T) -> Self {
        Self::at(producer, Utc::now(), data)
    }

    /// Wraps `data` in a new envelope for an event that happened at `time`.
    pub fn at(producer: &str, time: DateTime<Utc>, data: T) -> Self {
        Envelope {
            event_id: Uuid::now_v7(),
            event_name: T::NAME.to_owned(),
            event_version: T::VERSION,
            // Microseconds, so the time survives a round trip through PostgreSQL unchanged.
            event_time: time.trunc_subsecs(6),
            producer: producer.to_owned(),
            correlation_id: None,
            data,
        }
    }

    /// Sets the correlation id that links this event to the request that caused it.
    pub fn correlated(mut self, correlation_id: Option<Uuid>) -> Self {
        self.correlation_id = correlation_id;
        self
    }
}

impl<T> Envelope<T> {
    /// The envelope fields without the data.
    pub fn meta(&self) -> EventMeta {
        EventMeta {
            event_id: self.event_id,
            event_name: self.event_name.clone(),
            event_version: self.event_version,
            event_time: self.event_time,
            producer: self.producer.clone(),
            correlation_id: self.correlation_id,
        }
    }
}

/// The envelope fields of a received event, without its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMeta {
    /// Unique id of the event.
    pub event_id: Uuid,
    /// The catalog name.
    pub event_name: String,
    /// The version the producer wrote (before any upcast).
    pub event_version: u32,
    /// When the event happened.
    pub event_time: DateTime<Utc>,
    /// The producing service.
    pub producer: String,
    /// The request that caused it, when known.
    pub correlation_id: Option<Uuid>,
}
