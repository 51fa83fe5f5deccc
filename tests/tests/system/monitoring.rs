//! The monitoring of a deployment agrees with what the services export and passes its own
//! tests: promtool accepts deploy/prometheus (the configuration, the targets and the alert rules)
//! and the rules pass their unit tests (rules.test.yml); every alert has a `for`, a severity, an
//! explanation and tests that show it firing and not firing; every metric and label the rules,
//! their tests and the Grafana dashboard query is one `ates_web::metrics::METRICS` declares; and
//! the README lists every metric and every alert. How compose mounts and wires Prometheus and
//! Grafana is checked with the rest of compose.yaml, in `deploy`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::Command;

use ates_web::metrics::{Kind, METRICS, Metric};
use serde_norway::Value;

use super::deploy::{repo, repo_path};

const RULES: &str = "deploy/prometheus/rules.yml";
const RULE_TESTS: &str = "deploy/prometheus/rules.test.yml";
const PROMETHEUS_CONFIG: &str = "deploy/prometheus/prometheus.yml";
const DASHBOARD: &str = "deploy/grafana/dashboards/ates.json";
const DATASOURCES: &str = "deploy/grafana/provisioning/datasources/prometheus.yml";

fn yaml(file: &str) -> Value {
    serde_norway::from_str(&repo(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn items(value: &Value) -> &[Value] {
    value.as_sequence().map_or(&[], Vec::as_slice)
}

// ---------------------------------------------------------------------------------------------
// promtool

/// promtool: on `PATH`, or where Debian's prometheus package puts it.
fn promtool_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .map(|dir| dir.join("promtool"))
        .find(|candidate| candidate.is_file());
    on_path.or_else(|| Some(PathBuf::from("/usr/bin/promtool")).filter(|p| p.is_file())).unwrap_or_else(
        || panic!("promtool is missing: run scripts/install-deps (it installs Debian's prometheus package)"),
    )
}

/// Runs promtool with `args` and returns what it printed; fails with that output when promtool
/// fails or warns (a file the configuration names that does not exist is only a warning to it).
pub(crate) fn promtool<S: AsRef<OsStr>>(args: impl IntoIterator<Item = S>) -> String {
    let mut command = Command::new(promtool_binary());
    command.args(args);
    let shown = format!("{command:?}");
    let output = command.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let printed =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{shown} fails:\n{printed}");
    assert!(!printed.contains("WARNING"), "{shown} warns:\n{printed}");
    printed
}

#[test]
fn promtool_accepts_the_prometheus_configuration_and_the_alert_rules() {
    // The configuration with the files it names: the rules and the single node's targets.
    let checked =
        promtool([OsStr::new("check"), "config".as_ref(), repo_path(PROMETHEUS_CONFIG).as_os_str()]);
    assert!(checked.contains("rules.yml"), "check config reads the rule files too:\n{checked}");
    let checked = promtool([OsStr::new("check"), "rules".as_ref(), repo_path(RULES).as_os_str()]);
    let alerts = alerting_rules().len();
    assert!(checked.contains(&format!("SUCCESS: {alerts} rules found")), "{checked}");
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    let output = promtool([OsStr::new("test"), "rules".as_ref(), repo_path(RULE_TESTS).as_os_str()]);
    assert!(output.contains("SUCCESS"), "{output}");
}

/// Every expression of the dashboard parses as PromQL: promtool checks them as recording rules
/// (with Grafana's interval variables filled in).
#[test]
fn promtool_parses_every_expression_of_the_dashboard() {
    let expressions = dashboard_expressions();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (index, expr) in expressions.iter().enumerate() {
        let filled = fill_grafana_variables(expr);
        let quoted = serde_json::to_string(&filled).unwrap();
        rules.push_str(&format!(
            "      - record: ates_dashboard:expression_{index}\n        expr: {quoted}\n"
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard.rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let checked = promtool([OsStr::new("check"), "rules".as_ref(), file.as_os_str()]);
    assert!(checked.contains(&format!("SUCCESS: {} rules found", expressions.len())), "{checked}");
}

/// `$__rate_interval` and friends as Grafana fills them in: a duration.
fn fill_grafana_variables(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let name = &rest[at + 1..];
        let end = name.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(name.len());
        assert!(
            name.starts_with("__"),
            "{expr:?} uses ${}, which no dashboard variable defines",
            &name[..end]
        );
        out.push_str("1m");
        rest = &name[end..];
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// What the alerts say and how they are tested

/// The alerting rules of deploy/prometheus/rules.yml.
fn alerting_rules() -> Vec<Value> {
    let rules = yaml(RULES);
    let groups = items(&rules["groups"]);
    assert!(!groups.is_empty(), "{RULES} has groups");
    let all: Vec<Value> = groups.iter().flat_map(|g| items(&g["rules"]).iter().cloned()).collect();
    for rule in &all {
        assert!(rule.get("alert").is_some(), "{RULES}: only alerting rules, not {rule:?}");
    }
    all
}

fn alert_name(rule: &Value) -> &str {
    rule["alert"].as_str().expect("an alert name")
}

#[test]
fn every_alert_waits_names_a_severity_explains_itself_and_is_tested_firing_and_quiet() {
    let rules = alerting_rules();
    let names: Vec<&str> = rules.iter().map(alert_name).collect();
    for expected in [
        "AtesDlqNotEmpty",
        "AtesConsumerLagGrowing",
        "AtesOutboxStuck",
        "AtesDayNotClosed",
        "AtesServiceDown",
    ] {
        assert!(names.contains(&expected), "{RULES} has {expected}");
    }
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len(), "one rule per alert: {names:?}");

    let tests = yaml(RULE_TESTS);
    assert_eq!(
        items(&tests["rule_files"]),
        [Value::String("rules.yml".into())],
        "{RULE_TESTS} tests rules.yml"
    );
    assert_eq!(
        tests["evaluation_interval"],
        yaml(PROMETHEUS_CONFIG)["global"]["evaluation_interval"],
        "the tests evaluate as often as Prometheus does"
    );
    let cases: Vec<&Value> =
        items(&tests["tests"]).iter().flat_map(|t| items(&t["alert_rule_test"]).iter()).collect();

    for rule in &rules {
        let name = alert_name(rule);
        let wait = rule["for"].as_str().unwrap_or_else(|| panic!("{name} has a `for`"));
        assert!(wait.ends_with(['s', 'm', 'h']), "{name}: for {wait:?} is a duration");
        let severity = rule["labels"]["severity"].as_str();
        assert!(matches!(severity, Some("critical" | "warning")), "{name}: severity critical or warning");
        for annotation in ["summary", "description"] {
            let text = rule["annotations"][annotation].as_str().unwrap_or_default();
            assert!(text.len() > 20, "{name} has a {annotation} an operator can act on");
        }
        let description = rule["annotations"]["description"].as_str().unwrap();
        assert!(description.contains("See README.md, Alerts."), "{name} points at its runbook");

        let of_this: Vec<&&Value> = cases.iter().filter(|c| c["alertname"].as_str() == Some(name)).collect();
        let firing = of_this.iter().filter(|c| !items(&c["exp_alerts"]).is_empty()).count();
        let quiet = of_this.iter().filter(|c| items(&c["exp_alerts"]).is_empty()).count();
        assert!(firing >= 1, "{RULE_TESTS} shows {name} firing");
        assert!(
            quiet >= 2,
            "{RULE_TESTS} shows {name} quiet, before its `for` and in a case it must not fire"
        );
        for case in of_this {
            for alert in items(&case["exp_alerts"]) {
                assert_eq!(
                    alert["exp_labels"]["severity"].as_str(),
                    severity,
                    "{name}: the labels it fires with"
                );
                let annotations = alert["exp_annotations"].as_mapping().map_or(0, |m| m.len());
                assert_eq!(annotations, 2, "{name}: the summary and description an operator gets");
            }
        }
    }
    // And no case tests an alert that does not exist.
    for case in &cases {
        let name = case["alertname"].as_str().unwrap_or_default();
        assert!(names.contains(&name), "{RULE_TESTS} tests {name}, which {RULES} does not have");
    }
}

// ---------------------------------------------------------------------------------------------
// Metric names

/// The metric and label names a PromQL expression refers to.
#[derive(Debug, Default, PartialEq)]
struct Names {
    metrics: BTreeSet<String>,
    labels: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text,
    Number,
    Variable,
    Punct(char),
}

fn tokens(expr: &str) -> Vec<Token> {
    let chars: Vec<char> = expr.chars().collect();
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(&c) = chars.get(at) {
        let start = at;
        at += 1;
        if c.is_whitespace() {
            continue;
        }
        if matches!(c, '"' | '\'' | '`') {
            while let Some(&d) = chars.get(at) {
                at += if d == '\\' { 2 } else { 1 };
                if d == c {
                    break;
                }
            }
            out.push(Token::Text);
        } else if c.is_ascii_digit() || (c == '.' && chars.get(at).is_some_and(char::is_ascii_digit)) {
            while chars.get(at).is_some_and(|&d| d.is_ascii_alphanumeric() || d == '.') {
                at += 1;
            }
            out.push(Token::Number);
        } else if c == '$' {
            while chars.get(at).is_some_and(|&d| is_word(d)) {
                at += 1;
            }
            out.push(Token::Variable);
        } else if is_word(c) {
            while chars.get(at).is_some_and(|&d| is_word(d)) {
                at += 1;
            }
            out.push(Token::Word(chars[start..at].iter().collect()));
        } else {
            out.push(Token::Punct(c));
        }
    }
    out
}

/// Binary operators and literals that look like names.
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"];
/// Keywords followed by a list of labels in parentheses.
const LABEL_LISTS: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];

/// A scanner, not a parser, but enough for the expressions of deploy/: selectors with label
/// matchers, ranges, functions, aggregations with `by`/`without`, vector matching.
fn names(expr: &str) -> Names {
    let tokens = tokens(expr);
    let word = |at: usize| match tokens.get(at) {
        Some(Token::Word(w)) => Some(w.as_str()),
        _ => None,
    };
    let mut names = Names::default();
    // The names up to `close` are labels; returns where it stopped.
    let labels_until = |close: char, mut at: usize, labels: &mut BTreeSet<String>| {
        while let Some(inner) = tokens.get(at) {
            at += 1;
            match inner {
                Token::Punct(c) if *c == close => break,
                Token::Word(label) => _ = labels.insert(label.clone()),
                _ => {}
            }
        }
        at
    };
    let mut at = 0;
    while let Some(token) = tokens.get(at) {
        at += 1;
        match token {
            // Label matchers: every name inside is a label.
            Token::Punct('{') => at = labels_until('}', at, &mut names.labels),
            // A range or subquery: durations.
            Token::Punct('[') => {
                while tokens.get(at).is_some_and(|t| *t != Token::Punct(']')) {
                    at += 1;
                }
            }
            Token::Word(w)
                if LABEL_LISTS.contains(&w.as_str()) && tokens.get(at) == Some(&Token::Punct('(')) =>
            {
                at = labels_until(')', at + 1, &mut names.labels);
            }
            // `group_left` without a list, too.
            Token::Word(w) if KEYWORDS.contains(&w.as_str()) || LABEL_LISTS.contains(&w.as_str()) => {}
            // A function, or an aggregation (`sum (...)`, `sum by (...) (...)`).
            Token::Word(_)
                if tokens.get(at) == Some(&Token::Punct('('))
                    || word(at).is_some_and(|next| next == "by" || next == "without") => {}
            Token::Word(metric) => _ = names.metrics.insert(metric.clone()),
            _ => {}
        }
    }
    names
}

/// The exported metric a name in a query stands for: the metric itself, or a histogram's `_sum`
/// and `_count`. metrics-exporter-prometheus renders histograms as summaries (no buckets are
/// configured), so there is no `_bucket`, and their quantiles are a `quantile` label.
fn exported(name: &str) -> Option<&'static Metric> {
    METRICS.iter().find(|m| m.name == name).or_else(|| {
        let base = name.strip_suffix("_sum").or_else(|| name.strip_suffix("_count"))?;
        METRICS.iter().find(|m| m.name == base && m.kind == Kind::Histogram)
    })
}

/// What is wrong with the names `expr` uses: metrics nobody exports, labels none of its metrics
/// has (Prometheus adds `job` and `instance` to every series).
fn unknown_names(expr: &str) -> Vec<String> {
    let names = names(expr);
    let mut problems = Vec::new();
    let mut labels: BTreeSet<&str> = BTreeSet::from(["job", "instance"]);
    for metric in &names.metrics {
        match exported(metric) {
            Some(exported) => {
                labels.extend(exported.labels);
                if exported.kind == Kind::Histogram {
                    labels.insert("quantile");
                }
            }
            None if metric == "up" => {}
            None => problems.push(format!("metric {metric} is not in ates_web::metrics::METRICS")),
        }
    }
    for label in &names.labels {
        if !labels.contains(label.as_str()) {
            problems.push(format!("label {label} is none of {labels:?}"));
        }
    }
    if names.metrics.is_empty() {
        problems.push("it queries no metric".to_owned());
    }
    problems
}

/// Every `expr` of the dashboard's panels (and anything else in it that has one).
fn dashboard_expressions() -> Vec<String> {
    fn walk(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            serde_json::Value::Array(values) => values.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard(), &mut out);
    out
}

fn dashboard() -> serde_json::Value {
    serde_json::from_str(&repo(DASHBOARD)).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"))
}

#[test]
fn the_scanner_finds_the_metrics_and_labels_of_an_expression() {
    let found = names(
        r#"sum by (path) (rate(http_request_duration_seconds_sum{status=~"5..", method!="GET"}[$__rate_interval]))
           / on (path) group_left () sum without (instance) (rate(http_requests_total[5m] offset 1h)) > bool 0.5
           and max(up) unless count by (consumer) (ates_dlq_messages{consumer="a,b"}) > 1e3
           or on (instance) group_right up"#,
    );
    let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(
        found,
        Names {
            metrics: strings(&[
                "http_request_duration_seconds_sum",
                "http_requests_total",
                "up",
                "ates_dlq_messages"
            ]),
            labels: strings(&["path", "status", "method", "instance", "consumer"]),
        }
    );
    assert_eq!(unknown_names("ates_consumer_pending{consumer=\"x\"}"), Vec::<String>::new());
    assert_eq!(
        unknown_names("max by (queue) (ates_consumer_pendings)").len(),
        2,
        "a typo in a name or a label"
    );
    assert_eq!(unknown_names("http_request_duration_seconds_bucket").len(), 1, "no buckets: summaries");
}

#[test]
fn the_rules_their_tests_and_the_dashboard_query_only_what_the_services_export() {
    let mut expressions: Vec<(String, String)> = Vec::new();
    for rule in alerting_rules() {
        let expr = rule["expr"].as_str().expect("an expression").to_owned();
        expressions.push((format!("{RULES}: {}", alert_name(&rule)), expr));
    }
    for test in items(&yaml(RULE_TESTS)["tests"]) {
        let name = test["name"].as_str().unwrap_or_default();
        for series in items(&test["input_series"]) {
            let series = series["series"].as_str().expect("a series").to_owned();
            expressions.push((format!("{RULE_TESTS}: {name}"), series));
        }
        for case in items(&test["promql_expr_test"]) {
            expressions.push((format!("{RULE_TESTS}: {name}"), case["expr"].as_str().unwrap().to_owned()));
        }
    }
    let panels = dashboard_expressions();
    assert!(panels.len() >= 15, "the dashboard has its panels' expressions: {panels:?}");
    expressions.extend(panels.into_iter().map(|expr| (DASHBOARD.to_owned(), expr)));

    let problems: Vec<String> = expressions
        .iter()
        .flat_map(|(place, expr)| {
            unknown_names(expr).into_iter().map(move |problem| format!("{place}: {expr:?}: {problem}"))
        })
        .collect();
    assert!(problems.is_empty(), "names the services do not export:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The dashboard

#[test]
fn the_dashboard_reads_the_provisioned_prometheus_and_its_panels_do_not_overlap() {
    let sources = yaml(DATASOURCES);
    let source = &items(&sources["datasources"])[0];
    assert_eq!(source["type"].as_str(), Some("prometheus"));
    let uid = source["uid"].as_str().expect("the data source has a fixed uid the dashboard names");

    let dashboard = dashboard();
    assert!(dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()), "a fixed uid: links stay");
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids = BTreeSet::new();
    let mut cells = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or_default();
        assert!(ids.insert(panel["id"].as_u64().expect("an id")), "{title}: ids are unique");
        let grid = &panel["gridPos"];
        let [x, y, w, h] =
            ["x", "y", "w", "h"].map(|k| grid[k].as_u64().unwrap_or_else(|| panic!("{title}: gridPos.{k}")));
        assert!(x + w <= 24, "{title} fits the dashboard's 24 columns");
        for column in x..x + w {
            for row in y..y + h {
                assert!(cells.insert((column, row)), "{title} overlaps another panel at ({column}, {row})");
            }
        }
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"].as_str(), Some(uid), "{title} reads Prometheus");
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "{title} queries something");
        for target in targets {
            assert_eq!(target["datasource"]["uid"].as_str(), Some(uid), "{title}'s queries read Prometheus");
        }
        assert!(panel["description"].as_str().is_some_and(|d| !d.is_empty()), "{title} says what it shows");
    }
}

// ---------------------------------------------------------------------------------------------
// The README

/// The README's Operations section.
fn readme_operations() -> String {
    let readme = repo("README.md");
    let section = readme.split("\n## Operations\n").nth(1).expect("the README has an Operations section");
    section.split("\n## ").next().unwrap().to_owned()
}

/// The rows of the table whose header starts with `header`, as cells.
fn table(text: &str, header: &str) -> Vec<Vec<String>> {
    let table = text.split(&format!("\n{header}")).nth(1).unwrap_or_else(|| panic!("a table {header}"));
    table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim().trim_matches('|').split('|').map(|c| c.trim().to_owned()).collect())
        .collect()
}

fn backticked(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

#[test]
fn the_readme_lists_every_metric_with_its_type_and_labels_and_every_alert() {
    let operations = readme_operations();
    let rows = table(&operations, "| metric | type | labels | meaning |");
    let listed: Vec<&str> = rows.iter().filter_map(|row| backticked(&row[0]).first().copied()).collect();
    let exported: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
    assert_eq!(listed, exported, "the README's metrics table lists METRICS, in its order");
    for (row, metric) in rows.iter().zip(METRICS) {
        let kind = format!("{:?}", metric.kind).to_lowercase();
        assert_eq!(row[1], kind, "{}: its type", metric.name);
        assert_eq!(backticked(&row[2]), metric.labels, "{}: its labels", metric.name);
        assert!(!row[3].is_empty(), "{}: what it means", metric.name);
    }

    assert!(operations.contains("\n### Alerts\n"), "the section the alerts' descriptions point at");
    let alerts = operations.split("\n### Alerts\n").nth(1).unwrap();
    let rows = table(alerts, "| alert | fires when | what to do |");
    let listed: BTreeSet<&str> = rows.iter().filter_map(|row| backticked(&row[0]).first().copied()).collect();
    let rules = alerting_rules();
    let defined: BTreeSet<&str> = rules.iter().map(alert_name).collect();
    assert_eq!(listed, defined, "the README explains every alert of {RULES}");
    for row in &rows {
        let name = backticked(&row[0])[0];
        let rule = rules.iter().find(|r| alert_name(r) == name).unwrap();
        let severity = rule["labels"]["severity"].as_str().unwrap();
        assert!(row[0].contains(&format!("({severity})")), "{name}: the README gives its severity");
    }
    for port in ["http://127.0.0.1:9090", "http://127.0.0.1:3000"] {
        assert!(operations.contains(port), "the README says where compose serves {port}");
    }
}
