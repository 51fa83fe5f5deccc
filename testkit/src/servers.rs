//! The servers a test talks to, local processes or containers.

use ates_devservers::{NatsServer, PostgresServer};
use sqlx::Connection;
use tokio::sync::OnceCell;

/// Which kind of servers to start: `ATES_TESTKIT=docker` asks for containers.
fn use_docker() -> bool {
    match std::env::var("ATES_TESTKIT").as_deref() {
        Ok("docker") if cfg!(feature = "docker") => true,
        Ok("docker") => {
            panic!("ATES_TESTKIT=docker needs the testkit built with `--features ates-testkit/docker`")
        }
        Ok("local") | Err(_) => false,
        Ok(other) => panic!("ATES_TESTKIT={other:?}: use `local` (the default) or `docker`"),
    }
}

enum NatsBackend {
    Local(NatsServer),
    #[cfg(feature = "docker")]
    Docker(crate::docker::NatsContainer),
}

/// A JetStream server owned by one test; gone when the test ends.
pub struct TestNats {
    backend: NatsBackend,
}

impl TestNats {
    /// Starts a fresh server with an empty store that accepts only `users`, with their
    /// permissions (local servers only; a container accepts anyone).
    pub async fn start_with_users(users: Vec<ates_devservers::NatsUserConfig>) -> Self {
        #[cfg(feature = "docker")]
        if use_docker() {
            return Self::start().await;
        }
        let server = NatsServer::temporary_with_users(users)
            .await
            .expect("start nats-server (run scripts/install-deps)");
        TestNats { backend: NatsBackend::Local(server) }
    }

    /// Starts a fresh server with an empty store.
    pub async fn start() -> Self {
        #[cfg(feature = "docker")]
        if use_docker() {
            let container = crate::docker::NatsContainer::start().await.expect("start a NATS container");
            return TestNats { backend: NatsBackend::Docker(container) };
        }
        let _ = use_docker();
        let server = NatsServer::temporary().await.expect("start nats-server (run scripts/install-deps)");
        TestNats { backend: NatsBackend::Local(server) }
    }

    /// The client URL.
    pub fn url(&self) -> String {
        match &self.backend {
            NatsBackend::Local(server) => server.url(),
            #[cfg(feature = "docker")]
            NatsBackend::Docker(container) => container.url(),
        }
    }

    /// The client port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.url().rsplit(':').next().and_then(|p| p.parse().ok()).expect("the URL ends in a port")
    }

    /// Graceful shutdown.
    pub async fn stop(&mut self) {
        match &mut self.backend {
            NatsBackend::Local(server) => server.stop().await.expect("stop nats-server"),
            #[cfg(feature = "docker")]
            NatsBackend::Docker(container) => container.stop(Some(10)).await,
        }
    }

    /// The directory where JetStream keeps `stream` (local servers only): a test stops the
    /// server, damages it, and starts the server again.
    pub fn stream_dir(&self, stream: &str) -> std::path::PathBuf {
        match &self.backend {
            NatsBackend::Local(server) => server.dir().join("store/jetstream/$G/streams").join(stream),
            #[cfg(feature = "docker")]
            NatsBackend::Docker(_) => panic!("a container's store is not reachable from the test"),
        }
    }

    /// SIGKILL: nothing is flushed.
    pub async fn kill(&mut self) {
        match &mut self.backend {
            NatsBackend::Local(server) => server.kill(),
            #[cfg(feature = "docker")]
            NatsBackend::Docker(container) => container.stop(Some(0)).await,
        }
    }

    /// Starts it again on the same port with the same store.
    pub async fn restart(&mut self) {
        match &mut self.backend {
            NatsBackend::Local(server) => server.restart().await.expect("restart nats-server"),
            #[cfg(feature = "docker")]
            NatsBackend::Docker(container) => container.restart().await,
        }
    }
}

enum PostgresBackend {
    Local(PostgresServer),
    #[cfg(feature = "docker")]
    Docker(crate::docker::PostgresContainer),
}

/// A PostgreSQL server: shared by a test binary (see [`database`]) or owned by one test.
pub struct TestPostgres {
    backend: PostgresBackend,
}

impl TestPostgres {
    /// Starts a fresh server.
    pub async fn start() -> Self {
        #[cfg(feature = "docker")]
        if use_docker() {
            let container =
                crate::docker::PostgresContainer::start().await.expect("start a PostgreSQL container");
            return TestPostgres { backend: PostgresBackend::Docker(container) };
        }
        let _ = use_docker();
        let server = PostgresServer::temporary().await.expect("start PostgreSQL (run scripts/install-deps)");
        TestPostgres { backend: PostgresBackend::Local(server) }
    }

    /// A URL for `database` as a superuser.
    pub fn url(&self, database: &str) -> String {
        match &self.backend {
            PostgresBackend::Local(server) => server.url(database),
            #[cfg(feature = "docker")]
            PostgresBackend::Docker(container) => container.url(database),
        }
    }

    /// Fast shutdown: committed data stays.
    pub async fn stop(&mut self) {
        match &mut self.backend {
            PostgresBackend::Local(server) => server.stop().await.expect("stop postgres"),
            #[cfg(feature = "docker")]
            PostgresBackend::Docker(container) => container.stop(Some(10)).await,
        }
    }

    /// SIGKILL: a crash, recovered from the WAL on restart.
    pub async fn kill(&mut self) {
        match &mut self.backend {
            PostgresBackend::Local(server) => server.kill(),
            #[cfg(feature = "docker")]
            PostgresBackend::Docker(container) => container.stop(Some(0)).await,
        }
    }

    /// Starts it again on the same port with the same data.
    pub async fn restart(&mut self) {
        match &mut self.backend {
            PostgresBackend::Local(server) => server.restart().await.expect("restart postgres"),
            #[cfg(feature = "docker")]
            PostgresBackend::Docker(container) => container.restart().await,
        }
    }

    /// Creates a fresh, empty database and returns it.
    pub async fn create_database(&self) -> TestDb {
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut admin =
            sqlx::PgConnection::connect(&self.url("postgres")).await.expect("connect to postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        admin.close().await.ok();
        TestDb { url: self.url(&name), name }
    }
}

/// A database of one test's own.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// The database name.
    pub name: String,
    /// A superuser URL for it.
    pub url: String,
}

/// A fresh database in the PostgreSQL server this test binary shares between its tests.
pub async fn database() -> TestDb {
    static SHARED: OnceCell<TestPostgres> = OnceCell::const_new();
    SHARED.get_or_init(TestPostgres::start).await.create_database().await
}
