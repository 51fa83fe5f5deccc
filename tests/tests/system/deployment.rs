//! The deployment shape as a test: what compose runs, as OS processes. A three-node NATS cluster
//! with R3 streams and a user per service, PostgreSQL with a role per service, the service
//! binaries (two task trackers, two accountings), and nginx with the gateway template compose
//! uses. A workload goes through the gateway while one NATS node and one accounting instance are
//! killed with SIGKILL and restarted; afterwards every balance must equal an oracle computed from
//! the streams, with one fee per assignment and one reward per completion.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ates::credentials::{self, Credentials, OPERATOR, Service};
use ates_devservers::{NatsCluster, Program};
use ates_schemas::events::TransactionKind;
use ates_schemas::{DomainEvent, ReceivedEvent};
use ates_testkit::{TestDb, eventually_with};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

const ADMIN_EMAIL: &str = "admin@deployment.test";
const ADMIN_PASSWORD: &str = "deployment-admin-password";
const PASSWORD: &str = "popug-password-1";

/// A service binary built next to this test (`cargo build --bins`, which `scripts/test` runs).
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().and_then(Path::parent).unwrap().join(name);
    assert!(
        path.exists(),
        "{} is missing: build the service binaries first (cargo build --bins)",
        path.display()
    );
    path
}

fn nginx() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("nginx is missing: run scripts/install-deps")
}

/// One instance of a service binary on its own port.
struct Instance {
    name: &'static str,
    port: u16,
    program: Program,
}

struct Deployment {
    dir: tempfile::TempDir,
    nats: NatsCluster,
    db: TestDb,
    credentials: Credentials,
    instances: Vec<Instance>,
    gateway: Option<Program>,
    url: String,
    http: reqwest::Client,
}

impl Deployment {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = ates_testkit::database().await;
        let credentials = Credentials::generate(&db.name);
        credentials.provision_roles(&db.url).await.unwrap();
        let nats =
            NatsCluster::start(&dir.path().join("nats"), 3, credentials.nats_server_users()).await.unwrap();
        let auth_port = ates_devservers::free_port().unwrap();
        let mut deployment = Deployment {
            dir,
            nats,
            db,
            credentials,
            instances: Vec::new(),
            gateway: None,
            url: String::new(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap(),
        };
        let plan = [
            ("ates-auth", credentials::AUTH),
            ("ates-task-tracker", credentials::TASK_TRACKER),
            ("ates-task-tracker", credentials::TASK_TRACKER),
            ("ates-accounting", credentials::ACCOUNTING),
            ("ates-accounting", credentials::ACCOUNTING),
            ("ates-analytics", credentials::ANALYTICS),
        ];
        for (index, (name, service)) in plan.into_iter().enumerate() {
            let port = if index == 0 { auth_port } else { ates_devservers::free_port().unwrap() };
            deployment.spawn(name, service, port, auth_port);
            // Auth first: it provisions the signing keys the others fetch.
            if index == 0 {
                deployment.ready(port).await;
            }
        }
        let ports: Vec<u16> = deployment.instances.iter().map(|i| i.port).collect();
        for port in ports {
            deployment.ready(port).await;
        }
        deployment.start_gateway().await;
        deployment
    }

    fn spawn(&mut self, name: &'static str, service: Service, port: u16, auth_port: u16) {
        let user = self.credentials.nats_user(service.bus.user);
        let mut env: Vec<(String, String)> = vec![
            ("DATABASE_URL".into(), self.credentials.database_url(&self.db.url, service.schema).unwrap()),
            ("NATS_URL".into(), self.nats.urls()),
            ("NATS_USER".into(), user.name.clone()),
            ("NATS_PASSWORD".into(), secrecy::ExposeSecret::expose_secret(&user.password).to_owned()),
            ("ATES_STREAM_REPLICAS".into(), "3".into()),
            ("ATES_HTTP".into(), format!("127.0.0.1:{port}")),
            ("ATES_JWKS_URL".into(), format!("http://127.0.0.1:{auth_port}/.well-known/jwks.json")),
            ("ATES_TIMEZONE".into(), "UTC".into()),
            ("RUST_LOG".into(), "info".into()),
        ];
        match service.bus.user {
            "auth" => env.extend([
                ("ATES_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()),
                ("ATES_ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into()),
                ("ATES_TRUSTED_PROXIES".into(), "127.0.0.1/32".into()),
            ]),
            "accounting" => {
                env.push(("ATES_MAIL_DIR".into(), self.dir.path().join("mail").display().to_string()));
            }
            _ => {}
        }
        let path = binary(name);
        let log = self.dir.path().join(format!("{name}-{port}.log"));
        let program = Program::start(name, &log, move || {
            let mut command = Command::new(&path);
            command.env_clear().envs(env.iter().map(|(k, v)| (k, v)));
            command
        })
        .unwrap();
        self.instances.push(Instance { name, port, program });
    }

    /// Waits until the instance on `port` answers `/readyz`; fails with its log if it exits.
    async fn ready(&mut self, port: u16) {
        let url = format!("http://127.0.0.1:{port}/readyz");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = self.http.get(&url).send().await
                && response.status().is_success()
            {
                return;
            }
            let instance = self.instances.iter_mut().find(|i| i.port == port).unwrap();
            if let Err(e) = instance.program.ensure_running() {
                panic!("{} exited: {e}", instance.name);
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(instance.program.log()).unwrap_or_default();
                panic!("{} is not ready in 60 s:\n{log}", instance.name);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// nginx with the gateway template compose uses, the ports of this deployment filled in.
    async fn start_gateway(&mut self) {
        let dir = self.dir.path();
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let template = std::fs::read_to_string(root.join("deploy/gateway.conf.template")).unwrap();
        let servers = |name: &str| -> String {
            let ports = self.instances.iter().filter(|i| i.name == name).map(|i| i.port);
            ports.map(|port| format!("server 127.0.0.1:{port}; ")).collect()
        };
        let port = ates_devservers::free_port().unwrap();
        let ui = root.join("ui/assets").canonicalize().unwrap();
        let filled = template
            .replace("${ATES_AUTH_SERVERS}", &servers("ates-auth"))
            .replace("${ATES_TASK_TRACKER_SERVERS}", &servers("ates-task-tracker"))
            .replace("${ATES_ACCOUNTING_SERVERS}", &servers("ates-accounting"))
            .replace("${ATES_ANALYTICS_SERVERS}", &servers("ates-analytics"))
            .replace("${ATES_GATEWAY_LISTEN}", &format!("127.0.0.1:{port}"))
            .replace("${ATES_UI_DIR}", &ui.display().to_string());
        assert!(!filled.contains("${"), "every placeholder is filled:\n{filled}");
        std::fs::write(dir.join("gateway.conf"), filled).unwrap();
        let temp = dir.join("nginx-temp");
        std::fs::create_dir_all(&temp).unwrap();
        let user = if nix::unistd::geteuid().is_root() { "user root;\n" } else { "" };
        let config = format!(
            "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}/body;\n  proxy_temp_path {t}/proxy;\n  \
             fastcgi_temp_path {t}/fastcgi;\n  uwsgi_temp_path {t}/uwsgi;\n  scgi_temp_path {t}/scgi;\n  \
             include /etc/nginx/mime.types;\n  include {d}/gateway.conf;\n}}\n",
            d = dir.display(),
            t = temp.display()
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let (nginx, prefix) = (nginx(), dir.to_path_buf());
        let gateway = Program::start("nginx", &dir.join("nginx.log"), move || {
            let mut command = Command::new(&nginx);
            command
                .arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(prefix.join("nginx.conf"))
                .args(["-g", "daemon off;"]);
            command
        })
        .unwrap();
        self.gateway = Some(gateway);
        self.url = format!("http://127.0.0.1:{port}");
        let jwks = format!("{}/.well-known/jwks.json", self.url);
        eventually_with("the gateway to route", Duration::from_secs(30), || async {
            let response = self.http.get(&jwks).send().await.ok()?;
            response.status().is_success().then_some(())
        })
        .await;
    }

    /// One request through the gateway.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        key: Option<&str>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body = response.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn token(&self, email: &str, password: &str) -> String {
        let body = json!({ "email": email, "password": password });
        let (status, reply) =
            self.call(Method::POST, "/api/auth/login", None, Some(body), None).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{email} signs in: {reply}");
        reply["access_token"].as_str().unwrap().to_owned()
    }

    fn instance(&mut self, name: &str, nth: usize) -> &mut Instance {
        self.instances.iter_mut().filter(|i| i.name == name).nth(nth).unwrap()
    }

    /// The operator's JetStream.
    async fn jetstream(&self) -> async_nats::jetstream::Context {
        let connection = self.credentials.nats_connection(&self.nats.urls(), OPERATOR);
        ates_messaging::nats::jetstream(connection.connect("test").await.unwrap(), Duration::from_secs(5))
    }

    /// Waits until every outbox is published and every durable consumer has acked everything.
    async fn settled(&self) {
        let admin = sqlx::PgPool::connect(&self.db.url).await.unwrap();
        let js = self.jetstream().await;
        eventually_with("the deployment to settle", Duration::from_secs(90), || async {
            for schema in ["auth", "task_tracker", "accounting"] {
                let sql = format!("SELECT count(*) FROM {schema}.outbox WHERE published_at IS NULL");
                let unpublished: i64 =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&admin).await.ok()?;
                if unpublished > 0 {
                    return None;
                }
            }
            for (stream, _) in ates_messaging::streams::STREAMS {
                let stream = js.get_stream(stream).await.ok()?;
                let mut names = stream.consumer_names();
                while let Some(Ok(name)) = names.next().await {
                    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
                        stream.get_consumer(&name).await.ok()?;
                    let info = consumer.info().await.ok()?;
                    if info.config.durable_name.is_some()
                        && (info.num_pending > 0 || info.num_ack_pending > 0)
                    {
                        return None;
                    }
                }
            }
            Some(())
        })
        .await;
        admin.close().await;
    }
}

/// Every event in `stream`, in order, read as the operator.
async fn events(js: &async_nats::jetstream::Context, stream: &str) -> Vec<ReceivedEvent> {
    let stream = js.get_stream(stream).await.unwrap();
    let ordered = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .unwrap();
    let mut events = Vec::new();
    if ordered.cached_info().num_pending == 0 {
        return events;
    }
    let mut messages = ordered.messages().await.unwrap();
    while let Some(message) = messages.next().await {
        let message = message.unwrap();
        events.push(ReceivedEvent::decode(&message.payload).expect("every message is a valid event"));
        if message.info().unwrap().pending == 0 {
            break;
        }
    }
    events
}

/// What the workload saw accepted.
#[derive(Default)]
struct Accepted {
    tasks: HashSet<Uuid>,
    retries: usize,
}

/// Creates a task with an `Idempotency-Key`, retrying with the same key until it is accepted.
async fn create_task(deployment: &Deployment, token: &str, n: usize, accepted: &Mutex<Accepted>) -> Value {
    let key = Uuid::new_v4().to_string();
    let body = json!({ "title": format!("Deployment task {n}"), "description": "" });
    for _ in 0..60 {
        match deployment.call(Method::POST, "/api/tasks", Some(token), Some(body.clone()), Some(&key)).await {
            Ok((StatusCode::CREATED | StatusCode::OK, task)) => {
                accepted.lock().unwrap().tasks.insert(task["task_id"].as_str().unwrap().parse().unwrap());
                return task;
            }
            Ok((status, reply)) if status.is_client_error() => {
                panic!("a create is refused: {status} {reply}")
            }
            _ => {
                accepted.lock().unwrap().retries += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    panic!("a create was never accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_shape_survives_a_node_and_an_instance_killed_mid_run() {
    let deployment = Deployment::start().await;
    let admin = deployment.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut workers: HashMap<Uuid, String> = HashMap::new();
    for n in 0..5 {
        let email = format!("worker-{n}@deployment.test");
        let body = json!({ "email": email, "full_name": "Worker", "password": PASSWORD, "role": "worker" });
        let (status, reply) =
            deployment.call(Method::POST, "/api/accounts", Some(&admin), Some(body), None).await.unwrap();
        assert_eq!(status, StatusCode::CREATED, "{reply}");
        let id = reply["account_id"].as_str().unwrap().parse().unwrap();
        workers.insert(id, deployment.token(&email, PASSWORD).await);
    }
    // The task trackers learn the workers from the accounts stream: wait until they can be
    // assigned (the admin cannot), which the first accepted create shows.
    eventually_with("the task trackers to know the workers", Duration::from_secs(30), || async {
        let body = json!({ "title": "Warm-up", "description": "" });
        let (status, _) =
            deployment.call(Method::POST, "/api/tasks", Some(&admin), Some(body), None).await.ok()?;
        (status == StatusCode::CREATED).then_some(())
    })
    .await;

    let deployment = Arc::new(tokio::sync::RwLock::new(deployment));
    let accepted = Arc::new(Mutex::new(Accepted::default()));
    let workers = Arc::new(workers);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut load = tokio::task::JoinSet::new();
    for lane in 0..3 {
        let (deployment, accepted, workers, stop, admin) =
            (deployment.clone(), accepted.clone(), workers.clone(), stop.clone(), admin.clone());
        load.spawn(async move {
            let mut n = 0;
            while !stop.is_cancelled() {
                n += 1;
                let deployment = deployment.read().await;
                let task = create_task(&deployment, &admin, lane * 100_000 + n, &accepted).await;
                let assignee: Uuid = task["assignee_id"].as_str().unwrap().parse().unwrap();
                if n % 3 != 0 {
                    let path = format!("/api/tasks/{}/complete", task["task_id"].as_str().unwrap());
                    // A shuffle may have reassigned it meanwhile (403), or a retry finds it done (409).
                    for _ in 0..20 {
                        match deployment
                            .call(Method::POST, &path, Some(&workers[&assignee]), None, None)
                            .await
                        {
                            Ok((status, _)) if status.is_success() || status.is_client_error() => break,
                            _ => tokio::time::sleep(Duration::from_millis(200)).await,
                        }
                    }
                }
                if lane == 0 && n % 25 == 0 {
                    let _ =
                        deployment.call(Method::POST, "/api/tasks/shuffle", Some(&admin), None, None).await;
                }
                drop(deployment);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    tokio::time::sleep(Duration::from_secs(8)).await;
    {
        let mut deployment = deployment.write().await;
        deployment.nats.nodes()[0].kill();
        deployment.instance("ates-accounting", 0).program.kill();
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    {
        let mut deployment = deployment.write().await;
        deployment.nats.nodes()[0].restart().await.unwrap();
        deployment.instance("ates-accounting", 0).program.restart().unwrap();
    }
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.cancel();
    while let Some(lane) = load.join_next().await {
        lane.unwrap();
    }

    let mut deployment = Arc::try_unwrap(deployment).ok().unwrap().into_inner();
    deployment.gateway.as_mut().unwrap().ensure_running().expect("nginx runs");
    for instance in &mut deployment.instances {
        instance.program.ensure_running().unwrap_or_else(|e| panic!("{} runs: {e}", instance.name));
    }
    deployment.settled().await;
    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    assert!(accepted.tasks.len() > 50, "a real workload: {} tasks", accepted.tasks.len());

    let js = deployment.jetstream().await;
    let tasks = events(&js, "TASKS").await;
    let ledger = events(&js, "ACCOUNTING").await;
    for (name, stream) in [("TASKS", &tasks), ("ACCOUNTING", &ledger)] {
        let distinct: HashSet<Uuid> = stream.iter().map(|e| e.meta.event_id).collect();
        assert_eq!(distinct.len(), stream.len(), "{name} holds every event once");
    }
    let added: Vec<Uuid> = tasks
        .iter()
        .filter_map(|e| match &e.event {
            DomainEvent::TaskAdded(task) => Some(task.task_id),
            _ => None,
        })
        .collect();
    let added_once: HashSet<Uuid> = added.iter().copied().collect();
    assert_eq!(added.len(), added_once.len(), "each task is added once");
    assert!(accepted.tasks.is_subset(&added_once), "every accepted task was published");

    // The oracle: prices as accounting set them, and the task events.
    let mut prices: HashMap<Uuid, (i64, i64)> = HashMap::new();
    let mut charged: HashMap<(Uuid, &'static str), usize> = HashMap::new();
    let mut paid_out: HashMap<Uuid, i64> = HashMap::new();
    for event in &ledger {
        match &event.event {
            DomainEvent::TaskPriced(price) => {
                assert!(prices.insert(price.task_id, (price.assign_fee, price.completion_reward)).is_none());
            }
            DomainEvent::TransactionApplied(t) => match t.kind {
                TransactionKind::AssignFee => *charged.entry((t.task_id.unwrap(), "fee")).or_default() += 1,
                TransactionKind::CompletionReward => {
                    *charged.entry((t.task_id.unwrap(), "reward")).or_default() += 1;
                }
                TransactionKind::Payout => *paid_out.entry(t.account_id).or_default() += t.amount,
            },
            _ => {}
        }
    }
    let mut oracle: HashMap<Uuid, i64> = workers.keys().map(|id| (*id, 0)).collect();
    let (mut assignments, mut completions) = (HashMap::<Uuid, usize>::new(), HashSet::new());
    for event in &tasks {
        match &event.event {
            DomainEvent::TaskAssigned(a) => {
                *oracle.entry(a.assignee_id).or_default() -= prices[&a.task_id].0;
                *assignments.entry(a.task_id).or_default() += 1;
            }
            DomainEvent::TaskCompleted(c) => {
                *oracle.entry(c.assignee_id).or_default() += prices[&c.task_id].1;
                assert!(completions.insert(c.task_id), "a task completes once");
            }
            _ => {}
        }
    }
    for (task, count) in &assignments {
        assert_eq!(charged.get(&(*task, "fee")), Some(count), "one fee per assignment of {task}");
    }
    for task in &completions {
        assert_eq!(charged.get(&(*task, "reward")), Some(&1), "one reward for the completion of {task}");
    }
    assert_eq!(charged.values().sum::<usize>(), assignments.values().sum::<usize>() + completions.len());
    for (account, paid) in paid_out {
        *oracle.entry(account).or_default() += paid;
    }

    let admin_pool = ates_messaging::db::connect(&deployment.db.url, "accounting", 2).unwrap();
    let balances: HashMap<Uuid, i64> = sqlx::query_as("SELECT account_id, balance FROM balances")
        .fetch_all(&admin_pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for (account, expected) in &oracle {
        assert_eq!(balances.get(account).copied().unwrap_or(0), *expected, "the balance of {account}");
    }
    let report =
        ates_accounting::invariants::check(&admin_pool, Duration::from_secs(7 * 86_400)).await.unwrap();
    assert!(report.ok, "the ledger's invariants: {:?}", report.problems);
    let dlq = js.get_stream("DLQ").await.unwrap().info().await.unwrap().state.messages;
    assert_eq!(dlq, 0, "nothing parked");
    let replicas = js.get_stream("TASKS").await.unwrap().info().await.unwrap().config.num_replicas;
    assert_eq!(replicas, 3, "the streams are replicated to every node");
    // Each service, as its own role, rebuilt its outbox's time indexes as BRIN at start.
    let expected: Vec<(String, String, bool)> = ["accounting", "analytics", "auth", "task_tracker"]
        .into_iter()
        .flat_map(|schema| {
            ["outbox_created_brin", "outbox_published_brin"]
                .map(|index| (schema.to_owned(), index.to_owned(), true))
        })
        .collect();
    eventually_with("BRIN time indexes, valid, and no B-trees", Duration::from_secs(30), || async {
        let time_indexes: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT n.nspname::text, c.relname::text, i.indisvalid FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE t.relname = 'outbox'
               AND c.relname IN ('outbox_created_at', 'outbox_published', 'outbox_created_brin', 'outbox_published_brin')
             ORDER BY 1, 2",
        )
        .fetch_all(&admin_pool)
        .await
        .ok()?;
        (time_indexes == expected).then_some(())
    })
    .await;
    eprintln!(
        "deployment: {} tasks accepted ({} retries), {} completed, {} assignments",
        accepted.tasks.len(),
        accepted.retries,
        completions.len(),
        assignments.values().sum::<usize>()
    );
}
