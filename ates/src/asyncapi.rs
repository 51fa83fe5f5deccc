//! Generates the AsyncAPI 3.0 document of the bus, committed as `schemas/asyncapi.json`, from
//! the event catalog and what each service declares it does on the bus (its `BUS`).
//!
//! Every subject `<event_name>.v<event_version>` is a channel carrying one message: the envelope
//! with that version's data, its schema inline. A service sends the current version of every
//! event of the stream it produces into, and receives every version (legacy ones too) of each
//! event one of its durable consumers reads: the whole stream, or the events the consumer's
//! subject filter names. Every operation names its service in [`SERVICE`], which is how a
//! service serves only its own part ([`ates_schemas::asyncapi::of_service`]).

use std::path::Path;

use ates_messaging::dlq::headers::REDRIVEN_FROM;
use ates_messaging::permissions::Bus;
use ates_messaging::streams::{STREAMS, stream_of};
use ates_schemas::asyncapi::{FILE, SERVICE};
use ates_schemas::catalog::{CATALOG, Entry};
use ates_schemas::envelope::subject_for;
use serde_json::{Map, Value, json};

use crate::credentials::SERVICES;

/// The document for the catalog and the services' bus declarations.
pub fn document() -> Value {
    let mut channels = Map::new();
    let mut messages = Map::new();
    for entry in CATALOG {
        let subject = subject_for(entry.name, entry.version);
        channels.insert(subject.clone(), channel(entry, &subject));
        messages.insert(subject, message(entry));
    }
    let mut operations = Map::new();
    for bus in SERVICES.map(|service| service.bus) {
        if let Some(produced) = bus.produces {
            for entry in CATALOG.iter().filter(|e| !e.legacy && stream(e) == Some(produced)) {
                let description = format!(
                    "Written to its outbox in the transaction of the change; its relay publishes it \
                     into the stream {produced}."
                );
                let send = operation(&bus, "send", entry, description);
                operations.insert(operation_id(&bus, "send", entry), send);
            }
        }
        for subscription in bus.consumes {
            let (stream_name, consumer) = (subscription.stream, subscription.consumer);
            let received = |e: &&Entry| {
                stream(e) == Some(stream_name) && subscription.receives(&subject_for(e.name, e.version))
            };
            for entry in CATALOG.iter().filter(received) {
                let description = format!(
                    "Its durable consumer `{consumer}` reads the stream {stream_name}, validates each \
                     message against the schema and applies it once per `event_id`."
                );
                let mut receive = operation(&bus, "receive", entry, description);
                receive["x-ates-consumer"] = json!(consumer);
                operations.insert(operation_id(&bus, "receive", entry), receive);
            }
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "aTES events",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The events of aTES on NATS JetStream: each subject \
                `<event_name>.v<event_version>` is a channel, each event version a message (the \
                envelope with its data; the schemas are the committed files under `schemas/`). \
                Each operation is one service sending or receiving, named in `x-ates-service`. \
                Order is not guaranteed across subjects; consumers de-duplicate by `event_id`.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "title": "NATS with JetStream",
                "description": "A placeholder: the services connect to `NATS_URL`, each as its own \
                    user, which may publish only its own domain's subjects.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": { "EventHeaders": headers() },
            "correlationIds": {
                "correlation_id": {
                    "description": "The request that caused the event (`X-Correlation-Id`), \
                        carried on every event it causes and every event caused by those.",
                    "location": "$message.payload#/correlation_id",
                },
            },
        },
    })
}

/// The stream that holds `entry`'s events.
fn stream(entry: &Entry) -> Option<&'static str> {
    stream_of(entry.name)
}

fn channel(entry: &Entry, subject: &str) -> Value {
    let stream = stream(entry).expect("every event's domain has a stream");
    let captures = STREAMS.iter().find(|(name, _)| *name == stream).map_or("", |(_, subjects)| subjects);
    json!({
        "address": subject,
        "title": title(entry),
        "description": format!("Kept in the JetStream stream {stream} (`{captures}`)."),
        "messages": { subject: { "$ref": format!("#/components/messages/{subject}") } },
    })
}

fn message(entry: &Entry) -> Value {
    let mut description = format!(
        "The envelope with the data of {}; its schema is committed as `schemas/{}`.",
        title(entry),
        entry.file()
    );
    if entry.legacy {
        description
            .push_str(" Legacy: no service sends it any more; consumers still accept it and upcast it.");
    }
    json!({
        "name": entry.name,
        "title": title(entry),
        "description": description,
        "contentType": "application/json",
        "deprecated": entry.legacy,
        "headers": { "$ref": "#/components/schemas/EventHeaders" },
        "correlationId": { "$ref": "#/components/correlationIds/correlation_id" },
        "payload": entry.schema(),
    })
}

fn headers() -> Value {
    json!({
        "type": "object",
        "properties": {
            "Nats-Msg-Id": {
                "type": "string",
                "description": "The envelope's `event_id`, so JetStream drops a second publish of \
                    the same event; `redrive.<sequence>` on a message re-driven from the DLQ.",
            },
            REDRIVEN_FROM: {
                "type": "string",
                "description": "On a message re-driven from the DLQ (`ates dlq redrive`): its \
                    sequence there.",
            },
        },
        "required": ["Nats-Msg-Id"],
    })
}

fn operation(bus: &Bus, action: &str, entry: &Entry, description: String) -> Value {
    let subject = subject_for(entry.name, entry.version);
    json!({
        "action": action,
        "title": format!("{} {action}s {}", bus.user, title(entry)),
        "description": description,
        "channel": { "$ref": format!("#/channels/{subject}") },
        "messages": [{ "$ref": format!("#/channels/{subject}/messages/{subject}") }],
        SERVICE: bus.user,
    })
}

fn operation_id(bus: &Bus, action: &str, entry: &Entry) -> String {
    format!("{}.{action}.{}", bus.user, subject_for(entry.name, entry.version))
}

fn title(entry: &Entry) -> String {
    format!("{} v{}", entry.name, entry.version)
}

/// The exact text of the committed file.
pub fn render() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document serializes");
    text.push('\n');
    text
}

/// What is wrong with the committed document in `dir`; empty when it is what the code generates.
pub fn check(dir: &Path) -> std::io::Result<Vec<String>> {
    match std::fs::read_to_string(dir.join(FILE)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(vec![format!("{FILE} is missing; run `ates schemas write`")])
        }
        Err(e) => Err(e),
        Ok(committed) if committed != render() => Ok(vec![format!(
            "{FILE} is stale: it differs from what the event catalog and the services' bus \
             declarations generate; run `ates schemas write`"
        )]),
        Ok(_) => Ok(Vec::new()),
    }
}

/// Writes the document into `dir`; true if the file changed.
pub fn write(dir: &Path) -> std::io::Result<bool> {
    let text = render();
    let path = dir.join(FILE);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(false);
    }
    std::fs::write(path, text)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ates_messaging::permissions::Subscription;
    use ates_schemas::files;

    use super::*;

    /// The subjects `service` does `action` on.
    fn subjects(doc: &Value, service: &str, action: &str) -> BTreeSet<String> {
        doc["operations"]
            .as_object()
            .unwrap()
            .values()
            .filter(|op| op[SERVICE] == service && op["action"] == action)
            .map(|op| op["channel"]["$ref"].as_str().unwrap().trim_start_matches("#/channels/").to_owned())
            .collect()
    }

    /// The domains of the subjects `service` does `action` on, e.g. `["accounts", "tasks"]`.
    fn domains(doc: &Value, service: &str, action: &str) -> Vec<String> {
        let domains: BTreeSet<String> =
            subjects(doc, service, action).iter().map(|s| s.split('.').next().unwrap().to_owned()).collect();
        domains.into_iter().collect()
    }

    #[test]
    fn the_committed_document_is_what_the_code_generates() {
        let problems = check(&files::source_dir()).unwrap();
        assert!(problems.is_empty(), "run `cargo run -p ates -- schemas write`:\n{}", problems.join("\n"));
        assert_eq!(ates_schemas::asyncapi::document(), document(), "the services serve the committed file");
    }

    #[test]
    fn a_stale_document_fails_the_check_and_writing_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check(dir.path()).unwrap(), ["asyncapi.json is missing; run `ates schemas write`"]);
        std::fs::write(dir.path().join(FILE), render().replace("tasks.added.v2", "tasks.added.v3")).unwrap();
        assert!(check(dir.path()).unwrap()[0].contains("asyncapi.json is stale"));

        assert!(write(dir.path()).unwrap());

        assert!(check(dir.path()).unwrap().is_empty());
        assert!(!write(dir.path()).unwrap(), "nothing left to write");
    }

    #[test]
    fn every_event_version_is_a_message_with_its_committed_schema() {
        let doc = document();
        let messages = doc["components"]["messages"].as_object().unwrap();
        assert_eq!(messages.len(), CATALOG.len());
        for entry in CATALOG {
            let message = &messages[&subject_for(entry.name, entry.version)];
            let committed: Value = serde_json::from_str(
                &std::fs::read_to_string(files::source_dir().join(entry.file())).unwrap(),
            )
            .unwrap();
            assert_eq!(message["payload"], committed, "{}", entry.file());
            assert_eq!(message["name"], entry.name);
            assert_eq!(message["contentType"], "application/json");
            assert_eq!(message["deprecated"], entry.legacy);
        }
    }

    #[test]
    fn every_subject_is_a_channel_at_its_address() {
        let doc = document();
        let channels = doc["channels"].as_object().unwrap();
        assert_eq!(channels.len(), CATALOG.len());
        for entry in CATALOG {
            let subject = subject_for(entry.name, entry.version);
            assert_eq!(channels[&subject]["address"], subject.as_str());
        }
        assert!(channels.contains_key("tasks.added.v1") && channels.contains_key("tasks.added.v2"));
    }

    #[test]
    fn each_service_sends_its_own_domain_and_receives_the_streams_it_consumes() {
        let doc = document();
        assert_eq!(domains(&doc, "auth", "send"), ["accounts"]);
        assert!(domains(&doc, "auth", "receive").is_empty());
        assert_eq!(domains(&doc, "task-tracker", "send"), ["tasks"]);
        assert_eq!(domains(&doc, "task-tracker", "receive"), ["accounts"]);
        assert_eq!(domains(&doc, "accounting", "send"), ["accounting"]);
        assert_eq!(domains(&doc, "accounting", "receive"), ["accounts", "tasks"]);
        assert!(domains(&doc, "analytics", "send").is_empty());
        assert_eq!(domains(&doc, "analytics", "receive"), ["accounting", "accounts", "tasks"]);
    }

    #[test]
    fn accounting_receives_every_task_event_through_exactly_one_of_its_consumers() {
        let doc = document();
        let operations = doc["operations"].as_object().unwrap();
        for entry in CATALOG.iter().filter(|e| stream(e) == Some("TASKS")) {
            let subject = subject_for(entry.name, entry.version);
            let by: Vec<&Subscription> = ates_accounting::BUS
                .consumes
                .iter()
                .filter(|s| s.stream == "TASKS" && s.receives(&subject))
                .collect();
            assert_eq!(by.len(), 1, "{subject}: {by:?}");
            let receive = &operations[&format!("accounting.receive.{subject}")];
            assert_eq!(receive["x-ates-consumer"], by[0].consumer, "{subject}");
        }
        let completed = &operations["accounting.receive.tasks.completed.v1"];
        assert_eq!(completed["x-ates-consumer"], "accounting-completions");
    }

    #[test]
    fn a_legacy_version_is_received_but_not_sent() {
        let doc = document();
        assert!(!subjects(&doc, "task-tracker", "send").contains("tasks.added.v1"));
        assert!(subjects(&doc, "task-tracker", "send").contains("tasks.added.v2"));
        for consumer in ["accounting", "analytics"] {
            assert!(subjects(&doc, consumer, "receive").contains("tasks.added.v1"), "{consumer}");
        }
    }

    #[test]
    fn every_subject_is_sent_by_one_service_unless_it_is_legacy() {
        let doc = document();
        for entry in CATALOG {
            let subject = subject_for(entry.name, entry.version);
            let senders: Vec<&str> = SERVICES
                .iter()
                .map(|s| s.bus.user)
                .filter(|user| subjects(&doc, user, "send").contains(&subject))
                .collect();
            assert_eq!(senders.len(), usize::from(!entry.legacy), "{subject}: {senders:?}");
        }
    }

    #[test]
    fn every_reference_resolves_in_the_whole_document_and_in_each_service_part() {
        let whole = ates_schemas::asyncapi::document();
        assert_eq!(ates_web::openapi::unresolved_references(&whole), Vec::<String>::new(), "whole");
        for service in SERVICES {
            let part = ates_schemas::asyncapi::of_service(service.bus.user);
            assert_eq!(
                ates_web::openapi::unresolved_references(&part),
                Vec::<String>::new(),
                "{}",
                service.bus.user
            );
        }
    }
}
