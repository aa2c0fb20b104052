//! What the capture proxy costs: the same signed calls to the simulator on loopback, direct and
//! through the proxy, in one run (ratios, not absolute times, are what this noisy machine can
//! be trusted for).
//!
//! 1. Pass-through (`GET /sms/getBalance`) at a fixed rate, in alternating phases so both paths
//!    see the same machine: p50/p99 latency direct and proxied, and the difference.
//! 2. The send path (`POST /otp/verification/sendRule`), where the proxy commits the order to
//!    the store (a durable SQLite commit) before replying.
//! 3. The most requests per second one proxy core sustains (closed loop, 64 in flight).
//!
//! The proxy runs on a single-threaded runtime of its own (one core); the simulator and the
//! load generator on others. `cargo bench --bench proxy` runs it at full size; `cargo test
//! --bench proxy` (the test script's smoke run) at a size that proves it works.

use itniotech_exporter::api::sign::sign;
use itniotech_exporter::clock;
use itniotech_exporter::ledger::Ledger;
use itniotech_exporter::metrics::Metrics;
use itniotech_exporter::proxy::{self, ProxyState};
use itniotech_exporter::simulator::{SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET};
use itniotech_exporter::tracker::store::Store;
use itniotech_exporter::tracker::{Tracker, TrackerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Size {
    rate: u64,
    phase: Duration,
    phases: usize,
    send_rate: u64,
    send_phase: Duration,
    saturate: Duration,
}

const FULL: Size = Size {
    rate: 500,
    phase: Duration::from_secs(2),
    phases: 4,
    send_rate: 50,
    send_phase: Duration::from_secs(4),
    saturate: Duration::from_secs(4),
};

const SMOKE: Size = Size {
    rate: 100,
    phase: Duration::from_millis(300),
    phases: 2,
    send_rate: 20,
    send_phase: Duration::from_millis(500),
    saturate: Duration::from_millis(500),
};

/// Runs `serve` on a runtime of its own in a new thread (`workers` 0 = current-thread, i.e.
/// one core); returns the bound address.
fn server_thread(
    workers: usize,
    serve: impl FnOnce(tokio::net::TcpListener) -> futures::future::BoxFuture<'static, ()>
        + Send
        + 'static,
) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = if workers == 0 {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers)
                .enable_all()
                .build()
        }
        .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener).await;
        });
    });
    rx.recv().expect("server started")
}

fn signed(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Vec<u8>>,
) -> reqwest::RequestBuilder {
    let ts = clock::system().now().timestamp();
    let req = http
        .request(method, url)
        .header("Content-Type", "application/json;charset=UTF-8")
        .header("Api-Key", DEMO_API_KEY)
        .header("Timestamp", ts.to_string())
        .header("Sign", sign(DEMO_API_KEY, DEMO_API_SECRET, ts));
    match body {
        Some(b) => req.body(b),
        None => req,
    }
}

/// Fires `make()` at `rate` per second for `duration` (open loop: a slow reply does not delay
/// the next request) and returns every latency in microseconds.
async fn open_loop<F>(rate: u64, duration: Duration, make: F) -> Vec<u64>
where
    F: Fn(u64) -> reqwest::RequestBuilder,
{
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let end = Instant::now() + duration;
    let mut tasks = Vec::new();
    let mut i = 0;
    while Instant::now() < end {
        tick.tick().await;
        let req = make(i);
        i += 1;
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let r = req.send().await.expect("reply");
            assert!(r.status().is_success(), "{}", r.status());
            r.bytes().await.expect("body");
            start.elapsed().as_micros() as u64
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i] as f64 / 1000.0
}

struct Stats {
    p50: f64,
    p99: f64,
    n: usize,
}

fn stats(mut v: Vec<u64>) -> Stats {
    v.sort_unstable();
    Stats {
        p50: quantile(&v, 0.5),
        p99: quantile(&v, 0.99),
        n: v.len(),
    }
}

fn row(name: &str, direct: &Stats, proxied: &Stats) {
    println!(
        "{name:<34} direct p50 {:>7.3} ms p99 {:>7.3} ms | proxied p50 {:>7.3} ms p99 {:>7.3} ms | added p50 {:>6.3} ms p99 {:>6.3} ms | n {}+{}",
        direct.p50,
        direct.p99,
        proxied.p50,
        proxied.p99,
        proxied.p50 - direct.p50,
        proxied.p99 - direct.p99,
        direct.n,
        proxied.n
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let size = if full { FULL } else { SMOKE };

    let sim = Simulator::new(
        SimConfig {
            seed: 3,
            virtual_users: false,
            ..SimConfig::default()
        },
        clock::system(),
    );
    let sim_addr = server_thread(1, move |l| {
        Box::pin(async move { sim.serve(l).await.expect("simulator serves") })
    });
    let sim_url = format!("http://{sim_addr}");

    // The proxy on one core, with a real store on disk for the send path.
    let dir = tempfile::tempdir().expect("temp dir");
    let store_dir = dir.path().to_path_buf();
    let upstream = sim_url.clone();
    let proxy_addr = server_thread(0, move |l| {
        Box::pin(async move {
            let store = Store::open(&store_dir).expect("store");
            let metrics = Metrics::new(Ledger::new(), "bench", "bench");
            let tracker = Tracker::start(
                store,
                metrics.ledger.clone(),
                TrackerConfig::default(),
                clock::system(),
            );
            let router = proxy::router(ProxyState {
                upstream: upstream.parse().unwrap(),
                http: proxy::upstream_client(Duration::from_secs(10)).unwrap(),
                sink: Arc::new(tracker),
                metrics: metrics.op.clone(),
                clock: clock::system(),
            });
            axum::serve(l, router).await.expect("proxy serves");
        })
    });
    let proxy_url = format!("http://{proxy_addr}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap();
        // Warm both paths' connection pools.
        for base in [&sim_url, &proxy_url] {
            let url = format!("{base}/sms/getBalance");
            open_loop(100, Duration::from_millis(200), |_| {
                signed(&http, reqwest::Method::GET, &url, None)
            })
            .await;
        }

        // The store's first commit creates the WAL and checkpoints (seconds on a busy disk);
        // a start-up cost, not the steady state this measures.
        let url = format!("{proxy_url}/otp/verification/sendRule");
        for i in 0..3 {
            let body = serde_json::json!({
                "appId": "benchApp1",
                "orderId": format!("warm-{i}"),
                "to": "6281234567890",
                "code": "4242",
            });
            signed(&http, reqwest::Method::POST, &url, Some(serde_json::to_vec(&body).unwrap()))
                .send()
                .await
                .expect("warm-up send");
        }

        // 1. Pass-through at a fixed rate, alternating phases.
        let (mut direct, mut proxied) = (Vec::new(), Vec::new());
        for phase in 0..size.phases * 2 {
            let base = if phase % 2 == 0 { &sim_url } else { &proxy_url };
            let url = format!("{base}/sms/getBalance");
            let lat = open_loop(size.rate, size.phase, |_| {
                signed(&http, reqwest::Method::GET, &url, None)
            })
            .await;
            if phase % 2 == 0 {
                direct.extend(lat);
            } else {
                proxied.extend(lat);
            }
        }
        let (d, p) = (stats(direct), stats(proxied));
        println!("== capture proxy vs direct, simulator on loopback, proxy on one core ==");
        row(
            &format!("pass-through at {} req/s", size.rate),
            &d,
            &p,
        );
        let added_p99 = p.p99 - d.p99;

        // 2. The send path: the proxy commits the order before replying.
        let (mut direct, mut proxied) = (Vec::new(), Vec::new());
        for phase in 0..4 {
            let base = if phase % 2 == 0 { &sim_url } else { &proxy_url };
            let url = format!("{base}/otp/verification/sendRule");
            let lat = open_loop(size.send_rate, size.send_phase, |i| {
                let body = serde_json::json!({
                    "appId": "benchApp1",
                    "orderId": format!("bench-{phase}-{i}"),
                    "to": "6281234567890",
                    "code": "4242",
                });
                signed(
                    &http,
                    reqwest::Method::POST,
                    &url,
                    Some(serde_json::to_vec(&body).unwrap()),
                )
            })
            .await;
            if phase % 2 == 0 {
                direct.extend(lat);
            } else {
                proxied.extend(lat);
            }
        }
        let (sd, sp) = (stats(direct), stats(proxied));
        row(
            &format!("send + durable capture at {} req/s", size.send_rate),
            &sd,
            &sp,
        );

        // 3. Saturation: 64 requests in flight, as many as the proxy's one core answers.
        let url = format!("{proxy_url}/sms/getBalance");
        let end = Instant::now() + size.saturate;
        let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let workers: Vec<_> = (0..64)
            .map(|_| {
                let (http, url, done) = (http.clone(), url.clone(), done.clone());
                tokio::spawn(async move {
                    while Instant::now() < end {
                        let r = signed(&http, reqwest::Method::GET, &url, None)
                            .send()
                            .await
                            .expect("reply");
                        r.bytes().await.expect("body");
                        done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        let rps = done.load(std::sync::atomic::Ordering::Relaxed) as f64
            / size.saturate.as_secs_f64();
        println!("one proxy core sustains {rps:.0} req/s (closed loop, 64 in flight, simulator and load on the other core)");
        println!(
            "target: added p99 < 1 ms at 500 req/s pass-through: {} (added p99 {added_p99:.3} ms{})",
            if added_p99 < 1.0 { "met" } else { "NOT met" },
            if full { "" } else { ", smoke size: not a measurement" }
        );
    });
}
