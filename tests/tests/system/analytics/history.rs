//! A synthetic money history over several days, as accounting would publish it, and the
//! dashboards it must produce, computed independently.

use std::collections::{BTreeMap, HashMap};

use async_nats::jetstream::{self, message::PublishMessage};
use ates_schemas::Envelope;
use ates_schemas::events::{
    AssignReason, TaskAddedV2, TaskAssignedV1, TaskCompletedV1, TaskPricedV1, TransactionAppliedV1,
    TransactionKind,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use uuid::Uuid;

/// Transactions over `days` days ending today, for a few accounts, with task titles and the
/// completion of every rewarded task: usually at noon of the reward's billing day, sometimes late
/// the evening before (a completion billed to the next day because its day was closed).
pub struct History {
    pub accounts: Vec<Uuid>,
    pub transactions: Vec<TransactionAppliedV1>,
    pub titles: HashMap<Uuid, String>,
    pub completions: HashMap<Uuid, (Uuid, DateTime<Utc>)>,
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl History {
    pub fn generate(seed: u64, days: i64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let accounts: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        let last = Utc::now().date_naive();
        let first = last - Duration::days(days - 1);
        let mut balances: HashMap<Uuid, i64> = accounts.iter().map(|a| (*a, 0)).collect();
        let mut transactions = Vec::new();
        let mut titles = HashMap::new();
        let mut completions = HashMap::new();
        for day in first.iter_days().take_while(|d| *d <= last) {
            for _ in 0..rng.random_range(0..8) {
                let account = accounts[rng.random_range(0..accounts.len())];
                let task = Uuid::new_v4();
                titles.insert(task, format!("Task of {day} #{}", titles.len()));
                let fee = -rng.random_range(1000..=2000);
                let mut post = |kind, amount: i64, task: Option<Uuid>| {
                    let balance = balances.get_mut(&account).unwrap();
                    *balance += amount;
                    transactions.push(TransactionAppliedV1 {
                        transaction_id: Uuid::new_v4(),
                        account_id: account,
                        kind,
                        amount,
                        balance_after: *balance,
                        task_id: task,
                        billing_date: day,
                    });
                };
                post(TransactionKind::AssignFee, fee, Some(task));
                if rng.random_bool(0.5) {
                    post(TransactionKind::CompletionReward, rng.random_range(2000..=4000), Some(task));
                    let noon = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
                    let at = if day > first && rng.random_bool(0.3) {
                        noon - Duration::minutes(750)
                    } else {
                        noon
                    };
                    completions.insert(task, (account, at));
                }
            }
            if day < last && rng.random_bool(0.5) {
                for account in &accounts {
                    let balance = balances[account];
                    if balance > 0 {
                        *balances.get_mut(account).unwrap() = 0;
                        transactions.push(TransactionAppliedV1 {
                            transaction_id: Uuid::new_v4(),
                            account_id: *account,
                            kind: TransactionKind::Payout,
                            amount: -balance,
                            balance_after: 0,
                            task_id: None,
                            billing_date: day,
                        });
                    }
                }
            }
        }
        History { accounts, transactions, titles, completions, first, last }
    }

    /// How many distinct events [`History::publish`] publishes that the dashboards are made of.
    pub fn event_count(&self) -> i64 {
        i64::try_from(self.titles.len() + self.completions.len() + self.transactions.len()).unwrap()
    }

    /// Publishes the titles and transactions in random order, about a third of them twice,
    /// each copy with its own `Nats-Msg-Id`. Each task's assignment and price go out too, as
    /// the task tracker and accounting would publish them; they change nothing the dashboards
    /// show, and are not among [`History::event_count`].
    pub async fn publish(&self, js: &jetstream::Context, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut messages: Vec<(String, Vec<u8>)> = Vec::new();
        for (task, title) in &self.titles {
            let added = TaskAddedV2 {
                task_id: *task,
                title: title.clone(),
                jira_id: None,
                description: String::new(),
                created_by: self.accounts[0],
            };
            messages.push((
                "tasks.added.v2".into(),
                serde_json::to_vec(&Envelope::new("task-tracker", added)).unwrap(),
            ));
            let assigned = TaskAssignedV1 {
                task_id: *task,
                assignee_id: self.accounts[1],
                previous_assignee_id: None,
                reason: AssignReason::Created,
            };
            messages.push((
                "tasks.assigned.v1".into(),
                serde_json::to_vec(&Envelope::new("task-tracker", assigned)).unwrap(),
            ));
            let priced = TaskPricedV1 { task_id: *task, assign_fee: 1000, completion_reward: 3000 };
            messages.push((
                "accounting.task_priced.v1".into(),
                serde_json::to_vec(&Envelope::new("accounting", priced)).unwrap(),
            ));
        }
        for (task, (account, at)) in &self.completions {
            let done = TaskCompletedV1 { task_id: *task, assignee_id: *account };
            messages.push((
                "tasks.completed.v1".into(),
                serde_json::to_vec(&Envelope::at("task-tracker", *at, done)).unwrap(),
            ));
        }
        for t in &self.transactions {
            messages.push((
                "accounting.transaction_applied.v1".into(),
                serde_json::to_vec(&Envelope::new("accounting", t.clone())).unwrap(),
            ));
        }
        let copies: Vec<_> = messages.iter().filter(|_| rng.random_bool(0.33)).cloned().collect();
        messages.extend(copies);
        messages.shuffle(&mut rng);
        for (subject, payload) in messages {
            let message =
                PublishMessage::build().payload(payload.into()).message_id(Uuid::new_v4().to_string());
            js.send_publish(subject, message).await.unwrap().await.unwrap();
        }
    }

    /// The `/api/analytics/days` answer the history must give for `[from, to]`, assuming
    /// nothing else happened: money by billing day, the top task by day of completion.
    pub fn days(&self, from: NaiveDate, to: NaiveDate) -> Vec<Value> {
        let mut by_day: BTreeMap<NaiveDate, Vec<&TransactionAppliedV1>> = BTreeMap::new();
        let mut completed_on: BTreeMap<NaiveDate, Vec<&TransactionAppliedV1>> = BTreeMap::new();
        for t in &self.transactions {
            by_day.entry(t.billing_date).or_default().push(t);
            if let Some((_, at)) = t.task_id.and_then(|task| self.completions.get(&task)) {
                completed_on.entry(at.date_naive()).or_default().push(t);
            }
        }
        let mut running: HashMap<Uuid, i64> = HashMap::new();
        let mut out = Vec::new();
        for day in self.first.min(from).iter_days().take_while(|d| *d <= to) {
            let today = by_day.get(&day).cloned().unwrap_or_default();
            for t in &today {
                *running.entry(t.account_id).or_default() += t.amount;
            }
            if day < from {
                continue;
            }
            let earnings: i64 =
                -today.iter().filter(|t| t.kind != TransactionKind::Payout).map(|t| t.amount).sum::<i64>();
            let negatives = running.values().filter(|b| **b < 0).count();
            let top = completed_on
                .get(&day)
                .into_iter()
                .flatten()
                .filter(|t| t.kind == TransactionKind::CompletionReward)
                .max_by_key(|t| (t.amount, t.task_id.unwrap()))
                .map(|t| {
                    let task = t.task_id.unwrap();
                    let completed_at = self.completions[&task].1;
                    json!({ "task_id": task, "title": self.titles[&task], "jira_id": null, "completion_reward": t.amount, "completed_at": completed_at })
                });
            out.push(json!({
                "date": day,
                "management_earnings": earnings,
                "negative_balance_accounts": negatives,
                "most_expensive_task": top.unwrap_or(Value::Null),
            }));
        }
        out
    }
}
