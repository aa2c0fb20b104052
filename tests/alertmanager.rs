//! The example Alertmanager configuration's inhibit rules, in a real Alertmanager: a dead
//! exporter, a country-wide SMS page or a runway page silences only the alerts of its own
//! deployment (`job`) and, for exporter alerts, its own process (`instance`). Before issue 11 one
//! down exporter silenced the pages of every deployment in the Prometheus.
//!
//! The test runs `prometheus-alertmanager` (Debian's name; `alertmanager` elsewhere) with
//! alerts/alertmanager.example.yml, its receivers emptied so nothing is sent anywhere, posts
//! alerts through the v2 API and reads back which ones are inhibited. Without the binary it is
//! skipped with a notice, except under `CI=true` (.ci/install-prometheus.sh installs it).

use serde_json::{json, Value as Json};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn alertmanager_binary() -> Option<&'static str> {
    ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example configuration with every receiver emptied (no Slack or PagerDuty call leaves the
/// machine); routes and inhibit rules are kept verbatim.
fn offline_config() -> String {
    let text = std::fs::read_to_string(root().join("alerts/alertmanager.example.yml"))
        .expect("read alerts/alertmanager.example.yml");
    let mut doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("YAML");
    let receivers: Vec<serde_yaml_ng::Value> = doc["receivers"]
        .as_sequence()
        .expect("receivers")
        .iter()
        .map(|r| {
            let mut m = serde_yaml_ng::Mapping::new();
            m.insert("name".into(), r["name"].clone());
            serde_yaml_ng::Value::Mapping(m)
        })
        .collect();
    doc["receivers"] = serde_yaml_ng::Value::Sequence(receivers);
    assert!(
        doc["inhibit_rules"]
            .as_sequence()
            .is_some_and(|r| !r.is_empty()),
        "the example has inhibit rules"
    );
    serde_yaml_ng::to_string(&doc).unwrap()
}

/// Starts Alertmanager on a free loopback port (retrying when the port was taken meanwhile).
fn start(binary: &str, dir: &std::path::Path) -> (Killed, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(&config, offline_config()).unwrap();
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for attempt in 1..=5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("alertmanager-{attempt}.log"));
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.path={}",
                dir.join(format!("data-{attempt}")).display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // No gossip: a single instance, and no port of its own.
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start alertmanager");
        let mut am = Killed(child);
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = am.0.try_wait() {
                break;
            }
            if http
                .get(format!("{url}/-/ready"))
                .send()
                .is_ok_and(|r| r.status().is_success())
            {
                return (am, url);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!(
            "alertmanager on port {port} did not become ready (attempt {attempt}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    panic!("alertmanager did not start in 5 attempts");
}

/// An alert's identity in this test: its labels as `k=v` joined by commas, sorted.
fn key(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
#[cfg_attr(
    not(tool_alertmanager),
    ignore = "needs alertmanager (.ci/install-prometheus.sh)"
)]
fn inhibitions_stay_within_one_deployment() {
    let Some(binary) = alertmanager_binary() else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "prometheus-alertmanager is not installed and CI=true (run .ci/install-prometheus.sh)"
        );
        println!("NOTICE: no alertmanager binary on PATH, skipping (.ci/install-prometheus.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (_am, url) = start(binary, dir.path());

    // [labels, inhibited?]: the sources first, then what they must and must not silence. Labels
    // are those the rules give each alert (severity from alerts/itniotech-alerts.yml).
    let a = "itniotech-exporter";
    let b = "itniotech-eu";
    let c = "itniotech-apac";
    let cases: Vec<(BTreeMap<String, String>, bool)> = vec![
        // Exporter a0 of deployment A is down.
        (
            labels(&[
                ("alertname", "ItniotechExporterDown"),
                ("severity", "critical"),
                ("job", a),
                ("instance", "a0:9867"),
            ]),
            false,
        ),
        (
            labels(&[
                ("alertname", "ItniotechApiErrorsHigh"),
                ("severity", "warning"),
                ("job", a),
                ("instance", "a0:9867"),
                ("api_endpoint", "record"),
            ]),
            true,
        ),
        (
            labels(&[
                ("alertname", "ItniotechExporterBacklog"),
                ("severity", "warning"),
                ("job", a),
                ("instance", "a0:9867"),
            ]),
            true,
        ),
        // Its sibling replica, and a process of another deployment on the same address.
        (
            labels(&[
                ("alertname", "ItniotechApiErrorsHigh"),
                ("severity", "warning"),
                ("job", a),
                ("instance", "a1:9867"),
                ("api_endpoint", "record"),
            ]),
            false,
        ),
        (
            labels(&[
                ("alertname", "ItniotechApiErrorsHigh"),
                ("severity", "warning"),
                ("job", b),
                ("instance", "a0:9867"),
                ("api_endpoint", "record"),
            ]),
            false,
        ),
        // The OTP pages of deployment A keep working while one of its exporters is down.
        (
            labels(&[
                ("alertname", "OtpSmsDeliveryFailureRateHigh"),
                ("severity", "critical"),
                ("window", "10m"),
                ("job", a),
                ("app_id", "login"),
                ("country", "ID"),
            ]),
            false,
        ),
        // The country page of A covers A's warnings for that app and country, not B's.
        (
            labels(&[
                ("alertname", "OtpVerificationConversionLow"),
                ("severity", "warning"),
                ("job", a),
                ("app_id", "login"),
                ("country", "ID"),
            ]),
            true,
        ),
        (
            labels(&[
                ("alertname", "OtpSmsCarrierFailureRateHigh"),
                ("severity", "critical"),
                ("job", a),
                ("app_id", "login"),
                ("country", "ID"),
                ("mnc", "10"),
            ]),
            true,
        ),
        (
            labels(&[
                ("alertname", "OtpVerificationConversionLow"),
                ("severity", "warning"),
                ("job", b),
                ("app_id", "login"),
                ("country", "ID"),
            ]),
            false,
        ),
        // (A third deployment: the carrier page is a critical of its own and would rightly
        // silence the warning of its deployment's app and country just above.)
        (
            labels(&[
                ("alertname", "OtpSmsCarrierFailureRateHigh"),
                ("severity", "critical"),
                ("job", c),
                ("app_id", "login"),
                ("country", "ID"),
                ("mnc", "10"),
            ]),
            false,
        ),
        // A's runway page covers A's low-balance warning only.
        (
            labels(&[
                ("alertname", "ItniotechBalanceRunwayLow"),
                ("severity", "critical"),
                ("job", a),
                ("currency", "USD"),
            ]),
            false,
        ),
        (
            labels(&[
                ("alertname", "ItniotechBalanceLow"),
                ("severity", "warning"),
                ("job", a),
                ("currency", "USD"),
            ]),
            true,
        ),
        (
            labels(&[
                ("alertname", "ItniotechBalanceLow"),
                ("severity", "warning"),
                ("job", b),
                ("currency", "USD"),
            ]),
            false,
        ),
    ];

    // The severities above are the shipped rules' own.
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("alerts/itniotech-alerts.yml")).unwrap(),
    )
    .unwrap();
    let mut severities: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            if let (Some(a), Some(s)) = (r["alert"].as_str(), r["labels"]["severity"].as_str()) {
                severities.entry(a.into()).or_default().push(s.into());
            }
        }
    }
    for (l, _) in &cases {
        let (name, sev) = (&l["alertname"], &l["severity"]);
        assert!(
            severities.get(name).is_some_and(|s| s.contains(sev)),
            "{name} has no {sev} rule: {severities:?}"
        );
    }

    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let body: Vec<Json> = cases
        .iter()
        .map(|(l, _)| json!({ "labels": l, "annotations": { "summary": "drill" } }))
        .collect();
    let resp = http
        .post(format!("{url}/api/v2/alerts"))
        .json(&body)
        .send()
        .expect("post alerts");
    assert!(resp.status().is_success(), "post alerts: {}", resp.status());

    // The inhibitor learns its sources asynchronously: wait until the state is the expected one
    // (or report the last one seen).
    let want: BTreeMap<String, bool> = cases.iter().map(|(l, i)| (key(l), *i)).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = BTreeMap::new();
    while Instant::now() < deadline {
        let alerts: Vec<Json> = http
            .get(format!("{url}/api/v2/alerts"))
            .send()
            .and_then(|r| r.json())
            .expect("get alerts");
        got = alerts
            .iter()
            .map(|a| {
                let l: BTreeMap<String, String> =
                    serde_json::from_value(a["labels"].clone()).unwrap();
                let inhibited = a["status"]["inhibitedBy"]
                    .as_array()
                    .is_some_and(|v| !v.is_empty());
                (key(&l), inhibited)
            })
            .collect();
        if got == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let diff: Vec<String> = want
        .iter()
        .filter(|(k, w)| got.get(*k) != Some(w))
        .map(|(k, w)| {
            format!(
                "{k}: want {}, got {}",
                if *w { "inhibited" } else { "active" },
                match got.get(k) {
                    Some(true) => "inhibited",
                    Some(false) => "active",
                    None => "missing",
                }
            )
        })
        .collect();
    panic!("inhibitions differ:\n{}", diff.join("\n"));
}
