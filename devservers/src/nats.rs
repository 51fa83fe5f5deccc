//! nats-server with JetStream on its own port and store directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::child::ServerProcess;

/// Where and how to run nats-server.
#[derive(Debug, Clone, Default)]
pub struct NatsOptions {
    /// The JetStream store, the configuration and the log live here; kept between runs.
    pub dir: PathBuf,
    /// The client port; a free one when `None`.
    pub port: Option<u16>,
    /// This server's place in a cluster, if it is one of several.
    pub cluster: Option<ClusterNode>,
    /// The users the server accepts with their permissions; anyone when empty.
    pub users: Vec<NatsUserConfig>,
}

/// One node of a JetStream cluster.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// This node's name, unique in the cluster.
    pub server_name: String,
    /// The cluster's name.
    pub cluster_name: String,
    /// Where this node listens for routes from the others.
    pub route_port: u16,
    /// The route ports of the other nodes.
    pub peers: Vec<u16>,
}

/// A user the server accepts: a password and the subjects it may publish and subscribe to.
#[derive(Debug, Clone)]
pub struct NatsUserConfig {
    pub user: String,
    pub password: String,
    /// Subjects (wildcards allowed) this user may publish to; anything when `None`.
    pub publish: Option<Vec<String>>,
    /// Subjects this user may subscribe to; anything when `None`.
    pub subscribe: Option<Vec<String>>,
}

/// A nats-server child process with JetStream enabled.
pub struct NatsServer {
    binary: PathBuf,
    options: NatsOptions,
    port: u16,
    process: Option<ServerProcess>,
    _temp: Option<TempDir>,
}

impl NatsServer {
    /// Starts a server on a free port with a store in a temporary directory, removed on drop.
    pub async fn temporary() -> anyhow::Result<Self> {
        Self::temporary_with_users(Vec::new()).await
    }

    /// [`NatsServer::temporary`] accepting only `users`.
    pub async fn temporary_with_users(users: Vec<NatsUserConfig>) -> anyhow::Result<Self> {
        let temp = crate::temp_dir("nats")?;
        let options = NatsOptions { dir: temp.path().to_path_buf(), users, ..Default::default() };
        let mut server = Self::start(options).await?;
        server._temp = Some(temp);
        Ok(server)
    }

    /// Starts a server with the given store directory, retrying on another port if a free
    /// port was taken in the meantime.
    pub async fn start(options: NatsOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&options.dir)
            .with_context(|| format!("cannot create {}", options.dir.display()))?;
        let binary = crate::binaries::nats_server()?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match options.port {
                Some(port) => port,
                None => crate::free_port()?,
            };
            let mut server = NatsServer {
                binary: binary.clone(),
                options: options.clone(),
                port,
                process: None,
                _temp: None,
            };
            match server.launch().await {
                Ok(()) => return Ok(server),
                Err(e) if options.port.is_none() && attempt < 3 => {
                    tracing::debug!("nats-server on port {port} failed, trying another: {e:#}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let dir = &self.options.dir;
        let log = dir.join("nats-server.log");
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let config = dir.join("nats-server.conf");
        crate::write_secret(&config, &self.config_text())?;
        let mut command = Command::new(&self.binary);
        command.arg("--config").arg(&config);
        let mut process = ServerProcess::spawn("nats-server", command, &log, Signal::SIGTERM)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            process.ensure_running()?;
            let text = std::fs::read(&log).unwrap_or_default();
            let new = String::from_utf8_lossy(text.get(usize::try_from(log_start)?..).unwrap_or_default());
            if new.contains("Server is ready") {
                self.process = Some(process);
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("nats-server did not become ready in 30 s:\n{}", process.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The configuration file's text: JetStream with its store, and the cluster and users.
    fn config_text(&self) -> String {
        let store = self.options.dir.join("store");
        let mut text = format!(
            "host: 127.0.0.1\nport: {}\njetstream {{ store_dir: {} }}\n",
            self.port,
            quoted(&store.display().to_string())
        );
        if let Some(node) = &self.options.cluster {
            let routes: Vec<String> =
                node.peers.iter().map(|port| quoted(&format!("nats-route://127.0.0.1:{port}"))).collect();
            text.push_str(&format!(
                "server_name: {}\ncluster {{\n  name: {}\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                quoted(&node.server_name),
                quoted(&node.cluster_name),
                node.route_port,
                routes.join(", ")
            ));
        }
        if !self.options.users.is_empty() {
            text.push_str("authorization {\n  users: [\n");
            for user in &self.options.users {
                let mut permissions = Vec::new();
                for (kind, subjects) in [("publish", &user.publish), ("subscribe", &user.subscribe)] {
                    if let Some(subjects) = subjects {
                        let list: Vec<String> = subjects.iter().map(|s| quoted(s)).collect();
                        permissions.push(format!("{kind}: {{ allow: [{}] }}", list.join(", ")));
                    }
                }
                text.push_str(&format!(
                    "    {{ user: {}, password: {}, permissions: {{ {} }} }}\n",
                    quoted(&user.user),
                    quoted(&user.password),
                    permissions.join(", ")
                ));
            }
            text.push_str("  ]\n}\n");
        }
        text
    }

    /// The client URL, e.g. `nats://127.0.0.1:4222`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its server name in a cluster (`ates-<index>`); `None` when it runs alone.
    pub fn name(&self) -> Option<&str> {
        self.options.cluster.as_ref().map(|c| c.server_name.as_str())
    }

    /// Whether the server process is up.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// The process id of the server, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// Graceful shutdown (SIGTERM), waiting for the process to exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        ServerProcess::stop(&mut self.process, Signal::SIGTERM, Duration::from_secs(10)).await
    }

    /// SIGKILL: the server gets no chance to flush anything.
    pub fn kill(&mut self) {
        ServerProcess::kill_slot(&mut self.process);
    }

    /// The directory of its store, configuration and log.
    pub fn dir(&self) -> &std::path::Path {
        &self.options.dir
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }
}

/// A string in nats-server's configuration syntax.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Three (or more) nats-server processes routed to each other: a JetStream cluster in which
/// every node can be stopped, killed and restarted on its own.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    _temp: Option<TempDir>,
}

impl NatsCluster {
    /// Starts `size` nodes under `dir` (one folder each), accepting `users`, and waits until each
    /// is ready and routed.
    pub async fn start(
        dir: &std::path::Path,
        size: usize,
        users: Vec<NatsUserConfig>,
    ) -> anyhow::Result<Self> {
        let ports: Vec<(u16, u16)> = (0..size)
            .map(|_| Ok((crate::free_port()?, crate::free_port()?)))
            .collect::<std::io::Result<_>>()?;
        let mut starting = Vec::new();
        for (index, (port, route_port)) in ports.iter().enumerate() {
            let peers = ports.iter().enumerate().filter(|(i, _)| *i != index).map(|(_, (_, r))| *r).collect();
            let options = NatsOptions {
                dir: dir.join(format!("node-{index}")),
                port: Some(*port),
                cluster: Some(ClusterNode {
                    server_name: format!("ates-{index}"),
                    cluster_name: "ates".into(),
                    route_port: *route_port,
                    peers,
                }),
                users: users.clone(),
            };
            starting.push(NatsServer::start(options));
        }
        let nodes = futures_join(starting).await?;
        let cluster = NatsCluster { nodes, _temp: None };
        cluster.wait_for_leader().await?;
        Ok(cluster)
    }

    /// Waits until the nodes have elected a JetStream metadata leader: before that, streams
    /// cannot be created.
    async fn wait_for_leader(&self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let elected = self.nodes.iter().any(|node| {
                let log = std::fs::read_to_string(node.dir().join("nats-server.log")).unwrap_or_default();
                log.contains("JetStream cluster new metadata leader")
                    || log.contains("new JetStream cluster metadata leader")
            });
            if elected {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the NATS cluster elected no JetStream leader in 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A cluster in a temporary directory, removed on drop.
    pub async fn temporary(size: usize, users: Vec<NatsUserConfig>) -> anyhow::Result<Self> {
        let temp = crate::temp_dir("nats-cluster")?;
        let mut cluster = Self::start(temp.path(), size, users).await?;
        cluster._temp = Some(temp);
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated: a `NATS_URL`.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(NatsServer::url).collect::<Vec<_>>().join(",")
    }

    /// The nodes.
    pub fn nodes(&mut self) -> &mut [NatsServer] {
        &mut self.nodes
    }

    /// Stops every node.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        for node in &mut self.nodes {
            node.stop().await?;
        }
        Ok(())
    }
}

/// Waits for all `futures`, which start at once: a cluster's nodes need each other to be ready.
async fn futures_join<T>(
    futures: Vec<impl Future<Output = anyhow::Result<T>> + Send + 'static>,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.context("a node's start-up panicked")??);
    }
    Ok(out)
}
