//! Auth's settings, read once from the environment: the only place they and their defaults
//! are declared.

use std::time::Duration;

use ates_messaging::BackboneConfig;
use ates_tokens::TokenConfig;
use secrecy::SecretString;

/// The longest an access token may live.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// Everything auth needs to start.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    #[command(flatten)]
    pub backbone: BackboneConfig,
    #[command(flatten)]
    pub tokens: TokenConfig,
    #[command(flatten)]
    pub settings: AuthSettings,
}

/// Auth's own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthSettings {
    /// How long an access token lives (at most 15 minutes).
    #[arg(long, env = "ATES_ACCESS_TOKEN_TTL", default_value = "15m", value_parser = parse_access_ttl)]
    pub access_ttl: Duration,
    /// How long a refresh token lives.
    #[arg(long, env = "ATES_REFRESH_TOKEN_TTL", default_value = "30d", value_parser = humantime::parse_duration)]
    pub refresh_ttl: Duration,
    /// The first admin's email, used when no admin exists.
    #[arg(long, env = "ATES_ADMIN_EMAIL")]
    pub admin_email: Option<String>,
    /// The first admin's password.
    #[arg(long, env = "ATES_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,
    /// Sign-in attempts allowed per account per minute.
    #[arg(long, env = "ATES_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 10)]
    pub login_attempts_per_account: u32,
    /// Sign-in attempts allowed per client address per minute.
    #[arg(long, env = "ATES_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 30)]
    pub login_attempts_per_address: u32,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    #[arg(long, env = "ATES_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,
}

fn parse_access_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if ttl.is_zero() || ttl > MAX_ACCESS_TTL {
        return Err("access tokens live between 1 second and 15 minutes".into());
    }
    Ok(ttl)
}
