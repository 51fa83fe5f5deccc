//! PostgreSQL on its own port and data directory; as root it runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid, User};
use tempfile::TempDir;

use crate::child::ServerProcess;

/// Where and how to run PostgreSQL.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The cluster lives in `<dir>/data`, the log in `<dir>/postgres.log`; kept between runs.
    pub dir: PathBuf,
    /// The port; a free one when `None`.
    pub port: Option<u16>,
    /// `false` turns off fsync: faster, and still safe when only the server process dies
    /// (the kernel keeps what was written), but not when the machine does.
    pub durable: bool,
    /// With a password, every connection authenticates with scram-sha-256 and the `postgres`
    /// superuser has this one; without, 127.0.0.1 is trusted (throw-away test servers).
    pub superuser_password: Option<String>,
    /// More `name=value` server settings, e.g. `shared_preload_libraries=pg_stat_statements`.
    pub settings: Vec<String>,
}

/// A PostgreSQL server child process on 127.0.0.1 (no Unix socket).
pub struct PostgresServer {
    bin: PathBuf,
    options: PostgresOptions,
    port: u16,
    owner: Option<(Uid, Gid)>,
    process: Option<ServerProcess>,
    _temp: Option<TempDir>,
}

impl PostgresServer {
    /// Starts a throw-away, non-durable server in a temporary directory, removed on drop.
    pub async fn temporary() -> anyhow::Result<Self> {
        let temp = crate::temp_dir("pg")?;
        let options = PostgresOptions {
            dir: temp.path().to_path_buf(),
            port: None,
            durable: false,
            superuser_password: None,
            settings: Vec::new(),
        };
        let mut server = Self::start(options).await?;
        server._temp = Some(temp);
        Ok(server)
    }

    /// Initialises the cluster if needed and starts the server.
    pub async fn start(options: PostgresOptions) -> anyhow::Result<Self> {
        let bin = crate::binaries::postgres_bin_dir()?;
        let owner = server_owner()?;
        std::fs::create_dir_all(options.dir.join("data"))
            .with_context(|| format!("cannot create {}", options.dir.display()))?;
        if let Some((uid, gid)) = owner {
            for dir in [options.dir.as_path(), &options.dir.join("data")] {
                std::os::unix::fs::chown(dir, Some(uid.as_raw()), Some(gid.as_raw()))?;
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = match options.port {
                Some(port) => port,
                None => crate::free_port()?,
            };
            let mut server = PostgresServer {
                bin: bin.clone(),
                options: options.clone(),
                port,
                owner,
                process: None,
                _temp: None,
            };
            server.init_cluster().await?;
            match server.launch_secured().await {
                Ok(()) => return Ok(server),
                Err(e) if options.port.is_none() && attempt < 3 => {
                    tracing::debug!("postgres on port {port} failed, trying another: {e:#}");
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn command(&self, program: &str) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
    }

    fn data_dir(&self) -> PathBuf {
        self.options.dir.join("data")
    }

    async fn init_cluster(&self) -> anyhow::Result<()> {
        if self.data_dir().join("PG_VERSION").exists() {
            return Ok(());
        }
        let mut command = self.command("initdb");
        command.arg("--pgdata").arg(self.data_dir()).args([
            "--username=postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        if !output.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    }

    /// Starts the server; with a superuser password, makes sure it is set and required (a
    /// cluster that trusted connections, new or from an earlier run, is converted on the way).
    async fn launch_secured(&mut self) -> anyhow::Result<()> {
        let Some(password) = self.options.superuser_password.clone() else {
            return self.launch().await;
        };
        let hba = self.data_dir().join("pg_hba.conf");
        let secured = "host all all 127.0.0.1/32 scram-sha-256\n";
        if std::fs::read_to_string(&hba).unwrap_or_default() == secured {
            return self.launch().await;
        }
        self.launch().await?;
        let mut psql = tokio::process::Command::new(self.bin.join("psql"));
        psql.args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
        ])
        .arg("-p")
        .arg(self.port.to_string())
        // From the environment, not the command line, which anyone may read in `ps`.
        .env("ATES_SUPERUSER_PASSWORD", &password)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        let mut child = psql.spawn().context("run psql")?;
        let mut stdin = child.stdin.take().expect("piped");
        tokio::io::AsyncWriteExt::write_all(
            &mut stdin,
            b"\\getenv password ATES_SUPERUSER_PASSWORD\nSET password_encryption = 'scram-sha-256';\n\
              ALTER ROLE postgres PASSWORD :'password';\n",
        )
        .await?;
        drop(stdin);
        let output = child.wait_with_output().await?;
        if !output.status.success() {
            bail!("cannot set the superuser's password: {}", String::from_utf8_lossy(&output.stderr));
        }
        std::fs::write(&hba, secured).with_context(|| format!("cannot write {}", hba.display()))?;
        self.stop().await?;
        self.launch().await
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut command = self.command("postgres");
        command.arg("-D").arg(self.data_dir()).arg("-p").arg(self.port.to_string());
        for setting in [
            "listen_addresses=127.0.0.1",
            "unix_socket_directories=",
            "max_connections=300",
            "shared_buffers=256MB",
        ] {
            command.arg("-c").arg(setting);
        }
        for setting in &self.options.settings {
            command.arg("-c").arg(setting);
        }
        if !self.options.durable {
            command.args(["-c", "fsync=off", "-c", "full_page_writes=off"]);
        }
        let log = self.options.dir.join("postgres.log");
        // SIGTERM on parent death is a "smart" shutdown: with its clients gone it stops cleanly.
        let mut process = ServerProcess::spawn("postgres", command, &log, Signal::SIGTERM)?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            process.ensure_running()?;
            if self.accepts_connections().await? {
                self.process = Some(process);
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!("postgres did not become ready in 60 s:\n{}", process.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn accepts_connections(&self) -> anyhow::Result<bool> {
        let status = tokio::process::Command::new(self.bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-U", "postgres", "-t", "1", "-p"])
            .arg(self.port.to_string())
            .status()
            .await?;
        Ok(status.success())
    }

    /// A connection URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        let mut url = url::Url::parse(&format!("postgres://postgres@127.0.0.1:{}/{database}", self.port))
            .expect("a valid URL");
        if let Some(password) = &self.options.superuser_password {
            url.set_password(Some(password)).expect("a URL with a host");
        }
        url.into()
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory root given at start.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// Whether the server process is up.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// The process id of the postmaster (its backends are its children), while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// Fast shutdown (SIGINT): open transactions roll back, committed data stays.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        ServerProcess::stop(&mut self.process, Signal::SIGINT, Duration::from_secs(30)).await
    }

    /// SIGKILL of the postmaster: a crash, recovered from the WAL on restart.
    pub fn kill(&mut self) {
        ServerProcess::kill_slot(&mut self.process);
    }

    /// Starts the server again on the same port and data; after a kill, waits until the old
    /// backends have let go of shared memory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.launch().await {
                Ok(()) => return Ok(()),
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!("postgres restart failed, retrying: {e:#}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// PostgreSQL refuses to run as root: then it runs as the `postgres` user.
fn server_owner() -> anyhow::Result<Option<(Uid, Gid)>> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    let user = User::from_name("postgres")?.context(
        "running as root, and there is no `postgres` user to run PostgreSQL as: install the \
         postgresql package (scripts/install-deps does)",
    )?;
    Ok(Some((user.uid, user.gid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `SELECT 1` on `server` as the superuser, with `password` if given.
    async fn select_one(server: &PostgresServer, password: Option<&str>) -> bool {
        let mut psql = tokio::process::Command::new(server.bin.join("psql"));
        psql.args([
            "-X",
            "-w",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            "SELECT 1",
            "-p",
        ])
        .arg(server.port.to_string())
        .env_remove("PGPASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        if let Some(password) = password {
            psql.env("PGPASSWORD", password);
        }
        psql.status().await.unwrap().success()
    }

    #[tokio::test]
    async fn a_cluster_that_trusted_connections_requires_the_password_once_it_is_given() {
        let temp = crate::temp_dir("pg-secure").unwrap();
        let options = |password: Option<&str>| PostgresOptions {
            dir: temp.path().to_path_buf(),
            port: None,
            durable: false,
            superuser_password: password.map(str::to_owned),
            settings: Vec::new(),
        };
        let mut trusting = PostgresServer::start(options(None)).await.unwrap();
        assert!(select_one(&trusting, None).await, "without a password it trusts 127.0.0.1");
        trusting.stop().await.unwrap();

        let mut secured = PostgresServer::start(options(Some("it's \"secret\""))).await.unwrap();
        assert!(!select_one(&secured, None).await, "now a password is required");
        assert!(!select_one(&secured, Some("wrong")).await);
        assert!(select_one(&secured, Some("it's \"secret\"")).await);
        assert!(secured.url("postgres").contains("@127.0.0.1"));
        secured.restart().await.unwrap();
        assert!(select_one(&secured, Some("it's \"secret\"")).await, "and after a restart");
        secured.stop().await.unwrap();
    }
}
