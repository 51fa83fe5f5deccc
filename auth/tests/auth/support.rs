//! A running auth service with typed helpers, one per test.

use std::sync::{Arc, Mutex, OnceLock};

use ates_auth::{AuthConfig, AuthService};
use ates_messaging::BackboneConfig;
use ates_testkit::{TestNats, database};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub const ADMIN_EMAIL: &str = "admin@ates.test";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// Auth on a free port with its own database and NATS; stopped on drop.
pub struct TestAuth {
    pub url: String,
    pub http: reqwest::Client,
    pub service: AuthService,
    pub nats: TestNats,
    pub config: AuthConfig,
    shutdown: CancellationToken,
}

/// A response: status and JSON body (problem or resource).
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
}

impl TestAuth {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut AuthConfig)) -> Self {
        capture_logs();
        let nats = TestNats::start().await;
        let db = database().await;
        let mut config = AuthConfig::new(BackboneConfig::new(&db.url, &nats.url()));
        config.admin_email = Some(ADMIN_EMAIL.into());
        config.admin_password = Some(ADMIN_PASSWORD.into());
        adjust(&mut config);
        let service = AuthService::build(&config).await.expect("auth starts");
        let shutdown = CancellationToken::new();
        let mut workers = tokio::task::JoinSet::new();
        service.spawn_workers(&shutdown, &mut workers);
        workers.detach_all();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(ates_web::serve(listener, service.app(), shutdown.clone()));
        TestAuth { url, http: reqwest::Client::new(), service, nats, config, shutdown }
    }

    /// Sends `body` (if any) with `token` (if any) and reads the reply.
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("auth answers");
        let status = response.status();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(content_type.as_deref(), Some("application/problem+json"), "{status} {text}");
        }
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply { status, body, retry_after }
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
        let reply = self.login(email, password).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        (
            reply.body["access_token"].as_str().unwrap().into(),
            reply.body["refresh_token"].as_str().unwrap().into(),
        )
    }

    pub async fn admin_token(&self) -> String {
        self.tokens(ADMIN_EMAIL, ADMIN_PASSWORD).await.0
    }

    /// Creates an account as `token`'s holder.
    pub async fn create_account(&self, token: &str, email: &str, role: &str) -> Reply {
        let body =
            json!({ "email": email, "full_name": "Test Popug", "password": "popug-password", "role": role });
        self.call(Method::POST, "/api/accounts", Some(token), Some(body)).await
    }

    /// Creates an account as admin and returns its id; the password is `popug-password`.
    pub async fn new_account(&self, role: &str) -> (String, String) {
        let email = format!("{}@ates.test", uuid::Uuid::new_v4().simple());
        let reply = self.create_account(&self.admin_token().await, &email, role).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
        (reply.body["account_id"].as_str().unwrap().into(), email)
    }

    pub async fn patch_account(&self, token: &str, id: &str, body: Value) -> Reply {
        self.call(Method::PATCH, &format!("/api/accounts/{id}"), Some(token), Some(body)).await
    }
}

impl Drop for TestAuth {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Everything every test in this binary logged, at debug level and up (trace for aTES crates).
pub fn logs() -> String {
    String::from_utf8_lossy(&LOG.get().expect("logs are captured").lock().unwrap()).into_owned()
}

static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();

fn capture_logs() {
    LOG.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter("debug,ates_auth=trace,ates_tokens=trace,ates_web=trace,ates_messaging=trace")
            .with_writer(move || LogWriter(writer.clone()))
            .with_ansi(false)
            .init();
        buffer
    });
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
