//! Soak and chaos: orders sent through the simulator and posted to the real agent (a process)
//! under every fault at once, then every business counter compared exactly with the
//! simulator's own ground truth: nothing lost, nothing doubled (docs/reliability.md).
//!
//! Faults: the simulator's chaos on every call the agent makes (timeouts, HTTP 500 and 503,
//! malformed JSON, `-18`, added latency), an auth blip (every call refused with `-1` for a
//! while), a jump of the vendor's clock past the timestamp window (`-16` until the agent learns
//! the skew), `kill -9` of the agent at random moments (restarted on the same store each time),
//! and a full disk under the store (a size-limited tmpfs filled to the last byte; it needs
//! root, as in CI; elsewhere that phase is skipped with a notice, and under `CI=true` a missing
//! tmpfs fails the test). Orders are posted under every key form: by orderId, by
//! verificationId only, with both in one item, under both in two requests (tracked twice until
//! the record links them), and replayed.
//!
//! Size: `SOAK_ORDERS` (default 600), `SOAK_RATE` orders/s (15), `SOAK_KILLS` (5),
//! `SOAK_DISK_FULL_SECS` (10), `SOAK_AUTH_BLIP_SECS` (5), `SOAK_SEED` (1). `scripts/soak.sh`
//! runs the full size (10,000 orders, 20 kills, a minute of full disk). The simulator plans at
//! 1/20 of real time, so orders live seconds instead of minutes.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod oracle;

use common::{scrape, sum, TestApi};
use faults::{Agent, Disk, SECRET};
use itniotech_exporter::api::{NoopObserver, SendRequest};
use itniotech_exporter::clock;
use itniotech_exporter::simulator::{
    random_receiver, Chaos, SimConfig, Simulator, COUNTRIES, DEMO_API_KEY,
};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
struct Plan {
    orders: usize,
    rate: f64,
    kills: usize,
    disk_full: Duration,
    auth_blip: Duration,
    seed: u64,
}

impl Plan {
    fn from_env() -> Plan {
        let get = |k: &str, d: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(d)
        };
        Plan {
            orders: get("SOAK_ORDERS", 600) as usize,
            rate: get("SOAK_RATE", 15) as f64,
            kills: get("SOAK_KILLS", 5) as usize,
            disk_full: Duration::from_secs(get("SOAK_DISK_FULL_SECS", 10)),
            auth_blip: Duration::from_secs(get("SOAK_AUTH_BLIP_SECS", 5)),
            seed: get("SOAK_SEED", 1),
        }
    }

    fn traffic(&self) -> Duration {
        Duration::from_secs_f64(self.orders as f64 / self.rate)
    }
}

/// The simulator plans every delay at this share of real time.
const TIME_SCALE: f64 = 0.05;

/// The faults on every call the agent makes: 30 % timeouts and 5xx, some malformed replies and
/// vendor errors, a little latency.
fn chaos() -> Chaos {
    Chaos {
        latency: Duration::from_millis(5),
        timeout_rate: 0.10,
        http_500_rate: 0.10,
        http_503_rate: 0.10,
        malformed_rate: 0.03,
        vendor_error_rate: 0.02,
        ..Chaos::default()
    }
}

fn agent_args(sim: &str, store: &str) -> Vec<String> {
    [
        "run",
        "--web.listen-address",
        "127.0.0.1:0",
        "--api.base-url",
        sim,
        "--storage.path",
        store,
        // Timeouts cost their full length: keep them short, and the budget wide.
        "--api.timeout",
        "1s",
        "--api.max-attempts",
        "4",
        "--api.concurrency",
        "32",
        "--api.max-rps",
        "1000",
        // The fixed-interval schedule this test times against.
        "--poll.freshness-target",
        "0s",
        "--poll.first-delay",
        "1s",
        "--poll.interval",
        "2s",
        "--poll.grace",
        "1s",
        // Longer than the slowest delivery plus the user's think time at this time scale
        // (45 s + 4 s), so whether an order was verified does not depend on poll timing.
        "--tracking.verify-window",
        "60s",
        "--tracking.max-age",
        "1h",
        "--flows.refresh-interval",
        "10s",
        "--balance.refresh-interval",
        "10s",
        "--readiness.api-window",
        "30s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Intake requests and what they met.
#[derive(Default)]
struct IntakeStats {
    requests: AtomicU64,
    retries: AtomicU64,
    unavailable_disk_full: AtomicU64,
    unavailable_other: AtomicU64,
    shed: AtomicU64,
    refused_connections: AtomicU64,
}

/// POSTs `items` until the agent answers 202 (a client that got no answer, a 429 or a 503, retries:
/// duplicates are acknowledged, never tracked twice).
async fn post(http: reqwest::Client, agent: Arc<Agent>, items: Vec<Value>, st: Arc<IntakeStats>) {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::to_vec(&items).unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let url = format!("http://{}/api/v1/orders", agent.addr());
        let r = http
            .post(url)
            .header("Content-Type", "application/json")
            .body(body.clone())
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match r {
            Ok(r) if r.status() == 202 => return,
            // Shed (the intake is saturated): a well-behaved client retries, as after a 503.
            Ok(r) if r.status() == 429 => {
                st.shed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) if r.status() == 503 => {
                let text = r.text().await.unwrap_or_default();
                if text.contains("disk_full") {
                    st.unavailable_disk_full.fetch_add(1, Ordering::Relaxed);
                } else {
                    st.unavailable_other.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(r) => panic!(
                "intake answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(_) => {
                st.refused_connections.fetch_add(1, Ordering::Relaxed);
            }
        }
        assert!(Instant::now() < deadline, "the intake never took {items:?}");
        st.retries.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// How an order is posted to the intake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Form {
    /// `{appId, orderId}`.
    ByOrderId,
    /// `{verificationId}` (its record names the orderId, or no orderId was sent at all).
    ByVerificationId,
    /// `{appId, orderId, verificationId}` in one item.
    Both,
    /// `{appId, orderId}`, then `{verificationId}` in a later request: tracked twice until a
    /// record links them.
    OrderIdThenVerificationId,
    /// The reverse.
    VerificationIdThenOrderId,
}

async fn generate(
    plan: Plan,
    api: TestApi,
    http: reqwest::Client,
    agent: Arc<Agent>,
    st: Arc<IntakeStats>,
) -> std::collections::BTreeMap<Form, u64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed ^ 0x50AC);
    let start = Instant::now();
    let mut forms = std::collections::BTreeMap::new();
    let mut posts = Vec::new();
    for i in 0..plan.orders {
        let due = start + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(due.into()).await;
        let form = match rng.random_range(0..100) {
            0..55 => Form::ByOrderId,
            55..70 => Form::ByVerificationId,
            70..82 => Form::Both,
            82..92 => Form::OrderIdThenVerificationId,
            _ => Form::VerificationIdThenOrderId,
        };
        *forms.entry(form).or_insert(0u64) += 1;
        // A verificationId record shows only the latest attempt of each channel, so an order
        // that may be tracked by it takes no flow with two SMS steps (flow 4).
        let vid_tracked = matches!(
            form,
            Form::ByVerificationId | Form::VerificationIdThenOrderId
        );
        let flows: &[Option<i64>] = if vid_tracked {
            &[None, Some(1), Some(2), Some(3)]
        } else {
            &[None, Some(1), Some(2), Some(3), Some(4)]
        };
        let flow = flows[rng.random_range(0..flows.len())];
        let country = &COUNTRIES[rng.random_range(0..COUNTRIES.len())];
        let app = if i % 2 == 0 { "soakApp1" } else { "soakApp2" };
        let order_id = format!("soak-{}-{i:06}", plan.seed);
        let with_order_id = form != Form::ByVerificationId || i % 3 != 0;
        let req = SendRequest {
            app_id: app.into(),
            template_id: None,
            flow_id: flow,
            to: random_receiver(country, &mut rng),
            channel: Some(
                if flow.is_none() && i % 6 == 1 {
                    "call"
                } else {
                    "sms"
                }
                .into(),
            ),
            order_id: with_order_id.then(|| order_id.clone()),
            code: Some("246810".into()),
        };
        let sent = api
            .send_rule(&req)
            .await
            .expect("the clean API takes the send");
        let vid = sent.verification_id;
        let by_order = json!({"appId": app, "orderId": order_id});
        let by_vid = json!({"verificationId": vid});
        let (first, later) = match form {
            Form::ByOrderId => (by_order, None),
            Form::ByVerificationId => (by_vid, None),
            Form::Both => (
                json!({"appId": app, "orderId": order_id, "verificationId": vid}),
                None,
            ),
            Form::OrderIdThenVerificationId => (by_order, Some(by_vid)),
            Form::VerificationIdThenOrderId => (by_vid, Some(by_order)),
        };
        // One order in 30 is replayed later, as a client retrying a lost answer would.
        let replay = (i % 30 == 7).then(|| first.clone());
        posts.push(tokio::spawn(post(
            http.clone(),
            agent.clone(),
            vec![first],
            st.clone(),
        )));
        for (item, after) in [(later, 2.0), (replay, 4.0)] {
            let Some(item) = item else { continue };
            let (http, agent, st) = (http.clone(), agent.clone(), st.clone());
            posts.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs_f64(after)).await;
                post(http, agent, vec![item], st).await;
            }));
        }
    }
    for p in posts {
        p.await.expect("a post task");
    }
    forms
}

/// A fault at a moment of the run.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Fault {
    Kill,
    AuthBlip,
    ClockJump,
    DiskFull,
}

/// What the full-disk phase observed.
#[derive(Debug, Default)]
struct DiskFullReport {
    filled_bytes: u64,
    store_errors: f64,
    record_calls_while_full: f64,
    /// Of those, the calls made after readiness reported the failure: the poller paused.
    record_calls_after_detection: f64,
    ready_said: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nothing_lost_nothing_doubled_under_every_fault() {
    let plan = Plan::from_env();
    eprintln!("soak plan: {plan:?}");
    let sim = Simulator::new(
        SimConfig {
            seed: plan.seed,
            api_key: DEMO_API_KEY.into(),
            api_secret: SECRET.into(),
            // Small, so the vendor clock's jump below is a -16 the agent must recover from.
            timestamp_window: Duration::from_secs(30),
            chaos: chaos(),
            virtual_users: true,
            time_scale: TIME_SCALE,
            ..SimConfig::default()
        },
        clock::system(),
    );
    let chaotic = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let clean = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", chaotic.local_addr().unwrap());
    let clean_url = format!("http://{}", clean.local_addr().unwrap());
    let (chaotic_api, clean_api) = (sim.router(), sim.router_without_chaos());
    tokio::spawn(async move { axum::serve(chaotic, chaotic_api).await });
    tokio::spawn(async move { axum::serve(clean, clean_api).await });

    let disk = Disk::new(64);
    if !disk.can_fill() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true but a tmpfs cannot be mounted for the full-disk phase"
        );
        eprintln!("NOTICE: cannot mount a tmpfs (not root?): the full-disk phase is skipped");
    }
    let agent = Arc::new(Agent::start(agent_args(
        &sim_url,
        disk.path().to_str().unwrap(),
    )));
    let http = reqwest::Client::new();
    let api = TestApi::new(common::sim_client(
        &clean_url,
        DEMO_API_KEY,
        SECRET,
        clock::system(),
        Arc::new(NoopObserver),
    ));

    // The fault schedule, drawn from the seed.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(plan.seed);
    let t = plan.traffic().as_secs_f64();
    let disk_at = t * rng.random_range(0.2..0.5);
    let disk_end = disk_at + plan.disk_full.as_secs_f64();
    let mut schedule: Vec<(f64, Fault)> = vec![
        (t * rng.random_range(0.1..0.8), Fault::AuthBlip),
        (t * 0.5, Fault::ClockJump),
    ];
    if disk.can_fill() {
        schedule.push((disk_at, Fault::DiskFull));
    }
    while schedule.iter().filter(|(_, f)| *f == Fault::Kill).count() < plan.kills {
        let at = rng.random_range(2.0..t + 10.0);
        let near_disk = disk.can_fill() && (disk_at - 3.0..disk_end + 3.0).contains(&at);
        let near_kill = schedule
            .iter()
            .any(|(k, f)| *f == Fault::Kill && (k - at).abs() < 1.5);
        if !near_disk && !near_kill {
            schedule.push((at, Fault::Kill));
        }
    }
    schedule.sort_by(|a, b| a.partial_cmp(b).unwrap());

    let stats = Arc::new(IntakeStats::default());
    let started = Instant::now();
    let traffic = tokio::spawn(generate(
        plan.clone(),
        api.clone(),
        http.clone(),
        agent.clone(),
        stats.clone(),
    ));

    let mut kills = 0;
    let mut disk_report = DiskFullReport::default();
    for (at, fault) in schedule {
        tokio::time::sleep_until((started + Duration::from_secs_f64(at)).into()).await;
        match fault {
            Fault::Kill => {
                let a = agent.clone();
                tokio::task::spawn_blocking(move || a.kill9_and_restart())
                    .await
                    .unwrap();
                kills += 1;
            }
            Fault::AuthBlip => {
                sim.set_chaos(Chaos {
                    auth_failure_rate: 1.0,
                    ..current_chaos(&sim)
                });
                let before = sim.faults().get("auth_failure").copied().unwrap_or(0);
                tokio::time::sleep(plan.auth_blip).await;
                // The blip lasts until the agent has met it: a blip that falls while polling is
                // paused (a full disk) or the agent restarts would otherwise test nothing.
                common::eventually(Duration::from_secs(60), || async {
                    (sim.faults().get("auth_failure").copied().unwrap_or(0) > before).then_some(())
                })
                .await
                .expect("the agent calls the vendor during the auth blip");
                sim.set_chaos(Chaos {
                    auth_failure_rate: 0.0,
                    ..current_chaos(&sim)
                });
            }
            Fault::ClockJump => sim.set_chaos(Chaos {
                clock_offset_secs: 45,
                ..current_chaos(&sim)
            }),
            Fault::DiskFull => {
                disk_report = full_disk(&disk, &agent, &http, plan.disk_full).await;
            }
        }
    }
    let forms = traffic.await.expect("the traffic generator");
    let traffic_done = started.elapsed();

    // Everything played out at the vendor, and every order final at the agent.
    let truth_orders = plan.orders as f64;
    let settled = common::eventually(Duration::from_secs(600), || async {
        let m = scrape(&http, &agent.addr()).await?;
        (sim.settled()
            && sum(&m, "itniotech_exporter_orders_pending", &[]) == 0.0
            && sum(&m, "itniotech_otp_orders_total", &[]) >= truth_orders)
            .then_some(m)
    })
    .await;
    let served = match settled {
        Some(m) => m,
        None => {
            let m = scrape(&http, &agent.addr()).await.unwrap_or_default();
            panic!(
                "not settled: simulator {}, pending {}, orders counted {}\n{}",
                sim.settled(),
                sum(&m, "itniotech_exporter_orders_pending", &[]),
                sum(&m, "itniotech_otp_orders_total", &[]),
                tail(&agent.all_logs(), 40)
            );
        }
    };
    let truth = sim.truth();
    assert_eq!(truth.len(), plan.orders);
    let expected = oracle::expected(&truth);
    let got = oracle::served(&served);
    let differences = oracle::differences(&expected, &got);

    let logs = agent.all_logs();
    let merged = sum(&served, "itniotech_exporter_orders_merged_total", &[]);
    println!("== soak result ==");
    println!(
        "orders: {} ({:?}); traffic {:.0} s, settled after {:.0} s",
        plan.orders,
        forms,
        traffic_done.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "intake: {} requests, {} retries ({} refused connections during restarts, {} answered 503 disk_full, {} other 503, {} shed with 429)",
        stats.requests.load(Ordering::Relaxed),
        stats.retries.load(Ordering::Relaxed),
        stats.refused_connections.load(Ordering::Relaxed),
        stats.unavailable_disk_full.load(Ordering::Relaxed),
        stats.unavailable_other.load(Ordering::Relaxed),
        stats.shed.load(Ordering::Relaxed),
    );
    println!("kill -9: {kills}; orders merged after being tracked under both key forms (last incarnation): {merged}");
    println!("vendor faults injected: {:?}", sim.faults());
    println!(
        "full disk: {:.0} s, {} bytes filled, store errors {} (disk_full), record calls while full {} ({} after readiness reported it), /-/ready said {:?}",
        plan.disk_full.as_secs_f64(),
        disk_report.filled_bytes,
        disk_report.store_errors,
        disk_report.record_calls_while_full,
        disk_report.record_calls_after_detection,
        disk_report.ready_said
    );
    println!(
        "series compared: {}; differences: {}",
        oracle::series_compared(&expected),
        differences.len()
    );
    for d in &differences {
        println!("  {d}");
    }
    assert!(
        differences.is_empty(),
        "the agent's counters differ from the simulator's truth"
    );
    assert_eq!(
        sum(&served, "itniotech_otp_orders_total", &[]),
        truth_orders,
        "each order counted once"
    );
    assert!(!logs.contains("panicked"), "{}", tail(&logs, 40));
    if disk.can_fill() {
        assert!(disk_report.store_errors > 0.0, "{disk_report:?}");
        assert!(
            disk_report.ready_said.contains("disk_full"),
            "{disk_report:?}"
        );
    }
    let faults = sim.faults();
    for kind in [
        "timeout",
        "http_500",
        "http_503",
        "malformed",
        "auth_failure",
        "clock_skew",
    ] {
        assert!(
            faults.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} injected: {faults:?}"
        );
    }
}

fn current_chaos(sim: &Simulator) -> Chaos {
    sim.chaos()
}

/// Fills the store's disk for `hold`, and reports what the agent did meanwhile.
async fn full_disk(
    disk: &Disk,
    agent: &Agent,
    http: &reqwest::Client,
    hold: Duration,
) -> DiskFullReport {
    let addr = agent.addr();
    let record_calls = |m: &[common::Sample]| {
        sum(
            m,
            "itniotech_api_requests_total",
            &[("api_endpoint", "record_by_order_id")],
        ) + sum(
            m,
            "itniotech_api_requests_total",
            &[("api_endpoint", "record_by_verification_id")],
        )
    };
    let before = scrape(http, &addr).await.unwrap_or_default();
    let filled_bytes = disk.fill();
    let until = Instant::now() + hold;
    // Readiness names the reason once a commit (or the writer's probe) has failed.
    let ready_said = common::eventually(hold, || async {
        let r = http
            .get(format!("http://{addr}/-/ready"))
            .send()
            .await
            .ok()?;
        let status = r.status();
        let body = r.text().await.ok()?;
        (status == 503 && body.contains("disk_full")).then_some(body)
    })
    .await
    .unwrap_or_default();
    let detected = scrape(http, &addr).await.unwrap_or_default();
    tokio::time::sleep_until(until.into()).await;
    let during = scrape(http, &addr).await.unwrap_or_default();
    disk.free();
    DiskFullReport {
        filled_bytes,
        store_errors: sum(
            &during,
            "itniotech_exporter_store_errors_total",
            &[("kind", "disk_full")],
        ),
        record_calls_while_full: record_calls(&during) - record_calls(&before),
        record_calls_after_detection: record_calls(&during) - record_calls(&detected),
        ready_said: ready_said.trim().replace('\n', " | "),
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
