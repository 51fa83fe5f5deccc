//! nats-server and PostgreSQL as child processes: for tests, benchmarks and `ates dev`.
//!
//! Each server gets its own data directory and port, and can be stopped gracefully, killed
//! with SIGKILL and restarted on the same port and data, which is what fault tests need.
//! Children get a parent-death signal, so a crashed or killed parent leaves nothing behind.

pub mod binaries;
mod child;
mod nats;
mod postgres;

pub use child::Program;
pub use nats::{ClusterNode, NatsCluster, NatsOptions, NatsServer, NatsUserConfig};
pub use postgres::{PostgresOptions, PostgresServer};

/// Writes `text` to `path`, readable and writable by its owner only from the moment the file
/// exists: one already there is replaced by a new file, never loosened or changed afterwards.
pub fn write_secret(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot replace {}", path.display())),
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// A TCP port on 127.0.0.1 that nothing listens on right now.
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// A temporary directory for a server of `kind`, named after this process so that
/// [`sweep_stale_temp_dirs`] can recognise it once the process is gone.
pub(crate) fn temp_dir(kind: &str) -> std::io::Result<tempfile::TempDir> {
    sweep_stale_temp_dirs();
    tempfile::Builder::new().prefix(&format!("ates-{kind}-{}-", std::process::id())).tempdir()
}

/// Removes the temporary server directories of processes that no longer exist. A server
/// shared by a whole test binary is never dropped, so its directory is swept by a later run.
fn sweep_stale_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("ates-")) else { continue };
        let owner = rest.split('-').nth(1).and_then(|pid| pid.parse::<u32>().ok());
        if owner.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
