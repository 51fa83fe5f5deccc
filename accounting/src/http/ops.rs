//! `/api/ops/accounting`: accounting's operations view and re-drives.

use crate::state::AppState;

ates_messaging::ops_routes!(
    AppState,
    view = "/api/ops/accounting",
    redrive = "/api/ops/accounting/parked/{sequence}/redrive"
);
