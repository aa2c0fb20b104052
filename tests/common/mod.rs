//! Helpers shared by integration tests.
#![allow(dead_code)]

use itniotech_exporter::api::model::{Flow, Matched, OrderRecord, SendResult, VerifyResult};
use itniotech_exporter::api::{
    ApiError, ApiObserver, Balance, Client, ClientConfig, Credentials, Endpoint, OtpSender,
    RecordSource, RetryPolicy, SendRequest,
};
use itniotech_exporter::clock::SharedClock;
use itniotech_exporter::country;
use itniotech_exporter::domain::OrderKey;
use rust_decimal::Decimal;
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

/// A client for a simulator at `base`: no rate limit, three attempts with millisecond backoff,
/// and a timeout generous enough for a loaded 2-core CI machine.
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
            timeout: Duration::from_secs(30),
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
    spawn_binary(&binary(), args, envs)
}

/// `simulate` on an ephemeral loopback port; returns its base URL.
pub fn spawn_sim() -> (Proc, String) {
    let (p, addr) = spawn(&["simulate", "--web.listen-address", "127.0.0.1:0"], &[]);
    (p, format!("http://{addr}"))
}

/// `run` against the simulator at `sim` with its demo credentials, the store in `store`, and
/// `extra` flags; returns the agent and its web address.
pub fn spawn_agent(sim: &str, store: &std::path::Path, extra: &[&str]) -> (Proc, String) {
    let mut args = vec![
        "run",
        "--web.listen-address",
        "127.0.0.1:0",
        "--api.base-url",
        sim,
        "--storage.path",
        store.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    spawn(
        &args,
        &[
            (
                "ITNIOTECH_API_KEY",
                itniotech_exporter::simulator::DEMO_API_KEY,
            ),
            (
                "ITNIOTECH_API_SECRET",
                itniotech_exporter::simulator::DEMO_API_SECRET,
            ),
        ],
    )
}

/// [`spawn`] for another build of the binary (a benchmark comparing releases).
pub fn spawn_binary(
    binary: &std::path::Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> (Proc, String) {
    let mut child = Command::new(binary)
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

/// A metric name and a label filter (a subset of a series' labels).
pub type Selector = (&'static str, Vec<(&'static str, String)>);

/// The expected value of every business counter, from the simulator's final records.
#[derive(Default, Debug)]
pub struct Oracle {
    /// Selector → summed value of the matching series.
    pub counts: BTreeMap<Selector, f64>,
    pub cost: BTreeMap<&'static str, Decimal>,
}

impl Oracle {
    pub fn add(&mut self, metric: &'static str, labels: &[(&'static str, &str)], n: f64) {
        let key = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        *self.counts.entry((metric, key)).or_default() += n;
        *self.counts.entry((metric, Vec::new())).or_default() += n;
    }

    /// Adds what the agent must count for one final record.
    pub fn account(&mut self, rec: &OrderRecord) {
        let receiver = rec.verifications.ori_receiver.as_deref().unwrap_or("");
        let order_country = country::from_number(receiver);
        let delivered =
            rec.sms.iter().any(|s| s.is_delivered()) || rec.call.iter().any(|c| c.is_delivered());
        let verified = rec.verifications.matched == Matched::Verified;
        let all_failed = rec.sms.iter().all(|s| s.status == Some(1))
            && rec.call.iter().all(|c| !c.is_delivered());
        let outcome = if delivered || verified {
            "delivered"
        } else if all_failed {
            "failed"
        } else {
            "unresolved"
        };
        let flow = rec.flow_id.map_or("none".to_string(), |f| f.to_string());
        self.add(
            "itniotech_otp_orders_total",
            &[
                ("country", &order_country),
                ("flow_id", &flow),
                ("outcome", outcome),
            ],
            1.0,
        );
        let result = match rec.verifications.matched {
            Matched::Verified => "verified",
            Matched::Failed => "failed",
            Matched::Unknown => "unknown",
            _ => "not_verified",
        };
        self.add(
            "itniotech_otp_verifications_total",
            &[("result", result)],
            1.0,
        );
        for s in &rec.sms {
            let c = country::from_mcc(s.mcc.unwrap()).to_string();
            let status = if s.is_delivered() {
                "delivered"
            } else {
                "failed"
            };
            self.add(
                "itniotech_otp_sms_total",
                &[("country", &c), ("status", status)],
                1.0,
            );
            self.add(
                "itniotech_otp_sms_segments_total",
                &[("country", &c)],
                s.charge_cnt.unwrap_or(0) as f64,
            );
            *self.cost.entry("sms").or_default() += s.pay.unwrap_or_default();
        }
        for c in &rec.call {
            let code = c.termination_code.unwrap().to_string();
            self.add(
                "itniotech_otp_calls_total",
                &[("country", &order_country), ("termination_code", &code)],
                1.0,
            );
            self.add(
                "itniotech_otp_call_billed_seconds_total",
                &[("country", &order_country)],
                c.charged_duration.unwrap_or(0) as f64,
            );
            *self.cost.entry("call").or_default() += c.cost.unwrap_or_default();
        }
        // Attempts in submit order: each one after the first is a fallback. An order whose first
        // attempt did not get the code through (not delivered, or verified only after the next
        // attempt started) was rescued by the first later attempt that delivered, else (when
        // verified) by the last one.
        let mut attempts: Vec<(i64, &str, bool)> = rec
            .sms
            .iter()
            .map(|s| {
                (
                    s.submit_tm.unwrap().timestamp_millis(),
                    "sms",
                    s.is_delivered(),
                )
            })
            .chain(rec.call.iter().map(|c| {
                (
                    c.submit_time.unwrap().timestamp_millis(),
                    "call",
                    c.is_delivered(),
                )
            }))
            .collect();
        attempts.sort();
        for pair in attempts.windows(2) {
            self.add(
                "itniotech_otp_fallbacks_total",
                &[("from_channel", pair[0].1), ("to_channel", pair[1].1)],
                1.0,
            );
        }
        if attempts.len() > 1 {
            let verified_at = rec
                .verifications
                .verified_date
                .filter(|_| verified)
                .map(|t| t.timestamp_millis());
            let first_did_it = attempts[0].2 && verified_at.is_some_and(|v| v < attempts[1].0);
            let rescuer = attempts[1..]
                .iter()
                .find(|a| a.2)
                .map(|a| a.1)
                .or_else(|| verified_at.map(|_| attempts[attempts.len() - 1].1));
            if let (false, Some(to)) = (first_did_it, rescuer) {
                self.add(
                    "itniotech_otp_fallback_rescues_total",
                    &[("to_channel", to)],
                    1.0,
                );
            }
        }
    }
}

impl Oracle {
    /// The expected value of `metric` over the series matching `labels`.
    pub fn get(&self, metric: &'static str, labels: &[(&'static str, &str)]) -> f64 {
        let key = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.counts.get(&(metric, key)).copied().unwrap_or(0.0)
    }

    /// Asserts that the agents' expositions, summed, hold exactly what the records say.
    pub fn assert_matches(&self, agents: &[Vec<Sample>]) {
        let summed = |metric: &str, filter: &[(&str, &str)]| -> f64 {
            agents.iter().map(|s| sum(s, metric, filter)).sum()
        };
        for ((metric, labels), want) in &self.counts {
            let filter: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            assert_eq!(summed(metric, &filter), *want, "{metric} {labels:?}");
        }
        for (channel, want) in &self.cost {
            let got = summed("itniotech_otp_cost_total", &[("channel", channel)]);
            let want: f64 = want.to_string().parse().unwrap();
            assert!((got - want).abs() < 1e-9, "cost {channel}: {got} vs {want}");
        }
    }
}
