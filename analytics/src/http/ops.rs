//! `/api/ops/analytics`: analytics' operations view.

use crate::state::AppState;

ates_messaging::ops_routes!(AppState, view = "/api/ops/analytics");
