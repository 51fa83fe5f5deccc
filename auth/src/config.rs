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
    /// Failed sign-ins allowed per account from one client address per minute.
    #[arg(long, env = "ATES_LOGIN_ATTEMPTS_PER_ACCOUNT", default_value_t = 10)]
    pub login_attempts_per_account: u32,
    /// Failed sign-ins allowed per client address per minute (IPv6 by /64).
    #[arg(long, env = "ATES_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 30)]
    pub login_attempts_per_address: u32,
    /// Failed sign-ins allowed per account from all addresses per minute: the looser ceiling.
    #[arg(long, env = "ATES_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 100)]
    pub login_failures_per_account: u32,
    /// The proxies (CIDRs, comma-separated) whose `X-Forwarded-For` is believed: the client is
    /// the right-most address in it that is not one of them. None by default.
    #[arg(long, env = "ATES_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// A proxy's address or network, e.g. `10.0.0.0/8` or `127.0.0.1`.
fn parse_proxy(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not an address or a network like 10.0.0.0/8"))
}

fn parse_access_ttl(text: &str) -> Result<Duration, String> {
    let ttl = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if ttl.is_zero() || ttl > MAX_ACCESS_TTL {
        return Err("access tokens live between 1 second and 15 minutes".into());
    }
    Ok(ttl)
}
