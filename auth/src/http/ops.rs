//! `/api/ops/auth`: auth's operations view and re-drives.

use crate::state::AppState;

ates_messaging::ops_routes!(
    AppState,
    view = "/api/ops/auth",
    redrive = "/api/ops/auth/parked/{sequence}/redrive"
);
