//! Finding the server binaries: an explicit setting, then the project's `.tools`, then `PATH`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The oldest nats-server whose JetStream API aTES relies on.
const MIN_NATS: (u32, u32, u32) = (2, 10, 0);

/// The nats-server binary: `ATES_NATS_SERVER`, else `.tools/bin/nats-server` in this project,
/// else `nats-server` on `PATH`; refused when older than 2.10.
pub fn nats_server() -> anyhow::Result<PathBuf> {
    let path = if let Some(path) = std::env::var_os("ATES_NATS_SERVER") {
        PathBuf::from(path)
    } else if let Some(path) = project_tool("nats-server") {
        path
    } else if let Some(path) = on_path("nats-server") {
        path
    } else {
        bail!("nats-server not found: run scripts/install-deps, or set ATES_NATS_SERVER to the binary");
    };
    let output = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run {}", path.display()))?;
    let version = String::from_utf8_lossy(&output.stdout);
    match parse_version(&version) {
        Some(found) if found >= MIN_NATS => Ok(path),
        _ => bail!(
            "{} reports {:?}; aTES needs nats-server 2.10 or newer: run scripts/install-deps",
            path.display(),
            version.trim()
        ),
    }
}

/// The folder with `postgres`, `initdb` and `pg_isready`: `ATES_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else the folder of `postgres` on `PATH`.
pub fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("ATES_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = debian {
        return Ok(bin);
    }
    if let Some(dir) = on_path("initdb").and_then(|p| p.parent().map(Path::to_path_buf)) {
        return Ok(dir);
    }
    bail!("PostgreSQL not found: run scripts/install-deps, or set ATES_PG_BIN to its bin folder")
}

/// `.tools/bin/<name>` in the project folder that holds the current directory or this binary.
fn project_tool(name: &str) -> Option<PathBuf> {
    let mut starts = vec![PathBuf::from(env!("CARGO_MANIFEST_DIR"))];
    starts.extend(std::env::current_dir().ok());
    starts.extend(std::env::current_exe().ok());
    starts
        .iter()
        .flat_map(|start| start.ancestors())
        .map(|dir| dir.join(".tools/bin").join(name))
        .find(|path| path.is_file())
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join(name)).find(|path| path.is_file())
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let version = text.split_whitespace().find_map(|word| word.strip_prefix('v'))?;
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).take(3).map(|part| part.parse().ok());
    Some((parts.next()??, parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_parse_from_the_version_line() {
        assert_eq!(super::parse_version("nats-server: v2.12.8\n"), Some((2, 12, 8)));
        assert_eq!(super::parse_version("nats-server: v2.9.25"), Some((2, 9, 25)));
        assert_eq!(super::parse_version("garbage"), None);
    }
}
