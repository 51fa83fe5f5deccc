//! All services in one process, on one router.

use ates_accounting::{AccountingConfig, AccountingService};
use ates_analytics::{AnalyticsConfig, AnalyticsService};
use ates_auth::{AuthConfig, AuthService};
use ates_messaging::BackboneConfig;
use ates_task_tracker::{TaskTrackerConfig, TaskTrackerService};
use ates_tokens::TokenConfig;
use axum::Router;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::{InfoBuilder, OpenApi};

/// What the whole system needs to start.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// The shared database and NATS; each service uses its own schema.
    pub backbone: BackboneConfig,
    /// Where this process serves HTTP, as the services should call it (for the JWKS).
    pub base_url: String,
    /// The first admin.
    pub admin_email: String,
    /// Their password.
    pub admin_password: String,
    /// The company's time zone.
    pub timezone: chrono_tz::Tz,
    /// Where payout mail goes.
    pub mail: ates_accounting::mail::MailConfig,
    /// When billing days close (six cron fields in `timezone`).
    pub close_schedule: String,
}

impl SystemConfig {
    /// Auth's settings.
    pub fn auth(&self) -> AuthConfig {
        let mut config = AuthConfig::new(self.backbone.clone());
        config.tokens = self.tokens();
        config.admin_email = Some(self.admin_email.clone());
        config.admin_password = Some(self.admin_password.clone());
        config
    }

    /// The token settings every service verifies with: the JWKS of this very process.
    pub fn tokens(&self) -> TokenConfig {
        TokenConfig::new(&format!("{}/.well-known/jwks.json", self.base_url))
    }

    /// The task tracker's settings.
    pub fn task_tracker(&self) -> TaskTrackerConfig {
        TaskTrackerConfig { backbone: self.backbone.clone(), tokens: self.tokens() }
    }

    /// Analytics' settings.
    pub fn analytics(&self) -> AnalyticsConfig {
        AnalyticsConfig { backbone: self.backbone.clone(), tokens: self.tokens(), timezone: self.timezone }
    }

    /// Accounting's settings.
    pub fn accounting(&self) -> AccountingConfig {
        let mut config = AccountingConfig::new(self.backbone.clone(), self.tokens(), self.mail.clone());
        config.timezone = self.timezone;
        config.close_schedule = self.close_schedule.clone();
        config
    }
}

/// Every service, built.
pub struct System {
    pub auth: AuthService,
    pub task_tracker: TaskTrackerService,
    pub accounting: AccountingService,
    pub analytics: AnalyticsService,
}

impl System {
    /// Builds every service from `config`; `adjust_auth` may change auth's settings first.
    pub async fn build(
        config: &SystemConfig,
        adjust_auth: impl FnOnce(&mut AuthConfig),
    ) -> anyhow::Result<Self> {
        let mut auth_config = config.auth();
        adjust_auth(&mut auth_config);
        let auth = AuthService::build(&auth_config).await?;
        let task_tracker = TaskTrackerService::build(&config.task_tracker()).await?;
        let accounting = AccountingService::build(&config.accounting()).await?;
        let analytics = AnalyticsService::build(&config.analytics()).await?;
        Ok(System { auth, task_tracker, accounting, analytics })
    }

    /// The web UI, every service's routes, health, metrics and one merged OpenAPI document.
    pub fn app(&self) -> Router {
        self.app_with(Router::new())
    }

    /// [`System::app`] with `extra` routes behind the same layers.
    pub fn app_with(&self, extra: Router) -> Router {
        let mut openapi = OpenApi::new(
            InfoBuilder::new().title("aTES").version(env!("CARGO_PKG_VERSION")).description(Some(
                "The task tracker and payroll of UberPopug Inc.: auth, task tracker, accounting and analytics.",
            ))
            .build(),
            utoipa::openapi::Paths::new(),
        );
        openapi.merge(self.auth.openapi.clone());
        openapi.merge(self.task_tracker.openapi.clone());
        openapi.merge(self.accounting.openapi.clone());
        openapi.merge(self.analytics.openapi.clone());
        let routes = self
            .auth
            .router
            .clone()
            .merge(self.task_tracker.router.clone())
            .merge(self.accounting.router.clone())
            .merge(self.analytics.router.clone())
            .merge(ates_ui::router())
            .merge(extra);
        ates_web::app(routes, openapi, self.auth.readiness())
    }

    /// Starts every service's background work.
    pub fn spawn_workers(&self, shutdown: &CancellationToken, workers: &mut JoinSet<()>) {
        self.auth.spawn_workers(shutdown, workers);
        self.task_tracker.spawn_workers(shutdown, workers);
        self.accounting.spawn_workers(shutdown, workers);
        self.analytics.spawn_workers(shutdown, workers);
    }
}
