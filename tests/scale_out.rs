//! Scale-out: three agents (real processes, one store each) behind no coordinator, fed orders
//! round-robin and then with an 80/10/10 skew, one of them `kill -9`ed and restarted on its
//! store while orders are pending. Each replica counts only the orders it received, so the
//! sum of the three /metrics — what Prometheus computes with `sum without (instance, pod)` —
//! must equal the truth read back from the simulator, exactly, for every business counter.
//!
//! The simulator runs in this process on the real clock (virtual users off: the test types
//! the codes itself, so whether an order was verified does not depend on timing).

mod common;

use common::{scrape, spawn, sum, Proc, Sample, TestApi};
use itniotech_exporter::api::{NoopObserver, SendRequest};
use itniotech_exporter::simulator::{
    random_receiver, Chaos, SimConfig, Simulator, COUNTRIES, DEMO_API_KEY,
};
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "s3cr3t-ScaleOut-Test";
const REPLICAS: usize = 3;
const APP: &str = "scaleApp";
/// The simulator's plan is deterministic per seed and order sequence.
const SIM_SEED: u64 = 11;
/// Every delay the simulator plans, a tenth of real time: its slowest report (an EXPIRED one
/// after up to 30 minutes) lands within 3 minutes, so every order of the test is final within
/// its deadline whatever the seed's draws (the test is about replicas, not slow carriers).
const SIM_TIME_SCALE: f64 = 0.1;
/// SMS to this country fail, so orders on flow 2 (sms_then_voice) fall back to a call.
const OUTAGE: &str = "ID";

fn agent_args<'a>(sim: &'a str, store: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--web.listen-address",
        "127.0.0.1:0",
        "--api.base-url",
        sim,
        "--storage.path",
        store,
        // Each replica has its own share of the vendor call budget (docs/deploy.md).
        "--api.max-rps",
        "20",
        // The fixed-interval schedule, fast: the test is about scale-out, not polling cost.
        "--poll.freshness-target",
        "0s",
        "--poll.first-delay",
        "1s",
        "--poll.interval",
        "2s",
        // Codes are typed right after the send or never, so a short window loses nothing.
        "--tracking.verify-window",
        "15s",
        "--flows.refresh-interval",
        "30s",
    ]
}

fn start_agent(sim: &str, store: &std::path::Path) -> (Proc, String) {
    spawn(
        &agent_args(sim, store.to_str().unwrap()),
        &[
            ("ITNIOTECH_API_KEY", DEMO_API_KEY),
            ("ITNIOTECH_API_SECRET", SECRET),
        ],
    )
}

/// One order of the test: what is sent, and what the test user does with the code.
struct Planned {
    order_id: String,
    req: SendRequest,
    /// None: never typed; Some(true): the right code; Some(false): a wrong one.
    typed_right: Option<bool>,
}

fn plan(i: usize, rng: &mut rand_chacha::ChaCha8Rng) -> Planned {
    let order_id = format!("so-{i:04}");
    // Every 7th order rides flow 2 to the outage country: a failed SMS, then a call.
    let fallback = i % 7 == 3;
    let country = if fallback {
        COUNTRIES.iter().find(|c| c.iso2 == OUTAGE).unwrap()
    } else {
        &COUNTRIES[i % COUNTRIES.len()]
    };
    let receiver = random_receiver(country, rng);
    let channel = if !fallback && i % 5 == 0 {
        "call"
    } else {
        "sms"
    };
    let typed_right = match (fallback, i % 3) {
        (true, _) => None,
        (_, 0) => Some(true),
        (_, 1) => None,
        _ => Some(false),
    };
    Planned {
        req: SendRequest {
            app_id: APP.into(),
            template_id: None,
            flow_id: fallback.then_some(2),
            to: receiver,
            channel: Some(channel.into()),
            order_id: Some(order_id.clone()),
            code: Some("424242".into()),
        },
        order_id,
        typed_right,
    }
}

/// The sum over every replica of the samples of `metric` matching `filter`.
fn summed(replicas: &[Vec<Sample>], metric: &str, filter: &[(&str, &str)]) -> f64 {
    replicas.iter().map(|s| sum(s, metric, filter)).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sum_to_the_truth_through_skew_and_kill_9() {
    let sim = Simulator::new(
        SimConfig {
            seed: SIM_SEED,
            time_scale: SIM_TIME_SCALE,
            api_secret: SECRET.into(),
            virtual_users: false,
            chaos: Chaos {
                outage_country: Some(OUTAGE.into()),
                ..Chaos::default()
            },
            ..SimConfig::default()
        },
        itniotech_exporter::clock::system(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    let gen = TestApi::new(common::sim_client(
        &sim_url,
        DEMO_API_KEY,
        SECRET,
        itniotech_exporter::clock::system(),
        Arc::new(NoopObserver),
    ));

    let stores: Vec<tempfile::TempDir> = (0..REPLICAS)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let mut agents: Vec<(Proc, String)> = stores
        .iter()
        .map(|s| start_agent(&sim_url, s.path()))
        .collect();
    let http = reqwest::Client::new();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let mut sent: Vec<Planned> = Vec::new();
    // Which replica received each order (distinct orders only).
    let mut owner: Vec<usize> = Vec::new();

    // Sends order i through the vendor API, types the code as planned, and posts it to the
    // intake of `replica`.
    async fn send_and_post(gen: &TestApi, http: &reqwest::Client, addr: &str, p: &Planned) {
        let res = gen.send_rule(&p.req).await.unwrap();
        match p.typed_right {
            Some(true) => {
                gen.verify(&res.verification_id, "424242").await.unwrap();
            }
            Some(false) => {
                gen.verify(&res.verification_id, "000000").await.unwrap();
            }
            None => {}
        }
        let r = http
            .post(format!("http://{addr}/api/v1/orders"))
            .json(&serde_json::json!({"appId": APP, "orderId": p.order_id}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
    }

    // Round-robin: 30 orders, 10 per replica.
    for i in 0..30 {
        let p = plan(i, &mut rng);
        let r = i % REPLICAS;
        send_and_post(&gen, &http, &agents[r].1, &p).await;
        sent.push(p);
        owner.push(r);
    }
    // Skewed, as one busy client with a kept-alive connection produces: 80/10/10.
    for i in 30..80 {
        let p = plan(i, &mut rng);
        let r = match i % 10 {
            8 => 1,
            9 => 2,
            _ => 0,
        };
        send_and_post(&gen, &http, &agents[r].1, &p).await;
        sent.push(p);
        owner.push(r);
    }

    // kill -9 the busiest replica once it has counted something and still has orders pending.
    let before_kill = common::eventually(Duration::from_secs(30), || async {
        let m = scrape(&http, &agents[0].1).await?;
        (sum(&m, "itniotech_otp_sms_total", &[]) > 0.0
            && sum(&m, "itniotech_exporter_orders_pending", &[]) > 0.0)
            .then_some(m)
    })
    .await
    .expect("replica 0 counts attempts while orders are pending");
    agents[0].0.kill9();
    // The other replicas keep going on their own; then the dead one comes back on its store.
    agents[0] = start_agent(&sim_url, stores[0].path());
    let restored = scrape(&http, &agents[0].1).await.unwrap();
    for s in before_kill
        .iter()
        .filter(|s| s.name.starts_with("itniotech_otp_") && s.name.ends_with("_total"))
    {
        let now = sum(
            &restored,
            &s.name,
            &s.labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        );
        assert!(
            now >= s.value,
            "{} {:?} went from {} to {now} across the restart: a counter reset",
            s.name,
            s.labels,
            s.value
        );
    }
    // More orders after the restart, to every replica; and one pre-crash order of replica 0
    // posted again to it: a duplicate, not a second order.
    for i in 80..89 {
        let p = plan(i, &mut rng);
        let r = i % REPLICAS;
        send_and_post(&gen, &http, &agents[r].1, &p).await;
        sent.push(p);
        owner.push(r);
    }
    let dup = sent[owner.iter().position(|&o| o == 0).unwrap()]
        .order_id
        .clone();
    let r = http
        .post(format!("http://{}/api/v1/orders", agents[0].1))
        .json(&serde_json::json!({"appId": APP, "orderId": dup}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    let total = sent.len() as f64;
    let finished = common::eventually(Duration::from_secs(240), || async {
        let mut all = Vec::new();
        for (_, addr) in &agents {
            all.push(scrape(&http, addr).await?);
        }
        (summed(&all, "itniotech_exporter_orders_pending", &[]) == 0.0
            && summed(&all, "itniotech_otp_orders_total", &[]) == total)
            .then_some(all)
    })
    .await;
    let Some(replicas) = finished else {
        let mut report = String::new();
        for (i, (_, addr)) in agents.iter().enumerate() {
            let m = scrape(&http, addr).await.unwrap_or_default();
            report.push_str(&format!(
                "replica {i}: pending {} orders {}\n",
                sum(&m, "itniotech_exporter_orders_pending", &[]),
                sum(&m, "itniotech_otp_orders_total", &[])
            ));
        }
        for p in &sent {
            let rec = gen.record_by_order_id(APP, &p.order_id).await;
            report.push_str(&format!("{}: {rec:?}\n", p.order_id));
        }
        panic!("the replicas did not finish every order:\n{report}");
    };

    // Each replica counted exactly the orders it received (the duplicate included once).
    for (r, m) in replicas.iter().enumerate() {
        let mine = owner.iter().filter(|&&o| o == r).count() as f64;
        assert_eq!(
            sum(m, "itniotech_otp_orders_total", &[]),
            mine,
            "replica {r} counts only its own orders"
        );
    }
    // The resubmitted order was acknowledged and counted as a duplicate exactly once, by the
    // replica that received it.
    let duplicates: Vec<f64> = replicas
        .iter()
        .map(|m| {
            sum(
                m,
                "itniotech_exporter_orders_rejected_total",
                &[("reason", "duplicate")],
            )
        })
        .collect();
    assert_eq!(duplicates, [1.0, 0.0, 0.0]);

    // The sum over the replicas equals the simulator's truth.
    let mut oracle = common::Oracle::default();
    for p in &sent {
        let rec = gen
            .record_by_order_id(APP, &p.order_id)
            .await
            .unwrap()
            .expect("record exists");
        oracle.account(&rec);
    }
    oracle.assert_matches(&replicas);
    // The scenario covered what it claims to.
    let count = |metric: &'static str, labels: &[(&'static str, &str)]| oracle.get(metric, labels);
    assert!(count("itniotech_otp_fallbacks_total", &[]) > 0.0);
    assert!(count("itniotech_otp_calls_total", &[]) > 0.0);
    for result in ["verified", "failed", "not_verified"] {
        assert!(
            count("itniotech_otp_verifications_total", &[("result", result)]) > 0.0,
            "{result}"
        );
    }
    for outcome in ["delivered", "failed"] {
        let n: f64 = oracle
            .counts
            .iter()
            .filter(|((m, l), _)| {
                *m == "itniotech_otp_orders_total"
                    && l.iter().any(|(k, v)| *k == "outcome" && v == outcome)
            })
            .map(|(_, v)| v)
            .sum();
        assert!(n > 0.0, "{outcome} orders");
    }
}
