//! `/api/ops/task-tracker`: the task tracker's operations view and re-drives.

use crate::state::AppState;

ates_messaging::ops_routes!(
    AppState,
    view = "/api/ops/task-tracker",
    redrive = "/api/ops/task-tracker/parked/{sequence}/redrive"
);
