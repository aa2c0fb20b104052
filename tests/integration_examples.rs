//! The integration examples of docs/integration.md work: each client (curl, Python, Node.js,
//! Java, Go) posts to the real agent with a bearer token and its orders arrive, exactly; the
//! log-shipper configs (Vector, Fluent Bit) name the intake and only fields it accepts.
//! Under CI=true every language runtime must be installed (.ci/install-example-runtimes.sh).

mod common;

use common::{eventually, scrape, spawn, sum, tool_available};
use itniotech_exporter::intake::FIELDS;
use itniotech_exporter::server::INTAKE_PATH;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TOKEN: &str = "example-intake-token-1";

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/examples")
}

/// Runs one example to completion with the intake's URL and token in its environment.
fn run(program: &str, args: &[&str], url: &str, cwd: &Path) {
    let out = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("ITNIOTECH_INTAKE_URL", url)
        .env("ITNIOTECH_INTAKE_TOKEN", TOKEN)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_example_reports_its_orders() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).unwrap();
    let store = dir.path().join("store");
    let (_agent, web) = spawn(
        &[
            "run",
            "--web.listen-address",
            "127.0.0.1:0",
            // No vendor is needed to take orders; polls fail and back off.
            "--api.base-url",
            "http://127.0.0.1:9",
            "--storage.path",
            store.to_str().unwrap(),
            "--intake.token-file",
            token.to_str().unwrap(),
        ],
        &[
            ("ITNIOTECH_API_KEY", "exampleKey"),
            ("ITNIOTECH_API_SECRET", "exampleSecret"),
        ],
    );
    let url = format!("http://{web}{INTAKE_PATH}");
    let http = reqwest::Client::new();
    let intake = examples().join("intake");
    // (runtime, arguments, orders the example posts)
    let clients: Vec<(&str, Vec<&str>, f64)> = vec![
        ("sh", vec!["post_orders.sh"], 3.0),
        ("python3", vec!["post_orders.py"], 2.0),
        ("node", vec!["post_orders.mjs"], 2.0),
        ("java", vec!["PostOrders.java"], 2.0),
        ("go", vec!["run", "post_orders.go"], 2.0),
    ];
    let mut expected = 0.0;
    for (program, args, orders) in clients {
        let version: &[&str] = match program {
            "java" => &["-version"],
            "go" => &["version"],
            "sh" => &["-c", "command -v curl"],
            _ => &["--version"],
        };
        if !tool_available(program, version, "bash .ci/install-example-runtimes.sh") {
            continue;
        }
        run(program, &args, &url, &intake);
        expected += orders;
        let got = eventually(Duration::from_secs(10), || async {
            let m = scrape(&http, &web).await?;
            let n = sum(
                &m,
                "itniotech_exporter_orders_received_total",
                &[("source", "http")],
            );
            (n == expected).then_some(n)
        })
        .await;
        assert_eq!(got, Some(expected), "{program}: orders received");
    }
    let m = scrape(&http, &web).await.unwrap();
    assert_eq!(
        sum(&m, "itniotech_exporter_orders_rejected_total", &[]),
        0.0,
        "nothing invalid, nothing twice"
    );
}

#[test]
fn log_shipper_configs_send_only_intake_fields_to_the_intake() {
    // Vector: TOML; the remap keeps a subset of the intake's fields, the sink posts NDJSON.
    let text = std::fs::read_to_string(examples().join("vector.toml")).unwrap();
    let cfg: toml::Value = toml::from_str(&text).expect("vector.toml parses");
    let sink = &cfg["sinks"]["itniotech_intake"];
    assert!(sink["uri"].as_str().unwrap().ends_with(INTAKE_PATH));
    assert_eq!(sink["encoding"]["codec"].as_str(), Some("json"));
    assert_eq!(
        sink["framing"]["method"].as_str(),
        Some("newline_delimited")
    );
    assert_eq!(
        sink["request"]["headers"]["Content-Type"].as_str(),
        Some("application/x-ndjson")
    );
    let remap = cfg["transforms"]["otp_orders"]["source"].as_str().unwrap();
    let kept: Vec<&str> = remap
        .lines()
        .filter_map(|l| l.split("order.").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .collect();
    assert!(!kept.is_empty());
    for field in &kept {
        assert!(
            FIELDS.contains(field),
            "vector keeps {field}, which the intake refuses"
        );
    }

    // Fluent Bit: classic config; the allowlist is a subset of the intake's fields.
    let text = std::fs::read_to_string(examples().join("fluent-bit.conf")).unwrap();
    let value = |key: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .collect()
    };
    assert_eq!(value("URI"), [INTAKE_PATH]);
    assert_eq!(value("Format"), ["json_lines"]);
    let allowed = value("Allowlist_key");
    assert!(!allowed.is_empty());
    for field in &allowed {
        assert!(FIELDS.contains(&field.as_str()), "fluent bit keeps {field}");
    }
}
