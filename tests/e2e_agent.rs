//! End to end against the simulator with an injected clock: orders covering delivered, failed,
//! fallback to call, rescue, unverified, not found, in-progress-then-done and
//! verificationId-only are tracked until final, and every affected series is compared exactly
//! with an oracle computed from the simulator's own records. Then the store is reopened and
//! the restored metrics must be identical (nothing lost, nothing twice).

mod common;

use chrono::{DateTime, Utc};
use common::{parse_exposition, sum};
use itniotech_exporter::accounting::Settings;
use itniotech_exporter::api::model::{Matched, OrderRecord};
use itniotech_exporter::api::{
    ApiObserver, Client, NoopObserver, OtpSender, RecordSource, SendRequest,
};
use itniotech_exporter::clock::{ManualClock, SharedClock};
use itniotech_exporter::country;
use itniotech_exporter::domain::{NewOrder, OrderKey};
use itniotech_exporter::metrics::Metrics;
use itniotech_exporter::poller::{CatalogPoller, FlowCatalogHandle, OrderPoller};
use itniotech_exporter::simulator::{
    random_receiver, Chaos, SimConfig, Simulator, COUNTRIES, DEMO_API_KEY, DEMO_API_SECRET,
};
use itniotech_exporter::tracker::store::Store;
use itniotech_exporter::tracker::{Tracker, TrackerConfig};
use rand::{Rng, SeedableRng};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn client(base: &str, clock: SharedClock, observer: Arc<dyn ApiObserver>) -> Client {
    common::sim_client(base, DEMO_API_KEY, DEMO_API_SECRET, clock, observer)
}

struct Agent {
    metrics: Arc<Metrics>,
    tracker: Tracker,
    poller: OrderPoller,
}

async fn start_agent(dir: &std::path::Path, base: &str, clock: SharedClock) -> Agent {
    let store = Store::open(dir).unwrap();
    let ledger = store.load_ledger().unwrap();
    let metrics = Arc::new(Metrics::new(ledger, "test", "test"));
    let tracker = Tracker::start(
        store,
        metrics.ledger.clone(),
        TrackerConfig::default(),
        clock.clone(),
    );
    let api: Arc<dyn RecordSource> = Arc::new(client(base, clock.clone(), metrics.op.clone()));
    let flows = FlowCatalogHandle::default();
    let catalog = CatalogPoller::new(
        api.clone(),
        metrics.op.clone(),
        flows.clone(),
        "USD".into(),
        Duration::from_secs(300),
        Duration::from_secs(60),
    )
    .unwrap();
    catalog.refresh_flows().await;
    catalog.refresh_balance().await;
    let poller = OrderPoller::new(
        tracker.clone(),
        api,
        flows,
        metrics.op.clone(),
        Settings::default(),
        clock,
        8,
    )
    .unwrap();
    Agent {
        metrics,
        tracker,
        poller,
    }
}

/// Ledger samples only (the OTP families), for before/after restart comparison.
fn otp_samples(text: &str) -> Vec<common::Sample> {
    parse_exposition(text)
        .into_iter()
        .filter(|s| s.name.starts_with("itniotech_otp_") && !s.name.contains("flow_"))
        .collect()
}

/// The exposition made comparable across runs: API latencies (wall-clock time) keep only their
/// series, with `<t>` for the value; samples within a family are sorted, because the operational
/// families iterate a hash map whose order differs per process; float sums are rounded to 9
/// decimals, because concurrent polls add the same increments in a different order and f64
/// addition is not associative (0.8370000000000002 one run, …04 the next).
fn deterministic_exposition(text: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut block: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            block.sort();
            out.append(&mut block);
            out.push(line.to_string());
        } else if line.starts_with("itniotech_api_request_duration_seconds") {
            let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
            block.push(format!("{series} <t>"));
        } else {
            block.push(round_float_noise(line));
        }
    }
    block.sort();
    out.append(&mut block);
    out.join("\n")
}

/// `line` with its value rounded to 9 decimals when it has more (the exact sums are checked
/// against the oracle elsewhere; the snapshot pins names, labels and values to that precision).
fn round_float_noise(line: &str) -> String {
    let Some((series, value)) = line.rsplit_once(' ') else {
        return line.to_string();
    };
    let noisy = value
        .split_once('.')
        .is_some_and(|(_, frac)| frac.len() > 9);
    match value.parse::<f64>() {
        Ok(v) if noisy => {
            let rounded = format!("{v:.9}");
            let trimmed = rounded.trim_end_matches('0');
            let trimmed = trimmed
                .strip_suffix('.')
                .map_or(trimmed.to_string(), |t| format!("{t}.0"));
            format!("{series} {trimmed}")
        }
        _ => line.to_string(),
    }
}

#[derive(Default, Debug)]
struct Oracle {
    orders: BTreeMap<(String, String), f64>,
    sms: BTreeMap<(String, String), f64>,
    /// Failed SMS by normalised reason.
    sms_failures: BTreeMap<String, f64>,
    calls: f64,
    fallbacks: f64,
    /// Fallbacks by (from, to) channel.
    fallback_pairs: BTreeMap<(String, String), f64>,
    /// Rescued orders by the channel that rescued them.
    rescues: BTreeMap<String, f64>,
    verified: f64,
    not_verified: f64,
    cost_sms: Decimal,
    cost_call: Decimal,
}

/// The attempts of a record as (channel, submit, delivered, delivered at), by submit time.
type Step = (&'static str, DateTime<chrono::FixedOffset>, bool);

fn steps(rec: &OrderRecord) -> Vec<Step> {
    let mut all: Vec<Step> = rec
        .sms
        .iter()
        .map(|s| ("sms", s.submit_tm.unwrap(), s.status == Some(0)))
        .chain(rec.call.iter().map(|c| {
            (
                "call",
                c.submit_time.unwrap(),
                c.termination_code == Some(0) && c.answer_time.is_some(),
            )
        }))
        .collect();
    all.sort_by_key(|(ch, t, _)| (*t, *ch == "call"));
    all
}

fn account(oracle: &mut Oracle, rec: &OrderRecord, receiver_country: &str) {
    let delivered = rec.sms.iter().any(|s| s.status == Some(0))
        || rec
            .call
            .iter()
            .any(|c| c.termination_code == Some(0) && c.answer_time.is_some());
    let verified = rec.verifications.matched == Matched::Verified;
    let outcome = if delivered || verified {
        "delivered"
    } else {
        "failed"
    };
    *oracle
        .orders
        .entry((receiver_country.to_string(), outcome.to_string()))
        .or_default() += 1.0;
    let steps = steps(rec);
    for pair in steps.windows(2) {
        *oracle
            .fallback_pairs
            .entry((pair[0].0.to_string(), pair[1].0.to_string()))
            .or_default() += 1.0;
    }
    // docs/design.md §4.2: the first attempt did not do the job and a later one did.
    if steps.len() >= 2 {
        let verified_at = rec
            .verifications
            .verified_date
            .filter(|_| rec.verifications.matched == Matched::Verified);
        let first_did_it = steps[0].2 && verified_at.is_some_and(|v| v < steps[1].1);
        let rescuer = steps[1..]
            .iter()
            .find(|s| s.2)
            .or(verified_at.and(steps.last()))
            .map(|s| s.0);
        if let Some(ch) = rescuer.filter(|_| !first_did_it) {
            *oracle.rescues.entry(ch.to_string()).or_default() += 1.0;
        }
    }
    for s in &rec.sms {
        let status = if s.status == Some(0) {
            "delivered"
        } else {
            "failed"
        };
        if status == "failed" {
            let reason = s
                .reason
                .as_deref()
                .unwrap_or("unknown")
                .to_ascii_lowercase();
            *oracle.sms_failures.entry(reason).or_default() += 1.0;
        }
        let c = country::from_mcc(s.mcc.unwrap()).to_string();
        *oracle.sms.entry((c, status.to_string())).or_default() += 1.0;
        oracle.cost_sms += s.pay.unwrap_or_default();
    }
    for c in &rec.call {
        oracle.calls += 1.0;
        oracle.cost_call += c.cost.unwrap_or_default();
    }
    oracle.fallbacks += (rec.sms.len() + rec.call.len()).saturating_sub(1) as f64;
    if verified {
        oracle.verified += 1.0;
    } else {
        oracle.not_verified += 1.0;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_counted_exactly_once_and_survive_a_restart() {
    let start: DateTime<Utc> = "2026-03-01T00:00:00Z".parse().unwrap();
    let manual = ManualClock::new(start);
    let clock: SharedClock = Arc::new(manual.clone());
    let sim = Simulator::new(
        SimConfig {
            seed: 42,
            virtual_users: false,
            chaos: Chaos {
                outage_country: Some("ID".into()),
                ..Chaos::default()
            },
            ..SimConfig::default()
        },
        clock.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    let dir = tempfile::tempdir().unwrap();
    let agent = start_agent(dir.path(), &base, clock.clone()).await;
    let reader = client(&base, clock.clone(), Arc::new(NoopObserver));
    let gen = OtpSender::new(reader.clone());

    // Orders: ID is in an outage (SMS fail → flows fall back to calls), DE/BR/US deliver.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let country_by = |iso: &str| COUNTRIES.iter().find(|c| c.iso2 == iso).unwrap();
    let mut sent: Vec<(OrderKey, String)> = Vec::new(); // key, receiver country
    let mut new_orders = Vec::new();
    let plan: Vec<(&str, Option<i64>, &str)> = [
        ("DE", None, "sms"),
        ("BR", None, "sms"),
        ("US", Some(1), "sms"),
        ("ID", Some(1), "sms"),
        ("ID", Some(2), "sms"),
        ("ID", Some(3), "sms"),
        ("IN", Some(4), "sms"),
        ("DE", None, "call"),
    ]
    .into_iter()
    .cycle()
    .take(64)
    .collect();
    for (i, (iso, flow, channel)) in plan.iter().enumerate() {
        let to = random_receiver(country_by(iso), &mut rng);
        let order_id = format!("e2e-{i}");
        let res = gen
            .send_rule(&SendRequest {
                app_id: "e2eApp".into(),
                template_id: None,
                flow_id: *flow,
                to: to.clone(),
                channel: Some(channel.to_string()),
                order_id: Some(order_id.clone()),
                code: Some(format!("{:06}", rng.random_range(0..1_000_000))),
            })
            .await
            .unwrap();
        // Every 8th order without a flow is known only by its verificationId.
        let key = if i % 16 == 0 {
            OrderKey::Verification {
                verification_id: res.verification_id,
            }
        } else {
            OrderKey::Order {
                app_id: "e2eApp".into(),
                order_id,
            }
        };
        sent.push((key.clone(), country::from_number(&to)));
        new_orders.push(NewOrder {
            flow_id: *flow,
            submitted_at: Some(clock.now()),
            ..NewOrder::new(key)
        });
    }
    // One order that was never sent: not found.
    new_orders.push(NewOrder::new(OrderKey::Order {
        app_id: "e2eApp".into(),
        order_id: "never-sent".into(),
    }));
    let report = agent.tracker.enqueue(new_orders.clone()).await.unwrap();
    assert_eq!(report.accepted, 65);
    let dup = agent
        .tracker
        .enqueue(new_orders[..3].to_vec())
        .await
        .unwrap();
    assert_eq!((dup.accepted, dup.duplicates), (0, 3));

    // Run 20 simulated minutes, one second at a time; users verify as the simulator plans.
    let mut saw_in_progress_then_done = false;
    for _ in 0..1200 {
        manual.advance(Duration::from_secs(1));
        for a in sim.take_user_actions() {
            let _ = gen.verify(&a.verification_id, &a.code).await;
        }
        agent.poller.run_due().await.unwrap();
        if !saw_in_progress_then_done {
            let text = agent.metrics.render();
            let s = parse_exposition(&text);
            // Orders pending while SMS are counted: attempts are counted before orders finalise.
            if sum(&s, "itniotech_otp_sms_total", &[]) > 0.0
                && sum(&s, "itniotech_otp_orders_total", &[]) < 65.0
            {
                saw_in_progress_then_done = true;
            }
        }
    }
    assert!(
        saw_in_progress_then_done,
        "attempts must be counted before their orders finalise"
    );
    let stats = agent.tracker.stats().await.unwrap();
    assert_eq!(stats.pending, 0, "every order is final and forgotten");

    // Oracle from the simulator's records, read with a separate client.
    let mut oracle = Oracle::default();
    for (key, receiver_country) in &sent {
        let rec = reader.record(key).await.unwrap().expect("record exists");
        account(&mut oracle, &rec, receiver_country);
    }
    let text = agent.metrics.render();
    let s = parse_exposition(&text);
    for ((c, outcome), n) in &oracle.orders {
        let got = sum(
            &s,
            "itniotech_otp_orders_total",
            &[("country", c), ("outcome", outcome)],
        );
        assert_eq!(got, *n, "orders {c} {outcome}");
    }
    assert_eq!(
        sum(
            &s,
            "itniotech_otp_orders_total",
            &[("outcome", "not_found")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &s,
            "itniotech_otp_orders_total",
            &[("outcome", "unresolved")]
        ),
        0.0
    );
    assert_eq!(sum(&s, "itniotech_otp_orders_total", &[]), 65.0);
    for ((c, status), n) in &oracle.sms {
        let got = sum(
            &s,
            "itniotech_otp_sms_total",
            &[("country", c), ("status", status)],
        );
        assert_eq!(got, *n, "sms {c} {status}");
    }
    assert_eq!(sum(&s, "itniotech_otp_calls_total", &[]), oracle.calls);
    assert_eq!(
        sum(&s, "itniotech_otp_fallbacks_total", &[]),
        oracle.fallbacks
    );
    assert_eq!(
        sum(
            &s,
            "itniotech_otp_verifications_total",
            &[("result", "verified")]
        ),
        oracle.verified
    );
    assert_eq!(
        sum(&s, "itniotech_otp_verifications_total", &[]),
        oracle.verified + oracle.not_verified + 0.0
    );
    let cost = |ch: &str| sum(&s, "itniotech_otp_cost_total", &[("channel", ch)]);
    assert!((cost("sms") - oracle.cost_sms.to_f64().unwrap()).abs() < 1e-9);
    assert!((cost("call") - oracle.cost_call.to_f64().unwrap()).abs() < 1e-9);
    // Each case of the lifecycle happened, exactly as often as the records say.
    assert!(oracle.orders.get(&("ID".into(), "failed".into())).copied() >= Some(1.0));
    for ((from, to), n) in &oracle.fallback_pairs {
        let got = sum(
            &s,
            "itniotech_otp_fallbacks_total",
            &[("from_channel", from), ("to_channel", to)],
        );
        assert_eq!(got, *n, "fallbacks {from} -> {to}");
    }
    assert!(
        oracle
            .fallback_pairs
            .get(&("sms".into(), "call".into()))
            .copied()
            >= Some(1.0)
    );
    for ch in ["sms", "call"] {
        let got = sum(
            &s,
            "itniotech_otp_fallback_rescues_total",
            &[("to_channel", ch)],
        );
        assert_eq!(
            got,
            oracle.rescues.get(ch).copied().unwrap_or(0.0),
            "rescues by {ch}"
        );
    }
    assert!(
        oracle.rescues.get("call").copied() >= Some(1.0),
        "a call rescued an order"
    );
    assert!(oracle.not_verified > 0.0, "some users never verify");
    for (reason, n) in &oracle.sms_failures {
        let got = sum(
            &s,
            "itniotech_otp_sms_failures_total",
            &[("reason", reason)],
        );
        assert_eq!(got, *n, "sms failures {reason}");
    }
    assert_eq!(
        sum(&s, "itniotech_otp_sms_failures_total", &[]),
        oracle.sms_failures.values().sum::<f64>()
    );
    let by_vid = sent
        .iter()
        .filter(|(k, _)| matches!(k, OrderKey::Verification { .. }))
        .count() as f64;
    assert_eq!(by_vid, 4.0);
    assert_eq!(
        sum(&s, "itniotech_otp_orders_total", &[("app_id", "unknown")]),
        by_vid,
        "verificationId-only orders"
    );
    // Every terminal SMS has both times; every verified order a verification latency.
    assert_eq!(
        sum(&s, "itniotech_otp_sms_delivery_seconds_count", &[]),
        oracle.sms.values().sum::<f64>()
    );
    assert_eq!(
        sum(&s, "itniotech_otp_order_verification_seconds_count", &[]),
        oracle.verified
    );
    assert_eq!(
        sum(&s, "itniotech_account_balance", &[("kind", "balance")]),
        5000.0,
        "read once, before any order was sent"
    );
    assert_eq!(sum(&s, "itniotech_otp_flow_info", &[]), 4.0);
    // No vendor time or number was distrusted in a clean run.
    assert_eq!(
        sum(&s, "itniotech_exporter_vendor_time_anomalies_total", &[]),
        0.0
    );
    assert_eq!(
        sum(&s, "itniotech_exporter_record_anomalies_total", &[]),
        0.0
    );
    assert_eq!(sum(&s, "itniotech_exporter_store_errors_total", &[]), 0.0);

    // The whole exposition is pinned: any change to names, labels, help or values is a reviewed
    // diff. API latencies are wall-clock time, so only their bucket layout is kept.
    insta::assert_snapshot!("metrics_after_e2e", deterministic_exposition(&text));

    // Polling again changes nothing; a restart restores exactly the same OTP series.
    manual.advance(Duration::from_secs(3600));
    agent.poller.run_due().await.unwrap();
    let before = otp_samples(&agent.metrics.render());
    assert_eq!(before, otp_samples(&text));
    // The writer thread exits (closing the store) once the last handle is dropped.
    let closed = agent.tracker.on_exit();
    drop(agent);
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the tracker's writer closes the store");
    let again = start_agent(dir.path(), &base, clock.clone()).await;
    assert_eq!(otp_samples(&again.metrics.render()), before);
}
