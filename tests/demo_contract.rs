//! The `demo` command serves the full metric contract within a minute, and docs/metrics.md is
//! exactly what /metrics exposes: same names, types and label names, nothing undocumented.

mod common;

use common::binary;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// name → (type, label names), from the table in docs/metrics.md.
fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metrics.md"))
        .expect("docs/metrics.md");
    let mut out = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `itniotech_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let kind = cells[2].to_string();
        let labels = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        out.insert(name, (kind, labels));
    }
    out
}

/// name → (type, label names) from an OpenMetrics exposition; counters get `_total`.
fn exposed(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            let kind = if kind == "info" { "gauge" } else { kind };
            let name = if kind == "counter" {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            types.insert(name, (kind.to_string(), BTreeSet::new()));
        }
    }
    for s in common::parse_exposition(text) {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suf| {
                s.name
                    .strip_suffix(suf)
                    .filter(|b| types.get(*b).is_some_and(|(k, _)| k == "histogram"))
            })
            .unwrap_or(&s.name)
            .to_string();
        if let Some((_, labels)) = types.get_mut(&base) {
            labels.extend(s.labels.keys().filter(|k| *k != "le").cloned());
        }
    }
    types
}

#[test]
fn demo_serves_exactly_the_documented_contract_within_a_minute() {
    let store = tempfile::tempdir().unwrap();
    let mut child = Command::new(binary())
        .args([
            "demo",
            "--web.listen-address",
            "127.0.0.1:0",
            "--storage.path",
            store.path().to_str().unwrap(),
            "--demo.rate",
            "20",
            "--seed",
            "3",
            // Through the capture proxy, so its metrics are served too; the intake's are
            // served from the start either way.
            "--demo.via-proxy",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for s in [
        Box::new(stderr) as Box<dyn std::io::Read + Send>,
        Box::new(stdout),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(s).lines().map_while(Result::ok) {
                if line.contains("metrics") && line.contains("http://127.0.0.1:") {
                    let i = line.find("http://127.0.0.1:").unwrap();
                    let url: String = line[i..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send(url);
                }
            }
        });
    }
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("demo prints its metrics URL");
    let doc = documented();
    assert!(
        doc.len() >= 30,
        "docs/metrics.md table has {} rows",
        doc.len()
    );
    let started = Instant::now();
    let mut last = BTreeMap::new();
    while started.elapsed() < Duration::from_secs(75) {
        std::thread::sleep(Duration::from_secs(2));
        let Ok(body) = reqwest::blocking::get(&url).and_then(|r| r.text()) else {
            continue;
        };
        last = exposed(&body);
        if doc
            .iter()
            .all(|(n, (_, labels))| last.get(n).is_some_and(|(_, l)| l == labels))
        {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    for (name, (kind, labels)) in &doc {
        let (got_kind, got_labels) = last
            .get(name)
            .unwrap_or_else(|| panic!("{name} documented but not served within a minute"));
        assert_eq!(got_kind, kind, "type of {name}");
        assert_eq!(got_labels, labels, "labels of {name}");
    }
    for name in last.keys() {
        assert!(
            doc.contains_key(name),
            "{name} served but not in docs/metrics.md"
        );
    }
}
