//! Fuzzing the API of a running `ates dev` with schemathesis, as a signed-in admin: no answer is
//! a server error, and every answer is one the OpenAPI document describes.

use std::path::PathBuf;
use std::process::Command;

use crate::Dev;

/// Cases generated per operation and phase: the whole run stays within a couple of minutes.
const MAX_EXAMPLES: &str = "40";

/// What the fuzzer checks: the document's promises, and that data it allows is accepted.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_schema_conformance,response_headers_conformance,positive_data_acceptance";

/// The schemathesis the test command installed (`scripts/install-deps`), or `ATES_SCHEMATHESIS`.
fn schemathesis() -> PathBuf {
    let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/schemathesis");
    let path = std::env::var_os("ATES_SCHEMATHESIS").map_or(installed, PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-deps (or set ATES_SCHEMATHESIS)",
        path.display()
    );
    path
}

/// The number after `label` on a line of the summary, e.g. `Tested: 27`.
fn figure(summary: &str, label: &str) -> Option<u32> {
    summary
        .lines()
        .find_map(|line| line.trim().strip_prefix(label)?.trim().split(['/', ' ']).next()?.parse().ok())
}

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    let dev = Dev::start(&[]).await;
    let token = dev.admin_token().await;
    // Someone tasks can be assigned to, so creating one gets past "nobody to assign".
    let worker = serde_json::json!({
        "email": "worker@example.com", "full_name": "Fuzzy Popug", "password": "popug-fuzz-1", "role": "worker"
    });
    let created =
        dev.http.post(format!("{}/api/accounts", dev.base)).bearer_auth(&token).json(&worker).send();
    assert_eq!(created.await.unwrap().status(), reqwest::StatusCode::CREATED, "a worker to assign tasks to");
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/dev");
    let mut command = Command::new(schemathesis());
    command.env("SCHEMATHESIS_HOOKS", here.join("schemathesis_hooks.py"));
    // Its cache of crashes goes into the working directory: the test's own.
    command
        .current_dir(dev.dir.path())
        .arg("--config-file")
        .arg(here.join("schemathesis.toml"))
        .args(["--no-color", "run", &format!("{}/api/openapi.json", dev.base)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS, "--max-examples", MAX_EXAMPLES, "--seed", "1"]);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);

    assert!(
        output.status.success(),
        "schemathesis found failures:\n{printed}\n{}\nates dev's log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        dev.log()
    );
    let operations = figure(&printed, "Selected:").expect("the summary names the operations");
    assert!(operations >= 25, "every operation of the merged document is selected: {printed}");
    assert_eq!(figure(&printed, "Tested:"), Some(operations), "and every one is tested: {printed}");
    let summary = printed.lines().skip_while(|l| !l.contains("SUMMARY")).collect::<Vec<_>>().join("\n");
    eprintln!("{summary}");
}
