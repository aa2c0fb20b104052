//! Helpers shared by integration tests.
#![allow(dead_code)]

use itniotech_exporter::api::model::{Flow, OrderRecord, SendResult, VerifyResult};
use itniotech_exporter::api::{
    ApiError, ApiObserver, Balance, Client, ClientConfig, Credentials, Endpoint, OtpSender,
    RecordSource, RetryPolicy, SendRequest,
};
use itniotech_exporter::clock::SharedClock;
use itniotech_exporter::domain::OrderKey;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One sample of an exposition: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses Prometheus / OpenMetrics text into samples (comments skipped).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = match line.rsplit_once(' ') {
            Some(x) => x,
            None => continue,
        };
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or(f64::NAN),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n.to_string(), parse_labels(rest.trim_end_matches('}'))),
            None => (series.to_string(), BTreeMap::new()),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut rest = s;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim_start_matches(',').trim().to_string();
        let after = &rest[eq + 1..];
        let after = after.strip_prefix('"').unwrap_or(after);
        let mut val = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        val.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                other => val.push(other),
            }
        }
        map.insert(key, val);
        rest = &after[end..];
    }
    map
}

/// Sum of the samples named `name` whose labels include every pair of `filter`.
pub fn sum(samples: &[Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            filter
                .iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
        .sum()
}

/// Polls `f` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Path of the release or debug binary built by cargo for integration tests.
pub fn binary() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_itniotech-exporter"))
}

/// Replaces Grafana variables (`$name`, `${name}`, `${name:format}`) in a panel expression with
/// `value(name)`. A `$` not followed by a name (a regex end anchor) is kept.
pub fn substitute_grafana_vars(expr: &str, value: impl Fn(&str) -> &'static str) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut chars = expr.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut name = String::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
                name.push(c);
            }
            // ${var:regex}, ${var:pipe}, ...: the format does not matter here.
            name = name.split(':').next().unwrap_or_default().to_string();
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_ascii_alphanumeric() || c == '_' {
                    name.push(c);
                    chars.next();
                } else {
                    break;
                }
            }
        }
        if name.is_empty() {
            out.push('$');
            continue;
        }
        out.push_str(value(&name));
    }
    out
}

/// An `ApiObserver` that records every attempt the client reports (endpoint, status label,
/// up) and every clock-skew measurement.
#[derive(Default)]
pub struct Recorder {
    pub calls: Mutex<Vec<(Endpoint, String, bool)>>,
    pub skews: Mutex<Vec<f64>>,
}

impl Recorder {
    pub fn calls(&self) -> Vec<(Endpoint, String, bool)> {
        self.calls.lock().unwrap().clone()
    }
    pub fn labels(&self) -> Vec<String> {
        self.calls().into_iter().map(|c| c.1).collect()
    }
    pub fn clear(&self) {
        self.calls.lock().unwrap().clear();
        self.skews.lock().unwrap().clear();
    }
}

impl ApiObserver for Recorder {
    fn on_request(&self, endpoint: Endpoint, status_label: &str, up: bool, _: Duration) {
        self.calls
            .lock()
            .unwrap()
            .push((endpoint, status_label.to_string(), up));
    }
    fn on_clock_skew(&self, seconds: f64) {
        self.skews.lock().unwrap().push(seconds);
    }
}

/// A client for a simulator at `base`: no rate limit, three attempts with millisecond backoff.
pub fn sim_client(
    base: &str,
    key: &str,
    secret: &str,
    clock: SharedClock,
    observer: Arc<dyn ApiObserver>,
) -> Client {
    Client::new(
        ClientConfig {
            base_url: base.to_string(),
            timeout: Duration::from_secs(5),
            max_rps: None,
            retry: RetryPolicy {
                max_attempts: 3,
                backoff_min: Duration::from_millis(1),
                backoff_max: Duration::from_millis(5),
            },
        },
        Credentials::new(key, secret),
        clock,
        observer,
    )
    .expect("a valid client configuration")
}

/// The key of an order known by `(appId, orderId)`.
pub fn order_key(app_id: &str, order_id: &str) -> OrderKey {
    OrderKey::Order {
        app_id: app_id.into(),
        order_id: order_id.into(),
    }
}

/// Both halves of the API client (what the agent reads, what the demo sends) under one name,
/// so client tests call every endpoint the same way.
#[derive(Clone, Debug)]
pub struct TestApi {
    pub client: Client,
    pub sender: OtpSender,
}

impl TestApi {
    pub fn new(client: Client) -> Self {
        let sender = OtpSender::new(client.clone());
        TestApi { client, sender }
    }
    pub async fn flow_list(&self) -> Result<Vec<Flow>, ApiError> {
        self.client.flows().await
    }
    pub async fn record_by_order_id(
        &self,
        app_id: &str,
        order_id: &str,
    ) -> Result<Option<OrderRecord>, ApiError> {
        self.client.record(&order_key(app_id, order_id)).await
    }
    pub async fn record_by_verification_id(
        &self,
        verification_id: &str,
    ) -> Result<Option<OrderRecord>, ApiError> {
        let key = OrderKey::Verification {
            verification_id: verification_id.into(),
        };
        self.client.record(&key).await
    }
    pub async fn balance(&self) -> Result<Balance, ApiError> {
        self.client.balance().await
    }
    pub async fn send(&self, req: &SendRequest) -> Result<SendResult, ApiError> {
        self.sender.send(req).await
    }
    pub async fn send_rule(&self, req: &SendRequest) -> Result<SendResult, ApiError> {
        self.sender.send_rule(req).await
    }
    pub async fn verify(
        &self,
        verification_id: &str,
        code: &str,
    ) -> Result<VerifyResult, ApiError> {
        self.sender.verify(verification_id, code).await
    }
}

impl Recorder {
    /// The last clock skew the client measured, if any reply carried a `Date` header.
    pub fn last_skew(&self) -> Option<f64> {
        self.skews.lock().unwrap().last().copied()
    }
}

/// A child process of the binary whose stdout and stderr are captured; killed on drop.
pub struct Proc {
    pub child: Child,
    pub output: Arc<Mutex<String>>,
}

impl Proc {
    /// Everything the process printed so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// SIGKILL: no destructor, no flush, no graceful shutdown.
    pub fn kill9(&mut self) {
        // std's kill() sends SIGKILL on Unix.
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `args` and `envs` (API credentials, ...) and waits for the log line
/// announcing its listening address, which it returns as `127.0.0.1:PORT`.
pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> (Proc, String) {
    let mut child = Command::new(binary())
        .args(args)
        .envs(envs.iter().copied())
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let output = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = output.clone();
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                output.lock().unwrap().push_str(&line);
                output.lock().unwrap().push('\n');
                if line.contains("listening") {
                    if let Some(addr) = find_loopback_addr(&line) {
                        let _ = tx.send(addr);
                    }
                }
            }
        });
    }
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no listening line; output:\n{}", output.lock().unwrap()));
    (Proc { child, output }, addr)
}

/// The first `127.0.0.1:PORT` in a log line.
pub fn find_loopback_addr(line: &str) -> Option<String> {
    let i = line.find("127.0.0.1:")?;
    let port: String = line[i + 10..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    (!port.is_empty()).then(|| format!("127.0.0.1:{port}"))
}

/// GET `http://{addr}/metrics`, parsed; `None` when the agent does not answer.
pub async fn scrape(http: &reqwest::Client, addr: &str) -> Option<Vec<Sample>> {
    let body = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(parse_exposition(&body))
}

/// Whether an external tool can be run. When it cannot: a failure under `CI=true`, otherwise a
/// printed notice and `false` so the caller skips its checks.
pub fn tool_available(tool: &str, version_args: &[&str], install_hint: &str) -> bool {
    match Command::new(tool).args(version_args).output() {
        Ok(out) if out.status.success() => true,
        other => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true");
            assert!(
                !ci,
                "{tool} is not usable and CI=true ({install_hint}): {other:?}"
            );
            eprintln!("NOTICE: {tool} is not usable, skipping its checks ({install_hint})");
            false
        }
    }
}
