//! The aTES system assembled: every service in one process, as `ates dev` and the system
//! tests run it.

pub mod credentials;
pub mod devmail;
pub mod replay;
pub mod settings;
pub mod system;
