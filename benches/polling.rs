//! What polling costs and how fresh it keeps the metrics: record calls per finalised order,
//! attempt freshness and order-outcome delay, for several order schedules side by side on the
//! same simulated traffic (issue 9; method and figures in docs/performance.md, "Polling").
//!
//! No HTTP and no real time: the simulator's account is driven in-process on a manual clock and
//! the agent's pure accounting (`accounting::on_record`, the same function the poller calls)
//! decides what is counted and when each order is polled next, so a run of thousands of orders
//! takes seconds and its figures depend only on the seed. Every schedule sees the same orders
//! (same seed, same send times) and must count the same orders, exactly once: the run fails
//! otherwise.
//!
//! `cargo bench --bench polling` (or scripts/bench-polling.sh) runs the full size;
//! `cargo test --bench polling` a smoke size that still checks exactly-once.

use chrono::{DateTime, Duration, Utc};
use itniotech_exporter::accounting::{self, FlowCatalog, Next, OrderState, Settings};
use itniotech_exporter::api::model::{one_or_many, Flow, Matched, OrderRecord};
use itniotech_exporter::clock::ManualClock;
use itniotech_exporter::domain::OrderKey;
use itniotech_exporter::ledger::{Ledger, LedgerFamily, Sample, Update};
use itniotech_exporter::simulator::{random_receiver, Scenario, SimChannel, SimConfig, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

/// The demo's traffic shape (src/demo.rs): apps and flows with their shares; `None` sends a
/// single attempt without a flow (30 % of those by voice).
const APPS: &[(&str, f64)] = &[("demo_login", 0.7), ("demo_payment", 0.3)];
const FLOWS: &[(Option<i64>, f64)] = &[
    (None, 0.25),
    (Some(1), 0.2),
    (Some(2), 0.25),
    (Some(3), 0.15),
    (Some(4), 0.15),
];

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

/// How orders are scheduled.
#[derive(Clone, Copy, Debug)]
enum Schedule {
    /// The fixed-interval schedule (`--poll.freshness-target 0s`): first poll 5 s after submit,
    /// in-progress attempts every age/4 (5–15 s), unverified codes at 1×, 2×… their age.
    Current,
    /// A script that polls every 15 s until the order is final and nothing is left to count.
    Naive15,
    /// The freshness scheduler at this p95 target.
    Target(i64),
}

impl Schedule {
    fn name(self) -> String {
        match self {
            Schedule::Current => "current (fixed intervals)".into(),
            Schedule::Naive15 => "naive every 15 s".into(),
            Schedule::Target(s) => format!("freshness target {s} s"),
        }
    }

    fn settings(self) -> Settings {
        let base = Settings::default();
        match self {
            Schedule::Current | Schedule::Naive15 => Settings {
                freshness_target: None,
                ..base
            },
            Schedule::Target(s) => Settings {
                freshness_target: Some(Duration::seconds(s)),
                ..base
            },
        }
    }
}

/// One order of the traffic.
struct Order {
    key: OrderKey,
    calls: u32,
    verified: bool,
    state: OrderState,
    finalised_at: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct Figures {
    orders: usize,
    calls: u64,
    finalised: u64,
    freshness: Vec<f64>,
    /// Verified orders: verifiedDate → the poll that counted the order.
    outcome_delay: Vec<f64>,
    max_pending: usize,
    pending_sum: f64,
    pending_samples: u64,
    /// Orders by calls made (index 6: 6 or more), verified and not.
    calls_hist: [[u32; 7]; 2],
    /// Orders by outcome, to check every schedule counts the same.
    outcomes: BTreeMap<String, u64>,
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).expect("a valid start time") // 2026-01-01
}

/// Sends `n` orders at `rate` per second under `scenario` and polls them by `schedule` until
/// every one is forgotten.
fn run(scenario: Scenario, schedule: Schedule, n: usize, rate: f64, seed: u64) -> Figures {
    let clock = Arc::new(ManualClock::new(t0()));
    let sim = Simulator::new(
        SimConfig {
            seed,
            scenario,
            initial_balance: rust_decimal::Decimal::from(1_000_000_000),
            virtual_users: true,
            ..SimConfig::default()
        },
        clock.clone(),
    );
    let flows: FlowCatalog = one_or_many::<Flow>(sim.flows_direct())
        .into_iter()
        .map(|f| (f.flow_id, f))
        .collect();
    let settings = schedule.settings();
    let first_delay = match schedule {
        Schedule::Naive15 => Duration::seconds(15),
        _ => accounting::first_poll_delay(&settings),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed_7aff_1c00_0000);
    let mix = scenario.traffic_mix();
    let mut orders: Vec<Order> = Vec::with_capacity(n);
    // (time in ms, order index); sends are interleaved with polls in time order.
    let mut due: BinaryHeap<Reverse<(i64, usize)>> = BinaryHeap::new();
    let mut ledger = Ledger::new();
    let mut figures = Figures {
        orders: n,
        ..Figures::default()
    };
    let mut pending = 0usize;
    let step_ms = (1000.0 / rate).round() as i64;
    let mut next_send = 0usize;
    loop {
        let send_at =
            (next_send < n).then(|| t0() + Duration::milliseconds(step_ms * next_send as i64));
        let poll_at = due.peek().map(|Reverse((ms, _))| *ms);
        let now_is_send = match (send_at, poll_at) {
            (Some(s), Some(p)) => s.timestamp_millis() <= p,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if now_is_send {
            let now = send_at.expect("a send is due");
            clock.set(now);
            let app = *pick(&mut rng, APPS);
            let flow = *pick(&mut rng, FLOWS);
            let country = *pick(&mut rng, &mix);
            let to = random_receiver(country, &mut rng);
            let channel = match flow {
                None if rng.random_bool(0.3) => SimChannel::Call,
                _ => SimChannel::Sms,
            };
            let order_id = format!("bench-{seed}-{next_send}");
            sim.send_direct(app, &to, channel, flow, Some(&order_id))
                .expect("the simulator accepts every bench order");
            orders.push(Order {
                key: OrderKey::Order {
                    app_id: app.into(),
                    order_id,
                },
                state: OrderState::new(app, flow, now),
                calls: 0,
                verified: false,
                finalised_at: None,
            });
            due.push(Reverse((
                (now + first_delay).timestamp_millis(),
                orders.len() - 1,
            )));
            next_send += 1;
            pending += 1;
            figures.max_pending = figures.max_pending.max(pending);
            figures.pending_sum += pending as f64;
            figures.pending_samples += 1;
            continue;
        }
        let Some(Reverse((ms, i))) = due.pop() else {
            break;
        };
        let now = DateTime::from_timestamp_millis(ms).expect("a valid poll time");
        clock.set(now);
        figures.calls += 1;
        let order = &mut orders[i];
        order.calls += 1;
        let record: Option<OrderRecord> = sim
            .record_direct(&order.key)
            .map(|data| serde_json::from_value(data).expect("the agent decodes simulator records"));
        let outcome = match &record {
            Some(r) => accounting::on_record(&order.state, r, &flows, now, &settings),
            None => accounting::on_not_found(&order.state, now, &settings),
        };
        if let Some(r) = &record {
            settings
                .delays
                .learn(&accounting::delay_samples(&order.state, r, &outcome.state));
        }
        for u in &outcome.updates {
            if let Update::Order(labels) = u {
                assert!(
                    order.finalised_at.is_none(),
                    "{}: order {i} counted twice",
                    schedule.name()
                );
                order.finalised_at = Some(now);
                figures.finalised += 1;
                *figures
                    .outcomes
                    .entry(format!("{}/{}", labels.country, labels.outcome.as_str()))
                    .or_default() += 1;
                let verified = record.as_ref().and_then(|r| {
                    (r.verifications.matched == Matched::Verified)
                        .then_some(r.verifications.verified_date)
                        .flatten()
                });
                order.verified = verified.is_some();
                if let Some(v) = verified {
                    let d = (now - v.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0;
                    figures.outcome_delay.push(d.max(0.0));
                }
            }
        }
        ledger.apply(&outcome.updates);
        figures.freshness.extend(&outcome.freshness);
        order.state = outcome.state;
        let next = match (schedule, outcome.next) {
            (_, Next::Forget) => None,
            (Schedule::Naive15, Next::PollAt(_)) => Some(now + Duration::seconds(15)),
            (_, Next::PollAt(at)) => Some(at),
        };
        match next {
            Some(at) => due.push(Reverse((at.timestamp_millis().max(ms + 1), i))),
            None => pending -= 1,
        }
    }
    for o in &orders {
        let row = if o.verified { 0 } else { 1 };
        figures.calls_hist[row][(o.calls as usize).min(6)] += 1;
    }
    assert_eq!(
        figures.finalised as usize,
        n,
        "{}: every order is counted once",
        schedule.name()
    );
    // The ledger holds exactly one order per sent order.
    let counted: f64 = ledger
        .family(LedgerFamily::Orders)
        .map(|(_, v)| match &v.sample {
            Sample::Counter(c) => *c,
            _ => 0.0,
        })
        .sum();
    assert_eq!(
        counted as usize,
        n,
        "{}: ledger order count",
        schedule.name()
    );
    figures
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --bench polling` does not: a smoke size then.
    let full = std::env::args().any(|a| a == "--bench");
    let (n, rate) = if full { (3000, 5.0) } else { (250, 5.0) };
    let seed = 9;
    let schedules = [
        Schedule::Current,
        Schedule::Naive15,
        Schedule::Target(10),
        Schedule::Target(30),
        Schedule::Target(60),
    ];
    println!(
        "polling bench: {n} orders at {rate}/s per mix, seed {seed}, simulated clock{}",
        if full {
            ""
        } else {
            " (smoke size; `cargo bench --bench polling` for the full run)"
        }
    );
    for scenario in [
        Scenario::Normal,
        Scenario::CarrierOutage,
        Scenario::SmsPumping,
    ] {
        println!("\n== mix: {} ==", scenario.as_str());
        println!(
            "{:<28} {:>10} {:>9} {:>9} {:>11} {:>11} {:>9} {:>9}",
            "schedule",
            "calls/ord",
            "fresh p50",
            "fresh p95",
            "outcome p50",
            "outcome p95",
            "pend max",
            "pend avg"
        );
        let mut reference: Option<BTreeMap<String, u64>> = None;
        for schedule in schedules {
            let mut f = run(scenario, schedule, n, rate, seed);
            println!(
                "{:<28} {:>10.2} {:>8.1}s {:>8.1}s {:>10.1}s {:>10.1}s {:>9} {:>9.0}",
                schedule.name(),
                f.calls as f64 / f.finalised as f64,
                quantile(&mut f.freshness, 0.5),
                quantile(&mut f.freshness, 0.95),
                quantile(&mut f.outcome_delay, 0.5),
                quantile(&mut f.outcome_delay, 0.95),
                f.max_pending,
                f.pending_sum / f.pending_samples.max(1) as f64,
            );
            match &reference {
                None => reference = Some(f.outcomes),
                Some(r) if *r != f.outcomes => {
                    let diff: u64 = r
                        .iter()
                        .map(|(k, v)| v.abs_diff(*f.outcomes.get(k).unwrap_or(&0)))
                        .sum();
                    println!("    ({diff} order outcomes differ from the current schedule's)");
                }
                Some(_) => {}
            }
            let _ = f.orders;
            if std::env::var_os("POLLING_BENCH_DETAIL").is_some() {
                for (row, name) in ["verified", "not verified"].iter().enumerate() {
                    println!(
                        "    {name}: orders by calls 1..6+: {:?}",
                        &f.calls_hist[row][1..]
                    );
                }
            }
        }
    }
}
