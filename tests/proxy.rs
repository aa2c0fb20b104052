//! The capture proxy with the real binary and the simulator: replies byte-identical to direct
//! calls, orders captured exactly once before the reply (also through the demo's traffic
//! generator, with no intake POST), vendor rejections counted by status and creating no order,
//! verifications counted at once, fail-open on a store failure, and no phone number or Sign
//! value in logs, metrics or the store.

mod common;

use common::{eventually, scrape, spawn, sum, Oracle, Proc, Sample, TestApi};
use itniotech_exporter::api::sign::sign;
use itniotech_exporter::api::{NoopObserver, RecordSource, SendRequest};
use itniotech_exporter::clock;
use itniotech_exporter::domain::{EnqueueReport, OrderKey};
use itniotech_exporter::intake::SinkError;
use itniotech_exporter::ledger::{Ledger, Update};
use itniotech_exporter::metrics::Metrics;
use itniotech_exporter::proxy::{self, CaptureSink, CapturedOrder, ProxyState};
use itniotech_exporter::simulator::{SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET};
use std::sync::Arc;
use std::time::Duration;

/// The simulator in this process, on a free loopback port.
async fn simulator(seed: u64) -> (Simulator, String) {
    let sim = Simulator::new(
        SimConfig {
            seed,
            virtual_users: false,
            ..SimConfig::default()
        },
        clock::system(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    (sim, url)
}

/// The agent with its capture proxy; returns the process, its web address and the proxy's.
fn agent(sim_url: &str, store: &std::path::Path, first_delay: &str) -> (Proc, String, String) {
    let args = vec![
        "run",
        "--web.listen-address",
        "127.0.0.1:0",
        "--proxy.listen-address",
        "127.0.0.1:0",
        "--api.base-url",
        sim_url,
        "--storage.path",
        store.to_str().unwrap(),
        "--poll.first-delay",
        first_delay,
        "--poll.interval",
        "2s",
        "--tracking.verify-window",
        "15s",
    ];
    let (proc, web) = spawn(
        &args,
        &[
            ("ITNIOTECH_API_KEY", DEMO_API_KEY),
            ("ITNIOTECH_API_SECRET", DEMO_API_SECRET),
        ],
    );
    let proxy = proxy_addr(&proc);
    (proc, web, proxy)
}

/// The proxy's address from the agent's "capture proxy listening" log line.
fn proxy_addr(proc: &Proc) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = proc.output();
        if let Some(addr) = out
            .lines()
            .filter(|l| l.contains("capture proxy listening"))
            .find_map(common::find_loopback_addr)
        {
            return addr;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no proxy line:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A raw signed request, as an app's own HTTP code sends it.
fn signed(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    secret: &str,
    body: Option<&serde_json::Value>,
) -> reqwest::RequestBuilder {
    let ts = clock::system().now().timestamp();
    let mut req = http
        .request(method, url)
        .header("Content-Type", "application/json;charset=UTF-8")
        .header("Api-Key", DEMO_API_KEY)
        .header("Timestamp", ts.to_string())
        .header("Sign", sign(DEMO_API_KEY, secret, ts));
    if let Some(b) = body {
        req = req.body(serde_json::to_vec(b).unwrap());
    }
    req
}

/// Status, headers the vendor sent (name → value; `date` left out: it is a clock reading), and
/// body.
async fn reply(req: reqwest::RequestBuilder) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let mut headers: Vec<(String, String)> = r
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "date")
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    headers.sort();
    (status, headers, r.bytes().await.unwrap().to_vec())
}

async fn metrics(http: &reqwest::Client, addr: &str) -> Vec<Sample> {
    scrape(http, addr).await.expect("metrics")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_are_byte_identical_to_direct_calls_and_rejections_create_no_order() {
    let (_sim, sim_url) = simulator(11).await;
    let dir = tempfile::tempdir().unwrap();
    let (_agent, web, proxy) = agent(&sim_url, dir.path(), "1s");
    let http = reqwest::Client::new();
    let direct = |p: &str| format!("{sim_url}{p}");
    let proxied = |p: &str| format!("http://{proxy}{p}");
    use reqwest::Method;
    let bad_to = serde_json::json!({"appId": "appProxy1", "to": "12", "code": "1234"});
    let unknown_order = serde_json::json!({"appId": "appProxy1", "orderId": "nope"});
    let cases: Vec<(Method, &str, &str, Option<&serde_json::Value>)> = vec![
        (Method::GET, "/otp/flow/list", DEMO_API_SECRET, None),
        (Method::GET, "/sms/getBalance", DEMO_API_SECRET, None),
        (Method::GET, "/otp/flow/details/2", DEMO_API_SECRET, None),
        (
            Method::GET,
            "/otp/verification/record/999",
            DEMO_API_SECRET,
            None,
        ),
        (
            Method::POST,
            "/otp/verification/orderId/record",
            DEMO_API_SECRET,
            Some(&unknown_order),
        ),
        // A wrong signature: the vendor's -1 comes back as is.
        (Method::GET, "/otp/flow/list", "wrong-secret", None),
        // A parameter error on the send path: -22, counted by status, no order.
        (
            Method::POST,
            "/otp/verification/sendRule",
            DEMO_API_SECRET,
            Some(&bad_to),
        ),
        (Method::GET, "/no/such/path?x=1", DEMO_API_SECRET, None),
    ];
    for (method, path, secret, body) in &cases {
        let d = reply(signed(&http, method.clone(), direct(path), secret, *body)).await;
        let p = reply(signed(&http, method.clone(), proxied(path), secret, *body)).await;
        assert_eq!(d.0, p.0, "{method} {path}: status");
        assert_eq!(d.1, p.1, "{method} {path}: headers");
        assert_eq!(d.2, p.2, "{method} {path}: body");
    }

    let m = metrics(&http, &web).await;
    assert_eq!(
        sum(
            &m,
            "itniotech_otp_send_requests_total",
            &[("status", "-22")]
        ),
        1.0
    );
    assert_eq!(sum(&m, "itniotech_otp_send_requests_total", &[]), 1.0);
    assert_eq!(
        sum(
            &m,
            "itniotech_exporter_orders_received_total",
            &[("source", "proxy")]
        ),
        0.0
    );
    assert_eq!(sum(&m, "itniotech_exporter_orders_pending", &[]), 0.0);
    // Every case went through the proxy once, each with its HTTP status.
    let proxied_requests = sum(
        &m,
        "itniotech_exporter_proxy_request_duration_seconds_count",
        &[],
    );
    assert_eq!(proxied_requests, cases.len() as f64);
    assert_eq!(
        sum(
            &m,
            "itniotech_exporter_proxy_request_duration_seconds_count",
            &[("code", "404")]
        ),
        1.0
    );
    assert_eq!(
        sum(&m, "itniotech_exporter_proxy_upstream_errors_total", &[]),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_are_captured_once_before_the_reply_and_verifications_count_at_once() {
    let (_sim, sim_url) = simulator(12).await;
    let dir = tempfile::tempdir().unwrap();
    // The first scheduled poll is 30 minutes away: only the verify capture can make the
    // verification count within the test.
    let (agent, web, proxy) = agent(&sim_url, dir.path(), "30m");
    let http = reqwest::Client::new();
    let app = TestApi::new(common::sim_client(
        &format!("http://{proxy}"),
        DEMO_API_KEY,
        DEMO_API_SECRET,
        clock::system(),
        Arc::new(NoopObserver),
    ));
    let number = "6281234567890";
    // No orderId: the order is tracked by its verificationId.
    let sent = app
        .send_rule(&SendRequest {
            app_id: "appProxy1".into(),
            to: number.into(),
            code: Some("424242".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    // Captured before the reply came back: already pending when the app holds the reply.
    let m = metrics(&http, &web).await;
    assert_eq!(
        sum(
            &m,
            "itniotech_exporter_orders_received_total",
            &[("source", "proxy")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &m,
            "itniotech_otp_send_requests_total",
            &[("app_id", "appProxy1"), ("country", "ID"), ("status", "0")]
        ),
        1.0
    );
    let verified = app.verify(&sent.verification_id, "424242").await.unwrap();
    assert_eq!(
        verified.matched,
        Some(itniotech_exporter::api::model::Matched::Verified)
    );
    let m = eventually(Duration::from_secs(20), || async {
        let m = scrape(&http, &web).await?;
        (sum(
            &m,
            "itniotech_otp_verifications_total",
            &[("result", "verified")],
        ) == 1.0)
            .then_some(m)
    })
    .await
    .expect("the verification counted at once, not at the 30-minute poll");
    assert_eq!(
        sum(
            &m,
            "itniotech_otp_orders_total",
            &[("outcome", "delivered")]
        ),
        1.0
    );
    assert_eq!(sum(&m, "itniotech_otp_verifications_total", &[]), 1.0);

    // Nothing secret was kept: not the number, not a Sign the app sent.
    let ts = clock::system().now().timestamp();
    let a_sign = sign(DEMO_API_KEY, DEMO_API_SECRET, ts);
    let exposition = reqwest::get(format!("http://{web}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let logs = agent.output();
    let mut store = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        store.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let store = String::from_utf8_lossy(&store);
    for (what, text) in [
        ("logs", logs.as_str()),
        ("metrics", &exposition),
        ("store", &store),
    ] {
        assert!(!text.contains(number), "the phone number is in the {what}");
        assert!(!text.contains("424242"), "the code is in the {what}");
        assert!(
            !text.contains(&a_sign[..16]),
            "a Sign value is in the {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_through_the_proxy_counts_every_order_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().to_str().unwrap();
    const ORDERS: u64 = 16;
    let (demo, web) = spawn(
        &[
            "demo",
            "--demo.via-proxy",
            "--demo.orders",
            &ORDERS.to_string(),
            "--demo.rate",
            "8",
            "--seed",
            "5",
            "--web.listen-address",
            "127.0.0.1:0",
            "--storage.path",
            store,
            "--poll.first-delay",
            "1s",
            "--poll.interval",
            "2s",
            // Simulated users type the code up to 90 s after it reached them: the window must
            // outlast them, or an order finalised as unverified would later read as verified.
            "--tracking.verify-window",
            "150s",
        ],
        &[],
    );
    let http = reqwest::Client::new();
    // Flows wait up to 60 + 90 s before falling back, windows 150 s: every order is final
    // within 6 minutes.
    let m = eventually(Duration::from_secs(420), || async {
        let m = scrape(&http, &web).await?;
        (sum(&m, "itniotech_otp_orders_total", &[]) == ORDERS as f64
            && sum(&m, "itniotech_exporter_orders_pending", &[]) == 0.0)
            .then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("orders did not finish:\n{}", demo.output()));
    assert_eq!(
        sum(
            &m,
            "itniotech_exporter_orders_received_total",
            &[("source", "proxy")]
        ),
        ORDERS as f64
    );
    assert_eq!(
        sum(
            &m,
            "itniotech_exporter_orders_received_total",
            &[("source", "http")]
        ),
        0.0,
        "no intake POST"
    );
    assert_eq!(
        sum(&m, "itniotech_otp_send_requests_total", &[("status", "0")]),
        ORDERS as f64
    );
    assert_eq!(
        sum(&m, "itniotech_exporter_orders_rejected_total", &[]),
        0.0
    );
    assert_eq!(
        sum(&m, "itniotech_exporter_capture_failures_total", &[]),
        0.0
    );

    // Every business counter equals what the simulator's records say.
    let out = demo.output();
    let sim_url = out
        .lines()
        .find(|l| l.contains("simulator:"))
        .and_then(common::find_loopback_addr)
        .map(|a| format!("http://{a}"))
        .expect("the demo prints its simulator");
    let reader = common::sim_client(
        &sim_url,
        DEMO_API_KEY,
        DEMO_API_SECRET,
        clock::system(),
        Arc::new(NoopObserver),
    );
    let mut oracle = Oracle::default();
    for seq in 1..=ORDERS {
        // The generator's order ids; it sends for two apps.
        let order_id = format!("demo-5-{seq}");
        let mut rec = None;
        for app in ["demo_login", "demo_payment"] {
            rec = rec.or(reader
                .record(&common::order_key(app, &order_id))
                .await
                .unwrap());
        }
        oracle.account(&rec.expect("every demo order has a record"));
    }
    oracle.assert_matches(&[m]);
}

/// A store that cannot commit.
struct BrokenStore;

impl CaptureSink for BrokenStore {
    fn capture_send(
        &self,
        _: Vec<CapturedOrder>,
        _: Vec<Update>,
    ) -> futures::future::BoxFuture<'static, Result<EnqueueReport, SinkError>> {
        Box::pin(async { Err(SinkError::Unavailable("disk full".into())) })
    }
    fn poll_soon(&self, _: OrderKey) -> futures::future::BoxFuture<'static, Result<(), SinkError>> {
        Box::pin(async { Err(SinkError::Unavailable("disk full".into())) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_during_capture_still_returns_the_vendors_reply() {
    let (sim, sim_url) = simulator(13).await;
    let metrics = Metrics::new(Ledger::new(), "t", "t");
    let router = proxy::router(ProxyState {
        upstream: sim_url.parse().unwrap(),
        http: proxy::upstream_client(Duration::from_secs(10)).unwrap(),
        sink: Arc::new(BrokenStore),
        metrics: metrics.op.clone(),
        clock: clock::system(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let app = TestApi::new(common::sim_client(
        &format!("http://{addr}"),
        DEMO_API_KEY,
        DEMO_API_SECRET,
        clock::system(),
        Arc::new(NoopObserver),
    ));
    let sent = app
        .send_rule(&SendRequest {
            app_id: "appProxy1".into(),
            order_id: Some("o-fail".into()),
            to: "6281234567890".into(),
            code: Some("1234".into()),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("the vendor's reply, although the store failed: {e:?}"));
    // The reply is the vendor's: the simulator knows that verificationId.
    let rec = common::sim_client(
        &sim_url,
        DEMO_API_KEY,
        DEMO_API_SECRET,
        clock::system(),
        Arc::new(NoopObserver),
    )
    .record(&OrderKey::Verification {
        verification_id: sent.verification_id.clone(),
    })
    .await
    .unwrap();
    assert!(rec.is_some());
    app.verify(&sent.verification_id, "1234").await.unwrap();
    let text = metrics.render();
    let m = common::parse_exposition(&text);
    assert_eq!(
        sum(
            &m,
            "itniotech_exporter_capture_failures_total",
            &[("reason", "store")]
        ),
        2.0,
        "the send and the verify"
    );
    drop(sim);
}
