//! `ates dev` as a user runs it: its own servers, one port, and nothing left behind.

mod bench;
mod fuzz;
mod traces;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ates_testkit::eventually_with;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Processes (other than this test) whose command line mentions `dir`.
fn processes_using(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

/// Held while an `ates dev` runs: one at a time, so two never race for the same free ports and
/// each starts on a machine not busy starting the other.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running `ates dev` with its own data directory, stopped (SIGTERM) on drop.
pub struct Dev {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    pub base: String,
    pub http: reqwest::Client,
    _one_at_a_time: tokio::sync::MutexGuard<'static, ()>,
}

impl Dev {
    /// Starts `ates dev` with `args` on a free port and waits until it is ready.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_with(args, &[]).await
    }

    /// Starts `ates dev` with `args` and the environment variables `env`.
    pub async fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let one_at_a_time = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let port = ates_devservers::free_port().unwrap();
        let log = std::fs::File::create(dir.path().join("ates-dev.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ates"))
            .arg("dev")
            .args(args)
            .args(["--http", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(&data)
            .env_remove("NATS_URL")
            .env_remove("DATABASE_URL")
            .env_remove("SMTP_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut dev = Dev {
            child: Some(child),
            dir,
            data,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _one_at_a_time: one_at_a_time,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
        loop {
            let ready = dev.http.get(format!("{}/readyz", dev.base)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return dev;
            }
            if let Some(status) = dev.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("ates dev exited with {status} before it was ready; its log:\n{}", dev.log());
            }
            let waited_too_long = tokio::time::Instant::now() > deadline;
            assert!(!waited_too_long, "ates dev is not ready after 180 s; its log:\n{}", dev.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ates-dev.log")).unwrap_or_default()
    }

    /// Signs in as the admin it created, with the password it wrote into the data directory.
    pub async fn admin_token(&self) -> String {
        let password = std::fs::read_to_string(self.data.join("admin-password")).unwrap();
        let login = self
            .http
            .post(format!("{}/api/auth/login", self.base))
            .json(&serde_json::json!({ "email": "admin@ates.local", "password": password.trim() }))
            .send()
            .await
            .unwrap();
        assert!(login.status().is_success(), "the printed admin can sign in: {}", login.status());
        let body: serde_json::Value = login.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            sigterm(child);
        }
    }
}

impl Drop for Dev {
    /// SIGTERM, and SIGKILL if it has not exited within a minute: a hung `ates dev` must not
    /// hold the next test forever.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        sigterm(&child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn sigterm(child: &Child) {
    let _ = kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), Signal::SIGTERM);
}

#[tokio::test]
async fn ates_dev_starts_a_locked_down_cluster_from_an_empty_data_dir_and_leaves_nothing_behind_on_sigterm() {
    let mut dev = Dev::start(&["--nats-nodes", "3"]).await;
    let (base, data, http) = (dev.base.clone(), dev.data.clone(), dev.http.clone());
    let page = http.get(&base).send().await.unwrap();
    assert!(page.status().is_success(), "the UI is served at /");
    assert!(page.text().await.unwrap().contains("<html"), "and it is HTML");
    let token = dev.admin_token().await;
    let mail = http.get(format!("{base}/api/dev/mail")).bearer_auth(&token).send().await.unwrap();
    assert!(mail.status().is_success(), "the dev mail list is served: {}", mail.status());
    assert_eq!(mail.json::<serde_json::Value>().await.unwrap(), serde_json::json!([]), "no payout mail yet");
    let servers = processes_using(&data);
    let nats_servers = servers.iter().filter(|p| p.contains("nats-server")).count();
    assert_eq!(nats_servers, 3, "its own three-node NATS cluster: {servers:?}");
    assert!(servers.iter().any(|p| p.contains("postgres")), "its own PostgreSQL: {servers:?}");
    locked_down(&data).await;

    dev.terminate();
    let child = std::sync::Mutex::new(dev.child.take().unwrap());
    let status = eventually_with("ates dev to exit", Duration::from_secs(60), || {
        let exited = child.lock().unwrap().try_wait().unwrap();
        async move { exited }
    })
    .await;

    assert!(status.success(), "a clean exit: {status}; log: {}", dev.log());
    let left = eventually_with("its servers to stop", Duration::from_secs(30), || async {
        let left = processes_using(&data);
        left.is_empty().then_some(left)
    })
    .await;
    assert!(left.is_empty());
    assert!(data.join("postgres/data/PG_VERSION").exists(), "the data is kept for the next run");
}

/// The secrets are the owner's only, the streams are replicated to every node, NATS refuses a
/// client without credentials and PostgreSQL one without a password.
async fn locked_down(data: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    for file in ["credentials.json", "operator.env", "admin-password"] {
        let mode = std::fs::metadata(data.join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file} is readable by its owner only");
    }
    let env = std::fs::read_to_string(data.join("operator.env")).unwrap();
    let setting = |name: &str| {
        let prefix = format!("{name}=");
        env.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("{name} in {env}"))
            .to_owned()
    };
    let (url, user, password) = (setting("NATS_URL"), setting("NATS_USER"), setting("NATS_PASSWORD"));
    assert_eq!(url.split(',').count(), 3, "{url}");

    let operator = async_nats::ConnectOptions::with_user_and_password(user, password)
        .connect(url.split(',').next().unwrap())
        .await
        .expect("the operator connects");
    let js = async_nats::jetstream::new(operator);
    for stream in ["ACCOUNTS", "TASKS", "ACCOUNTING", "DLQ"] {
        let info = js.get_stream(stream).await.unwrap().get_info().await.unwrap();
        assert_eq!(info.config.num_replicas, 3, "{stream} is replicated to every node");
    }
    let anonymous = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(url.split(',').next().unwrap())
        .await;
    assert!(anonymous.is_err(), "NATS refuses a client without credentials");

    let database = url::Url::parse(&setting("DATABASE_URL")).unwrap();
    let mut passwordless = database.clone();
    passwordless.set_password(None).unwrap();
    let refused = sqlx::PgPool::connect(passwordless.as_str()).await.expect_err("no password, no connection");
    assert!(refused.to_string().contains("password"), "{refused}");
    let superuser = sqlx::PgPool::connect(database.as_str()).await.expect("the operator's URL connects");
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE 'ates\\_%' ORDER BY 1")
            .fetch_all(&superuser)
            .await
            .unwrap();
    assert_eq!(roles, ["ates_accounting", "ates_analytics", "ates_auth", "ates_task_tracker"]);
    superuser.close().await;
}

#[test]
fn every_setting_of_the_services_reaches_ates_dev_and_secrets_stay_hidden() {
    let output = Command::new(env!("CARGO_BIN_EXE_ates"))
        .args(["dev", "--print-config"])
        .env("ATES_STREAM_REPLICAS", "3")
        .env("ATES_OUTBOX_RETENTION", "3h")
        .env("ATES_CLOSE_SCHEDULE", "0 30 23 * * *")
        .env("ATES_LOGIN_ATTEMPTS_PER_ACCOUNT", "7")
        .env("DATABASE_URL", "postgres://ates:database-secret@db/ates")
        .env("ATES_ADMIN_PASSWORD", "admin-secret")
        .env("SMTP_URL", "smtp://mailer:smtp-secret@mail:25")
        .output()
        .unwrap();
    let printed = String::from_utf8(output.stdout).unwrap();

    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    for setting in
        ["replicas: 3", "outbox_retention: 10800s", "0 30 23 * * *", "login_attempts_per_account: 7"]
    {
        assert!(printed.contains(setting), "{setting} in {printed}");
    }
    for secret in ["database-secret", "admin-secret", "smtp-secret"] {
        assert!(!printed.contains(secret), "{secret} is not shown: {printed}");
    }
}
