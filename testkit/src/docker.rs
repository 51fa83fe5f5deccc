//! Servers as Docker containers, for machines that have a Docker engine.

use std::time::Duration;

use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const NATS_TAG: &str = "2.12.8-alpine";
const POSTGRES_TAG: &str = "15-alpine";

/// nats-server with JetStream in a container, on a fixed host port so restarts keep the URL.
pub(crate) struct NatsContainer {
    container: ContainerAsync<GenericImage>,
    port: u16,
}

impl NatsContainer {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let port = ates_devservers::free_port()?;
        let container = GenericImage::new("nats", NATS_TAG)
            .with_wait_for(WaitFor::message_on_stderr("Server is ready"))
            .with_cmd(["--jetstream", "--store_dir", "/data"])
            .with_mapped_port(port, 4222.tcp())
            .start()
            .await?;
        Ok(NatsContainer { container, port })
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops with a grace period in seconds; `Some(0)` kills at once.
    pub(crate) async fn stop(&mut self, grace: Option<i32>) {
        self.container.stop_with_timeout(grace).await.expect("stop the NATS container");
    }

    pub(crate) async fn restart(&mut self) {
        self.container.start().await.expect("start the NATS container");
        wait_for_port(self.port).await;
    }
}

/// PostgreSQL in a container, trusting local connections, on a fixed host port.
pub(crate) struct PostgresContainer {
    container: ContainerAsync<GenericImage>,
    port: u16,
}

impl PostgresContainer {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let port = ates_devservers::free_port()?;
        let container = GenericImage::new("postgres", POSTGRES_TAG)
            .with_wait_for(WaitFor::message_on_stderr("database system is ready to accept connections"))
            .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
            .with_mapped_port(port, 5432.tcp())
            .start()
            .await?;
        let server = PostgresContainer { container, port };
        server.wait_until_ready().await;
        Ok(server)
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub(crate) async fn stop(&mut self, grace: Option<i32>) {
        self.container.stop_with_timeout(grace).await.expect("stop the PostgreSQL container");
    }

    pub(crate) async fn restart(&mut self) {
        self.container.start().await.expect("start the PostgreSQL container");
        self.wait_until_ready().await;
    }

    async fn wait_until_ready(&self) {
        use sqlx::Connection;
        let url = self.url("postgres");
        crate::eventually_with("PostgreSQL in its container", Duration::from_secs(60), || async {
            sqlx::PgConnection::connect(&url).await.ok().map(|_| ())
        })
        .await;
    }
}

async fn wait_for_port(port: u16) {
    crate::eventually_with("NATS in its container", Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok().map(|_| ())
    })
    .await;
}
