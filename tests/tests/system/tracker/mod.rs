//! The task tracker: creation, assignment, completion, shuffle, listing.

mod complete;
mod create;
mod list;
mod shuffle;

use ates_tests::{Popug, TestSystem};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Creates a task as `popug` and returns it.
pub async fn task(sys: &TestSystem, popug: &Popug, title: &str) -> Value {
    sys.post("/api/tasks", &popug.token, json!({ "title": title })).await.expect(StatusCode::CREATED)
}
