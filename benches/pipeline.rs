//! Cost of each stage an order goes through, so we know where the agent's time goes.
//!
//! Groups (ids are what `scripts/bench.sh` reads back from `target/criterion/`):
//! - `parse_record`: one orderId record reply (2 SMS + 1 call), bytes -> `Envelope<OrderRecord>`.
//! - `account_record`: `accounting::on_record` on that record (first poll: everything is new),
//!   with and without the country of the receiver already known, and with the resulting
//!   updates applied to a populated ledger.
//! - `store_commit`: 256 orders inserted as 256 transactions vs one, on a file-backed store (WAL,
//!   `synchronous=FULL`: every commit is an fsync), and through `Tracker::enqueue`.
//! - `render_metrics`: a scrape of a ledger with ~10,000 series.
//! - `country`: calling-code and MCC lookups.
//!
//! `cargo test --all-targets` runs every routine once (criterion's test mode), so setup is kept
//! small: the largest is building the 10k-series ledger once.

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, SamplingMode, Throughput};
use itniotech_exporter::accounting::{self, FlowCatalog, OrderState, Settings};
use itniotech_exporter::api::model::{Envelope, Flow, FlowNode, OrderRecord, StepTrigger};
use itniotech_exporter::domain::Channel;
use itniotech_exporter::domain::{NewOrder, OrderKey};
use itniotech_exporter::ledger::Ledger;
use itniotech_exporter::metrics::Metrics;
use itniotech_exporter::tracker::store::Store;
use itniotech_exporter::tracker::{Tracker, TrackerConfig};
use itniotech_exporter::{clock, country};
use std::hint::black_box;

/// An orderId record reply as in docs/vendor-api.md §3.6, with a flow that fell back twice: two
/// failed SMS, then an answered call whose code was verified.
const RECORD: &[u8] = br#"{"status":"0","reason":"success","data":{"orderId":"ord-88232","flowId":7,
 "verifications":{"matched":0,"verifiedDate":"2024-05-14T10:02:30+08:00","oriReceiver":"919876543210","channel":"call"},
 "sms":[{"submitTm":"2024-05-14T10:00:01+08:00","sendTm":"2024-05-14T10:00:02+08:00",
   "doneTm":"2024-05-14T10:00:40+08:00","mcc":404,"mnc":45,"sender":"ACME","chargeCnt":1,
   "pay":"0.0045","status":1,"reason":"UNDELIV"},
  {"submitTm":"2024-05-14T10:01:02+08:00","sendTm":"2024-05-14T10:01:03+08:00",
   "doneTm":"2024-05-14T10:01:50+08:00","mcc":404,"mnc":45,"sender":"ACME","chargeCnt":1,
   "pay":"0.0045","status":1,"reason":"EXPIRED"}],
 "call":[{"terminationCode":0,"terminationReason":"success",
   "submitTime":"2024-05-14T10:02:05+08:00","callTime":"2024-05-14T10:02:06+08:00",
   "ringingTime":"2024-05-14T10:02:09+08:00","answerTime":"2024-05-14T10:02:14+08:00",
   "hangupTime":"2024-05-14T10:02:35+08:00","callDuration":21,"chargedDuration":60,
   "displayNum":null,"billPeriodstring":"60+60","code":"India(Airtel)","rate":"0.0120",
   "cost":"0.0120"}]}}"#;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid time")
        .with_timezone(&Utc)
}

fn parse(bytes: &[u8]) -> OrderRecord {
    serde_json::from_slice::<Envelope<OrderRecord>>(bytes)
        .expect("record parses")
        .data
        .expect("record has data")
}

/// Flow 7: SMS, SMS again, then a voice call; each step on send failure.
fn catalog() -> FlowCatalog {
    let node = |channel: &str, cut| FlowNode {
        waiting_time: Some(60),
        trigger: StepTrigger::SendFailure,
        channel: Channel::parse(channel),
        channel_cut: Some(cut),
    };
    let flow = Flow {
        flow_id: 7,
        name: Some("sms_sms_voice".into()),
        flow: vec![node("sms", 1), node("sms", 0), node("call", 0)],
    };
    FlowCatalog::from([(7, flow)])
}

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse_record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("order_record", |b| b.iter(|| parse(black_box(RECORD))));
    g.finish();
}

fn bench_account(c: &mut Criterion) {
    let record = parse(RECORD);
    let flows = catalog();
    let cfg = Settings::default();
    let first = OrderState::new("app1", Some(7), t("2024-05-14T02:00:00Z"));
    let now = t("2024-05-14T02:03:00Z");
    let out = accounting::on_record(&first, &record, &flows, now, &cfg);
    assert!(!out.updates.is_empty(), "the first poll counts something");
    // The same poll when an earlier one already derived the country from the receiver.
    let known = OrderState {
        country: out.state.country.clone(),
        ..first.clone()
    };
    let mut ledger = big_ledger();

    let mut g = c.benchmark_group("account_record");
    g.throughput(Throughput::Elements(1));
    g.bench_function("first_poll", |b| {
        b.iter(|| accounting::on_record(black_box(&first), &record, &flows, now, &cfg))
    });
    g.bench_function("first_poll_country_known", |b| {
        b.iter(|| accounting::on_record(black_box(&known), &record, &flows, now, &cfg))
    });
    g.bench_function("ledger_apply", |b| {
        b.iter(|| ledger.apply(black_box(&out.updates)))
    });
    g.finish();
}

const ORDERS_PER_BATCH: usize = 256;

fn new_orders(next: &mut u64) -> Vec<NewOrder> {
    (0..ORDERS_PER_BATCH)
        .map(|_| {
            *next += 1;
            NewOrder {
                key: OrderKey::Order {
                    app_id: "app1".into(),
                    order_id: format!("ord-{next}"),
                },
                flow_id: Some(7),
                submitted_at: None,
            }
        })
        .collect()
}

fn bench_store(c: &mut Criterion) {
    // Under target/tmp, i.e. on the disk the agent would use, not a tmpfs where fsync is free.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let mut store = Store::open(&dir.path().join("direct")).expect("store opens");
    let state = OrderState::new("app1", Some(7), t("2024-05-14T02:00:00Z"));
    let mut next = 0u64;
    let mut keys = move || {
        (0..ORDERS_PER_BATCH)
            .map(|_| {
                next += 1;
                OrderKey::Order {
                    app_id: "app1".into(),
                    order_id: format!("ord-{next}"),
                }
            })
            .collect::<Vec<_>>()
    };

    let mut g = c.benchmark_group("store_commit");
    // A separate-commit iteration is 256 fsyncs: few, long samples.
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(ORDERS_PER_BATCH as u64));
    g.bench_function("separate_tx_256", |b| {
        b.iter_batched(
            &mut keys,
            |keys| {
                for k in &keys {
                    let tx = store.transaction().expect("begin");
                    assert!(tx.insert_order(k, &state, 0).expect("insert"));
                    tx.commit().expect("commit");
                }
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("one_tx_256", |b| {
        b.iter_batched(
            &mut keys,
            |keys| {
                let tx = store.transaction().expect("begin");
                for k in &keys {
                    assert!(tx.insert_order(k, &state, 0).expect("insert"));
                }
                tx.commit().expect("commit");
            },
            BatchSize::PerIteration,
        )
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let store = Store::open(&dir.path().join("tracker")).expect("store opens");
    let tracker = Tracker::start(
        store,
        Ledger::new().shared(),
        TrackerConfig::default(),
        clock::system(),
    );
    let mut next = 0u64;
    g.bench_function("tracker_enqueue_256", |b| {
        b.iter_batched(
            || new_orders(&mut next),
            |orders| {
                let report = rt.block_on(tracker.enqueue(orders)).expect("enqueue");
                assert_eq!(report.accepted, ORDERS_PER_BATCH);
            },
            BatchSize::PerIteration,
        )
    });
    // 256 intake requests of one order each, in flight together: the writer drains what is
    // queued into one transaction (group commit), so this should sit near the batched figure.
    g.bench_function("tracker_enqueue_256_concurrent_singles", |b| {
        b.iter_batched(
            || new_orders(&mut next),
            |orders| {
                let calls = orders.into_iter().map(|o| tracker.enqueue(vec![o]));
                let reports = rt.block_on(futures::future::join_all(calls));
                assert!(reports
                    .iter()
                    .all(|r| r.as_ref().is_ok_and(|r| r.accepted == 1)));
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// A ledger shaped like a busy multi-country account, about 10,000 series: 2 apps, 5 flows,
/// 50 countries, 20 SMS failure reasons, 5 MNCs, 10 call outcomes.
fn big_ledger() -> Ledger {
    use itniotech_exporter::ledger::*;
    let mut updates = Vec::new();
    let countries: Vec<String> = (0..50).map(|i| format!("C{i:02}")).collect();
    let s = |v: &str| v.to_string();
    for app in ["app1", "app2"] {
        for c in &countries {
            let ac = AppCountryLabels {
                app_id: s(app),
                country: c.clone(),
            };
            for r in 0..20 {
                updates.push(Update::SmsFailure(SmsFailureLabels {
                    app_id: s(app),
                    country: c.clone(),
                    reason: format!("reason {r}"),
                }));
            }
            for mnc in 0..5 {
                updates.push(Update::Sms(SmsLabels {
                    app_id: s(app),
                    country: c.clone(),
                    mnc: mnc.to_string(),
                    status: SmsStatus::Delivered,
                }));
            }
            for code in 0..10 {
                updates.push(Update::Call(CallLabels {
                    app_id: s(app),
                    country: c.clone(),
                    termination_code: code.to_string(),
                    termination_reason: s("reason"),
                }));
            }
            for status in SmsStatus::ALL {
                let labels = SmsDeliveryLabels {
                    app_id: s(app),
                    country: c.clone(),
                    status: *status,
                };
                updates.push(Update::SmsDeliverySeconds(labels, 7.0));
            }
            updates.push(Update::SmsQueueSeconds(ac.clone(), 1.0));
            updates.push(Update::SmsSegments(ac.clone(), 1.0));
            updates.push(Update::CallAnswerSeconds(ac.clone(), 9.0));
            updates.push(Update::CallDurationSeconds(ac.clone(), 20.0));
            updates.push(Update::CallBilledSeconds(ac, 60.0));
            for channel in [Channel::Sms, Channel::Call] {
                let labels = CostLabels {
                    app_id: s(app),
                    channel,
                    country: c.clone(),
                    currency: s("USD"),
                };
                updates.push(Update::Cost(labels, 0.01));
            }
            for flow in 1..=5 {
                let f = flow.to_string();
                updates.push(Update::Order(OrderLabels {
                    app_id: s(app),
                    flow_id: f.clone(),
                    country: c.clone(),
                    outcome: OrderOutcome::Delivered,
                }));
                for channel in [Channel::Sms, Channel::Call] {
                    updates.push(Update::Verification(VerificationLabels {
                        app_id: s(app),
                        flow_id: f.clone(),
                        country: c.clone(),
                        channel,
                        result: VerificationResult::Verified,
                    }));
                }
            }
        }
        for flow in 1..=5 {
            let f = flow.to_string();
            updates.push(Update::Fallback(FallbackLabels {
                app_id: s(app),
                flow_id: f.clone(),
                from_channel: Channel::Sms,
                to_channel: Channel::Call,
            }));
            updates.push(Update::FallbackRescue(RescueLabels {
                app_id: s(app),
                flow_id: f.clone(),
                to_channel: Channel::Call,
            }));
            let af = AppFlowLabels {
                app_id: s(app),
                flow_id: f.clone(),
            };
            updates.push(Update::OrderDeliverySeconds(af, 30.0));
            let ov = OrderVerificationLabels {
                app_id: s(app),
                flow_id: f,
                channel: Channel::Sms,
            };
            updates.push(Update::OrderVerificationSeconds(ov, 40.0));
        }
    }
    let mut ledger = Ledger::new();
    ledger.apply(&updates);
    ledger
}

fn bench_render(c: &mut Criterion) {
    let ledger = big_ledger();
    let series = ledger.len();
    let metrics = Metrics::new(ledger, "bench", "bench");
    let body = metrics.render();
    eprintln!(
        "render_metrics: {series} ledger series, {} lines, {} KiB per scrape",
        body.lines().count(),
        body.len() / 1024
    );
    let mut g = c.benchmark_group("render_metrics");
    g.sample_size(20);
    g.throughput(Throughput::Elements(series as u64));
    g.bench_function("ledger_10k", |b| b.iter(|| metrics.render()));
    g.finish();
}

fn bench_country(c: &mut Criterion) {
    let mut g = c.benchmark_group("country");
    g.throughput(Throughput::Elements(1));
    g.bench_function("from_number", |b| {
        b.iter(|| country::from_number(black_box("919876543210")))
    });
    g.bench_function("from_mcc", |b| b.iter(|| country::from_mcc(black_box(404))));
    g.finish();
}

criterion_group!(
    benches,
    bench_parse,
    bench_account,
    bench_store,
    bench_render,
    bench_country
);
criterion_main!(benches);
