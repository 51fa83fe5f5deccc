//! compose.yaml and the files it mounts from deploy/ agree with the code, the Dockerfile and the
//! README: each service connects as its own NATS user, whose permissions in
//! deploy/nats/users.conf are exactly what the code computes, and as its own PostgreSQL role,
//! which deploy/postgres makes; no secret has a default; nothing is published beyond 127.0.0.1;
//! and the `cluster` profile is a three-node JetStream cluster with two instances of the task
//! tracker and of accounting. Docker is not needed: the NATS configurations and the database
//! init script run here on local nats-server and PostgreSQL, and every service starts with
//! exactly the environment compose gives it.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ates::credentials::{OPERATOR, SERVICES, Service};
use ates_devservers::{PostgresOptions, PostgresServer};
use ates_messaging::permissions::Permissions;
use serde_norway::Value;

/// Variable name → value: an env file, or a container's environment.
type Env = BTreeMap<String, String>;

/// The overlay that turns the single-node default into the cluster.
const CLUSTER_ENV: &str = "deploy/cluster.env";

pub(crate) fn repo_path(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(file)
}

pub(crate) fn repo(file: &str) -> String {
    let path = repo_path(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The services the README's Compose section lists, as `name` in its `| service |` table.
fn readme_services() -> BTreeSet<String> {
    let readme = repo("README.md");
    let section = readme.split("### Compose").nth(1).expect("the README has a Compose section");
    let section = section.split("\n## ").next().unwrap();
    let table = section.split("\n| service |").nth(1).expect("a table of the services");
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// compose.yaml as compose reads it

/// compose.yaml with its merge keys (`<<: *anchor`) applied, anchors within anchors too.
fn compose() -> Value {
    let mut compose: Value = serde_norway::from_str(&repo("compose.yaml")).expect("compose.yaml parses");
    loop {
        let before = compose.clone();
        compose.apply_merge().expect("its merge keys apply");
        if compose == before {
            return compose;
        }
    }
}

/// The variables an env file sets: `NAME=value` lines, `#` comments.
fn env_file(file: &str) -> Env {
    repo(file)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, value) =
                l.split_once('=').unwrap_or_else(|| panic!("{file}: {l:?} is not NAME=value"));
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// Every variable deploy/example.env documents: set there, or commented out with its default.
fn documented_variables() -> BTreeSet<String> {
    repo("deploy/example.env")
        .lines()
        .filter_map(|line| {
            let (name, _) = line.trim().trim_start_matches('#').trim().split_once('=')?;
            let variable = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            variable.then(|| name.to_owned())
        })
        .collect()
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// What compose makes of `text`: `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
/// `${NAME:?error}`, `${NAME?error}`, `${NAME:+other}`, `${NAME+other}`, `$NAME` and `$$`; an
/// error where a required variable is missing.
fn interpolate(text: &str, env: &Env) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("{text:?} has an unclosed ${{"))?;
            out.push_str(&substitute(&body[..end], env)?);
            rest = &body[end + 1..];
        } else {
            let end = rest.find(|c| !is_name_char(c)).unwrap_or(rest.len());
            out.push_str(env.get(&rest[..end]).map_or("", String::as_str));
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The value of one `${...}`.
fn substitute(expression: &str, env: &Env) -> Result<String, String> {
    let (name, operation, argument) = reference(expression);
    let set = env.get(name);
    let non_empty = set.filter(|v| !v.is_empty());
    match operation {
        "" => Ok(set.cloned().unwrap_or_default()),
        ":-" => non_empty.cloned().map_or_else(|| interpolate(argument, env), Ok),
        "-" => set.cloned().map_or_else(|| interpolate(argument, env), Ok),
        ":?" => non_empty.cloned().ok_or_else(|| format!("required variable {name} is missing: {argument}")),
        "?" => set.cloned().ok_or_else(|| format!("required variable {name} is missing: {argument}")),
        ":+" => non_empty.map_or_else(|| Ok(String::new()), |_| interpolate(argument, env)),
        "+" => set.map_or_else(|| Ok(String::new()), |_| interpolate(argument, env)),
        _ => Err(format!("${{{expression}}} is no interpolation compose knows")),
    }
}

/// `NAME:-default` → (`NAME`, `:-`, `default`).
fn reference(expression: &str) -> (&str, &str, &str) {
    let end = expression.find(|c| !is_name_char(c)).unwrap_or(expression.len());
    let (name, rest) = expression.split_at(end);
    for operation in [":-", ":?", ":+", "-", "?", "+"] {
        if let Some(argument) = rest.strip_prefix(operation) {
            return (name, operation, argument);
        }
    }
    (name, rest, "")
}

/// Every `${...}` in `text`, as (name, operation).
fn references(text: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        let body = &rest[at + 2..];
        let end = body.find('}').unwrap_or(body.len());
        let (name, operation, _) = reference(&body[..end]);
        found.push((name.to_owned(), operation.to_owned()));
        rest = &body[end..];
    }
    found
}

/// Every string in `value`.
fn strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Sequence(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Mapping(map) => map.values().for_each(|v| strings(v, out)),
        Value::Tagged(tagged) => strings(&tagged.value, out),
        _ => {}
    }
}

/// `value` with every string interpolated, as compose does (keys are not).
fn resolve(value: &Value, env: &Env) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(interpolate(s, env)?),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|v| resolve(v, env)).collect::<Result<_, _>>()?)
        }
        Value::Mapping(map) => {
            let mut out = serde_norway::Mapping::new();
            for (key, v) in map {
                out.insert(key.clone(), resolve(v, env)?);
            }
            Value::Mapping(out)
        }
        other => other.clone(),
    })
}

/// A scalar as compose passes it on: a string.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("{other:?} is not a scalar"),
    }
}

/// deploy/example.env with a distinct made-up value for each secret it leaves empty: letters
/// only, as it asks for.
fn example_env() -> Env {
    let mut env = env_file("deploy/example.env");
    for (name, value) in &mut env {
        if value.is_empty() {
            *value = format!("p{}", name.to_lowercase().replace('_', ""));
        }
    }
    env
}

/// What compose runs with deploy/example.env (secrets filled in) and then `overlays`.
struct Deployment {
    /// The variables it was interpolated with.
    env: Env,
    /// The services the active profiles enable, every variable substituted.
    services: BTreeMap<String, Value>,
}

fn deployment(overlays: &[&str]) -> Deployment {
    let mut env = example_env();
    for overlay in overlays {
        env.extend(env_file(overlay));
    }
    let resolved = resolve(&compose(), &env).unwrap_or_else(|e| panic!("{e}"));
    let profiles: BTreeSet<String> = env
        .get("COMPOSE_PROFILES")
        .map(|p| p.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    let services = resolved["services"]
        .as_mapping()
        .expect("a services map")
        .iter()
        .filter(|(_, service)| match service.get("profiles") {
            None => true,
            Some(list) => list.as_sequence().unwrap().iter().any(|p| profiles.contains(p.as_str().unwrap())),
        })
        .map(|(name, service)| (name.as_str().unwrap().to_owned(), service.clone()))
        .collect();
    Deployment { env, services }
}

/// The two ways to run it.
fn modes() -> [(&'static str, Deployment); 2] {
    [("single node", deployment(&[])), ("cluster", deployment(&[CLUSTER_ENV]))]
}

/// The binary that runs `service`.
fn binary(service: &Service) -> String {
    format!("ates-{}", service.bus.user)
}

/// `ATES_<KIND>_<NAME>_PASSWORD`: where compose takes the password of a user or role from.
fn password_variable(kind: &str, name: &str) -> String {
    format!("ATES_{kind}_{}_PASSWORD", name.to_uppercase().replace('-', "_"))
}

impl Deployment {
    fn service(&self, name: &str) -> &Value {
        self.services.get(name).unwrap_or_else(|| panic!("no service {name}"))
    }

    fn env_of(&self, name: &str) -> Env {
        match self.service(name).get("environment") {
            None => Env::new(),
            Some(Value::Mapping(map)) => {
                map.iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), scalar(v))).collect()
            }
            Some(other) => panic!("{name}: write its environment as a map, not {other:?}"),
        }
    }

    fn command(&self, name: &str) -> Vec<String> {
        let command = self.service(name).get("command");
        command.and_then(Value::as_sequence).map(|c| c.iter().map(scalar).collect()).unwrap_or_default()
    }

    /// Every instance of an aTES service, with the service it runs.
    fn instances(&self) -> Vec<(&str, &'static Service)> {
        self.services
            .keys()
            .filter_map(|name| {
                let command = self.command(name);
                let service = SERVICES.iter().find(|s| command.first() == Some(&binary(s)))?;
                Some((name.as_str(), service))
            })
            .collect()
    }

    /// The NATS servers, by service name.
    fn nats_nodes(&self) -> Vec<&str> {
        let is_nats = |s: &Value| s["image"].as_str().is_some_and(|i| i.starts_with("nats:"));
        self.services.iter().filter(|(_, s)| is_nats(s)).map(|(name, _)| name.as_str()).collect()
    }

    /// The volumes of `name` as (source, target).
    fn volumes(&self, name: &str) -> Vec<(String, String)> {
        let volumes = self.service(name).get("volumes").and_then(Value::as_sequence);
        volumes
            .into_iter()
            .flatten()
            .map(|v| {
                let v = v.as_str().expect("volumes in the short syntax");
                let mut parts = v.split(':');
                (parts.next().unwrap().to_owned(), parts.next().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// The file of this checkout that `path` is inside the container `name` (bind mounts).
    fn host_file(&self, name: &str, path: &str) -> String {
        for (source, target) in self.volumes(name) {
            if let (Some(source), Some(rest)) =
                (source.strip_prefix("./"), path.strip_prefix(target.as_str()))
                && (rest.is_empty() || rest.starts_with('/'))
            {
                return format!("{source}{rest}");
            }
        }
        panic!("{name} has no bind mount holding {path}")
    }

    /// The file the NATS server `name` reads its configuration from.
    fn nats_config(&self, name: &str) -> String {
        let command = self.command(name);
        let at = command.iter().position(|a| a == "--config" || a == "-c");
        let path = at.and_then(|at| command.get(at + 1)).unwrap_or_else(|| panic!("{name} names its config"));
        self.host_file(name, path)
    }
}

// ---------------------------------------------------------------------------------------------
// The configuration syntax of nats-server, as far as deploy/nats uses it

#[derive(Debug, Clone, PartialEq)]
enum Conf {
    Map(Vec<(String, Conf)>),
    List(Vec<Conf>),
    /// A quoted or bare string (numbers and booleans are not told apart: these files need not).
    Text(String),
    /// `$NAME`, unquoted: nats-server takes it from the environment.
    Variable(String),
}

impl Conf {
    fn get(&self, key: &str) -> Option<&Conf> {
        match self {
            Conf::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        match self {
            Conf::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Conf::Text(text) => Some(text),
            _ => None,
        }
    }

    fn list(&self) -> &[Conf] {
        match self {
            Conf::List(items) => items,
            other => panic!("{other:?} is not a list"),
        }
    }

    /// Every `$NAME` in it.
    fn variables(&self, out: &mut BTreeSet<String>) {
        match self {
            Conf::Map(entries) => entries.iter().for_each(|(_, v)| v.variables(out)),
            Conf::List(items) => items.iter().for_each(|v| v.variables(out)),
            Conf::Variable(name) => {
                out.insert(name.clone());
            }
            Conf::Text(_) => {}
        }
    }
}

struct ConfParser<'a> {
    text: &'a str,
    at: usize,
}

impl ConfParser<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn line(&self) -> usize {
        self.text[..self.at].lines().count()
    }

    /// Skips blanks, separators and comments.
    fn skip(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() || c == ',' || c == ';' => {
                    self.bump();
                }
                Some('#') => self.skip_line(),
                Some('/') if self.text[self.at..].starts_with("//") => self.skip_line(),
                _ => return,
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.bump() {
            if c == '\n' {
                return;
            }
        }
    }

    fn word(&mut self, stop: impl Fn(char) -> bool) -> String {
        let start = self.at;
        while let Some(c) = self.peek() {
            if c.is_whitespace() || stop(c) {
                break;
            }
            self.bump();
        }
        self.text[start..self.at].to_owned()
    }

    /// Entries up to `close`, or to the end for the top level.
    fn map(&mut self, close: Option<char>) -> Result<Conf, String> {
        let mut entries = Vec::new();
        loop {
            self.skip();
            match self.peek() {
                None if close.is_none() => return Ok(Conf::Map(entries)),
                None => return Err("a block is not closed".into()),
                Some(c) if Some(c) == close => {
                    self.bump();
                    return Ok(Conf::Map(entries));
                }
                _ => {}
            }
            let key = if self.peek() == Some('"') {
                self.quoted()?
            } else {
                self.word(|c| matches!(c, ':' | '=' | '{' | '[' | '}' | ','))
            };
            if key.is_empty() {
                return Err(format!("line {}: a key was expected", self.line()));
            }
            while matches!(self.peek(), Some(' ' | '\t')) {
                self.bump();
            }
            if matches!(self.peek(), Some(':' | '=')) {
                self.bump();
            }
            let value = self.value()?;
            entries.push((key, value));
        }
    }

    fn value(&mut self) -> Result<Conf, String> {
        self.skip();
        match self.peek() {
            Some('{') => {
                self.bump();
                self.map(Some('}'))
            }
            Some('[') => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip();
                    match self.peek() {
                        Some(']') => {
                            self.bump();
                            return Ok(Conf::List(items));
                        }
                        None => return Err("a list is not closed".into()),
                        _ => items.push(self.value()?),
                    }
                }
            }
            Some('"') => Ok(Conf::Text(self.quoted()?)),
            Some('$') => {
                self.bump();
                Ok(Conf::Variable(self.word(|c| !is_name_char(c))))
            }
            Some(_) => Ok(Conf::Text(self.word(|c| matches!(c, ',' | ']' | '}' | '#')))),
            None => Err("a value was expected at the end".into()),
        }
    }

    fn quoted(&mut self) -> Result<String, String> {
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(out),
                Some('\\') => out.push(self.bump().ok_or("a quote is not closed")?),
                Some(c) => out.push(c),
                None => return Err("a quote is not closed".into()),
            }
        }
    }
}

/// A nats-server configuration file of this checkout, with its top-level `include`s in place.
fn nats_conf(file: &str) -> Conf {
    let text = repo(file);
    let parsed = ConfParser { text: &text, at: 0 }.map(None).unwrap_or_else(|e| panic!("{file}: {e}"));
    let Conf::Map(entries) = parsed else { unreachable!() };
    let mut out = Vec::new();
    for (key, value) in entries {
        if key == "include" {
            let included = value.text().expect("include names a file");
            let path = Path::new(file).parent().unwrap().join(included);
            let Conf::Map(included) = nats_conf(path.to_str().unwrap()) else { unreachable!() };
            out.extend(included);
        } else {
            out.push((key, value));
        }
    }
    Conf::Map(out)
}

/// A NATS user as a configuration grants it: name, the variable holding its password, and its
/// permissions (`None`: everything).
#[derive(Debug, PartialEq)]
struct NatsUser {
    name: String,
    password: String,
    permissions: Option<(BTreeSet<String>, BTreeSet<String>)>,
}

fn nats_users(conf: &Conf) -> Vec<NatsUser> {
    let authorization = conf.get("authorization").expect("an authorization block");
    assert_eq!(authorization.keys(), ["users"], "users, and no other way in");
    let allowed = |kind: &Conf| -> BTreeSet<String> {
        assert_eq!(kind.keys(), ["allow"], "permissions are allow lists: {kind:?}");
        let list = kind.get("allow").unwrap().list();
        let subjects: BTreeSet<String> = list.iter().map(|s| s.text().unwrap().to_owned()).collect();
        assert_eq!(subjects.len(), list.len(), "a subject appears twice in {list:?}");
        subjects
    };
    let users = authorization.get("users").unwrap().list();
    users
        .iter()
        .map(|user| {
            let name = user.get("user").and_then(Conf::text).expect("a user name").to_owned();
            let password = match user.get("password") {
                Some(Conf::Variable(variable)) => variable.clone(),
                other => panic!("{name}'s password must come from the environment ($VAR), not {other:?}"),
            };
            let permissions = user.get("permissions").map(|p| {
                assert_eq!(p.keys(), ["publish", "subscribe"], "{name}'s permissions");
                (allowed(p.get("publish").unwrap()), allowed(p.get("subscribe").unwrap()))
            });
            for key in user.keys() {
                assert!(["user", "password", "permissions"].contains(&key), "{name} has {key}");
            }
            NatsUser { name, password, permissions }
        })
        .collect()
}

/// The users the code says a nats-server must have: each service with exactly what its `BUS`
/// computes, and the operator with everything.
fn users_the_code_computes() -> Vec<(&'static str, Option<Permissions>)> {
    let services = SERVICES.iter().map(|s| (s.bus.user, Some(s.bus.permissions())));
    services.chain([(OPERATOR, None)]).collect()
}

/// The `authorization` block of deploy/nats/users.conf for those users.
fn users_conf_block() -> String {
    let list =
        |subjects: &[String]| -> String { subjects.iter().map(|s| format!("          {s:?}\n")).collect() };
    let mut text = String::from("authorization {\n  users: [\n");
    for (user, permissions) in users_the_code_computes() {
        let password = password_variable("NATS", user);
        match permissions {
            None => text.push_str(&format!("    {{ user: {user:?}, password: ${password} }}\n")),
            Some(Permissions { publish, subscribe }) => text.push_str(&format!(
                "    {{\n      user: {user:?}, password: ${password}\n      permissions: {{\n        \
                 publish: {{ allow: [\n{}        ] }}\n        subscribe: {{ allow: [\n{}        ] }}\n      \
                 }}\n    }}\n",
                list(&publish),
                list(&subscribe)
            )),
        }
    }
    text.push_str("  ]\n}\n");
    text
}

// ---------------------------------------------------------------------------------------------
// The files agree

#[test]
fn compose_yaml_parses_and_has_every_service_the_readme_names() {
    let compose = compose();
    let services = compose["services"].as_mapping().expect("a services map");
    let names: BTreeSet<String> = services.keys().map(|k| k.as_str().unwrap().to_owned()).collect();

    assert_eq!(names, readme_services(), "compose.yaml and the README name the same services");
    for expected in [
        "nats",
        "nats-2",
        "nats-3",
        "postgres",
        "mailpit",
        "auth",
        "task-tracker",
        "task-tracker-2",
        "accounting",
        "accounting-2",
        "analytics",
        "gateway",
        "prometheus",
        "grafana",
    ] {
        assert!(names.contains(expected), "{expected} is missing");
    }
    let dockerfile = repo("Dockerfile");
    let single = deployment(&[]);
    for service in &SERVICES {
        let binary = binary(service);
        assert!(dockerfile.contains(&format!("--bin {binary}")), "the Dockerfile builds {binary}");
        let definition = single.service(service.bus.user);
        assert_eq!(single.command(service.bus.user), [binary.as_str()], "{} runs {binary}", service.bus.user);
        assert_eq!(definition["build"].as_str(), Some("."), "built from the Dockerfile");
    }
    let accounting = single.env_of("accounting");
    assert!(accounting["SMTP_URL"].contains("mailpit"), "payout mail goes to Mailpit");
}

#[test]
fn no_password_has_a_default_and_every_variable_is_documented() {
    let compose = compose();
    let mut texts = Vec::new();
    strings(&compose["services"], &mut texts);
    let documented = documented_variables();
    let mut used = BTreeSet::new();
    for (name, operation) in texts.iter().flat_map(|t| references(t)) {
        assert!(documented.contains(&name), "compose.yaml uses {name}: document it in deploy/example.env");
        if name.ends_with("_PASSWORD") {
            assert_eq!(operation, ":?", "{name} is required, never defaulted (${{{name}:?...}})");
        }
        used.insert(name);
    }
    let readme = repo("README.md");
    let section = readme.split("### Compose").nth(1).unwrap().split("\n## ").next().unwrap();
    for (name, operation) in texts.iter().flat_map(|t| references(t)) {
        if operation == ":?" {
            assert!(section.contains(&format!("`{name}`")), "the README's Compose section names {name}");
        }
    }
    let unused: Vec<_> = documented.difference(&used).filter(|n| *n != "COMPOSE_PROFILES").collect();
    assert!(unused.is_empty(), "deploy/example.env documents {unused:?}, which compose.yaml does not use");

    let admin = compose["services"]["auth"]["environment"]["ATES_ADMIN_PASSWORD"].as_str().unwrap();
    assert!(admin.starts_with("${ATES_ADMIN_PASSWORD:?") && admin.ends_with('}'), "{admin}");

    // As committed, deploy/example.env holds no secret, and compose refuses to start with it.
    let committed = env_file("deploy/example.env");
    let passwords: Vec<&String> = committed.keys().filter(|n| n.ends_with("_PASSWORD")).collect();
    assert!(passwords.len() >= 11, "the admin's, 5 PostgreSQL and 5 NATS passwords: {passwords:?}");
    for name in &passwords {
        assert_eq!(committed[*name], "", "deploy/example.env leaves {name} empty: no secret in git");
    }
    assert!(resolve(&compose, &committed).is_err(), "compose refuses the empty passwords");
    // Each one alone is required.
    for name in &passwords {
        let mut env = example_env();
        env.insert((*name).clone(), String::new());
        let error = resolve(&compose, &env).expect_err(name);
        assert!(error.contains(&format!("required variable {name} is missing")), "{error}");
    }
    for name in env_file(CLUSTER_ENV).keys() {
        assert!(!name.contains("PASSWORD"), "{CLUSTER_ENV} is committed: no secret in it");
    }
}

#[test]
fn every_published_port_listens_on_127_0_0_1_only() {
    let compose = compose();
    let mut published = BTreeSet::new();
    for (name, service) in compose["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(service.get("network_mode").is_none(), "{name} stays on compose's network");
        for port in service.get("ports").and_then(Value::as_sequence).into_iter().flatten() {
            let host = match port {
                Value::String(port) => {
                    let parts: Vec<&str> = port.split(':').collect();
                    assert_eq!(parts.len(), 3, "{name}: {port:?} must name the host address");
                    published.insert(format!("{name} {port}"));
                    parts[0].to_owned()
                }
                Value::Mapping(port) => scalar(port.get("host_ip").unwrap_or(&Value::Null)),
                other => panic!("{name}: {other:?} must name the host address"),
            };
            assert_eq!(host, "127.0.0.1", "{name} publishes {port:?} beyond this machine");
        }
    }
    let expected = [
        "gateway 127.0.0.1:8080:8080",
        "mailpit 127.0.0.1:8025:8025",
        "prometheus 127.0.0.1:9090:9090",
        "grafana 127.0.0.1:3000:3000",
    ];
    assert_eq!(
        published,
        expected.map(str::to_owned).into(),
        "the UI, the mail inbox, Prometheus and Grafana, nothing else"
    );
}

#[test]
fn each_service_connects_as_its_own_nats_user_and_database_role() {
    let script = repo("deploy/postgres/10-ates-roles.sh");
    let schemas: Vec<&str> = SERVICES.iter().map(|s| s.schema).collect();
    assert!(
        script.contains(&format!("for schema in {}; do", schemas.join(" "))),
        "deploy/postgres/10-ates-roles.sh makes a role for each of {schemas:?}"
    );
    for (mode, deployment) in modes() {
        let postgres = deployment.env_of("postgres");
        assert_eq!(postgres["POSTGRES_DB"], "ates");
        assert_eq!(postgres["POSTGRES_USER"], "postgres");
        assert_eq!(postgres["POSTGRES_PASSWORD"], deployment.env["ATES_PG_SUPERUSER_PASSWORD"]);
        assert!(
            deployment.volumes("postgres").contains(&(
                "./deploy/postgres/10-ates-roles.sh".to_owned(),
                "/docker-entrypoint-initdb.d/10-ates-roles.sh".to_owned()
            )),
            "postgres runs the roles script when it initialises its volume"
        );
        let mut secrets =
            BTreeMap::from([(postgres["POSTGRES_PASSWORD"].clone(), "the superuser".to_owned())]);
        for (name, service) in deployment.instances() {
            let env = deployment.env_of(name);
            assert_eq!(env["NATS_USER"], service.bus.user, "{mode}: {name}'s NATS user");
            let nats_password = password_variable("NATS", service.bus.user);
            assert_eq!(
                env["NATS_PASSWORD"], deployment.env[&nats_password],
                "{mode}: {name} uses {nats_password}"
            );

            let url = reqwest::Url::parse(&env["DATABASE_URL"]).expect("DATABASE_URL is a URL");
            let role = format!("ates_{}", service.schema);
            assert_eq!(url.username(), role, "{mode}: {name} connects as its own role");
            let pg_password = password_variable("PG", service.schema);
            assert_eq!(
                url.password(),
                Some(deployment.env[&pg_password].as_str()),
                "{name} uses {pg_password}"
            );
            assert_eq!(postgres[&pg_password], deployment.env[&pg_password], "postgres gets {pg_password}");
            assert_eq!((url.host_str(), url.port(), url.path()), (Some("postgres"), Some(5432), "/ates"));

            for (secret, whose) in [(&env["NATS_PASSWORD"], "nats"), (&postgres[&pg_password], "pg")] {
                let owner = format!("{whose} {}", service.bus.user);
                let previous = secrets.insert(secret.clone(), owner.clone());
                assert!(previous.is_none() || previous == Some(owner), "{name} shares a password");
            }
        }
        assert_eq!(secrets.len(), 1 + 2 * SERVICES.len(), "{mode}: a password of its own for each");
    }
}

#[test]
fn the_nats_users_are_the_services_with_exactly_the_permissions_the_code_computes() {
    for file in ["deploy/nats/single.conf", "deploy/nats/cluster.conf"] {
        let users = nats_users(&nats_conf(file));
        let expected: Vec<NatsUser> = users_the_code_computes()
            .into_iter()
            .map(|(user, permissions)| NatsUser {
                name: user.to_owned(),
                password: password_variable("NATS", user),
                permissions: permissions
                    .map(|p| (p.publish.iter().cloned().collect(), p.subscribe.iter().cloned().collect())),
            })
            .collect();
        if users != expected {
            eprintln!("deploy/nats/users.conf should grant, from the code:\n\n{}", users_conf_block());
        }
        let names = |users: &[NatsUser]| users.iter().map(|u| u.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&users), names(&expected), "{file}: the users the code computes");
        for (user, expected) in users.iter().zip(&expected) {
            assert_eq!(user.password, expected.password, "{file}: where {}'s password comes from", user.name);
            let differences = match (&user.permissions, &expected.permissions) {
                (Some((publish, subscribe)), Some((want_publish, want_subscribe))) => {
                    [("publish", publish, want_publish), ("subscribe", subscribe, want_subscribe)]
                        .into_iter()
                        .filter(|(_, have, want)| have != want)
                        .map(|(kind, have, want)| {
                            let missing: Vec<_> = want.difference(have).collect();
                            let extra: Vec<_> = have.difference(want).collect();
                            format!("{kind}: missing {missing:?}, not the code's {extra:?}")
                        })
                        .collect::<Vec<_>>()
                }
                (have, want) if have == want => Vec::new(),
                (have, want) => vec![format!("{have:?} instead of {want:?}")],
            };
            assert!(differences.is_empty(), "{file}: {}'s permissions differ: {differences:?}", user.name);
        }
    }
    for (mode, deployment) in modes() {
        for node in deployment.nats_nodes() {
            let conf = nats_conf(&deployment.nats_config(node));
            let mut variables = BTreeSet::new();
            conf.variables(&mut variables);
            let env = deployment.env_of(node);
            for variable in &variables {
                let value = env.get(variable).unwrap_or_else(|| panic!("{mode}: {node} needs {variable}"));
                if variable.ends_with("_PASSWORD") {
                    assert_eq!(value, &deployment.env[variable], "{node} gets {variable} from .env");
                }
            }
            assert_eq!(conf.get("server_name"), Some(&Conf::Variable("ATES_NATS_SERVER_NAME".into())));
            assert_eq!(env["ATES_NATS_SERVER_NAME"], node, "{mode}: each node has its service's name");
        }
    }
}

#[test]
fn every_variable_compose_gives_a_service_is_one_it_reads() {
    fn sources(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let deployment = deployment(&[CLUSTER_ENV]);
    for (name, service) in deployment.instances() {
        let mut code = String::new();
        for krate in [service.bus.user, "messaging", "tokens", "web", "accounts-replica"] {
            sources(&repo_path(krate).join("src"), &mut code);
        }
        for variable in deployment.env_of(name).keys() {
            assert!(code.contains(&format!("env = \"{variable}\"")), "{name} reads no {variable}");
        }
    }
}

#[test]
fn the_default_is_one_nats_server_and_one_instance_of_each_service() {
    let single = deployment(&[]);
    assert_eq!(single.nats_nodes(), ["nats"]);
    assert_eq!(single.nats_config("nats"), "deploy/nats/single.conf");
    let conf = nats_conf("deploy/nats/single.conf");
    assert!(conf.get("cluster").is_none(), "a single server has no routes to wait for");
    assert!(conf.get("jetstream").and_then(|j| j.get("store_dir")).is_some());
    let instances = single.instances();
    for service in &SERVICES {
        let count = instances.iter().filter(|(_, s)| s.bus.user == service.bus.user).count();
        assert_eq!(count, 1, "one {}", service.bus.user);
    }
    for (name, _) in instances {
        let env = single.env_of(name);
        assert_eq!(env["NATS_URL"], "nats://nats:4222", "{name}");
        assert_eq!(env["ATES_STREAM_REPLICAS"], "1", "{name}: a single server holds one copy");
    }
}

#[test]
fn the_cluster_profile_is_three_nats_nodes_and_two_trackers_and_two_accountings() {
    let compose = compose();
    let profiled: BTreeSet<&str> = compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter_map(|(name, service)| {
            let profiles = service.get("profiles")?.as_sequence()?;
            assert_eq!(profiles, &[Value::from("cluster")], "{name:?}");
            name.as_str()
        })
        .collect();
    assert_eq!(profiled, BTreeSet::from(["nats-2", "nats-3", "task-tracker-2", "accounting-2"]));

    let cluster = deployment(&[CLUSTER_ENV]);
    assert_eq!(cluster.env["COMPOSE_PROFILES"], "cluster", "{CLUSTER_ENV} turns the profile on");
    let nodes = cluster.nats_nodes();
    assert_eq!(nodes, ["nats", "nats-2", "nats-3"]);
    let mut stores = BTreeSet::new();
    for node in &nodes {
        assert_eq!(cluster.nats_config(node), "deploy/nats/cluster.conf", "{node} is a cluster node");
        let store = cluster.volumes(node).into_iter().find(|(_, target)| target == "/data");
        assert!(stores.insert(store.expect("a store volume").0), "{node} has a store of its own");
    }
    let conf = nats_conf("deploy/nats/cluster.conf");
    let cluster_block = conf.get("cluster").expect("a cluster block");
    assert!(cluster_block.get("name").and_then(Conf::text).is_some(), "a cluster name");
    assert!(cluster_block.get("listen").and_then(Conf::text).is_some_and(|l| l.ends_with(":6222")));
    let routes: BTreeSet<&str> =
        cluster_block.get("routes").expect("routes").list().iter().map(|r| r.text().unwrap()).collect();
    let expected: BTreeSet<String> = nodes.iter().map(|n| format!("nats-route://{n}:6222")).collect();
    assert_eq!(routes, expected.iter().map(String::as_str).collect(), "every node routes to all three");
    let single_store =
        nats_conf("deploy/nats/single.conf").get("jetstream").unwrap().get("store_dir").cloned();
    assert_ne!(conf.get("jetstream").unwrap().get("store_dir").cloned(), single_store, "the modes' stores");

    let servers: BTreeSet<String> = nodes.iter().map(|n| format!("nats://{n}:4222")).collect();
    let instances = cluster.instances();
    for (user, count) in [("auth", 1), ("task-tracker", 2), ("accounting", 2), ("analytics", 1)] {
        assert_eq!(instances.iter().filter(|(_, s)| s.bus.user == user).count(), count, "{user}");
    }
    for (name, service) in instances {
        let env = cluster.env_of(name);
        let listed: BTreeSet<String> = env["NATS_URL"].split(',').map(|s| s.trim().to_owned()).collect();
        assert_eq!(listed, servers, "{name} lists every node");
        assert_eq!(env["ATES_STREAM_REPLICAS"], "3", "{name}: three copies of each stream");
        let first = service.bus.user;
        if name != first {
            assert_eq!(env, cluster.env_of(first), "{name} runs as {first} does");
            let aliases = &cluster.service(name)["networks"]["default"]["aliases"];
            let aliases: Vec<String> = aliases.as_sequence().into_iter().flatten().map(scalar).collect();
            assert!(aliases.contains(&first.to_owned()), "{name} answers to {first} too");
        }
    }
}

#[test]
fn the_gateway_fills_its_template_with_every_instance() {
    let template = repo("deploy/gateway.conf.template");
    let placeholders: BTreeSet<String> =
        references(&template).into_iter().filter(|(_, op)| op.is_empty()).map(|(name, _)| name).collect();
    for (mode, deployment) in modes() {
        assert!(
            deployment.volumes("gateway").contains(&(
                "./deploy/gateway.conf.template".to_owned(),
                "/etc/nginx/templates/default.conf.template".to_owned()
            )),
            "nginx's image fills templates from /etc/nginx/templates"
        );
        let env = deployment.env_of("gateway");
        let set: BTreeSet<String> = env.keys().filter(|k| k.starts_with("ATES_")).cloned().collect();
        assert_eq!(set, placeholders, "{mode}: the gateway sets each placeholder of its template");
        let mut config = template.clone();
        for name in &placeholders {
            config = config.replace(&format!("${{{name}}}"), &env[name]);
        }
        assert_eq!(deployment.host_file("gateway", &env["ATES_UI_DIR"]), "ui/assets", "the UI");
        let published =
            deployment.service("gateway")["ports"][0].as_str().unwrap().rsplit(':').next().unwrap();
        assert_eq!(env["ATES_GATEWAY_LISTEN"], published, "nginx listens where the port is published");

        let depends = deployment.service("gateway")["depends_on"].as_mapping().expect("depends_on as a map");
        for (name, service) in deployment.instances() {
            let first = service.bus.user;
            let port = deployment.env_of(name)["ATES_HTTP"].rsplit(':').next().unwrap().to_owned();
            let upstream = format!("upstream {} ", first.replace('-', "_"));
            let block = config.split(&upstream).nth(1).expect("an upstream").split('}').next().unwrap();
            assert!(
                block.contains(&format!("server {first}:{port};")),
                "{mode}: the gateway reaches {first}"
            );
            let dependency = depends.get(name).unwrap_or_else(|| panic!("the gateway starts after {name}"));
            let optional = dependency.get("required") == Some(&Value::Bool(false));
            let profiled = deployment.service(name).get("profiles").is_some();
            assert_eq!(optional, profiled, "{name}: only a profile's services are optional to the gateway");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The mounted files exist, Prometheus scrapes what runs, Grafana reads that Prometheus

#[test]
fn every_file_compose_mounts_is_in_the_checkout_and_mounted_read_only() {
    let compose = compose();
    let declared: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .expect("named volumes")
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    for (mode, deployment) in modes() {
        for (name, service) in &deployment.services {
            for volume in service.get("volumes").and_then(Value::as_sequence).into_iter().flatten() {
                let volume = volume.as_str().expect("volumes in the short syntax");
                let parts: Vec<&str> = volume.split(':').collect();
                match parts[0].strip_prefix("./") {
                    Some(file) => {
                        assert!(
                            repo_path(file).exists(),
                            "{mode}: {name} mounts {file}, which is not in the checkout (Docker would mount \
                             an empty directory there)"
                        );
                        assert_eq!(parts.get(2), Some(&"ro"), "{mode}: {name} mounts {file} read-only");
                    }
                    None => {
                        assert!(declared.contains(parts[0]), "{mode}: {name}'s volume {volume} is declared")
                    }
                }
            }
        }
    }
}

/// The names the containers of `deployment` answer to on its network (their service's, and its
/// aliases), each with the services that answer to it.
fn network_names(deployment: &Deployment) -> BTreeMap<String, Vec<String>> {
    let mut names: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, service) in &deployment.services {
        names.entry(name.clone()).or_default().push(name.clone());
        let networks = service.get("networks").and_then(Value::as_mapping);
        for network in networks.into_iter().flat_map(|n| n.values()) {
            for alias in network.get("aliases").and_then(Value::as_sequence).into_iter().flatten() {
                names.entry(scalar(alias)).or_default().push(name.clone());
            }
        }
    }
    names
}

/// The port a service listens on inside its container, from the first port it publishes.
fn published_port(deployment: &Deployment, name: &str) -> String {
    let ports =
        deployment.service(name)["ports"].as_sequence().unwrap_or_else(|| panic!("{name} publishes a port"));
    ports[0].as_str().unwrap().rsplit(':').next().unwrap().to_owned()
}

#[test]
fn prometheus_scrapes_every_instance_by_a_name_only_it_answers_to_and_promtool_accepts_its_mounts() {
    let prometheus: Value = serde_norway::from_str(&repo("deploy/prometheus/prometheus.yml")).unwrap();
    for (mode, deployment) in modes() {
        let command = deployment.command("prometheus");
        let config =
            command.iter().find_map(|a| a.strip_prefix("--config.file=")).expect("its configuration");
        assert_eq!(deployment.host_file("prometheus", config), "deploy/prometheus/prometheus.yml");
        assert!(!command.iter().any(|a| a.starts_with("--web.listen-address")), "it listens on :9090");
        assert_eq!(published_port(&deployment, "prometheus"), "9090");
        // Prometheus reads the files its configuration names relative to it.
        let beside = |file: &Value| {
            let path = Path::new(config).parent().unwrap().join(file.as_str().expect("a file name"));
            deployment.host_file("prometheus", path.to_str().unwrap())
        };
        let rules: Vec<String> =
            prometheus["rule_files"].as_sequence().expect("rule files").iter().map(beside).collect();
        assert_eq!(
            rules,
            ["deploy/prometheus/rules.yml"],
            "{mode}: the rules are mounted where it reads them"
        );

        let jobs = prometheus["scrape_configs"].as_sequence().expect("scrape configs");
        let ates =
            jobs.iter().find(|j| j["job_name"].as_str() == Some("ates")).expect("a scrape job for aTES");
        let names = network_names(&deployment);
        let instances = deployment.instances();
        let mut scraped = BTreeMap::new();
        for discovery in ates["file_sd_configs"].as_sequence().expect("targets from files") {
            for file in discovery["files"].as_sequence().expect("files") {
                let file = beside(file);
                let groups: Value =
                    serde_norway::from_str(&repo(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
                for group in groups.as_sequence().unwrap_or_else(|| panic!("{file}: a list of target groups"))
                {
                    let [target] = group["targets"].as_sequence().map(Vec::as_slice).unwrap_or_default()
                    else {
                        panic!("{file}: one target per group, each with its own instance label: {group:?}");
                    };
                    let target = target.as_str().unwrap();
                    let label = |name: &str| {
                        group["labels"][name]
                            .as_str()
                            .unwrap_or_else(|| panic!("{file}: {target}'s {name} label"))
                    };
                    let (host, port) = target.rsplit_once(':').expect("host:port");
                    let containers = names.get(host).cloned().unwrap_or_default();
                    assert_eq!(
                        containers.len(),
                        1,
                        "{mode} ({file}): {target} reaches one container, not {containers:?}"
                    );
                    let instance = containers[0].as_str();
                    assert_eq!(
                        label("instance"),
                        instance,
                        "{mode} ({file}): {target} is labelled with its compose service"
                    );
                    let runs = instances.iter().find(|(name, _)| *name == instance).map(|(_, s)| s.bus.user);
                    assert_eq!(
                        runs,
                        Some(label("job")),
                        "{mode} ({file}): {target} is labelled with its service"
                    );
                    let listens =
                        deployment.env_of(instance)["ATES_HTTP"].rsplit(':').next().unwrap().to_owned();
                    assert_eq!(port, listens, "{mode} ({file}): {target} is where {instance} listens");
                    let again = scraped.insert(instance.to_owned(), target.to_owned());
                    assert!(again.is_none(), "{mode} ({file}): {instance} is scraped once");
                }
            }
        }
        let running: BTreeSet<&str> = instances.iter().map(|(name, _)| *name).collect();
        assert_eq!(
            scraped.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            running,
            "{mode}: every instance"
        );

        // What the container sees, as promtool checks it: the configuration, its rules and this
        // mode's targets.
        let root = tempfile::tempdir().unwrap();
        for (source, target) in deployment.volumes("prometheus") {
            let Some(source) = source.strip_prefix("./") else { continue };
            let to = root.path().join(target.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(repo_path(source), &to).unwrap_or_else(|e| panic!("{source}: {e}"));
        }
        let config = root.path().join(config.trim_start_matches('/'));
        super::monitoring::promtool([OsStr::new("check"), "config".as_ref(), config.as_os_str()]);
    }
}

/// The provisioning files (`*.yml`, `*.yaml`) in a directory of this checkout.
fn provisioning_files(dir: &str) -> Vec<(String, Value)> {
    let mut files: Vec<(String, Value)> = std::fs::read_dir(repo_path(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .map(|path| {
            let file = format!("{dir}/{}", path.file_name().unwrap().to_str().unwrap());
            let value = serde_norway::from_str(&repo(&file)).unwrap_or_else(|e| panic!("{file}: {e}"));
            (file, value)
        })
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!files.is_empty(), "{dir} provisions something");
    files
}

#[test]
fn grafana_is_provisioned_with_the_prometheus_compose_runs_and_the_dashboards() {
    for (mode, deployment) in modes() {
        let env = deployment.env_of("grafana");
        assert_eq!(
            env["GF_SECURITY_ADMIN_PASSWORD"], deployment.env["ATES_GRAFANA_ADMIN_PASSWORD"],
            "{mode}"
        );
        let depends = deployment.service("grafana")["depends_on"].as_mapping().expect("depends_on as a map");
        assert!(depends.contains_key("prometheus"), "Grafana starts after Prometheus");

        let datasources = deployment.host_file("grafana", "/etc/grafana/provisioning/datasources");
        for (file, provisioned) in provisioning_files(&datasources) {
            for source in provisioned["datasources"].as_sequence().expect("datasources") {
                let url = reqwest::Url::parse(source["url"].as_str().expect("a url")).expect("a URL");
                let host = url.host_str().unwrap();
                assert_eq!(host, "prometheus", "{file}: the Prometheus of compose.yaml");
                assert!(deployment.services.contains_key(host), "{mode}: {host} runs");
                let port = url.port().map(|p| p.to_string());
                assert_eq!(port, Some(published_port(&deployment, host)), "{file}: where it listens");
            }
        }

        let providers = deployment.host_file("grafana", "/etc/grafana/provisioning/dashboards");
        for (file, provisioned) in provisioning_files(&providers) {
            for provider in provisioned["providers"].as_sequence().expect("providers") {
                let path = provider["options"]["path"].as_str().expect("a path");
                let dir = deployment.host_file("grafana", path);
                assert_eq!(dir, "deploy/grafana/dashboards", "{file}: {path} is the dashboards' mount");
                assert!(repo_path(&dir).join("ates.json").is_file(), "{dir} holds the aTES dashboard");
            }
        }
        let home = deployment.host_file("grafana", &env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
        assert_eq!(home, "deploy/grafana/dashboards/ates.json", "the home dashboard is aTES'");
    }
}

// ---------------------------------------------------------------------------------------------
// And they work: nats-server on the compose configuration, PostgreSQL with the init script, and
// every service started with the environment compose gives it.

/// The environment variable that makes [`child_starts_the_service_its_environment_names`] build
/// a service instead of returning at once.
const CHILD: &str = "ATES_DEPLOY_TEST_SERVICE";

/// What that test prints once the service is built: the parent knows it ran.
const STARTED: &str = "deploy test: started";

/// A nats-server of this test on a configuration from deploy/nats (with its own ports and
/// store), killed on drop.
struct NatsNode {
    process: std::process::Child,
    port: u16,
    monitor: u16,
    _dir: tempfile::TempDir,
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl NatsNode {
    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

/// The NATS nodes `deployment` runs, on local ports, routed to each other as compose's are.
async fn start_nats(deployment: &Deployment) -> BTreeMap<String, NatsNode> {
    let binary = ates_devservers::binaries::nats_server().expect("nats-server (run scripts/install-deps)");
    let nodes = deployment.nats_nodes();
    let routes: Vec<u16> = nodes.iter().map(|_| ates_devservers::free_port().unwrap()).collect();
    let mut started = BTreeMap::new();
    for (index, node) in nodes.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        // The configuration as it is, but for its store (under /data in the container).
        for entry in std::fs::read_dir(repo_path("deploy/nats")).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let store = format!("{}/data/", dir.path().display());
            std::fs::write(dir.path().join(entry.file_name()), text.replace("/data/", &store)).unwrap();
        }
        let config = deployment.nats_config(node);
        let config = dir.path().join(Path::new(&config).file_name().unwrap());
        let (port, monitor) = (ates_devservers::free_port().unwrap(), ates_devservers::free_port().unwrap());
        let mut command = std::process::Command::new(&binary);
        command.arg("--config").arg(&config).arg("--log").arg(dir.path().join("log"));
        command.args([
            "--addr",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--http_port",
            &monitor.to_string(),
        ]);
        if nodes.len() > 1 {
            let all: Vec<String> = routes.iter().map(|p| format!("nats-route://127.0.0.1:{p}")).collect();
            command.args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", routes[index]),
                "--routes",
                &all.join(","),
            ]);
        }
        command.env_clear().envs(deployment.env_of(node));
        command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        let process = command.spawn().expect("start nats-server");
        started.insert((*node).to_owned(), NatsNode { process, port, monitor, _dir: dir });
    }
    // Ready, and for a cluster with a JetStream leader: /healthz answers 200 only then.
    let http = reqwest::Client::new();
    // Generous: a cluster elects its JetStream leader slowly on a machine busy with the other tests.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    for (name, node) in &mut started {
        loop {
            let health = http.get(format!("http://127.0.0.1:{}/healthz", node.monitor)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if let Ok(Some(status)) = node.process.try_wait() {
                let log = std::fs::read_to_string(node._dir.path().join("log")).unwrap_or_default();
                panic!("nats-server {name} exited ({status}) on the compose configuration:\n{log}");
            }
            if tokio::time::Instant::now() > deadline {
                let log = std::fs::read_to_string(node._dir.path().join("log")).unwrap_or_default();
                panic!("nats-server {name} is not healthy in 90 s; its log:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    started
}

/// A PostgreSQL of this test set up as the postgres image does with compose's environment: the
/// superuser's password, the database, and the init script.
struct Database {
    server: PostgresServer,
    _dir: tempfile::TempDir,
}

async fn start_postgres(deployment: &Deployment) -> Database {
    let env = deployment.env_of("postgres");
    let dir = tempfile::tempdir().unwrap();
    let options = PostgresOptions {
        dir: dir.path().to_path_buf(),
        port: None,
        durable: false,
        superuser_password: Some(env["POSTGRES_PASSWORD"].clone()),
        settings: Vec::new(),
    };
    let server = PostgresServer::start(options).await.expect("start PostgreSQL (run scripts/install-deps)");
    let admin = sqlx::PgPool::connect(&server.url("postgres")).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{}\"", env["POSTGRES_DB"])))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let bin = ates_devservers::binaries::postgres_bin_dir().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    for run in ["first", "second"] {
        let output = tokio::process::Command::new("bash")
            .arg(repo_path("deploy/postgres/10-ates-roles.sh"))
            .env_clear()
            .envs(&env)
            // What the image's entrypoint exports for its init scripts; it connects over its
            // socket, here over TCP.
            .env("PGPASSWORD", &env["POSTGRES_PASSWORD"])
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", server.port().to_string())
            .env("PATH", &path)
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "the init script fails (its {run} run):\n{stderr}");
        assert!(stderr.trim().is_empty(), "the init script complains (its {run} run):\n{stderr}");
    }
    Database { server, _dir: dir }
}

/// `name`'s environment from compose, pointed at this test's servers instead of compose's hosts.
fn local_environment(
    deployment: &Deployment,
    name: &str,
    nats: &BTreeMap<String, NatsNode>,
    postgres: &PostgresServer,
) -> Env {
    let mut env = deployment.env_of(name);
    let mut url = reqwest::Url::parse(&env["DATABASE_URL"]).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(postgres.port())).unwrap();
    env.insert("DATABASE_URL".into(), url.into());
    let servers: Vec<String> = env["NATS_URL"]
        .split(',')
        .map(|server| {
            let host = reqwest::Url::parse(server.trim()).unwrap().host_str().unwrap().to_owned();
            nats.get(&host).unwrap_or_else(|| panic!("{name} lists {host}, which is not running")).url()
        })
        .collect();
    env.insert("NATS_URL".into(), servers.join(","));
    env
}

/// Starts each service (every instance) with the environment compose gives it, as its own
/// process (this test binary again, running only the child test): what it reads from the
/// environment is what it would read in its container.
async fn start_every_instance(
    deployment: &Deployment,
    nats: &BTreeMap<String, NatsNode>,
    postgres: &PostgresServer,
) {
    let module = module_path!().split_once("::").map_or(module_path!(), |(_, m)| m);
    let child_test = format!("{module}::child_starts_the_service_its_environment_names");
    for (name, service) in deployment.instances() {
        let output = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args([child_test.as_str(), "--exact", "--nocapture", "--test-threads=1"])
            .env_clear()
            .envs(local_environment(deployment, name, nats, postgres))
            .env(CHILD, binary(service))
            .output()
            .await
            .unwrap();
        let (stdout, stderr) =
            (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        assert!(
            output.status.success(),
            "{name} does not start with compose's environment:\n{stdout}{stderr}"
        );
        let started = format!("{STARTED} {}", binary(service));
        assert!(stderr.contains(&started), "the child test did not run for {name}:\n{stdout}{stderr}");
    }
}

/// Every stream, as the operator sees it: (name, replicas).
async fn streams_as_operator(
    deployment: &Deployment,
    nats: &BTreeMap<String, NatsNode>,
) -> Vec<(String, usize)> {
    let urls: Vec<String> = nats.values().map(NatsNode::url).collect();
    let operator = ates_messaging::nats::NatsUser {
        name: OPERATOR.to_owned(),
        password: deployment.env[&password_variable("NATS", OPERATOR)].as_str().into(),
    };
    let client =
        ates_messaging::nats::connect(&urls.join(","), "deploy-test", Some(&operator)).await.unwrap();
    let js = ates_messaging::nats::jetstream(client, Duration::from_secs(10));
    let mut streams = Vec::new();
    for name in ates_messaging::streams::ALL {
        let info =
            js.get_stream(name).await.unwrap_or_else(|e| panic!("{name}: {e}")).get_info().await.unwrap();
        streams.push((name.to_owned(), info.config.num_replicas));
    }
    streams
}

/// Not a test of its own: the process [`start_every_instance`] starts for one service.
#[tokio::test]
async fn child_starts_the_service_its_environment_names() {
    let Ok(binary) = std::env::var(CHILD) else { return };
    let none = std::iter::empty::<&str>;
    let started = match binary.as_str() {
        "ates-auth" => {
            let config = ates::settings::parse(none()).unwrap_or_else(|e| panic!("{e}"));
            ates_auth::AuthService::build(&config).await.map(drop)
        }
        "ates-task-tracker" => {
            let config = ates::settings::parse(none()).unwrap_or_else(|e| panic!("{e}"));
            ates_task_tracker::TaskTrackerService::build(&config).await.map(drop)
        }
        "ates-accounting" => {
            let config = ates::settings::parse(none()).unwrap_or_else(|e| panic!("{e}"));
            ates_accounting::AccountingService::build(&config).await.map(drop)
        }
        "ates-analytics" => {
            let config = ates::settings::parse(none()).unwrap_or_else(|e| panic!("{e}"));
            ates_analytics::AnalyticsService::build(&config).await.map(drop)
        }
        other => panic!("{other} is no aTES service"),
    };
    if let Err(e) = started {
        panic!("{binary} does not start: {e:#}");
    }
    eprintln!("{STARTED} {binary}");
}

/// The SQLSTATE `statement` fails with as `pool`'s role.
async fn refusal(pool: &sqlx::PgPool, statement: &str) -> String {
    let error =
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(pool).await.expect_err(statement);
    error.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned()).unwrap_or_default()
}

#[tokio::test]
async fn every_service_starts_on_the_single_node_as_compose_configures_it() {
    let single = deployment(&[]);
    let nats = start_nats(&single).await;
    let database = start_postgres(&single).await;
    let postgres = &database.server;
    start_every_instance(&single, &nats, postgres).await;
    for (stream, replicas) in streams_as_operator(&single, &nats).await {
        assert_eq!(replicas, 1, "{stream}");
    }

    // Nobody without a password gets in, nor with another user's.
    let url = nats["nats"].url();
    let anonymous =
        async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2)).connect(url.as_str());
    assert!(anonymous.await.is_err(), "an anonymous client is refused");
    let auth_password = single.env[&password_variable("NATS", "auth")].clone();
    let borrowed = async_nats::ConnectOptions::with_user_and_password("task-tracker".into(), auth_password)
        .connection_timeout(Duration::from_secs(2))
        .connect(url.as_str());
    assert!(borrowed.await.is_err(), "one service's password opens no other's user");

    // Each role owns its schema, which its service migrated, and nothing else.
    const DENIED: &str = "42501";
    let database = |user: &str, password: &str| {
        format!("postgres://{user}:{password}@127.0.0.1:{}/ates", postgres.port())
    };
    let mut pools = BTreeMap::new();
    for service in &SERVICES {
        let role = format!("ates_{}", service.schema);
        let password = &single.env[&password_variable("PG", service.schema)];
        let pool = sqlx::PgPool::connect(&database(&role, password)).await.unwrap();
        let (owner, superuser, createdb, createrole): (String, bool, bool, bool) = sqlx::query_as(
            "SELECT n.nspowner::regrole::text, r.rolsuper, r.rolcreatedb, r.rolcreaterole
             FROM pg_namespace n, pg_roles r WHERE n.nspname = $1 AND r.rolname = current_user",
        )
        .bind(service.schema)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!((owner.as_str(), superuser, createdb, createrole), (role.as_str(), false, false, false));
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tableowner = current_user",
        )
        .bind(service.schema)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert!(tables > 0, "{} migrated its schema as {role}", service.bus.user);
        assert_eq!(refusal(&pool, "CREATE SCHEMA elsewhere").await, DENIED, "{role} makes no schema");
        let wrong = sqlx::PgPool::connect(&database(&role, "not-its-password")).await;
        assert!(wrong.is_err(), "{role} needs its password");
        pools.insert(service.schema, pool);
    }
    let analytics = &pools["analytics"];
    assert_eq!(refusal(analytics, "SELECT * FROM auth._sqlx_migrations").await, DENIED);
    assert_eq!(refusal(analytics, "CREATE TABLE task_tracker.intruder (id int)").await, DENIED);

    let admin = sqlx::PgPool::connect(&postgres.url("ates")).await.unwrap();
    sqlx::raw_sql("CREATE ROLE stranger LOGIN PASSWORD 'stranger'").execute(&admin).await.unwrap();
    let stranger = sqlx::PgPool::connect(&database("stranger", "stranger")).await;
    let code = stranger.expect_err("a role of its own is not enough to connect");
    let code = code.as_database_error().and_then(|e| e.code()).map(|c| c.into_owned());
    assert_eq!(code.as_deref(), Some(DENIED), "PUBLIC may not connect to the database");
}

#[tokio::test]
async fn every_instance_starts_on_the_cluster_as_compose_configures_it() {
    let cluster = deployment(&[CLUSTER_ENV]);
    let nats = start_nats(&cluster).await;
    assert_eq!(nats.len(), 3);
    let database = start_postgres(&cluster).await;
    let postgres = &database.server;
    start_every_instance(&cluster, &nats, postgres).await;
    for (stream, replicas) in streams_as_operator(&cluster, &nats).await {
        assert_eq!(replicas, 3, "{stream} has a copy on each node");
    }
}
