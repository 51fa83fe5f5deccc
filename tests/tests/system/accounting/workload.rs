//! Random task histories, delivered out of order with duplicates, and the balances they must
//! produce, computed independently of accounting.

use std::collections::{HashMap, HashSet};

use async_nats::jetstream::{self, message::PublishMessage};
use ates_schemas::Envelope;
use ates_schemas::events::{AssignReason, TaskAddedV1, TaskAddedV2, TaskAssignedV1, TaskCompletedV1};
use chrono::{Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

/// One event of the history, as produced.
#[derive(Debug, Clone)]
pub enum Step {
    Assigned { task: Uuid, account: Uuid },
    Completed { task: Uuid, account: Uuid },
    Added,
}

/// A history of task events and the order they are delivered in.
pub struct Workload {
    pub seed: u64,
    pub accounts: Vec<Uuid>,
    pub tasks: Vec<Uuid>,
    /// Each distinct event once: (event id, what it does).
    pub unique: Vec<(Uuid, Step)>,
    /// What is published, duplicates included, in delivery order: (subject, payload).
    pub deliveries: Vec<(String, Vec<u8>)>,
}

fn encode<E: ates_schemas::Event>(envelope: &Envelope<E>) -> (String, Vec<u8>) {
    (E::subject(), serde_json::to_vec(envelope).unwrap())
}

impl Workload {
    /// A random history: a few accounts, some tasks each added (as v1 or v2), assigned,
    /// shuffled a few times and maybe completed; about a third of the events delivered twice
    /// or three times; everything in random order.
    pub fn generate(seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let accounts: Vec<Uuid> = (0..rng.random_range(3..=6)).map(|_| Uuid::new_v4()).collect();
        let start = Utc::now() - Duration::hours(1);
        let mut unique = Vec::new();
        let mut produced = Vec::new();
        let mut tasks = Vec::new();
        for n in 0..rng.random_range(10..=25) {
            let task = Uuid::new_v4();
            tasks.push(task);
            let at = start + Duration::seconds(n * 60);
            let creator = accounts[0];
            let added = if rng.random_bool(0.3) {
                let data = TaskAddedV1 {
                    task_id: task,
                    title: format!("[POP-{n}] Task {n}"),
                    description: String::new(),
                    created_by: creator,
                };
                let envelope = Envelope::at("task-tracker", at, data);
                (envelope.event_id, encode(&envelope))
            } else {
                let data = TaskAddedV2 {
                    task_id: task,
                    title: format!("Task {n}"),
                    jira_id: Some(format!("POP-{n}")),
                    description: String::new(),
                    created_by: creator,
                };
                let envelope = Envelope::at("task-tracker", at, data);
                (envelope.event_id, encode(&envelope))
            };
            unique.push((added.0, Step::Added));
            produced.push(added.1);
            let mut assignee = accounts[rng.random_range(0..accounts.len())];
            let mut previous = None;
            for shuffle in 0..=rng.random_range(0..=3) {
                if shuffle > 0 {
                    assignee = accounts[rng.random_range(0..accounts.len())];
                }
                let reason = if shuffle == 0 { AssignReason::Created } else { AssignReason::Shuffle };
                let data = TaskAssignedV1 {
                    task_id: task,
                    assignee_id: assignee,
                    previous_assignee_id: previous,
                    reason,
                };
                let envelope = Envelope::at("task-tracker", at + Duration::seconds(shuffle), data);
                unique.push((envelope.event_id, Step::Assigned { task, account: assignee }));
                produced.push(encode(&envelope));
                previous = Some(assignee);
            }
            if rng.random_bool(0.6) {
                let data = TaskCompletedV1 { task_id: task, assignee_id: assignee };
                let envelope = Envelope::at("task-tracker", at + Duration::seconds(30), data);
                unique.push((envelope.event_id, Step::Completed { task, account: assignee }));
                produced.push(encode(&envelope));
            }
        }
        let mut deliveries = Vec::new();
        for event in produced {
            let copies = if rng.random_bool(0.33) { rng.random_range(2..=3) } else { 1 };
            deliveries.extend(std::iter::repeat_n(event, copies));
        }
        deliveries.shuffle(&mut rng);
        Workload { seed, accounts, tasks, unique, deliveries }
    }

    /// Publishes every delivery, each with a new `Nats-Msg-Id` so JetStream keeps duplicates.
    pub async fn publish(&self, js: &jetstream::Context) {
        for (subject, payload) in &self.deliveries {
            let message = PublishMessage::build()
                .payload(payload.clone().into())
                .message_id(Uuid::new_v4().to_string());
            js.send_publish(subject.clone(), message).await.unwrap().await.unwrap();
        }
    }

    /// The balances the history must produce, given each task's price (fee, reward).
    pub fn oracle(&self, prices: &HashMap<Uuid, (i64, i64)>) -> HashMap<Uuid, i64> {
        let mut balances: HashMap<Uuid, i64> = self.accounts.iter().map(|a| (*a, 0)).collect();
        let mut seen = HashSet::new();
        for (id, step) in &self.unique {
            assert!(seen.insert(*id));
            match step {
                Step::Assigned { task, account } => *balances.get_mut(account).unwrap() -= prices[task].0,
                Step::Completed { task, account } => *balances.get_mut(account).unwrap() += prices[task].1,
                Step::Added => {}
            }
        }
        balances
    }

    /// How many transactions the history causes.
    pub fn transactions(&self) -> usize {
        self.unique.iter().filter(|(_, step)| !matches!(step, Step::Added)).count()
    }
}
