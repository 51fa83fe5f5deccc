//! Analytics' settings, read once from the environment: the only place they are declared.

use ates_messaging::BackboneConfig;
use ates_tokens::TokenConfig;
use ates_web::Calendar;

/// Everything analytics needs to start.
#[derive(Debug, Clone, clap::Args)]
pub struct AnalyticsConfig {
    #[command(flatten)]
    pub backbone: BackboneConfig,
    #[command(flatten)]
    pub tokens: TokenConfig,
    #[command(flatten)]
    pub calendar: Calendar,
}
