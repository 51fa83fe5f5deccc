//! Accounting's settings, read once from the environment: the only place they and their
//! defaults are declared.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ates_messaging::BackboneConfig;
use ates_tokens::TokenConfig;
use ates_web::Calendar;
use secrecy::SecretString;

/// Everything accounting needs to start.
#[derive(Debug, Clone, clap::Args)]
pub struct AccountingConfig {
    #[command(flatten)]
    pub backbone: BackboneConfig,
    #[command(flatten)]
    pub tokens: TokenConfig,
    #[command(flatten)]
    pub calendar: Calendar,
    #[command(flatten)]
    pub settings: AccountingSettings,
}

/// Accounting's own settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AccountingSettings {
    /// When billing days close: six cron fields (seconds first) in `ATES_TIMEZONE`.
    #[arg(long, env = "ATES_CLOSE_SCHEDULE", default_value = "0 0 0 * * *")]
    pub close_schedule: CloseSchedule,
    /// How long a close first waits for the task consumer to apply what `TASKS` already holds.
    #[arg(long, env = "ATES_CLOSE_BACKLOG_WAIT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub close_backlog_wait: Duration,
    #[command(flatten)]
    pub mail: MailConfig,
}

/// How payout mail leaves.
#[derive(Debug, Clone, clap::Args)]
pub struct MailConfig {
    /// The SMTP server, e.g. `smtp://mailpit:1025`; without one, mail is written as .eml files.
    #[arg(long, env = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SecretString>,
    /// The sender of payout mail.
    #[arg(long, env = "ATES_MAIL_FROM", default_value = "UberPopug Payroll <payroll@ates.local>")]
    pub from: String,
    /// Where .eml files go when there is no SMTP server (`mail`; `ates dev`: under its data dir).
    #[arg(long = "mail-dir", env = "ATES_MAIL_DIR")]
    pub dir: Option<PathBuf>,
    /// The longest wait between two attempts to send one email.
    #[arg(long, env = "ATES_MAIL_RETRY_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub retry_max: Duration,
}

impl MailConfig {
    /// Where .eml files go.
    pub fn dir(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new("mail"))
    }
}

/// When billing days close: a checked six-field cron expression (seconds first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseSchedule(String);

impl CloseSchedule {
    /// The cron expression.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for CloseSchedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        tokio_cron_scheduler::Job::new_async(text, |_, _| Box::pin(async {}))
            .map(|_| CloseSchedule(text.to_owned()))
            .map_err(|_| {
                format!(
                    "{text:?} is not a schedule: use six cron fields, seconds first, e.g. \"0 0 0 * * *\""
                )
            })
    }
}

impl std::fmt::Display for CloseSchedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::CloseSchedule;

    #[test]
    fn a_schedule_is_six_cron_fields() {
        assert_eq!("0 0 0 * * *".parse::<CloseSchedule>().unwrap().as_str(), "0 0 0 * * *");
        let error = "every midnight".parse::<CloseSchedule>().unwrap_err();
        assert!(error.contains("six cron fields"), "{error}");
    }
}
