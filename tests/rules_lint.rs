//! Lints the shipped alerts/ and dashboards/ against the metric contract (docs/metrics.md):
//! every PromQL expression parses and names only exporter metrics, recording rules or `up`;
//! every alert carries severity, summary, description and a runbook anchor that exists;
//! every dashboard panel has a unit, a description and the `${datasource}` variable.
//! When promtool / amtool are installed, the rule files, rule unit tests and the Alertmanager
//! example are checked by them too (with `CI=true` a missing tool is a failure).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, LabelModifier};
use promql_parser::util::{walk_expr, ExprVisitor};
use serde_yaml_ng::Value as Yaml;

const RUNBOOK_BASE: &str =
    "https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#";

/// Alert names required by the product spec; each has a `## <Alert>` section in docs/runbook.md.
const SPEC_ALERTS: &[&str] = &[
    "OtpSmsDeliveryFailureRateHigh",
    "OtpDeliveryErrorBudgetBurn",
    "OtpVerificationConversionLow",
    "OtpFallbackRateHigh",
    "OtpSmsLatencyHigh",
    "OtpCostSpike",
    "OtpSmsPumpingSuspected",
    "ItniotechApiDown",
    "ItniotechApiAuthFailing",
    "ItniotechApiClockSkew",
    "ItniotechApiErrorsHigh",
    "ItniotechBalanceLow",
    "ItniotechBalanceExhaustionForecast",
    "ItniotechExporterBacklog",
    "ItniotechExporterDown",
];

/// Labels every scraped series gets from Prometheus.
const TARGET_LABELS: &[&str] = &["job", "instance"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &str, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join(dir))
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// Exporter metrics from docs/metrics.md: name -> allowed labels.
fn exporter_metrics() -> BTreeMap<String, BTreeSet<String>> {
    let doc = read(&root().join("docs/metrics.md"));
    let mut out = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `itniotech_")) {
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cols[1].trim_matches('`').to_string();
        let kind = cols[2];
        let mut labels: BTreeSet<String> = cols[3]
            .split(',')
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        labels.extend(TARGET_LABELS.iter().map(|s| s.to_string()));
        if kind == "histogram" {
            let mut bucket = labels.clone();
            bucket.insert("le".into());
            out.insert(format!("{name}_bucket"), bucket);
            out.insert(format!("{name}_sum"), labels.clone());
            out.insert(format!("{name}_count"), labels.clone());
        }
        out.insert(name, labels);
    }
    assert!(
        out.len() > 20,
        "docs/metrics.md table not found or changed shape"
    );
    out
}

struct Rule {
    file: String,
    record: Option<String>,
    alert: Option<String>,
    expr: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn string_map(v: Option<&Yaml>) -> BTreeMap<String, String> {
    v.and_then(Yaml::as_mapping)
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = match v {
                        Yaml::String(s) => s.clone(),
                        other => serde_yaml_ng::to_string(other).unwrap().trim().to_string(),
                    };
                    (k.as_str().unwrap_or_default().to_string(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

fn rules() -> Vec<Rule> {
    let mut out = Vec::new();
    for path in files_in("alerts", "yml") {
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let doc: Yaml = serde_yaml_ng::from_str(&read(&path)).expect("valid YAML");
        let Some(groups) = doc.get("groups").and_then(Yaml::as_sequence) else {
            continue; // e.g. alertmanager.example.yml
        };
        for g in groups {
            for r in g.get("rules").and_then(Yaml::as_sequence).expect("rules") {
                let s = |k: &str| r.get(k).and_then(Yaml::as_str).map(str::to_string);
                out.push(Rule {
                    file: file.clone(),
                    record: s("record"),
                    alert: s("alert"),
                    expr: s("expr").expect("expr"),
                    labels: string_map(r.get("labels")),
                    annotations: string_map(r.get("annotations")),
                });
            }
        }
    }
    assert!(!out.is_empty(), "no rules found in alerts/");
    out
}

/// Grafana variables -> something PromQL parses: intervals to durations, the rest to `x`.
fn substitute_grafana_vars(expr: &str) -> String {
    common::substitute_grafana_vars(expr, |name| match name {
        "__rate_interval" => "5m",
        "__interval" => "1m",
        "__range" => "1h",
        "__interval_ms" | "__range_ms" => "60000",
        "__range_s" => "3600",
        _ => "x",
    })
}

/// What an expression references: (metric name, matcher labels) per selector, and per
/// `by (...)` aggregation its labels and the metric names it aggregates over.
#[derive(Default)]
struct Selectors {
    selectors: Vec<(Option<String>, Vec<String>)>,
    by: Vec<(Vec<String>, Vec<Option<String>>)>,
}

impl ExprVisitor for Selectors {
    type Error = ();
    fn pre_visit(&mut self, e: &Expr) -> Result<bool, ()> {
        if let Expr::Aggregate(a) = e {
            if let Some(LabelModifier::Include(by)) = &a.modifier {
                let mut inner = Selectors::default();
                walk_expr(&mut inner, &a.expr).expect("visitor never fails");
                let names = inner.selectors.into_iter().map(|(n, _)| n).collect();
                self.by.push((by.labels.clone(), names));
            }
        }
        let vs = match e {
            Expr::VectorSelector(vs) => vs,
            Expr::MatrixSelector(ms) => &ms.vs,
            _ => return Ok(true),
        };
        let name = vs.name.clone().or_else(|| {
            vs.matchers
                .matchers
                .iter()
                .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
                .map(|m| m.value.clone())
        });
        let labels = vs
            .matchers
            .matchers
            .iter()
            .map(|m| m.name.clone())
            .filter(|n| n != "__name__")
            .collect();
        self.selectors.push((name, labels));
        Ok(true)
    }
}

/// Parses `expr` (panics inside the parser become errors) and returns what it references.
fn selectors(expr: &str) -> Result<Selectors, String> {
    let owned = expr.to_string();
    let parsed = std::panic::catch_unwind(move || promql_parser::parser::parse(&owned))
        .map_err(|_| "the parser panicked".to_string())??;
    let mut v = Selectors::default();
    walk_expr(&mut v, &parsed).expect("visitor never fails");
    Ok(v)
}

/// Problems of one expression: parse errors, unknown metrics, labels a metric does not have.
fn lint_expr(
    expr: &str,
    metrics: &BTreeMap<String, BTreeSet<String>>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let sels = match selectors(expr) {
        Ok(s) => s,
        Err(e) => return vec![format!("does not parse: {e}")],
    };
    let mut problems = Vec::new();
    // `by (l)` over exporter metrics only: `l` must be a label of at least one of them.
    for (by, names) in &sels.by {
        let Some(allowed) = names
            .iter()
            .map(|n| n.as_ref().and_then(|n| metrics.get(n)))
            .collect::<Option<Vec<_>>>()
        else {
            continue; // recording rules or `up` inside: their labels are checked where defined
        };
        for l in by {
            if !allowed.iter().any(|a| a.contains(l)) {
                problems.push(format!("aggregates by {l}, which {names:?} do not have"));
            }
        }
    }
    for (name, labels) in sels.selectors {
        let Some(name) = name else {
            problems.push("a selector without a metric name".into());
            continue;
        };
        if name == "up" || recorded.contains(&name) {
            continue;
        }
        match metrics.get(&name) {
            None => problems.push(format!("unknown metric {name}")),
            Some(allowed) => {
                for l in labels.iter().filter(|l| !allowed.contains(*l)) {
                    problems.push(format!("{name} has no label {l}"));
                }
            }
        }
    }
    problems
}

fn recorded_names(rules: &[Rule]) -> BTreeSet<String> {
    rules.iter().filter_map(|r| r.record.clone()).collect()
}

#[test]
fn grafana_variables_are_substituted() {
    assert_eq!(
        substitute_grafana_vars(
            r#"rate(m{a=~"$app_id",c=~"${country}",f="${flow_id:regex}"}[$__rate_interval]) / $__range"#
        ),
        r#"rate(m{a=~"x",c=~"x",f="x"}[5m]) / 1h"#
    );
}

#[test]
fn parser_panics_are_caught() {
    // promql-parser panics on some huge durations: the lint must return (Ok or Err), not unwind.
    let _ = selectors("x[1e30]");
    assert!(selectors("sum(").is_err());
}

#[test]
fn rule_expressions_parse_and_name_known_metrics() {
    let metrics = exporter_metrics();
    let rules = rules();
    let recorded = recorded_names(&rules);
    let mut problems = Vec::new();
    for r in &rules {
        let name = r.record.as_deref().or(r.alert.as_deref()).unwrap_or("?");
        for p in lint_expr(&r.expr, &metrics, &recorded) {
            problems.push(format!("{}: {name}: {p}", r.file));
        }
    }
    assert!(
        problems.is_empty(),
        "rule problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn recording_rules_follow_level_metric_operations() {
    for r in rules().iter().filter_map(|r| r.record.as_ref()) {
        assert_eq!(r.split(':').count(), 3, "{r}: want level:metric:operations");
    }
}

#[test]
fn alerts_are_complete_and_link_existing_runbook_sections() {
    let runbook = read(&root().join("docs/runbook.md"));
    let anchors: BTreeSet<String> = runbook
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| github_anchor(l.trim_start_matches('#').trim()))
        .collect();
    let mut problems = Vec::new();
    for r in rules() {
        let Some(alert) = &r.alert else { continue };
        match r.labels.get("severity").map(String::as_str) {
            Some("critical" | "warning" | "info") => {}
            other => problems.push(format!("{alert}: severity {other:?}")),
        }
        for a in ["summary", "description", "runbook_url"] {
            if r.annotations.get(a).is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("{alert}: no {a}"));
            }
        }
        let want = format!("{RUNBOOK_BASE}{}", alert.to_lowercase());
        let url = r
            .annotations
            .get("runbook_url")
            .cloned()
            .unwrap_or_default();
        if url != want {
            problems.push(format!("{alert}: runbook_url {url}, want {want}"));
        }
        if !anchors.contains(&alert.to_lowercase()) {
            problems.push(format!(
                "{alert}: no section `## {alert}` in docs/runbook.md"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "alert problems:\n{}",
        problems.join("\n")
    );
}

/// GitHub's heading anchor: lower case, punctuation dropped, spaces to dashes.
fn github_anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_' || *c == ' ')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[test]
fn every_alert_of_the_spec_exists() {
    let defined: BTreeSet<String> = rules().into_iter().filter_map(|r| r.alert).collect();
    let missing: Vec<_> = SPEC_ALERTS
        .iter()
        .filter(|a| !defined.contains(**a))
        .collect();
    assert!(missing.is_empty(), "alerts missing: {missing:?}");
}

fn dashboards() -> Vec<(String, serde_json::Value)> {
    let v: Vec<_> = files_in("dashboards", "json")
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let json = serde_json::from_str(&read(&p)).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, json)
        })
        .collect();
    assert!(v.len() >= 3, "dashboards missing");
    v
}

/// Panels, including those nested in collapsed rows.
fn panels(d: &serde_json::Value) -> Vec<&serde_json::Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(p["panels"].as_array().into_iter().flatten());
    }
    out
}

#[test]
fn dashboard_expressions_parse_and_name_known_metrics() {
    let metrics = exporter_metrics();
    let recorded = recorded_names(&rules());
    let mut problems = Vec::new();
    for (file, d) in dashboards() {
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default();
                for e in lint_expr(&substitute_grafana_vars(expr), &metrics, &recorded) {
                    problems.push(format!("{file}: panel {:?}: {e}: {expr}", p["title"]));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn dashboard_panels_have_unit_description_and_datasource_variable() {
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap_or_default();
        if uid.is_empty() || !uids.insert(uid.to_string()) {
            problems.push(format!("{file}: missing or duplicate uid {uid:?}"));
        }
        let vars: BTreeMap<&str, &serde_json::Value> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| Some((v["name"].as_str()?, v)))
            .collect();
        match vars.get("datasource") {
            Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
            _ => problems.push(format!("{file}: no prometheus `datasource` variable")),
        }
        if file.starts_with("otp-") {
            for v in ["app_id", "country", "flow_id"] {
                if !vars.contains_key(v) {
                    problems.push(format!("{file}: no template variable {v}"));
                }
            }
        }
        for p in panels(&d) {
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap_or("?");
            if p["description"].as_str().is_none_or(str::is_empty) {
                problems.push(format!("{file}: {title}: no description"));
            }
            if p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                problems.push(format!("{file}: {title}: no fieldConfig.defaults.unit"));
            }
            if p["datasource"]["uid"] != "${datasource}" {
                problems.push(format!(
                    "{file}: {title}: panel datasource is not ${{datasource}}"
                ));
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                problems.push(format!("{file}: {title}: no targets"));
            }
            for t in &targets {
                if !t["datasource"].is_null() && t["datasource"]["uid"] != "${datasource}" {
                    problems.push(format!(
                        "{file}: {title}: target datasource is not ${{datasource}}"
                    ));
                }
                let expr = t["expr"].as_str().unwrap_or_default();
                if expr.contains("rate(") && expr.contains("[5m]") {
                    problems.push(format!("{file}: {title}: use [$__rate_interval], not [5m]"));
                }
            }
            if p["type"] == "heatmap" && targets.iter().any(|t| t["format"] != "heatmap") {
                problems.push(format!(
                    "{file}: {title}: heatmap target without format heatmap"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );
}

/// Runs `tool args` in the repository root; `None` when the tool is not installed.
fn run_tool(tool: &str, args: &[String]) -> Option<std::process::Output> {
    match Command::new(tool).args(args).current_dir(root()).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "{tool} is not installed and CI=true (run .ci/install-prometheus.sh)"
            );
            eprintln!(
                "NOTICE: {tool} not installed, skipping its checks (.ci/install-prometheus.sh)"
            );
            None
        }
        Err(e) => panic!("{tool}: {e}"),
    }
}

fn assert_tool_ok(tool: &str, args: &[String]) {
    if let Some(out) = run_tool(tool, args) {
        assert!(
            out.status.success(),
            "{tool} {} failed:\n{}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn rel(paths: Vec<PathBuf>) -> Vec<String> {
    paths
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .to_string()
        })
        .collect()
}

#[test]
fn promtool_checks_rules() {
    let files: Vec<String> = rel(files_in("alerts", "yml"))
        .into_iter()
        .filter(|f| !f.contains("alertmanager"))
        .collect();
    let mut args = vec!["check".to_string(), "rules".to_string()];
    args.extend(files);
    assert_tool_ok("promtool", &args);
}

#[test]
fn promtool_rule_unit_tests_pass() {
    let mut args = vec!["test".to_string(), "rules".to_string()];
    args.extend(rel(files_in("alerts/tests", "yml")));
    assert_tool_ok("promtool", &args);
}

#[test]
fn amtool_accepts_the_alertmanager_example() {
    assert_tool_ok(
        "amtool",
        &[
            "check-config".to_string(),
            "alerts/alertmanager.example.yml".to_string(),
        ],
    );
}
