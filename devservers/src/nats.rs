//! nats-server with JetStream on its own port and store directory.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use tempfile::TempDir;

use crate::child::ServerProcess;

/// Where and how to run nats-server.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The JetStream store and the log live here; kept between runs.
    pub dir: PathBuf,
    /// The client port; a free one when `None`.
    pub port: Option<u16>,
}

/// A nats-server child process with JetStream enabled.
pub struct NatsServer {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    process: Option<ServerProcess>,
    _temp: Option<TempDir>,
}

impl NatsServer {
    /// Starts a server on a free port with a store in a temporary directory, removed on drop.
    pub async fn temporary() -> anyhow::Result<Self> {
        let temp = crate::temp_dir("nats")?;
        let mut server = Self::start(NatsOptions { dir: temp.path().to_path_buf(), port: None }).await?;
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
                dir: options.dir.clone(),
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
        let log = self.dir.join("nats-server.log");
        let log_start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let mut command = Command::new(&self.binary);
        command
            .args(["--jetstream", "--addr", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--store_dir")
            .arg(self.dir.join("store"));
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

    /// The client URL, e.g. `nats://127.0.0.1:4222`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the server process is up.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Graceful shutdown (SIGTERM), waiting for the process to exit.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        ServerProcess::stop(&mut self.process, Signal::SIGTERM, Duration::from_secs(10)).await
    }

    /// SIGKILL: the server gets no chance to flush anything.
    pub fn kill(&mut self) {
        ServerProcess::kill_slot(&mut self.process);
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        self.launch().await
    }
}
