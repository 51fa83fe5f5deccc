//! The system under test: every aTES service in this process on one port, with its own
//! nats-server and a fresh database, driven through HTTP with typed helpers.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ates::credentials::{Credentials, OPERATOR};
use ates::system::{System, SystemConfig};
use ates_messaging::NatsConnection;
use ates_testkit::{TestNats, database, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use ates_schemas::events::Role;

pub const ADMIN_EMAIL: &str = "admin@ates.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The password of every account the helpers create.
pub const PASSWORD: &str = "popug-password";

/// Every service on a free port with its own database and NATS; stopped on drop.
pub struct TestSystem {
    pub url: String,
    pub http: reqwest::Client,
    pub nats: TestNats,
    pub system: System,
    pub config: SystemConfig,
    shutdown: CancellationToken,
}

/// A response: status and JSON body (a problem or a resource).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after: Option<String>,
}

impl Reply {
    /// The `detail` of a problem response.
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }

    /// The body, after checking the status.
    pub fn expect(self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        self.body
    }

    /// The body as a `T`, after checking the status.
    pub fn json<T: serde::de::DeserializeOwned>(self, status: StatusCode) -> T {
        let body = self.expect(status);
        serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("not the expected shape: {e}: {body}"))
    }
}

/// What creating an account answers, as far as the tests need it.
#[derive(Debug, serde::Deserialize)]
struct Created {
    account_id: Uuid,
}

/// An account the helpers created and signed in.
#[derive(Debug, Clone)]
pub struct Popug {
    pub id: Uuid,
    pub email: String,
    pub token: String,
}

impl TestSystem {
    pub async fn start() -> Self {
        Self::start_configured(|_| {}).await
    }

    /// Starts with the settings adjusted first.
    pub async fn start_configured(adjust: impl FnOnce(&mut SystemConfig)) -> Self {
        Self::start_inner(adjust, true).await
    }

    /// Starts without accounting's ledger (its task consumer and daily close), for tests that
    /// publish accounting's events themselves and must not get a second set from it.
    pub async fn start_without_ledger() -> Self {
        Self::start_inner(|_| {}, false).await
    }

    async fn start_inner(adjust: impl FnOnce(&mut SystemConfig), ledger: bool) -> Self {
        capture_logs();
        // Every service on its own NATS user with exactly the permissions its bus needs.
        let db = database().await;
        // Every service on its own NATS user and PostgreSQL role, with exactly the rights it needs.
        let credentials = Credentials::generate(&db.name);
        let nats = TestNats::start_with_users(credentials.nats_server_users()).await;
        credentials.provision_roles(&db.url).await.expect("provision the services' roles");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let mail = std::env::temp_dir().join(format!("ates-mail-{}", Uuid::new_v4()));
        let mut config = settings(
            &nats,
            &db.url,
            &[
                "--admin-email",
                ADMIN_EMAIL,
                "--admin-password",
                ADMIN_PASSWORD,
                "--mail-dir",
                &mail.display().to_string(),
            ],
        )
        .served_at(&url);
        config.nats_users = Some(credentials.clone());
        config.database_roles = Some(credentials);
        adjust(&mut config);
        let system = System::build(&config).await.expect("the system starts");
        let shutdown = CancellationToken::new();
        let mut workers = tokio::task::JoinSet::new();
        if ledger {
            system.spawn_workers(&shutdown, &mut workers);
        } else {
            system.auth.spawn_workers(&shutdown, &mut workers);
            system.task_tracker.spawn_workers(&shutdown, &mut workers);
            system.analytics.spawn_workers(&shutdown, &mut workers);
            let accounting = &system.accounting.backbone;
            workers.spawn(accounting.relay().run(shutdown.child_token()));
            workers.spawn(
                ates_accounts_replica::consumer(accounting, "accounting-accounts")
                    .run(shutdown.child_token()),
            );
        }
        workers.detach_all();
        tokio::spawn(ates_web::serve(listener, system.app(), shutdown.clone()));
        TestSystem { url, http: reqwest::Client::new(), nats, system, config, shutdown }
    }

    /// Sends `body` (if any) with `token` (if any) and reads the reply. Errors must be
    /// problem+json.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        read(request.send().await.expect("the system answers")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Reply {
        self.call(
            Method::POST,
            "/api/auth/login",
            None,
            Some(json!({ "email": email, "password": password })),
        )
        .await
    }

    /// Signs in and returns (access token, refresh token); panics if refused.
    pub async fn tokens(&self, email: &str, password: &str) -> (String, String) {
        let body = self.login(email, password).await.expect(StatusCode::OK);
        (body["access_token"].as_str().unwrap().into(), body["refresh_token"].as_str().unwrap().into())
    }

    pub async fn admin_token(&self) -> String {
        self.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await.0
    }

    /// Creates an account as `token`'s holder.
    pub async fn create_account(&self, token: &str, email: &str, role: Role) -> Reply {
        let body = json!({ "email": email, "full_name": "Test Popug", "password": PASSWORD, "role": role });
        self.call(Method::POST, "/api/accounts", Some(token), Some(body)).await
    }

    /// Creates an account as admin; returns its id and email.
    pub async fn new_account(&self, role: Role) -> (Uuid, String) {
        let email = format!("{}@ates.test", Uuid::new_v4().simple());
        let created: Created =
            self.create_account(&self.admin_token().await, &email, role).await.json(StatusCode::CREATED);
        (created.account_id, email)
    }

    /// Creates an account and signs it in.
    pub async fn popug(&self, role: Role) -> Popug {
        let (id, email) = self.new_account(role).await;
        let (token, _) = self.tokens(&email, PASSWORD).await;
        Popug { id, email, token }
    }

    pub async fn patch_account(&self, token: &str, id: Uuid, body: Value) -> Reply {
        self.call(Method::PATCH, &format!("/api/accounts/{id}"), Some(token), Some(body)).await
    }

    /// Waits until the task tracker's replica knows `popugs` with their current state.
    pub async fn known_to_task_tracker(&self, popugs: &[&Popug]) {
        let pool = &self.system.task_tracker.backbone.pool;
        let ids: Vec<Uuid> = popugs.iter().map(|p| p.id).collect();
        eventually("the task tracker to know the accounts", || async {
            let known: i64 = sqlx_count(pool, &ids).await;
            (known == i64::try_from(ids.len()).unwrap()).then_some(())
        })
        .await;
        self.settled().await;
    }

    /// Ends a test settled, the way every system test ends: every outbox is published, every
    /// durable consumer has acknowledged everything, nothing is parked on the DLQ, and the
    /// ledger's invariants hold.
    pub async fn finish(self) {
        self.finish_with_parked(0).await;
    }

    /// [`TestSystem::finish`] for a test that parked `parked` messages on purpose.
    pub async fn finish_with_parked(self, parked: usize) {
        self.settled().await;
        let dlq = ates_messaging::dlq::Dlq::new(self.jetstream().await);
        let on_dlq = dlq.list(None).await.expect("the DLQ can be listed");
        assert_eq!(on_dlq.len(), parked, "parked on the DLQ: {on_dlq:?}");
        let accounting = &self.system.accounting.backbone;
        let report = ates_accounting::invariants::check(&accounting.pool, accounting.config.outbox_retention)
            .await
            .expect("the invariants can be checked");
        assert!(report.ok, "the ledger's invariants: {:?}", report.problems);
    }

    /// Waits until every event has gone everywhere: every service's outbox is published and
    /// every durable consumer has acknowledged everything in its stream.
    pub async fn settled(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let Some(pending) = self.pending().await else { return };
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {pending}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What is still in flight, if anything.
    async fn pending(&self) -> Option<String> {
        let js = self.jetstream().await;
        let pools = [
            ("auth", &self.system.auth.backbone.pool),
            ("task tracker", &self.system.task_tracker.backbone.pool),
            ("accounting", &self.system.accounting.backbone.pool),
        ];
        for (service, pool) in pools {
            let unpublished: i64 =
                sqlx::query_scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                    .fetch_one(pool)
                    .await
                    .unwrap_or(-1);
            if unpublished != 0 {
                return Some(format!("{unpublished} unpublished event(s) in the {service} outbox"));
            }
        }
        for (stream, _) in ates_messaging::streams::STREAMS {
            let Ok(stream) = js.get_stream(stream).await else { return Some(format!("the {stream} stream")) };
            let mut names = stream.consumer_names();
            while let Some(name) = futures::StreamExt::next(&mut names).await {
                let Ok(name) = name else { return Some("the consumer list".into()) };
                let Ok(mut consumer) =
                    stream.get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name).await
                else {
                    continue; // an ephemeral consumer that just went away
                };
                let Ok(info) = consumer.info().await else { continue };
                if info.config.durable_name.is_some() && (info.num_pending > 0 || info.num_ack_pending > 0) {
                    return Some(format!(
                        "{name}: {} pending, {} unacknowledged",
                        info.num_pending, info.num_ack_pending
                    ));
                }
            }
        }
        None
    }

    /// JetStream on a connection of the test's own, as the operator.
    pub async fn jetstream(&self) -> async_nats::jetstream::Context {
        let client = self.operator().connect("test").await.unwrap();
        ates_messaging::nats::jetstream(client, Duration::from_secs(5))
    }

    /// NATS as the operator (the command line's identity).
    pub fn operator(&self) -> NatsConnection {
        self.credentials().nats_connection(&self.nats.url(), OPERATOR)
    }

    /// NATS as the service whose bus is `bus`.
    pub fn nats_as(&self, bus: &ates_messaging::permissions::Bus) -> NatsConnection {
        self.credentials().nats_connection(&self.nats.url(), bus.user)
    }

    /// Waits until a session of the test's database waits for a lock while running a statement
    /// that contains `statement` (seen as the superuser: a role sees only its own sessions).
    pub async fn waiting_for_lock(&self, statement: &str) {
        let admin = sqlx::PgPool::connect(self.config.backbone.database_url().unwrap()).await.unwrap();
        eventually(&format!("a statement like {statement:?} to wait for a lock"), || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock' AND strpos(query, $1) > 0",
            )
            .bind(statement)
            .fetch_one(&admin)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        })
        .await;
        admin.close().await;
    }

    fn credentials(&self) -> &Credentials {
        self.config.nats_users.as_ref().expect("the test system has credentials")
    }
}

/// The system's settings for `nats` and the database at `database_url`, as the binaries would
/// read them, with `extra` flags.
pub fn settings(nats: &TestNats, database_url: &str, extra: &[&str]) -> SystemConfig {
    let nats_url = nats.url();
    let args = ["--database-url", database_url, "--nats-url", nats_url.as_str()]
        .into_iter()
        .chain(extra.iter().copied());
    SystemConfig::parse_from(args).expect("valid settings")
}

async fn sqlx_count(pool: &sqlx::PgPool, ids: &[Uuid]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM accounts WHERE account_id = ANY($1) AND state_time IS NOT NULL")
        .bind(ids)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Reads a response; error responses must be problem+json.
pub async fn read(response: reqwest::Response) -> Reply {
    let status = response.status();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (retry_after, content_type) = (header("retry-after"), header("content-type"));
    let text = response.text().await.unwrap();
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{status} {text}");
    }
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, body, retry_after }
}

impl Drop for TestSystem {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Everything every test in this binary logged: debug and up, trace for aTES crates.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOG.get().expect("logs are captured").lock().unwrap()).into_owned()
}

static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

fn capture_logs() {
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter(
                "debug,ates_auth=trace,ates_task_tracker=trace,ates_tokens=trace,ates_web=trace,ates_messaging=trace",
            )
            .with_writer(move || LogWriter(writer.clone()))
            .with_ansi(false)
            .init();
        buffer
    });
}

/// Writes log lines into a shared buffer.
struct LogWriter(Arc<Mutex<Vec<u8>>>);

/// A log subscriber of its own, for the logs of one future (`WithSubscriber::with_subscriber`),
/// and the buffer it writes to.
pub fn captured_logs() -> (Arc<Mutex<Vec<u8>>>, impl tracing::Subscriber + Send + Sync) {
    let buffer: Arc<Mutex<Vec<u8>>> = Arc::default();
    let writer = buffer.clone();
    let subscriber =
        tracing_subscriber::fmt().with_ansi(false).with_writer(move || LogWriter(writer.clone())).finish();
    (buffer, subscriber)
}

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every event in a service's outbox, in the order written, decoded and validated.
pub async fn outbox_events(pool: &sqlx::PgPool) -> Vec<ates_schemas::ReceivedEvent> {
    let payloads: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT payload FROM outbox ORDER BY id").fetch_all(pool).await.unwrap();
    payloads.iter().map(|p| ates_schemas::ReceivedEvent::decode(p).expect("a valid event")).collect()
}
