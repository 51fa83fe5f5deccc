//! Analytics: dashboards built from events, and `ates replay`.

mod dashboards;
mod history;
mod replay;
mod writers;
