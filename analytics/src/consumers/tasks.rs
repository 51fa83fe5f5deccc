//! `TASKS` for the dashboards: a task's title and jira id from `tasks.added`, its completion
//! time from `tasks.completed`. Assignments change nothing the dashboards show, so the consumer
//! does not ask for them.

use ates_schemas::{DomainEvent, ReceivedEvent};

use crate::dashboards::{TaskFacts, TaskName};

/// The live consumer of `tasks.added` and `tasks.completed`.
pub const NAME: &str = "analytics-tasks";

/// Adds what `events` say about tasks to `facts`; the task rows are written once per batch,
/// together with the rewards from `accounting.transaction_applied`.
pub(crate) fn collect<'a>(events: &'a [ReceivedEvent], facts: &mut TaskFacts<'a>) {
    for event in events {
        match &event.event {
            DomainEvent::TaskAdded(added) => {
                let name = TaskName { title: added.title.as_str(), jira_id: added.jira_id.as_deref() };
                facts.names.insert(added.task_id, name);
            }
            DomainEvent::TaskCompleted(done) => {
                // When it happened, not when it arrived: the completion counts on that business day.
                facts.completions.insert(done.task_id, event.meta.event_time);
            }
            _ => {}
        }
    }
}
