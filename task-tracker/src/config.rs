//! The task tracker's settings, read once from the environment: the only place they are
//! declared.

use ates_messaging::BackboneConfig;
use ates_tokens::TokenConfig;

/// Everything the task tracker needs to start.
#[derive(Debug, Clone, clap::Args)]
pub struct TaskTrackerConfig {
    #[command(flatten)]
    pub backbone: BackboneConfig,
    #[command(flatten)]
    pub tokens: TokenConfig,
}
