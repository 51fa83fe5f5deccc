//! compose.yaml, the Dockerfile, the gateway and the README agree.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn repo(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The services the README's Compose section lists, as `name` in its table.
fn readme_services() -> BTreeSet<String> {
    let readme = repo("README.md");
    let section = readme.split("### Compose").nth(1).expect("the README has a Compose section");
    let section = section.split("\n## ").next().unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn compose_yaml_parses_and_has_every_service_the_readme_names() {
    let mut compose: serde_norway::Value =
        serde_norway::from_str(&repo("compose.yaml")).expect("compose.yaml parses");
    compose.apply_merge().unwrap();
    let services = compose["services"].as_mapping().expect("a services map");
    let names: BTreeSet<String> = services.keys().map(|k| k.as_str().unwrap().to_owned()).collect();

    assert_eq!(names, readme_services(), "compose.yaml and the README name the same services");
    for expected in
        ["nats", "postgres", "mailpit", "auth", "task-tracker", "accounting", "analytics", "gateway"]
    {
        assert!(names.contains(expected), "{expected} is missing");
    }
    let dockerfile = repo("Dockerfile");
    let gateway = repo("deploy/gateway.conf");
    for service in ["auth", "task-tracker", "accounting", "analytics"] {
        let definition = &services[service];
        let _ = definition["build"].as_str().expect("built from the Dockerfile");
        let binary = definition["command"][0].as_str().unwrap();
        assert!(dockerfile.contains(&format!("--bin {binary}")), "the Dockerfile builds {binary}");
        let env = &definition["environment"];
        assert!(
            env["DATABASE_URL"].as_str().unwrap().contains("@postgres:"),
            "{service} uses the postgres service"
        );
        assert_eq!(env["NATS_URL"].as_str(), Some("nats://nats:4222"));
        let listen = env["ATES_HTTP"].as_str().unwrap();
        let port = listen.rsplit(':').next().unwrap();
        assert!(gateway.contains(&format!("http://{service}:{port}")), "the gateway routes to {service}");
    }
    assert!(
        services["nats"]["command"].as_sequence().unwrap().iter().any(|a| a.as_str() == Some("--jetstream"))
    );
    assert!(services["accounting"]["environment"]["SMTP_URL"].as_str().unwrap().contains("mailpit"));
}
