//! All services in one process, on one router.

use ates_accounting::{AccountingConfig, AccountingService, AccountingSettings};
use ates_analytics::{AnalyticsConfig, AnalyticsService};
use ates_auth::{AuthConfig, AuthService, AuthSettings};
use ates_messaging::BackboneConfig;
use ates_task_tracker::{TaskTrackerConfig, TaskTrackerService};
use ates_tokens::TokenConfig;
use ates_web::Calendar;
use axum::Router;
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::openapi::{InfoBuilder, OpenApi};

use crate::credentials::{self, Credentials};

/// One OpenAPI document for the whole system from the services' own (auth, task tracker,
/// accounting, analytics).
pub fn openapi(services: [OpenApi; 4]) -> OpenApi {
    let info = InfoBuilder::new()
        .title("aTES")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "The task tracker and payroll of UberPopug Inc.: auth, task tracker, accounting and analytics.",
        ))
        .build();
    ates_web::openapi::merge(OpenApi::new(info, utoipa::openapi::Paths::new()), services)
        .expect("the services' OpenAPI documents fit together (see the test below)")
}

/// What the whole system needs to start: the settings every service declares, each once, in
/// its own `config` module.
#[derive(Debug, Clone, clap::Args)]
pub struct SystemConfig {
    #[command(flatten)]
    pub backbone: BackboneConfig,
    #[command(flatten)]
    pub tokens: TokenConfig,
    #[command(flatten)]
    pub calendar: Calendar,
    #[command(flatten)]
    pub auth: AuthSettings,
    #[command(flatten)]
    pub accounting: AccountingSettings,
    /// Each service's own NATS user, when the servers were configured with them (`ates dev`
    /// and the tests generate them; the service binaries read theirs from the environment).
    #[arg(skip)]
    pub nats_users: Option<Credentials>,
    /// Each service's own PostgreSQL role, when they were provisioned in the database.
    #[arg(skip)]
    pub database_roles: Option<Credentials>,
}

impl SystemConfig {
    /// The settings from command-line style `args` and the environment, with the defaults the
    /// services declare.
    pub fn parse_from<'a>(args: impl IntoIterator<Item = &'a str>) -> Result<Self, clap::Error> {
        crate::settings::parse(args)
    }

    /// The same settings for a process serving at `base_url`: every service verifies tokens
    /// against that process's own JWKS.
    pub fn served_at(mut self, base_url: &str) -> Self {
        self.tokens.jwks_url = format!("{base_url}/.well-known/jwks.json");
        self
    }

    /// The connections of `service`: as its own NATS user and PostgreSQL role where there are
    /// such.
    fn backbone_of(&self, service: &credentials::Service) -> anyhow::Result<BackboneConfig> {
        let mut backbone = self.backbone.clone();
        if let Some(credentials) = &self.nats_users {
            let user = credentials.nats_user(service.bus.user);
            backbone.nats.nats_user = Some(user.name);
            backbone.nats.nats_password = Some(user.password);
        }
        if let (Some(credentials), Some(url)) = (&self.database_roles, &self.backbone.database_url) {
            let url = credentials.database_url(url.expose_secret(), service.schema)?;
            backbone.database_url = Some(url.into());
        }
        Ok(backbone)
    }

    /// Auth's settings.
    pub fn auth(&self) -> anyhow::Result<AuthConfig> {
        Ok(AuthConfig {
            backbone: self.backbone_of(&credentials::AUTH)?,
            tokens: self.tokens.clone(),
            settings: self.auth.clone(),
        })
    }

    /// The task tracker's settings.
    pub fn task_tracker(&self) -> anyhow::Result<TaskTrackerConfig> {
        Ok(TaskTrackerConfig {
            backbone: self.backbone_of(&credentials::TASK_TRACKER)?,
            tokens: self.tokens.clone(),
        })
    }

    /// Accounting's settings.
    pub fn accounting(&self) -> anyhow::Result<AccountingConfig> {
        Ok(AccountingConfig {
            backbone: self.backbone_of(&credentials::ACCOUNTING)?,
            tokens: self.tokens.clone(),
            calendar: self.calendar,
            settings: self.accounting.clone(),
        })
    }

    /// Analytics' settings.
    pub fn analytics(&self) -> anyhow::Result<AnalyticsConfig> {
        Ok(AnalyticsConfig {
            backbone: self.backbone_of(&credentials::ANALYTICS)?,
            tokens: self.tokens.clone(),
            calendar: self.calendar,
        })
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
    /// Builds every service from `config`.
    pub async fn build(config: &SystemConfig) -> anyhow::Result<Self> {
        let auth = AuthService::build(&config.auth()?).await?;
        let task_tracker = TaskTrackerService::build(&config.task_tracker()?).await?;
        let accounting = AccountingService::build(&config.accounting()?).await?;
        let analytics = AnalyticsService::build(&config.analytics()?).await?;
        Ok(System { auth, task_tracker, accounting, analytics })
    }

    /// The web UI, every service's routes, health, metrics, one merged OpenAPI document and the
    /// whole AsyncAPI document.
    pub fn app(&self) -> Router {
        self.app_with(Router::new())
    }

    /// [`System::app`] with `extra` routes behind the same layers.
    pub fn app_with(&self, extra: Router) -> Router {
        let openapi = openapi([
            self.auth.openapi.clone(),
            self.task_tracker.openapi.clone(),
            self.accounting.openapi.clone(),
            self.analytics.openapi.clone(),
        ]);
        let routes = self
            .auth
            .router
            .clone()
            .merge(self.task_tracker.router.clone())
            .merge(self.accounting.router.clone())
            .merge(self.analytics.router.clone())
            .merge(ates_ui::router())
            .merge(extra);
        ates_web::app(routes, openapi, &ates_schemas::asyncapi::document(), self.auth.readiness())
    }

    /// Starts every service's background work.
    pub fn spawn_workers(&self, shutdown: &CancellationToken, workers: &mut JoinSet<()>) {
        self.auth.spawn_workers(shutdown, workers);
        self.task_tracker.spawn_workers(shutdown, workers);
        self.accounting.spawn_workers(shutdown, workers);
        self.analytics.spawn_workers(shutdown, workers);
    }
}

#[cfg(test)]
mod tests {
    use ates_web::openapi::{dangling_references, finish};

    fn services() -> [utoipa::openapi::OpenApi; 4] {
        [
            ates_auth::openapi(),
            ates_task_tracker::openapi(),
            ates_accounting::openapi(),
            ates_analytics::openapi(),
        ]
    }

    #[test]
    fn every_document_served_resolves_every_reference() {
        for doc in services() {
            let title = doc.info.title.clone();
            assert_eq!(dangling_references(&finish(doc)), Vec::<String>::new(), "{title}");
        }
        assert_eq!(dangling_references(&finish(super::openapi(services()))), Vec::<String>::new(), "merged");
    }

    #[test]
    fn two_services_cannot_describe_different_shapes_under_one_name() {
        let [auth, tracker, ..] = services();
        let mut clash = tracker;
        let name = auth.components.as_ref().unwrap().schemas.keys().next().unwrap().clone();
        clash
            .components
            .as_mut()
            .unwrap()
            .schemas
            .insert(name.clone(), <ates_web::ProblemBody as utoipa::PartialSchema>::schema());
        let Err(refused) = ates_web::openapi::merge(auth, [clash]) else { panic!("merged a clash") };
        assert!(refused.contains(&name), "{refused}");
    }
}
