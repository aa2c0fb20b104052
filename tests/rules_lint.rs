//! Lints the shipped alerts/ and dashboards/ (rendered from mixin/) against the metric contract
//! (docs/metrics.md) and the project's rules:
//! - every PromQL expression parses and names only exporter metrics, recording rules or `up`;
//! - every aggregation and vector match of a rule keeps the deployment label (`job`), every raw
//!   selector carries a `job` matcher, and no rule or panel uses the label `endpoint` (the
//!   target label prometheus-operator adds);
//! - every alert carries severity, summary, description and a runbook anchor that exists;
//! - the dashboards follow grafana/dashboard-linter's rules, with the exceptions of
//!   dashboards/.lint (its format);
//! - when promtool / amtool are installed: the rule files, the recording-rule and configuration
//!   unit tests and the Alertmanager example pass them (with `CI=true` a missing tool fails).
//!   The drill suite (alerts/tests/drills/) runs in tests/drill.rs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use promql_parser::label::MatchOp;
use promql_parser::parser::{Expr, LabelModifier};
use serde_yaml_ng::Value as Yaml;

const RUNBOOK_BASE: &str =
    "https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#";

/// Alert names required by spec.md section 5, issue 11 and the capture proxy (issue 10).
const REQUIRED_ALERTS: &[&str] = &[
    "OtpSmsDeliveryFailureRateHigh",
    "OtpSmsCarrierFailureRateHigh",
    "OtpCallFailureRateHigh",
    "OtpDeliveryErrorBudgetBurn",
    "OtpVerificationConversionLow",
    "OtpFallbackRateHigh",
    "OtpSmsLatencyHigh",
    "OtpOrdersNotFoundHigh",
    "OtpCostSpike",
    "OtpDailySpendCapExceeded",
    "OtpUnverifiedBudgetExceeded",
    "OtpSmsPumpingSuspected",
    "OtpSmsNewCountry",
    "OtpSendLimitRejections",
    "ItniotechApiDown",
    "ItniotechApiAuthFailing",
    "ItniotechApiClockSkew",
    "ItniotechApiErrorsHigh",
    "ItniotechBalanceRunwayLow",
    "ItniotechBalanceLow",
    "ItniotechBalanceExhaustionForecast",
    "ItniotechIntakeStopped",
    "ItniotechIntakeLow",
    "ItniotechIntakeInvalidHigh",
    "ItniotechCaptureFailing",
    "ItniotechExporterBacklog",
    "ItniotechExporterMetricsStale",
    "ItniotechExporterReplicaDivergence",
    "ItniotechExporterDown",
];

/// Labels every scraped series gets from Prometheus.
const TARGET_LABELS: &[&str] = &["job", "instance"];
/// The deployment label every rule aggregation keeps (mixin config `groupLabels`).
const GROUP_LABEL: &str = "job";
/// Grafana's duration for `$__rate_interval` in the lint: unlikely in a hand-written query.
const RATE_INTERVAL: &str = "4321s";

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

impl Rule {
    fn name(&self) -> &str {
        self.record
            .as_deref()
            .or(self.alert.as_deref())
            .unwrap_or("?")
    }
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

/// The rules of alerts/*.yml (the files Prometheus loads; tests/ holds promtool tests).
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

/// Grafana variables -> something PromQL parses, the way dashboard-linter expands them:
/// `$job` and `$instance` stay literal (the matchers must read `job=~"$job"`),
/// `$__rate_interval` becomes a marker duration, other variables a plain value.
fn substitute_grafana_vars(expr: &str) -> String {
    common::substitute_grafana_vars(expr, |name| match name {
        "__rate_interval" => RATE_INTERVAL,
        "__interval" => "1m",
        "__range" => "1h",
        "__interval_ms" | "__range_ms" => "60000",
        "__range_s" => "3600",
        "job" => "$job",
        "instance" => "$instance",
        _ => "x",
    })
}

/// A vector selector: metric name and matchers (label, op, value).
struct Selector {
    name: Option<String>,
    matchers: Vec<(String, &'static str, String)>,
}

/// An aggregation: its `by (...)` labels (None: no `by`, or `without`) and the metric names
/// it aggregates.
type Aggregation = (Option<Vec<String>>, Vec<Option<String>>);

/// What an expression holds, for the checks below.
#[derive(Default)]
struct Facts {
    selectors: Vec<Selector>,
    aggregations: Vec<Aggregation>,
    /// `on (...)` / `ignoring (...)` label lists of vector matches (true = on).
    matchings: Vec<(bool, Vec<String>)>,
    /// rate()/irate() whose range is not `$__rate_interval`.
    fixed_rate_ranges: Vec<String>,
    /// `_total` series not directly under rate/irate/increase over a range.
    raw_counters: Vec<String>,
}

fn op_str(op: &MatchOp) -> &'static str {
    match op {
        MatchOp::Equal => "=",
        MatchOp::NotEqual => "!=",
        MatchOp::Re(_) => "=~",
        MatchOp::NotRe(_) => "!~",
    }
}

fn selector_names(e: &Expr) -> Vec<Option<String>> {
    let mut f = Facts::default();
    walk(e, &mut Vec::new(), &mut f);
    f.selectors.into_iter().map(|s| s.name).collect()
}

/// Depth-first walk keeping the chain of parents (dashboard-linter's rules look at them).
fn walk<'a>(e: &'a Expr, parents: &mut Vec<&'a Expr>, f: &mut Facts) {
    match e {
        Expr::Aggregate(a) => {
            let by = match &a.modifier {
                Some(LabelModifier::Include(ls)) => Some(ls.labels.clone()),
                _ => None,
            };
            f.aggregations.push((by, selector_names(&a.expr)));
        }
        Expr::Binary(b) => {
            if let Some(m) = b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
                match m {
                    LabelModifier::Include(ls) => f.matchings.push((true, ls.labels.clone())),
                    LabelModifier::Exclude(ls) => f.matchings.push((false, ls.labels.clone())),
                }
            }
        }
        Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {
            let (vs, range) = match e {
                Expr::VectorSelector(vs) => (vs, None),
                Expr::MatrixSelector(ms) => (&ms.vs, Some(ms.range)),
                _ => unreachable!(),
            };
            let name = vs.name.clone().or_else(|| {
                vs.matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__" && m.op == MatchOp::Equal)
                    .map(|m| m.value.clone())
            });
            let call = parents.last().and_then(|p| match p {
                Expr::Call(c) => Some(c.func.name),
                _ => None,
            });
            if let Some(range) = range {
                let marker = humantime::parse_duration(RATE_INTERVAL).unwrap();
                if matches!(call, Some("rate" | "irate")) && range != marker {
                    f.fixed_rate_ranges.push(e.to_string());
                }
            }
            if name.as_deref().is_some_and(|n| n.ends_with("_total"))
                && !(range.is_some() && matches!(call, Some("rate" | "irate" | "increase")))
            {
                f.raw_counters.push(e.to_string());
            }
            f.selectors.push(Selector {
                name,
                matchers: vs
                    .matchers
                    .matchers
                    .iter()
                    .filter(|m| m.name != "__name__")
                    .map(|m| (m.name.clone(), op_str(&m.op), m.value.clone()))
                    .collect(),
            });
            return;
        }
        _ => {}
    }
    parents.push(e);
    match e {
        Expr::Aggregate(a) => {
            walk(&a.expr, parents, f);
            if let Some(p) = &a.param {
                walk(p, parents, f);
            }
        }
        Expr::Unary(u) => walk(&u.expr, parents, f),
        Expr::Binary(b) => {
            walk(&b.lhs, parents, f);
            walk(&b.rhs, parents, f);
        }
        Expr::Paren(p) => walk(&p.expr, parents, f),
        Expr::Subquery(s) => walk(&s.expr, parents, f),
        Expr::Call(c) => {
            for a in &c.args.args {
                walk(a, parents, f);
            }
        }
        _ => {}
    }
    parents.pop();
}

/// Parses `expr` (panics inside the parser become errors) and collects its facts.
fn facts(expr: &str) -> Result<Facts, String> {
    let owned = expr.to_string();
    let parsed = std::panic::catch_unwind(move || promql_parser::parser::parse(&owned))
        .map_err(|_| "the parser panicked".to_string())??;
    let mut f = Facts::default();
    walk(&parsed, &mut Vec::new(), &mut f);
    Ok(f)
}

/// Problems of one expression: parse errors, unknown metrics, labels a metric does not have,
/// the clashing label `endpoint`.
fn lint_expr(
    expr: &str,
    metrics: &BTreeMap<String, BTreeSet<String>>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    let f = match facts(expr) {
        Ok(f) => f,
        Err(e) => return vec![format!("does not parse: {e}")],
    };
    let mut problems = Vec::new();
    // `by (l)` over exporter metrics only: `l` must be a label of at least one of them.
    for (by, names) in &f.aggregations {
        let Some(by) = by else { continue };
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
    for s in &f.selectors {
        let Some(name) = &s.name else {
            problems.push("a selector without a metric name".into());
            continue;
        };
        if s.matchers.iter().any(|(l, _, _)| l == "endpoint") {
            problems.push(format!("{name}: the label `endpoint` (use api_endpoint)"));
        }
        if name == "up" || name == "ALERTS" || recorded.contains(name) {
            continue;
        }
        match metrics.get(name) {
            None => problems.push(format!("unknown metric {name}")),
            Some(allowed) => {
                for (l, _, _) in s.matchers.iter().filter(|(l, _, _)| !allowed.contains(l)) {
                    problems.push(format!("{name} has no label {l}"));
                }
            }
        }
    }
    for (_, labels) in &f.matchings {
        if labels.iter().any(|l| l == "endpoint") {
            problems.push("matches on the label `endpoint` (use api_endpoint)".into());
        }
    }
    problems
}

/// Problems of a rule expression with respect to deployments: aggregations and matches that
/// drop `job`, raw selectors without a `job` matcher.
fn lint_rule_labels(expr: &str, metrics: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let Ok(f) = facts(expr) else {
        return Vec::new(); // reported by lint_expr
    };
    let mut problems = Vec::new();
    for (by, names) in &f.aggregations {
        match by {
            Some(by) if by.iter().any(|l| l == GROUP_LABEL) => {}
            _ => problems.push(format!(
                "an aggregation over {names:?} drops `{GROUP_LABEL}`: deployments would mix"
            )),
        }
    }
    for (on, labels) in &f.matchings {
        // `or on () absent(...)` is the one match that needs no labels.
        if !on || !(labels.is_empty() || labels.iter().any(|l| l == GROUP_LABEL)) {
            problems.push(format!(
                "a vector match {} ({}) without `{GROUP_LABEL}`",
                if *on { "on" } else { "ignoring" },
                labels.join(", ")
            ));
        }
    }
    for s in &f.selectors {
        let raw = s
            .name
            .as_deref()
            .is_some_and(|n| n == "up" || metrics.contains_key(n));
        if raw && !s.matchers.iter().any(|(l, _, _)| l == GROUP_LABEL) {
            problems.push(format!(
                "{} has no `{GROUP_LABEL}` matcher (the mixin's itniotechSelector)",
                s.name.as_deref().unwrap_or("?")
            ));
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
            r#"rate(m{a=~"$app_id",c=~"${country}",f="${flow_id:regex}",job=~"$job"}[$__rate_interval]) / $__range"#
        ),
        r#"rate(m{a=~"x",c=~"x",f="x",job=~"$job"}[4321s]) / 1h"#
    );
}

#[test]
fn parser_panics_are_caught() {
    // promql-parser panics on some huge durations: the lint must return (Ok or Err), not unwind.
    let _ = facts("x[1e30]");
    assert!(facts("sum(").is_err());
}

#[test]
fn the_lints_catch_what_they_are_for() {
    let metrics = exporter_metrics();
    let none = BTreeSet::new();
    // Each of these must produce a problem: the checks below cannot pass vacuously.
    let bad_rules = [
        "sum by (app_id) (rate(itniotech_otp_sms_total{job=\"j\"}[5m]))",
        "sum(rate(itniotech_otp_sms_total{job=\"j\"}[5m]))",
        "a:b:c / on (app_id) d:e:f",
        "rate(itniotech_otp_sms_total[5m])",
    ];
    for e in bad_rules {
        assert!(
            !lint_rule_labels(e, &metrics).is_empty(),
            "not flagged: {e}"
        );
    }
    assert!(lint_rule_labels(
        "sum by (job, app_id) (rate(itniotech_otp_sms_total{job=\"j\"}[5m])) / on (job, app_id) x:y:z or on () absent(up{job=\"j\"})",
        &metrics
    )
    .is_empty());
    for e in [
        "itniotech_api_requests_total{endpoint=\"record\"}",
        "itniotech_otp_sms_total{flow_id=\"1\"}",
        "itniotech_nope",
    ] {
        assert!(
            !lint_expr(e, &metrics, &none).is_empty(),
            "not flagged: {e}"
        );
    }
    let f = facts(&substitute_grafana_vars(
        "sum(rate(x_total[5m])) + sum(rate(y_total[$__rate_interval])) + z_total + increase(w_total[1h])",
    ))
    .unwrap();
    assert_eq!(f.fixed_rate_ranges, vec!["x_total[5m]".to_string()]);
    assert_eq!(f.raw_counters, vec!["z_total".to_string()]);
}

#[test]
fn rule_expressions_parse_and_name_known_metrics() {
    let metrics = exporter_metrics();
    let rules = rules();
    let recorded = recorded_names(&rules);
    let mut problems = Vec::new();
    for r in &rules {
        for p in lint_expr(&r.expr, &metrics, &recorded) {
            problems.push(format!("{}: {}: {p}", r.file, r.name()));
        }
    }
    assert!(
        problems.is_empty(),
        "rule problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn rules_keep_the_deployment_apart() {
    let metrics = exporter_metrics();
    let mut problems = Vec::new();
    for r in rules() {
        for p in lint_rule_labels(&r.expr, &metrics) {
            problems.push(format!("{}: {}: {p}", r.file, r.name()));
        }
    }
    assert!(
        problems.is_empty(),
        "rules that mix deployments:\n{}",
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
fn every_required_alert_exists() {
    let defined: BTreeSet<String> = rules().into_iter().filter_map(|r| r.alert).collect();
    let missing: Vec<_> = REQUIRED_ALERTS
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
        let mut exprs: Vec<(String, String)> = Vec::new();
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                let title = p["title"].as_str().unwrap_or("?").to_string();
                exprs.push((title, t["expr"].as_str().unwrap_or_default().to_string()));
            }
        }
        for a in d["annotations"]["list"].as_array().into_iter().flatten() {
            if let Some(e) = a["expr"].as_str() {
                exprs.push(("annotation".into(), e.to_string()));
            }
        }
        for (title, expr) in exprs {
            for e in lint_expr(&substitute_grafana_vars(&expr), &metrics, &recorded) {
                problems.push(format!("{file}: {title:?}: {e}: {expr}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard problems:\n{}",
        problems.join("\n")
    );
}

/// dashboards/.lint: rule -> (dashboard title, panel title) pairs excluded.
fn lint_exclusions() -> BTreeMap<String, BTreeSet<(String, String)>> {
    let doc: Yaml =
        serde_yaml_ng::from_str(&read(&root().join("dashboards/.lint"))).expect(".lint is YAML");
    let mut out: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for (rule, v) in doc["exclusions"].as_mapping().into_iter().flatten() {
        let rule = rule.as_str().expect("rule name").to_string();
        let entries = v["entries"].as_sequence().unwrap_or_else(|| {
            panic!(".lint: {rule}: exclude single panels (entries), not a whole rule")
        });
        for e in entries {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            assert!(
                !s("reason").is_empty(),
                ".lint: {rule}: every exception needs a reason"
            );
            out.entry(rule.clone())
                .or_default()
                .insert((s("dashboard"), s("panel")));
        }
    }
    out
}

/// Units a panel may use: Grafana's ids used here, plus its custom `prefix:` forms.
fn valid_unit(u: &str) -> bool {
    const UNITS: &[&str] = &[
        "none",
        "short",
        "percent",
        "percentunit",
        "s",
        "ms",
        "h",
        "m",
        "d",
        "ops",
        "reqps",
        "bytes",
        "decbytes",
    ];
    UNITS.contains(&u)
        || (u.starts_with("currency")
            && u.len() == 11
            && u[8..].chars().all(|c| c.is_ascii_uppercase()))
        || ["currency:", "suffix:", "prefix:", "count:"]
            .iter()
            .any(|p| u.starts_with(p) && u.len() > p.len())
}

/// grafana/dashboard-linter's rules (template-*, panel-*, target-*), one problem per finding,
/// keyed by (rule, dashboard title, panel title) so dashboards/.lint can excuse it.
fn dashboard_lint(file: &str, d: &serde_json::Value) -> Vec<(String, String, String, String)> {
    let title = d["title"].as_str().unwrap_or(file).to_string();
    let mut out = Vec::new();
    let mut problem = |rule: &str, panel: &str, msg: String| {
        out.push((rule.to_string(), title.clone(), panel.to_string(), msg));
    };
    let vars: Vec<&serde_json::Value> = d["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let var = |name: &str| vars.iter().find(|v| v["name"] == name).copied();

    let datasources: Vec<_> = vars.iter().filter(|v| v["type"] == "datasource").collect();
    if datasources.len() != 1
        || datasources[0]["name"] != "datasource"
        || datasources[0]["query"] != "prometheus"
        || datasources[0]["label"] != "Data source"
    {
        problem(
            "template-datasource-rule",
            "",
            "want one prometheus variable `datasource` labelled `Data source`".into(),
        );
    }
    for (name, label) in [("job", "Job"), ("instance", "Instance")] {
        let rule = format!("template-{name}-rule");
        match var(name) {
            None => problem(&rule, "", format!("no `{name}` variable")),
            Some(v) => {
                if v["datasource"]["uid"] != "${datasource}" || v["type"] != "query" {
                    problem(
                        &rule,
                        "",
                        format!("`{name}` must be a query on ${{datasource}}"),
                    );
                }
                if v["label"] != label || v["multi"] != true || v["allValue"] != ".+" {
                    problem(
                        &rule,
                        "",
                        format!("`{name}`: label {label}, multi, allValue .+"),
                    );
                }
            }
        }
    }
    for v in &vars {
        if v["type"] != "query" {
            continue;
        }
        let name = v["name"].as_str().unwrap_or("?");
        if v["refresh"] != 2 {
            problem(
                "template-on-time-change-reload-rule",
                "",
                format!("variable {name}: refresh 2 (on time range change)"),
            );
        }
        let q = v["query"]["query"].as_str().unwrap_or_default();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _)| sel)
            .unwrap_or(q);
        if facts(&substitute_grafana_vars(inner)).is_err() {
            problem(
                "template-label-promql-rule",
                "",
                format!("variable {name}: invalid PromQL {q}"),
            );
        }
    }
    if d["editable"] != false {
        problem(
            "template-uneditable-rule",
            "",
            "dashboards are code: editable false".into(),
        );
    }
    for p in panels(d) {
        if p["type"] == "row" {
            continue;
        }
        let pt = p["title"].as_str().unwrap_or_default();
        if pt.is_empty() || p["description"].as_str().is_none_or(str::is_empty) {
            problem(
                "panel-title-description-rule",
                pt,
                "title and description".into(),
            );
        }
        let unit = p["fieldConfig"]["defaults"]["unit"]
            .as_str()
            .unwrap_or_default();
        if !valid_unit(unit) {
            problem("panel-units-rule", pt, format!("unit {unit:?}"));
        }
        if p["datasource"]["uid"] != "${datasource}" {
            problem(
                "panel-datasource-rule",
                pt,
                "panel datasource is not ${datasource}".into(),
            );
        }
        let targets = p["targets"].as_array().cloned().unwrap_or_default();
        if targets.is_empty() {
            problem("panel-no-targets-rule", pt, "no targets".into());
        }
        if p["type"] == "heatmap" && targets.iter().any(|t| t["format"] != "heatmap") {
            problem(
                "panel-heatmap-format",
                pt,
                "heatmap target without format heatmap".into(),
            );
        }
        for t in &targets {
            if !t["datasource"].is_null() && t["datasource"]["uid"] != "${datasource}" {
                problem(
                    "panel-datasource-rule",
                    pt,
                    "target datasource is not ${datasource}".into(),
                );
            }
            let expr = t["expr"].as_str().unwrap_or_default();
            let f = match facts(&substitute_grafana_vars(expr)) {
                Ok(f) => f,
                Err(e) => {
                    problem("target-promql-rule", pt, format!("{e}: {expr}"));
                    continue;
                }
            };
            for r in &f.fixed_rate_ranges {
                problem(
                    "target-rate-interval-rule",
                    pt,
                    format!("{r} should use $__rate_interval"),
                );
            }
            for r in &f.raw_counters {
                problem(
                    "target-counter-agg-rule",
                    pt,
                    format!("counter {r} not under rate/irate/increase"),
                );
            }
            for s in &f.selectors {
                for (label, want) in [("job", "$job"), ("instance", "$instance")] {
                    let ok = s
                        .matchers
                        .iter()
                        .any(|(l, op, v)| l == label && *op == "=~" && v == want);
                    if !ok {
                        problem(
                            &format!("target-{label}-rule"),
                            pt,
                            format!(
                                "{} has no {label}=~\"{want}\"",
                                s.name.as_deref().unwrap_or("?")
                            ),
                        );
                    }
                }
            }
        }
    }
    out
}

#[test]
fn the_dashboard_lint_flags_each_rule() {
    // The dashboards as they were before issue 11: every rule of the lint must fire on them.
    let bad = serde_json::json!({
        "title": "bad",
        "editable": true,
        "templating": {"list": [
            {"name": "ds", "type": "datasource", "query": "prometheus", "label": "DS"},
            {"name": "app_id", "type": "query", "refresh": 1, "query": {"query": "label_values(m{, app_id)"}}
        ]},
        "panels": [
            {"type": "timeseries", "title": "t", "datasource": {"uid": "prom"},
             "fieldConfig": {"defaults": {"unit": "dollars"}},
             "targets": [{"expr": "sum(rate(itniotech_otp_cost_total{app_id=~\"$app_id\"}[5m])) + itniotech_otp_orders_total"}]},
            {"type": "stat", "title": "", "datasource": {"uid": "${datasource}"},
             "fieldConfig": {"defaults": {"unit": "short"}}, "targets": []}
        ]
    });
    let rules: BTreeSet<String> = dashboard_lint("bad.json", &bad)
        .into_iter()
        .map(|(rule, ..)| rule)
        .collect();
    for want in [
        "template-datasource-rule",
        "template-job-rule",
        "template-instance-rule",
        "template-label-promql-rule",
        "template-on-time-change-reload-rule",
        "template-uneditable-rule",
        "panel-title-description-rule",
        "panel-units-rule",
        "panel-datasource-rule",
        "panel-no-targets-rule",
        "target-rate-interval-rule",
        "target-counter-agg-rule",
        "target-job-rule",
        "target-instance-rule",
    ] {
        assert!(rules.contains(want), "{want} not flagged; got {rules:?}");
    }
}

#[test]
fn dashboards_follow_the_dashboard_linter_rules() {
    let exclusions = lint_exclusions();
    let mut used: BTreeSet<(String, String, String)> = BTreeSet::new();
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for (file, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap_or_default();
        assert!(
            !uid.is_empty() && uids.insert(uid.to_string()),
            "{file}: missing or duplicate uid {uid:?}"
        );
        for (rule, dash, panel, msg) in dashboard_lint(&file, &d) {
            let key = (dash.clone(), panel.clone());
            if exclusions.get(&rule).is_some_and(|e| e.contains(&key)) {
                used.insert((rule, dash, panel));
                continue;
            }
            problems.push(format!("{file}: {rule}: {panel:?}: {msg}"));
        }
    }
    // An exception nothing needs any more hides the next real problem.
    for (rule, entries) in &exclusions {
        for (dash, panel) in entries {
            if !used.contains(&(rule.clone(), dash.clone(), panel.clone())) {
                problems.push(format!(
                    ".lint: {rule}: {dash} / {panel}: excused but not needed"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard-linter problems:\n{}",
        problems.join("\n")
    );
}

#[test]
fn otp_dashboards_filter_by_app_and_country() {
    for (file, d) in dashboards()
        .into_iter()
        .filter(|(f, _)| f.starts_with("otp-"))
    {
        let vars: BTreeSet<&str> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        for v in ["app_id", "country"] {
            assert!(vars.contains(v), "{file}: no template variable {v}");
        }
    }
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
#[cfg_attr(
    not(tool_promtool),
    ignore = "needs promtool (.ci/install-prometheus.sh)"
)]
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
#[cfg_attr(
    not(tool_promtool),
    ignore = "needs promtool (.ci/install-prometheus.sh)"
)]
fn promtool_recording_and_configuration_tests_pass() {
    let args: Vec<String> = [
        "test",
        "rules",
        "alerts/tests/recording.test.yml",
        "alerts/tests/overrides/overrides.test.yml",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_tool_ok("promtool", &args);
}

#[test]
#[cfg_attr(not(tool_amtool), ignore = "needs amtool (.ci/install-prometheus.sh)")]
fn amtool_accepts_the_alertmanager_example() {
    assert_tool_ok(
        "amtool",
        &[
            "check-config".to_string(),
            "alerts/alertmanager.example.yml".to_string(),
        ],
    );
}
