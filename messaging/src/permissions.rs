//! Least privilege on NATS: what each service's user may publish and subscribe to, derived
//! from what the service declares it does on the bus.

use crate::nats::inbox_prefix;
use crate::streams::{DLQ, STREAMS};

/// What a service does on the bus: the stream it produces into and the durable consumers it
/// runs. Each service declares this once; its NATS user's permissions follow from it.
#[derive(Debug, Clone, Copy)]
pub struct Bus {
    /// Its NATS user (also the prefix of its inbox).
    pub user: &'static str,
    /// The stream of its own domain, which it publishes to and provisions.
    pub produces: Option<&'static str>,
    /// Its durable consumers.
    pub consumes: &'static [Subscription],
}

/// One durable consumer a service runs: the stream it reads and which of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub stream: &'static str,
    /// The durable consumer's name.
    pub consumer: &'static str,
    /// The events it receives, by name (`tasks.completed`, every version); every event of the
    /// stream when empty.
    pub events: &'static [&'static str],
}

impl Subscription {
    /// The consumer `consumer` of every event of `stream`.
    pub const fn all(stream: &'static str, consumer: &'static str) -> Self {
        Subscription { stream, consumer, events: &[] }
    }

    /// The subjects it asks its stream for (`tasks.completed.*`); none means all of them.
    pub fn filter_subjects(&self) -> Vec<String> {
        self.events.iter().map(|event| format!("{event}.*")).collect()
    }

    /// Whether a message of its stream on `subject` (`tasks.completed.v1`) comes to it.
    pub fn receives(&self, subject: &str) -> bool {
        self.events.is_empty()
            || self.events.iter().any(|event| {
                subject
                    .strip_prefix(event)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|version| !version.is_empty() && !version.contains('.'))
            })
    }
}

/// Subjects a NATS user may publish to and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

impl Bus {
    /// The name of the consumer its outbox auditor reads its stream with (one audit runs at a
    /// time per service, so one name serves every instance).
    pub fn audit_reader(&self) -> String {
        format!("audit-{}", self.user)
    }

    /// The streams it creates or updates at start-up: its own, and the DLQ it parks messages on.
    pub fn provisions(&self) -> Vec<&'static str> {
        let mut streams: Vec<&'static str> = self.produces.into_iter().collect();
        if !self.consumes.is_empty() {
            streams.push(DLQ);
        }
        streams
    }

    /// Exactly what it needs: publishing its own domain's events, parking on `dlq.<consumer>`, the
    /// JetStream API calls for the streams it provisions and reads (reading a message of a stream
    /// it consumes by sequence) and for its own durable consumers (create, info, delete, pull,
    /// ack), and its own inbox for the answers.
    pub fn permissions(&self) -> Permissions {
        let mut publish = Vec::new();
        if let Some(stream) = self.produces {
            let subjects = STREAMS.iter().find(|(name, _)| *name == stream).map(|(_, subjects)| *subjects);
            publish.extend(subjects.map(str::to_owned));
        }
        // Parking goes to `dlq.<consumer>`, each service only its own consumers' subjects: what
        // it parks cannot pretend to come from another service's consumer.
        publish.extend(self.consumes.iter().map(|s| format!("dlq.{}", s.consumer)));
        for stream in self.provisions() {
            for call in ["CREATE", "UPDATE", "INFO"] {
                publish.push(format!("$JS.API.STREAM.{call}.{stream}"));
            }
        }
        // The STREAM.INFO call on a stream it both provisions and reads is listed once.
        let add_once = |publish: &mut Vec<String>, subject: String| {
            if !publish.contains(&subject) {
                publish.push(subject);
            }
        };
        if let Some(stream) = self.produces {
            // It re-drives what consumers parked from its stream: it reads the DLQ message and the
            // original it must equal, publishes that again and removes the parked copy.
            add_once(&mut publish, format!("$JS.API.STREAM.INFO.{DLQ}"));
            publish.extend([
                format!("$JS.API.STREAM.MSG.GET.{DLQ}"),
                format!("$JS.API.STREAM.MSG.DELETE.{DLQ}"),
                format!("$JS.API.STREAM.MSG.GET.{stream}"),
            ]);
            // Its outbox auditor reads its own stream back with one ordered consumer of its own.
            let reader = self.audit_reader();
            for call in ["CREATE", "INFO", "MSG.NEXT", "DELETE"] {
                publish.push(format!("$JS.API.CONSUMER.{call}.{stream}.{reader}"));
            }
        }
        for Subscription { stream, consumer, .. } in self.consumes {
            add_once(&mut publish, format!("$JS.API.STREAM.INFO.{stream}"));
            // Each consumer checks on every connection that the stream still holds, by sequence,
            // the newest message it took, and makes itself again to start over when not.
            add_once(&mut publish, format!("$JS.API.STREAM.MSG.GET.{stream}"));
            publish.extend([
                format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
                format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>"),
                format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{consumer}"),
                format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
                format!("$JS.API.CONSUMER.DELETE.{stream}.{consumer}"),
                format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
                format!("$JS.ACK.{stream}.{consumer}.>"),
            ]);
        }
        Permissions { publish, subscribe: vec![format!("{}.>", inbox_prefix(self.user))] }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACKER: Bus = Bus {
        user: "task-tracker",
        produces: Some("TASKS"),
        consumes: &[Subscription::all("ACCOUNTS", "tracker")],
    };

    #[test]
    fn a_subscription_receives_every_version_of_its_events_and_nothing_else() {
        let completions = Subscription { stream: "TASKS", consumer: "c", events: &["tasks.completed"] };
        assert_eq!(completions.filter_subjects(), ["tasks.completed.*"]);
        assert!(completions.receives("tasks.completed.v1") && completions.receives("tasks.completed.v2"));
        for other in
            ["tasks.assigned.v1", "tasks.completed", "tasks.completed_late.v1", "tasks.completed.v1.x"]
        {
            assert!(!completions.receives(other), "{other}");
        }
        let everything = Subscription::all("TASKS", "c");
        assert!(everything.filter_subjects().is_empty() && everything.receives("tasks.assigned.v1"));
    }

    #[test]
    fn a_service_publishes_only_its_own_domain_and_the_dlq() {
        let permissions = TRACKER.permissions();
        assert!(permissions.publish.contains(&"tasks.>".to_owned()));
        assert!(permissions.publish.contains(&"dlq.tracker".to_owned()));
        assert!(!permissions.publish.contains(&"dlq.>".to_owned()), "only its own consumers' DLQ subjects");
        assert!(
            !permissions.publish.iter().any(|s| s.starts_with("accounting") || s.starts_with("accounts"))
        );
        assert!(!permissions.publish.iter().any(|s| s == ">" || s == "$JS.API.>"), "no wildcard API access");
        assert_eq!(permissions.subscribe, ["_INBOX.task-tracker.>"]);
    }

    #[test]
    fn only_a_producer_reads_and_removes_parked_messages_to_re_drive_them() {
        // (A consumer reads messages of the streams it consumes by sequence, to check its place.)
        let permissions = TRACKER.permissions();
        for subject in
            ["$JS.API.STREAM.MSG.GET.DLQ", "$JS.API.STREAM.MSG.DELETE.DLQ", "$JS.API.STREAM.MSG.GET.TASKS"]
        {
            assert!(permissions.publish.contains(&subject.to_owned()), "{subject}");
        }
        assert!(!permissions.publish.iter().any(|s| s.contains("MSG.DELETE.TASKS")
            || s.contains("MSG.DELETE.ACCOUNTS")
            || s.contains("MSG.GET.ACCOUNTING")));
        const READER: Bus = Bus {
            user: "analytics",
            produces: None,
            consumes: &[Subscription::all("TASKS", "analytics-tasks")],
        };
        let reader = READER;
        let reads = reader.permissions().publish;
        assert!(reads.contains(&"$JS.API.STREAM.MSG.GET.TASKS".to_owned()), "it checks its place in TASKS");
        assert!(!reads.iter().any(|s| s.contains(".MSG.DELETE.") || s.contains("MSG.GET.DLQ")));
        assert!(
            !reads.iter().any(|s| s.contains("MSG.GET.") && !s.ends_with(".TASKS")),
            "only what it consumes"
        );
    }

    #[test]
    fn it_manages_its_own_streams_and_consumers_and_only_reads_the_streams_it_consumes() {
        let permissions = TRACKER.permissions();
        for subject in
            ["$JS.API.STREAM.CREATE.TASKS", "$JS.API.STREAM.UPDATE.DLQ", "$JS.API.STREAM.INFO.ACCOUNTS"]
        {
            assert!(permissions.publish.contains(&subject.to_owned()), "{subject}");
        }
        assert!(!permissions.publish.contains(&"$JS.API.STREAM.CREATE.ACCOUNTS".to_owned()));
        assert!(permissions.publish.contains(&"$JS.API.CONSUMER.MSG.NEXT.ACCOUNTS.tracker".to_owned()));
        assert!(permissions.publish.contains(&"$JS.ACK.ACCOUNTS.tracker.>".to_owned()));
        assert_eq!(TRACKER.provisions(), ["TASKS", "DLQ"]);
        assert!(
            permissions.publish.contains(&"$JS.API.CONSUMER.CREATE.TASKS.audit-task-tracker".to_owned()),
            "it audits its own stream"
        );
        for call in ["CREATE", "DELETE", "MSG.NEXT", "INFO"] {
            for stream in ["TASKS", "ACCOUNTS"] {
                let any = format!("$JS.API.CONSUMER.{call}.{stream}.>");
                assert!(!permissions.publish.contains(&any), "no consumer but its own: {any}");
            }
        }
    }
}
