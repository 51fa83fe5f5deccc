//! The committed schema files and the lock that pins released versions.
//!
//! `<domain>/<event>/<version>.json` holds the schema generated from the Rust type;
//! `schemas.lock` holds the SHA-256 of every released file. Code and files must agree, and a
//! released file never changes: a new shape is a new version.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::catalog::{CATALOG, Entry};

/// The lock file's name, in the schemas folder.
pub const LOCK_FILE: &str = "schemas.lock";

/// The schemas folder of this source tree.
pub fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The exact text a schema file must have.
pub fn render(entry: &Entry) -> String {
    let mut text = serde_json::to_string_pretty(&entry.schema()).expect("a schema serializes");
    text.push('\n');
    text
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Reads `schemas.lock`: file path → hash.
fn read_lock(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let text = match std::fs::read_to_string(dir.join(LOCK_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(char::is_whitespace))
        .map(|(hash, file)| (file.trim().to_owned(), hash.to_owned()))
        .collect())
}

fn write_lock(dir: &Path, lock: &BTreeMap<String, String>) -> std::io::Result<()> {
    let mut text = String::from(
        "# SHA-256 of every released schema file. A released file never changes:\n\
         # change the event with a new version instead.\n",
    );
    for (file, hash) in lock {
        let _ = writeln!(text, "{hash}  {file}");
    }
    std::fs::write(dir.join(LOCK_FILE), text)
}

/// Every way the committed files disagree with the code or the lock; empty when all is well.
pub fn check(dir: &Path) -> std::io::Result<Vec<String>> {
    let lock = read_lock(dir)?;
    let mut problems = Vec::new();
    for entry in CATALOG {
        let file = entry.file();
        let expected = render(entry);
        match std::fs::read_to_string(dir.join(&file)) {
            Err(_) => problems.push(format!(
                "{file} is missing for {} v{}; run `ates schemas write`",
                entry.name, entry.version
            )),
            Ok(committed) if committed != expected => problems.push(format!(
                "{file} differs from the Rust type of {} v{}; a released schema never changes, \
                 so add a new version (or, if it is unreleased, run `ates schemas write`)",
                entry.name, entry.version
            )),
            Ok(_) => {}
        }
        if !lock.contains_key(&file) {
            problems.push(format!("{file} is not pinned in {LOCK_FILE}; run `ates schemas write`"));
        }
    }
    for (file, hash) in &lock {
        match std::fs::read_to_string(dir.join(file)) {
            Err(_) => problems.push(format!("released schema {file} was deleted")),
            Ok(text) if sha256(&text) != *hash => problems
                .push(format!("released schema {file} changed; its hash no longer matches {LOCK_FILE}")),
            Ok(_) => {}
        }
        if !CATALOG.iter().any(|entry| entry.file() == *file) {
            problems.push(format!("released schema {file} has no Rust type in the catalog"));
        }
    }
    Ok(problems)
}

/// Writes the file of every catalog entry and pins new ones in the lock.
///
/// Refuses, changing nothing, when that would alter a released (pinned) file.
pub fn write(dir: &Path) -> Result<Vec<String>, WriteError> {
    let mut lock = read_lock(dir)?;
    let rendered: Vec<(String, String)> = CATALOG.iter().map(|e| (e.file(), render(e))).collect();
    let changed_released: Vec<String> = rendered
        .iter()
        .filter(|(file, text)| lock.get(file).is_some_and(|hash| *hash != sha256(text)))
        .map(|(file, _)| file.clone())
        .collect();
    if !changed_released.is_empty() {
        return Err(WriteError::Released(changed_released));
    }
    let mut written = Vec::new();
    for (file, text) in rendered {
        let path = dir.join(&file);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::create_dir_all(path.parent().expect("schema files live in folders"))?;
            std::fs::write(&path, &text)?;
            written.push(file.clone());
        }
        lock.insert(file, sha256(&text));
    }
    write_lock(dir, &lock)?;
    Ok(written)
}

/// Why the schema files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The code changed a released schema.
    #[error(
        "these released schemas would change: {}; keep the old type and add a new version instead",
        .0.join(", ")
    )]
    Released(Vec<String>),
    /// The files could not be read or written.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
