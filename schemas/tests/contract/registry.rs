use ates_schemas::events::{Role, TaskAddedV2};
use ates_schemas::{DomainEvent, ReceivedEvent, Registry, RegistryError};
use serde_json::{Value, json};

use crate::samples;

fn validate(value: &Value) -> Result<Value, RegistryError> {
    Registry::global().validate(&serde_json::to_vec(value).unwrap())
}

fn assert_invalid(value: &Value, needle: &str) {
    match validate(value) {
        Err(RegistryError::Invalid { detail, .. }) => {
            assert!(detail.contains(needle), "expected {needle:?} in {detail:?}")
        }
        other => panic!("expected a schema violation, got {other:?}"),
    }
}

#[test]
fn a_valid_event_of_every_version_passes_and_decodes() {
    for event in samples::all() {
        validate(&event).unwrap_or_else(|e| panic!("{event}: {e}"));
        ReceivedEvent::decode(&serde_json::to_vec(&event).unwrap()).unwrap();
    }
}

#[test]
fn a_title_with_brackets_is_refused_in_v2() {
    let mut event = samples::task_added_v2(None);
    event["data"]["title"] = json!("[POP-1] Feed the birds");
    assert_invalid(&event, "/data/title");
}

#[test]
fn jira_id_must_be_present_but_may_be_null() {
    validate(&samples::task_added_v2(None)).unwrap();
    let mut event = samples::task_added_v2(Some("POP-1"));
    event["data"].as_object_mut().unwrap().remove("jira_id");
    assert_invalid(&event, "jira_id");
    let mut event = samples::task_added_v2(Some("POP-1"));
    event["data"]["jira_id"] = json!("not a key");
    assert_invalid(&event, "/data/jira_id");
}

#[test]
fn amounts_must_be_integers() {
    let mut event = samples::all().remove(7);
    assert_eq!(event["event_name"], "accounting.task_priced");
    event["data"]["assign_fee"] = json!(10.5);
    assert_invalid(&event, "/data/assign_fee");
    event["data"]["assign_fee"] = json!(0);
    assert_invalid(&event, "/data/assign_fee");
}

#[test]
fn enums_are_closed() {
    let mut event = samples::all().remove(0);
    event["data"]["role"] = json!("overlord");
    assert_invalid(&event, "/data/role");
}

#[test]
fn unknown_fields_and_bad_formats_are_refused() {
    let mut event = samples::all().remove(6);
    event["data"]["extra"] = json!(1);
    assert_invalid(&event, "extra");
    let mut event = samples::all().remove(6);
    event["data"]["task_id"] = json!("not-a-uuid");
    assert_invalid(&event, "/data/task_id");
    let mut event = samples::all().remove(6);
    event["event_time"] = json!("yesterday");
    assert_invalid(&event, "/event_time");
}

#[test]
fn an_unknown_version_or_name_is_reported_as_such() {
    let mut event = samples::task_added_v2(None);
    event["event_version"] = json!(3);
    assert_eq!(
        validate(&event).unwrap_err(),
        RegistryError::UnknownEvent { name: "tasks.added".into(), version: 3 }
    );
    event["event_name"] = json!("tasks.deleted");
    event["event_version"] = json!(1);
    assert_eq!(validate(&event).unwrap_err().kind(), "unknown_event");
}

#[test]
fn bytes_that_are_not_an_envelope_are_undecodable() {
    for bytes in [&b"\xff\xfe"[..], b"{\"event_name\": 1}", b"[]", b""] {
        let error = Registry::global().validate(bytes).unwrap_err();
        assert_eq!(error.kind(), "undecodable", "{bytes:?}: {error}");
    }
}

#[test]
fn a_legacy_task_added_is_upcast_with_its_jira_id() {
    let v1 = samples::all().remove(3);
    let received = ReceivedEvent::decode(&serde_json::to_vec(&v1).unwrap()).unwrap();
    assert_eq!(received.meta.event_version, 1);
    let DomainEvent::TaskAdded(TaskAddedV2 { title, jira_id, .. }) = received.event else {
        panic!("tasks.added v1 decodes as a task added")
    };
    assert_eq!((title.as_str(), jira_id.as_deref()), ("Feed the birds", Some("POP-1")));
}

#[test]
fn roles_parse_from_their_wire_names() {
    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>(), Ok(role));
    }
    assert!("root".parse::<Role>().unwrap_err().contains("unknown role `root`"));
}
