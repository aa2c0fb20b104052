//! The drills: the shipped alerts and dashboards against a real Prometheus, and the promtool
//! drill suite.
//!
//! The promtool suite (alerts/tests/drills/, rendered from mixin/tests/) holds a fire, a quiet and
//! a low-volume case per alert; each case asserts when its alert first fires, to the minute, and
//! alerts/tests/normal-week.test.yml runs seven days of normal traffic that must fire nothing.
//! The test prints every case's detection time and checks that docs/runbook.md states the same.
//!
//! In the real-Prometheus drill two demos run side by side (`normal`, through the capture proxy,
//! and `carrier-outage`, posting to the intake), each scraped by its own
//! Prometheus (5 s scrape and evaluation) that loads the repository's alerts/*.yml. The drill
//! proves, through the Prometheus HTTP API, that
//! - every rule loads and evaluates without error,
//! - `OtpSmsDeliveryFailureRateHigh{country="ID"}` fires under the outage within the detection
//!   bound documented in docs/runbook.md,
//! - nothing fires under `normal` at any poll, and `ItniotechExporterDown` fires on neither,
//! - every dashboard panel query returns data on the normal Prometheus.
//!
//! Needs `prometheus` on PATH: skipped with a notice without it, a failure under `CI=true`.
//! Run it with `cargo test --test drill -- --nocapture` (about 7 minutes).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as Json;

/// The alert the outage must fire, and the series it must fire for.
const OUTAGE_ALERT: &str = "OtpSmsDeliveryFailureRateHigh";
const OUTAGE_COUNTRY: &str = "ID";
/// Allowed lateness over the documented bound: polling, process start-up, a slow shared CI host.
const MARGIN: Duration = Duration::from_secs(30);
/// Orders per second of both demos. The runbook's drill bound assumes this rate.
const DEMO_RATE: &str = "5";
/// Poll period of the alert, rule and health checks.
const POLL: Duration = Duration::from_secs(5);
/// After the outage fired, keep watching until the documented bound has passed (so both apps'
/// outage alerts can fire and the normal side gets as long a look), but no longer than this:
/// the drill must stay well under 10 minutes.
const MAX_OBSERVE: Duration = Duration::from_secs(7 * 60);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A child process killed (and reaped) on drop, also when the test panics.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Still running? Panics with the log tail when it exited.
    fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited early ({status}); log tail:\n{}",
                self.name,
                tail(&self.log, 30)
            );
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One scenario: its demo, its Prometheus, and their temporary directories (kept until drop,
/// after the processes: fields drop in declaration order).
struct Stack {
    scenario: &'static str,
    prometheus: Proc,
    demo: Proc,
    prom_url: String,
    _dir: tempfile::TempDir,
}

/// Starts `demo --scenario <scenario>` on 127.0.0.1:0 and returns it with its metrics URL.
fn start_demo(scenario: &str, seed: u64, dir: &Path) -> (Proc, String) {
    let store = dir.join("store");
    let log = dir.join("demo.log");
    let mut child = Command::new(common::binary())
        .args([
            "demo",
            "--web.listen-address",
            "127.0.0.1:0",
            "--storage.path",
        ])
        .arg(&store)
        .args(["--demo.rate", DEMO_RATE, "--scenario", scenario, "--seed"])
        .arg(seed.to_string())
        // The normal demo sends through the capture proxy (no intake posts), the outage demo
        // posts to the intake: the rules and panels see both ways orders arrive, and the
        // proxy's send-status and capture series exist for the panels that show them.
        .args(if scenario == "normal" {
            &["--demo.via-proxy"][..]
        } else {
            &[][..]
        })
        .stdout(Stdio::piped())
        .stderr(File::create(&log).expect("demo log"))
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().expect("demo stdout");
    let mut proc = Proc {
        name: format!("demo ({scenario})"),
        child,
        log,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads stdout to its end so the demo never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(i) = line.find("http://127.0.0.1:") {
                if line.contains("metrics") {
                    let url: String = line[i..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(url);
                }
            }
        }
    });
    let url = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(url) => url,
        Err(_) => {
            proc.check_alive();
            panic!("demo ({scenario}) printed no metrics URL within 30 s");
        }
    };
    (proc, url)
}

/// The rule files among alerts/*.yml (the Alertmanager example has no `groups`).
fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("alerts"))
        .expect("alerts/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .filter(|p| {
            let doc: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(p).expect("read rule file"))
                    .expect("valid YAML");
            doc.get("groups").is_some()
        })
        .collect();
    files.sort();
    assert!(files.len() >= 2, "rule files missing: {files:?}");
    files
}

/// Number of rules (alerting and recording) in the rule files.
fn rule_count(files: &[PathBuf]) -> usize {
    files
        .iter()
        .map(|p| {
            let doc: serde_yaml_ng::Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
            doc["groups"]
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|g| g["rules"].as_sequence().map_or(0, Vec::len))
                .sum::<usize>()
        })
        .sum()
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// Starts Prometheus scraping `metrics_url`; retries with another port when it cannot bind.
fn start_prometheus(scenario: &str, metrics_url: &str, dir: &Path) -> (Proc, String) {
    let target = metrics_url
        .strip_prefix("http://")
        .and_then(|r| r.split_once('/'))
        .map(|(hostport, path)| (hostport.to_string(), format!("/{path}")))
        .unwrap_or_else(|| panic!("unexpected metrics URL {metrics_url}"));
    let rules: Vec<String> = rule_files()
        .iter()
        .map(|p| format!("  - {:?}", p.display().to_string()))
        .collect();
    let config = format!(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n\
         rule_files:\n{}\n\
         scrape_configs:\n  - job_name: itniotech-exporter\n    metrics_path: {:?}\n    \
         static_configs:\n      - targets: [{:?}]\n",
        rules.join("\n"),
        target.1,
        target.0
    );
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, config).expect("write prometheus.yml");
    let http = http();
    for attempt in 1..=5 {
        let port = free_port();
        let log = dir.join(format!("prometheus-{attempt}.log"));
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join(format!("tsdb-{attempt}")).display()
            ))
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("prometheus log"))
            .spawn()
            .expect("start prometheus");
        let mut proc = Proc {
            name: format!("prometheus ({scenario})"),
            child,
            log,
        };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = proc.child.try_wait() {
                break; // most likely the port was taken meanwhile: retry with another
            }
            let ready = http
                .get(format!("{url}/-/ready"))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return (proc, url);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "prometheus ({scenario}) on port {port} did not become ready (attempt {attempt}):\n{}",
            tail(&proc.log, 10)
        );
    }
    panic!("prometheus ({scenario}) did not start in 5 attempts");
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// GET `{prom}{path}` with query parameters; the `data` of a successful API answer.
fn api(http: &reqwest::blocking::Client, prom: &str, path: &str, query: &[(&str, &str)]) -> Json {
    let params: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    let url = format!("{prom}{path}?{}", params.join("&"));
    // A loaded shared host can stall one request: retry transport errors a few times.
    let mut attempt = 0;
    let resp = loop {
        attempt += 1;
        match http.get(&url).send() {
            Ok(r) => break r,
            Err(e) if attempt < 3 => {
                eprintln!("GET {prom}{path}: {e}; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            Err(e) => panic!("GET {prom}{path}: {e}"),
        }
    };
    let body: Json = resp
        .json()
        .unwrap_or_else(|e| panic!("GET {prom}{path}: not JSON: {e}"));
    assert_eq!(
        body["status"], "success",
        "GET {prom}{path} {query:?}: {body}"
    );
    body["data"].clone()
}

/// Percent-encodes a query parameter (everything but RFC 3986 unreserved characters).
fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The active alerts (pending and firing).
fn alerts(http: &reqwest::blocking::Client, prom: &str) -> Vec<Json> {
    api(http, prom, "/api/v1/alerts", &[])["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// `alertname{k="v",...}` of an alert, `alertname` and `severity` omitted from the braces.
fn alert_key(a: &Json) -> String {
    let labels = a["labels"].as_object().cloned().unwrap_or_default();
    let inner: Vec<String> = labels
        .iter()
        .filter(|(k, _)| !["alertname", "severity", "job", "instance"].contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    format!(
        "{}{{{}}}",
        labels
            .get("alertname")
            .and_then(Json::as_str)
            .unwrap_or("?"),
        inner.join(",")
    )
}

/// Rules of `/api/v1/rules`: (group/name, health, lastError).
fn rules(http: &reqwest::blocking::Client, prom: &str) -> Vec<(String, String, String)> {
    let data = api(http, prom, "/api/v1/rules", &[]);
    let mut out = Vec::new();
    for g in data["groups"].as_array().into_iter().flatten() {
        for r in g["rules"].as_array().into_iter().flatten() {
            out.push((
                format!(
                    "{}/{}",
                    g["name"].as_str().unwrap_or("?"),
                    r["name"].as_str().unwrap_or("?")
                ),
                r["health"].as_str().unwrap_or("?").to_string(),
                r["lastError"].as_str().unwrap_or_default().to_string(),
            ));
        }
    }
    out
}

/// Fails on any rule whose health is "err", naming it and its last error.
fn assert_no_rule_errors(scenario: &str, rules: &[(String, String, String)]) {
    let errs: Vec<String> = rules
        .iter()
        .filter(|(_, health, _)| health == "err")
        .map(|(name, _, err)| format!("  {name}: {err}"))
        .collect();
    assert!(
        errs.is_empty(),
        "rules evaluate with errors on the {scenario} Prometheus:\n{}",
        errs.join("\n")
    );
}

/// The detection bound of `alert` documented in docs/runbook.md: the `**Detection**` line of
/// the alert's section must say "at most N min" for the drill's 5 s scrape and evaluation.
fn documented_bound(alert: &str) -> Duration {
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).expect("runbook");
    let section = runbook
        .split("\n## ")
        .find(|s| s.starts_with(alert) && s[alert.len()..].starts_with('\n'))
        .unwrap_or_else(|| panic!("no `## {alert}` section in docs/runbook.md"));
    let detection = section
        .split("\n- ")
        .find(|item| item.starts_with("**Detection**"))
        .unwrap_or_else(|| panic!("no **Detection** item in `## {alert}` of docs/runbook.md"));
    let detection = detection.split_whitespace().collect::<Vec<_>>().join(" ");
    let minutes = detection
        .split_once("at most ")
        .and_then(|(_, rest)| rest.split_once(" min"))
        .and_then(|(n, _)| n.trim().parse::<f64>().ok())
        .unwrap_or_else(|| {
            panic!(
                "the **Detection** item of `## {alert}` in docs/runbook.md states no drill bound \
                 (\"at most N min\"): {detection}"
            )
        });
    Duration::from_secs_f64(minutes * 60.0)
}

/// (dashboard file, panel title, refId, expr) of every panel target, rows' panels included.
/// Grafana variables → values the drill queries with: fixed intervals, every other template
/// variable (single, multi-value, any `:format`) as the regex `.*`.
fn substitute_grafana_vars(expr: &str) -> String {
    common::substitute_grafana_vars(expr, |name| match name {
        "__rate_interval" => "1m",
        "__interval" => "15s",
        "__range" => "10m",
        "__interval_ms" => "15000",
        "__range_ms" => "600000",
        "__range_s" => "600",
        _ => ".*",
    })
}

fn dashboard_queries() -> Vec<(String, String, String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("dashboards"))
        .expect("dashboards/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "dashboards missing: {files:?}");
    let mut out = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let d: Json = serde_json::from_str(&std::fs::read_to_string(&f).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut panels = Vec::new();
        for p in d["panels"].as_array().into_iter().flatten() {
            panels.push(p.clone());
            panels.extend(p["panels"].as_array().into_iter().flatten().cloned());
        }
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                let Some(expr) = t["expr"].as_str().filter(|e| !e.trim().is_empty()) else {
                    continue;
                };
                out.push((
                    name.clone(),
                    p["title"].as_str().unwrap_or("?").to_string(),
                    t["refId"].as_str().unwrap_or("?").to_string(),
                    expr.to_string(),
                ));
            }
        }
    }
    out
}

/// Starts one scenario's demo and Prometheus.
fn start_stack(scenario: &'static str, seed: u64) -> Stack {
    let dir = tempfile::tempdir().expect("temp dir");
    let (demo, metrics_url) = start_demo(scenario, seed, dir.path());
    let (prometheus, prom_url) = start_prometheus(scenario, &metrics_url, dir.path());
    println!("drill: {scenario}: demo {metrics_url}, prometheus {prom_url}");
    Stack {
        scenario,
        prometheus,
        demo,
        prom_url,
        _dir: dir,
    }
}

#[test]
fn runbook_states_the_drill_bound() {
    let bound = documented_bound(OUTAGE_ALERT);
    assert!(
        bound >= Duration::from_secs(5 * 60) && bound + MARGIN <= Duration::from_secs(9 * 60),
        "{OUTAGE_ALERT} has `for: 5m` and the drill must end within 10 minutes: {bound:?}"
    );
}

#[test]
fn grafana_variables_become_drill_values() {
    assert_eq!(
        substitute_grafana_vars(
            r#"rate(m{a=~"$app_id",c=~"${country}",f=~"${flow_id:regex}",i=~"${instance:pipe}"}[$__rate_interval]) / $__range offset $__interval + on () x{r=~"a$"}"#
        ),
        r#"rate(m{a=~".*",c=~".*",f=~".*",i=~".*"}[1m]) / 10m offset 15s + on () x{r=~"a$"}"#
    );
}

#[test]
#[cfg_attr(
    not(tool_prometheus),
    ignore = "needs prometheus (.ci/install-prometheus.sh)"
)]
fn drill_alerts_and_dashboards_against_a_real_prometheus() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    match Command::new("prometheus").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        other => {
            assert!(
                !ci,
                "prometheus is not usable and CI=true (run .ci/install-prometheus.sh): {other:?}"
            );
            println!(
                "NOTICE: prometheus is not on PATH, skipping the drill (.ci/install-prometheus.sh)"
            );
            return;
        }
    }
    let bound = documented_bound(OUTAGE_ALERT);
    let expected_rules = rule_count(&rule_files());
    let http = http();

    // Both scenarios at once; the clock starts when the outage demo (and the outage) starts.
    let started = Instant::now();
    let mut outage = start_stack("carrier-outage", 11);
    let mut normal = start_stack("normal", 12);
    println!(
        "drill: rules: {expected_rules}; {OUTAGE_ALERT}{{country=\"{OUTAGE_COUNTRY}\"}} must fire \
         within {:.1} min (runbook) + {} s",
        bound.as_secs_f64() / 60.0,
        MARGIN.as_secs()
    );

    let mut first_firing: BTreeMap<String, Duration> = BTreeMap::new();
    let mut normal_firing: BTreeMap<String, Json> = BTreeMap::new();
    let mut normal_pending: BTreeSet<String> = BTreeSet::new();
    let mut detected: Option<Duration> = None;
    let mut last_normal_print = Instant::now();
    loop {
        let now = started.elapsed();
        for s in [&mut outage, &mut normal] {
            s.demo.check_alive();
            s.prometheus.check_alive();
            let rules = rules(&http, &s.prom_url);
            assert_eq!(
                rules.len(),
                expected_rules,
                "the {} Prometheus loaded {} rules, the rule files hold {expected_rules}",
                s.scenario,
                rules.len()
            );
            assert_no_rule_errors(s.scenario, &rules);
        }

        for a in alerts(&http, &outage.prom_url) {
            if a["state"] != "firing" {
                continue;
            }
            let key = alert_key(&a);
            assert!(
                a["labels"]["alertname"] != "ItniotechExporterDown",
                "ItniotechExporterDown fires on the carrier-outage Prometheus: {a:#}\ndemo log:\n{}",
                tail(&outage.demo.log, 20)
            );
            first_firing.entry(key.clone()).or_insert_with(|| {
                println!(
                    "drill: {:>6.1} s  carrier-outage: FIRING {key}",
                    now.as_secs_f64()
                );
                now
            });
            if detected.is_none()
                && a["labels"]["alertname"] == OUTAGE_ALERT
                && a["labels"]["country"] == OUTAGE_COUNTRY
            {
                detected = Some(now);
            }
        }

        // Under normal nothing may fire, at any poll. Pending is fine (and reported).
        for a in alerts(&http, &normal.prom_url) {
            let key = alert_key(&a);
            if a["state"] == "firing" {
                normal_firing.entry(key).or_insert(a);
            } else if normal_pending.insert(key.clone()) {
                println!(
                    "drill: {:>6.1} s  normal: pending {key} (value {})",
                    now.as_secs_f64(),
                    a["value"].as_str().unwrap_or("?")
                );
            }
        }
        if !normal_firing.is_empty() {
            let shown: Vec<String> = normal_firing
                .values()
                .map(|a| {
                    format!(
                        "  labels: {}\n  annotations: {}",
                        a["labels"], a["annotations"]
                    )
                })
                .collect();
            panic!(
                "{} alert(s) fire on the normal Prometheus after {:.0} s:\n{}",
                normal_firing.len(),
                now.as_secs_f64(),
                shown.join("\n")
            );
        }
        if last_normal_print.elapsed() >= Duration::from_secs(60) {
            last_normal_print = Instant::now();
            println!(
                "drill: {:>6.1} s  normal: 0 firing; carrier-outage: {} firing",
                now.as_secs_f64(),
                first_firing.len()
            );
        }

        if detected.is_some() && now >= bound.min(MAX_OBSERVE) {
            break;
        }
        if detected.is_none() && now > bound + MARGIN {
            let active: Vec<String> = alerts(&http, &outage.prom_url)
                .iter()
                .map(|a| format!("  {} {} value={}", a["state"], alert_key(a), a["value"]))
                .collect();
            let ratio = api(
                &http,
                &outage.prom_url,
                "/api/v1/query",
                &[(
                    "query",
                    "app_country:itniotech_otp_sms_failed:ratio_rate10m{country=\"ID\"}",
                )],
            );
            panic!(
                "{OUTAGE_ALERT}{{country=\"{OUTAGE_COUNTRY}\"}} did not fire within {:.0} s \
                 (runbook bound {:.0} s + {} s margin)\nactive alerts:\n{}\nID failure ratio: {}",
                now.as_secs_f64(),
                bound.as_secs_f64(),
                MARGIN.as_secs(),
                active.join("\n"),
                ratio["result"]
            );
        }
        std::thread::sleep(POLL);
    }

    // After many evaluations every rule is healthy (none still "unknown" or "err").
    for s in [&outage, &normal] {
        let rules = rules(&http, &s.prom_url);
        assert_no_rule_errors(s.scenario, &rules);
        let not_ok: Vec<String> = rules
            .iter()
            .filter(|(_, health, _)| health != "ok")
            .map(|(name, health, _)| format!("  {name}: {health}"))
            .collect();
        assert!(
            not_ok.is_empty(),
            "rules not healthy on the {} Prometheus:\n{}",
            s.scenario,
            not_ok.join("\n")
        );
    }

    // Every dashboard panel query returns data on the normal Prometheus.
    let queries = dashboard_queries();
    let mut empty = Vec::new();
    for (file, title, ref_id, expr) in &queries {
        let q = substitute_grafana_vars(expr);
        let data = api(&http, &normal.prom_url, "/api/v1/query", &[("query", &q)]);
        let n = match &data["result"] {
            Json::Array(a) => a.len(),
            Json::Null => 0,
            _ => 1, // scalar or string
        };
        if n == 0 {
            empty.push(format!("  {file}: {title:?} {ref_id}: {q}"));
        }
    }

    println!(
        "\n==== drill summary ({:.0} s) ====",
        started.elapsed().as_secs_f64()
    );
    println!("carrier-outage: firing alerts, detection time from demo start:");
    for (key, t) in &first_firing {
        println!("  {:>6.1} s  {key}", t.as_secs_f64());
    }
    println!(
        "normal: {} firing alert(s) (must be 0); {} pending at some poll{}",
        normal_firing.len(),
        normal_pending.len(),
        if normal_pending.is_empty() {
            String::new()
        } else {
            format!(
                ": {}",
                normal_pending
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    );
    println!(
        "dashboards: {} of {} panel queries returned data on normal",
        queries.len() - empty.len(),
        queries.len()
    );
    if !empty.is_empty() {
        println!("panel queries with empty results:\n{}", empty.join("\n"));
    }
    let detected = detected.expect("loop exits only once detected");
    println!(
        "{OUTAGE_ALERT}{{country=\"{OUTAGE_COUNTRY}\"}} detected after {:.1} s (bound {:.0} s + {} s)",
        detected.as_secs_f64(),
        bound.as_secs_f64(),
        MARGIN.as_secs()
    );
    assert!(
        empty.is_empty(),
        "{} dashboard panel queries return no data on the normal Prometheus:\n{}",
        empty.len(),
        empty.join("\n")
    );
    assert!(detected <= bound + MARGIN);
}

/// One drill case of a rendered promtool test file.
#[derive(Debug)]
struct DrillCase {
    alert: String,
    kind: String,
    id: String,
    what: String,
    /// Minutes from the start of the problem to the first firing evaluation.
    detect: Option<f64>,
    /// Asserted to be still firing at some minute(s) (and no detection time asserted).
    still_firing: bool,
    eval_interval: String,
}

impl DrillCase {
    /// How the case reads in the table and must read in the runbook.
    fn outcome(&self) -> String {
        match self.detect {
            Some(m) => format!("{m} min"),
            None if self.still_firing => "still firing".into(),
            None => "quiet".into(),
        }
    }
}

/// The cases of one drill file: `name: "alert | kind | id | what"`, the first
/// promql_expr_test is the case's detection (exp value in seconds) or quiet check (no sample).
fn drill_cases(path: &Path) -> Vec<DrillCase> {
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).expect("read drill file"))
            .expect("drill file is YAML");
    let interval = doc["evaluation_interval"]
        .as_str()
        .unwrap_or("1m")
        .to_string();
    let mut out = Vec::new();
    for t in doc["tests"].as_sequence().expect("tests") {
        let name = t["name"].as_str().expect("test name");
        let parts: Vec<&str> = name.splitn(4, " | ").collect();
        assert_eq!(parts.len(), 4, "{}: test name {name:?}", path.display());
        let exprs = t["promql_expr_test"]
            .as_sequence()
            .expect("promql_expr_test");
        let first = &exprs[0];
        let expr = first["expr"].as_str().unwrap_or_default();
        let samples = first["exp_samples"]
            .as_sequence()
            .cloned()
            .unwrap_or_default();
        let (detect, still_firing) =
            if expr.starts_with("label_replace(min(min_over_time(timestamp(ALERTS") {
                let secs = samples[0]["value"].as_f64().expect("detection value");
                (Some(secs / 60.0), false)
            } else if expr.starts_with("label_replace(count(max_over_time(ALERTS") {
                assert!(
                    samples.is_empty(),
                    "{name}: a quiet check expects no sample"
                );
                (None, false)
            } else {
                assert!(
                    expr.starts_with("label_replace(count(ALERTS"),
                    "{name}: unknown first check {expr}"
                );
                (None, true)
            };
        out.push(DrillCase {
            alert: parts[0].to_string(),
            kind: parts[1].to_string(),
            id: parts[2].to_string(),
            what: parts[3].to_string(),
            detect,
            still_firing,
            eval_interval: interval.clone(),
        });
    }
    out
}

fn drill_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("alerts/tests/drills"))
        .expect("alerts/tests/drills/")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no drill files in alerts/tests/drills/");
    files
}

/// The alert names of the shipped rule files.
fn alert_names() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in rule_files() {
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        for g in doc["groups"].as_sequence().into_iter().flatten() {
            for r in g["rules"].as_sequence().into_iter().flatten() {
                if let Some(a) = r["alert"].as_str() {
                    out.insert(a.to_string());
                }
            }
        }
    }
    out
}

/// The `**Detection**` item of `## alert` in docs/runbook.md, whitespace collapsed.
fn runbook_detection(runbook: &str, alert: &str) -> Option<String> {
    let section = runbook
        .split("\n## ")
        .find(|s| s.starts_with(alert) && s[alert.len()..].starts_with('\n'))?;
    let item = section
        .split("\n- ")
        .find(|item| item.starts_with("**Detection**"))?;
    Some(item.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// What the runbook's detection item says about case `id`: the text after "`id`" up to the
/// next `;` or `.` (e.g. "9 min", "quiet", "still firing after 30 h").
fn stated(detection: &str, id: &str) -> Option<String> {
    let quoted = format!("`{id}`");
    let (_, rest) = detection.split_once(&quoted)?;
    let rest = rest.trim_start_matches([':', ' ']);
    let end = rest.find([';', '.', ',']).unwrap_or(rest.len());
    // "9 min" may be followed by a parenthesis; keep the words before it.
    Some(
        rest[..end]
            .split(" (")
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
    )
}

#[test]
fn runbook_detection_parsing() {
    let runbook = "intro\n## AlertX\n\n- **Meaning**: m.\n- **Detection** (promtool drill):\n  `a-b` 9 min (5 s scrape: less); `c`: quiet; `d` still firing after 30 h.\n\n## AlertY\n";
    let d = runbook_detection(runbook, "AlertX").unwrap();
    assert_eq!(stated(&d, "a-b").as_deref(), Some("9 min"));
    assert_eq!(stated(&d, "c").as_deref(), Some("quiet"));
    assert_eq!(stated(&d, "d").as_deref(), Some("still firing after 30 h"));
    assert_eq!(stated(&d, "e"), None);
    assert!(runbook_detection(runbook, "AlertY").is_none());
}

/// Runs promtool on every drill file (and the normal week) one at a time: this test runs
/// next to the real-Prometheus drill, whose timing the CPU must not starve.
#[test]
#[cfg_attr(
    not(tool_promtool),
    ignore = "needs promtool (.ci/install-prometheus.sh)"
)]
fn promtool_drill_suite_detection_times_match_the_runbook() {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if Command::new("promtool").arg("--version").output().is_err() {
        assert!(
            !ci,
            "promtool is not installed and CI=true (run .ci/install-prometheus.sh)"
        );
        println!(
            "NOTICE: promtool is not on PATH, skipping the drill suite (.ci/install-prometheus.sh)"
        );
        return;
    }
    let mut files = drill_files();
    files.push(root().join("alerts/tests/normal-week.test.yml"));
    let started = Instant::now();
    let mut failures = Vec::new();
    for f in &files {
        let t = Instant::now();
        let out = Command::new("promtool")
            .args(["test", "rules"])
            .arg(f)
            .current_dir(root())
            .output()
            .expect("run promtool");
        let rel = f.strip_prefix(root()).unwrap().display().to_string();
        println!("drill suite: {rel}: {:.1} s", t.elapsed().as_secs_f64());
        if !out.status.success() {
            failures.push(format!(
                "{rel}:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    println!(
        "drill suite: {} files in {:.0} s",
        files.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "promtool drill failures:\n{}",
        failures.join("\n")
    );

    // Measured (and asserted by promtool above): print the table.
    let cases: Vec<DrillCase> = drill_files().iter().flat_map(|f| drill_cases(f)).collect();
    println!(
        "\n==== detection times (promtool, 1-minute samples; from the start of the problem) ===="
    );
    println!(
        "{:<36} {:<11} {:<34} {:>14}  eval",
        "alert", "case", "id", "detection"
    );
    for c in &cases {
        println!(
            "{:<36} {:<11} {:<34} {:>14}  {}   {}",
            c.alert,
            c.kind,
            c.id,
            c.outcome(),
            c.eval_interval,
            c.what
        );
    }

    // Every alert has its three kinds of case.
    let mut problems = Vec::new();
    for alert in alert_names() {
        for kind in ["fire", "quiet", "low-volume"] {
            if !cases.iter().any(|c| c.alert == alert && c.kind == kind) {
                problems.push(format!("{alert}: no {kind} case in the drill suite"));
            }
        }
    }
    // The runbook states each case's outcome as measured.
    let runbook = std::fs::read_to_string(root().join("docs/runbook.md")).expect("runbook");
    for c in &cases {
        let Some(detection) = runbook_detection(&runbook, &c.alert) else {
            problems.push(format!(
                "{}: no **Detection** item in docs/runbook.md",
                c.alert
            ));
            continue;
        };
        let want = c.outcome();
        match stated(&detection, &c.id) {
            None => problems.push(format!(
                "{} / {}: not in the runbook's Detection item (measured: {want})",
                c.alert, c.id
            )),
            Some(s) if !s.starts_with(&want) => problems.push(format!(
                "{} / {}: the runbook says {s:?}, the drill measures {want:?}",
                c.alert, c.id
            )),
            Some(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "drill suite problems:\n{}",
        problems.join("\n")
    );
}
