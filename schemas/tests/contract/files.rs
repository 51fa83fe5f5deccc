use std::path::Path;

use ates_schemas::catalog::CATALOG;
use ates_schemas::files::{self, LOCK_FILE, WriteError};

/// A copy of the committed schemas folder to tamper with.
fn copy_of_committed() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy(&files::source_dir(), dir.path());
    dir
}

fn copy(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let (source, target) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            if ["src", "tests", "target"].contains(&name.to_str().unwrap()) {
                continue;
            }
            std::fs::create_dir_all(&target).unwrap();
            copy(&source, &target);
        } else if name == LOCK_FILE || source.extension().is_some_and(|e| e == "json") {
            std::fs::copy(&source, &target).unwrap();
        }
    }
}

#[test]
fn committed_schema_files_match_the_code_and_the_lock() {
    let problems = files::check(&files::source_dir()).unwrap();
    assert!(problems.is_empty(), "run `cargo run -p ates -- schemas write`:\n{}", problems.join("\n"));
}

#[test]
fn every_catalog_entry_has_its_file_at_domain_event_version() {
    for entry in CATALOG {
        let path = files::source_dir().join(entry.file());
        assert!(path.is_file(), "{} is missing", path.display());
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        assert_eq!(schema["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(schema["properties"]["event_name"]["const"], entry.name);
        assert_eq!(schema["properties"]["event_version"]["const"], entry.version);
    }
    assert_eq!(CATALOG.len(), 11, "the design's catalog has eleven event versions");
}

#[test]
fn a_changed_released_file_fails_the_check() {
    let dir = copy_of_committed();
    let file = dir.path().join("tasks/added/2.json");
    let edited = std::fs::read_to_string(&file).unwrap().replace("\"maxLength\": 300", "\"maxLength\": 301");
    std::fs::write(&file, edited).unwrap();

    let problems = files::check(dir.path()).unwrap();

    assert!(
        problems.iter().any(|p| p.contains("released schema tasks/added/2.json changed")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("tasks/added/2.json differs from the Rust type")),
        "{problems:?}"
    );
}

#[test]
fn writing_refuses_to_change_a_released_file() {
    let dir = copy_of_committed();
    // A lock that pinned different content stands for code that changed a released type.
    let lock = dir.path().join(LOCK_FILE);
    let text = std::fs::read_to_string(&lock).unwrap();
    let line = text.lines().find(|l| l.ends_with("tasks/completed/1.json")).unwrap();
    std::fs::write(&lock, text.replace(line, &format!("{}  tasks/completed/1.json", "0".repeat(64))))
        .unwrap();

    let error = files::write(dir.path()).unwrap_err();

    assert!(matches!(&error, WriteError::Released(files) if files == &["tasks/completed/1.json"]), "{error}");
}

#[test]
fn a_new_version_is_written_and_pinned() {
    let dir = copy_of_committed();
    std::fs::remove_file(dir.path().join("accounting/payout_sent/1.json")).unwrap();
    let lock = dir.path().join(LOCK_FILE);
    let text = std::fs::read_to_string(&lock).unwrap();
    let unpinned: String = text
        .lines()
        .filter(|l| !l.ends_with("accounting/payout_sent/1.json"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&lock, unpinned).unwrap();
    assert_eq!(files::check(dir.path()).unwrap().len(), 2);

    let written = files::write(dir.path()).unwrap();

    assert_eq!(written, ["accounting/payout_sent/1.json"]);
    assert!(files::check(dir.path()).unwrap().is_empty());
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), text);
}

#[test]
fn a_deleted_released_file_fails_the_check() {
    let dir = copy_of_committed();
    std::fs::remove_file(dir.path().join("accounts/created/1.json")).unwrap();

    let problems = files::check(dir.path()).unwrap();

    assert!(
        problems.iter().any(|p| p == "released schema accounts/created/1.json was deleted"),
        "{problems:?}"
    );
}
