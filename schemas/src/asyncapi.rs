//! The AsyncAPI 3.0 document of the event bus: every subject as a channel, every event version
//! as a message with its envelope schema, and who sends and receives it.
//!
//! `ates schemas write` generates it from the catalog and the services' bus declarations and
//! commits it as `schemas/asyncapi.json` (`ates schemas check` fails when it is stale); this
//! module serves that committed file, whole or as the part one service takes part in.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The document's file name, in the schemas folder.
pub const FILE: &str = "asyncapi.json";

/// The field of every operation that names the service doing it (its NATS user).
pub const SERVICE: &str = "x-ates-service";

const COMMITTED: &str = include_str!("../asyncapi.json");

/// The whole committed document.
pub fn document() -> Value {
    serde_json::from_str(COMMITTED).expect("the committed AsyncAPI document is JSON")
}

/// The document as `service` sees it: only its own operations, the channels they use and the
/// messages on those channels.
pub fn of_service(service: &str) -> Value {
    let mut doc = document();
    retain(&mut doc["operations"], |_, operation| operation[SERVICE] == service);
    let channels = targets(values(&doc["operations"]).map(|operation| &operation["channel"]));
    retain(&mut doc["channels"], |id, _| channels.contains(&format!("#/channels/{id}")));
    let messages = targets(values(&doc["channels"]).flat_map(|channel| values(&channel["messages"])));
    retain(&mut doc["components"]["messages"], |id, _| {
        messages.contains(&format!("#/components/messages/{id}"))
    });
    let title = format!("{}: {service}", doc["info"]["title"].as_str().unwrap_or("aTES events"));
    doc["info"]["title"] = Value::String(title);
    doc
}

/// The fields of a JSON object (none for anything else).
fn values(object: &Value) -> impl Iterator<Item = &Value> {
    object.as_object().into_iter().flat_map(Map::values)
}

/// The `$ref` targets of `references`.
fn targets<'a>(references: impl Iterator<Item = &'a Value>) -> BTreeSet<String> {
    references.filter_map(|reference| reference["$ref"].as_str()).map(str::to_owned).collect()
}

/// Keeps the fields of the JSON object `object` that `keep` accepts.
fn retain(object: &mut Value, keep: impl Fn(&str, &Value) -> bool) {
    if let Some(fields) = object.as_object_mut() {
        fields.retain(|id, value| keep(id, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICES: [&str; 4] = ["auth", "task-tracker", "accounting", "analytics"];

    #[test]
    fn a_service_sees_only_its_own_operations() {
        for service in SERVICES {
            let doc = of_service(service);
            let operations = doc["operations"].as_object().unwrap();
            assert!(!operations.is_empty(), "{service} takes part in the bus");
            for (id, operation) in operations {
                assert_eq!(operation[SERVICE], service, "{id}");
            }
            assert!(doc["info"]["title"].as_str().unwrap().ends_with(service));
        }
    }

    #[test]
    fn a_service_sees_exactly_the_channels_and_messages_of_its_operations() {
        for service in SERVICES {
            let doc = of_service(service);
            let used: BTreeSet<&str> = doc["operations"]
                .as_object()
                .unwrap()
                .values()
                .map(|op| op["channel"]["$ref"].as_str().unwrap().trim_start_matches("#/channels/"))
                .collect();
            let channels: BTreeSet<&str> =
                doc["channels"].as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(channels, used, "{service}");
            let messages = doc["components"]["messages"].as_object().unwrap();
            // One message per channel, each channel one subject of one event version.
            assert_eq!(messages.len(), channels.len(), "{service}");
            for id in messages.keys() {
                assert!(channels.contains(id.as_str()), "{service}: {id}");
            }
        }
    }

    #[test]
    fn analytics_only_receives_and_auth_only_sends() {
        let actions = |service| {
            of_service(service)["operations"]
                .as_object()
                .unwrap()
                .values()
                .map(|op| op["action"].as_str().unwrap().to_owned())
                .collect::<BTreeSet<_>>()
        };
        assert_eq!(actions("analytics"), BTreeSet::from(["receive".to_owned()]));
        assert_eq!(actions("auth"), BTreeSet::from(["send".to_owned()]));
        assert_eq!(actions("accounting"), BTreeSet::from(["receive".to_owned(), "send".to_owned()]));
    }

    #[test]
    fn an_unknown_service_sees_no_operations() {
        let doc = of_service("billing");
        assert!(doc["operations"].as_object().unwrap().is_empty());
        assert!(doc["channels"].as_object().unwrap().is_empty());
    }
}
