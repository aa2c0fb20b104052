//! The real binary against a vendor whose records cannot all be trusted: a clock three hours
//! off, absurd numbers, an attempt still running when the order reaches its maximum age, and
//! an order posted hours after it was sent. The fake vendor here is scripted per order (and by
//! the time since the agent first asked), so every counter has one right value.
//!
//! What must hold (issue 8, docs/design.md §4.8): a wrong vendor clock neither slows polling
//! nor loses the delivery; expiry counts from intake, not from a client's or the vendor's time;
//! an attempt running at max age is followed to its end and counted; implausible numbers are
//! left out of the OTP counters and counted as anomalies; a replay older than the duplicate
//! horizon is refused naming the item.

mod common;

use axum::extract::State;
use axum::routing::{get, post};
use axum::Json;
use chrono::{DateTime, Duration as Span, FixedOffset, Utc};
use common::{scrape, spawn, sum};
use itniotech_exporter::clock;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When the agent first asked for each order's record.
#[derive(Clone, Default)]
struct Vendor {
    first_asked: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    polls: Arc<Mutex<HashMap<String, u32>>>,
}

fn vendor_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn sms(submit: DateTime<Utc>, done: Option<DateTime<Utc>>, extra: Value) -> Value {
    let mut s = json!({
        "submitTm": vendor_time(submit),
        "sendTm": vendor_time(submit + Span::seconds(1)),
        "doneTm": done.map(vendor_time),
        "mcc": 510, "mnc": 10, "sender": "ACME", "chargeCnt": 1, "pay": "0.0310",
        "status": if done.is_some() { 0 } else { -1 },
        "reason": if done.is_some() { "DELIVRD" } else { "" },
    });
    if let (Value::Object(s), Value::Object(extra)) = (&mut s, extra) {
        s.extend(extra);
    }
    s
}

/// The record of `order_id`, `since` seconds after the agent first asked for it.
fn record(order_id: &str, first: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    let since = (now - first).num_seconds();
    let verifications = |matched: i64| {
        json!({"matched": matched, "oriReceiver": "6281234567890", "channel": "sms",
               "verifiedDate": (matched == 0).then(|| vendor_time(first))})
    };
    let (matched, sms_list, calls) = match order_id {
        // The vendor's clock runs 3 hours behind: by its times the SMS is 3 hours old. It is
        // delivered 6 s after the first poll.
        "late-clock" => {
            let submit = first - Span::hours(3);
            let done = (since >= 6).then(|| submit + Span::seconds(6));
            (-1, vec![sms(submit, done, json!({}))], vec![])
        }
        // Absurd numbers; the SMS also claims to be done before it was submitted.
        "garbage" => (
            0,
            vec![sms(
                first,
                Some(first - Span::seconds(30)),
                json!({"chargeCnt": 1_000_000_000i64, "pay": "-1.5000"}),
            )],
            vec![
                json!({"terminationCode": 123_456_789_012i64, "terminationReason": "weird",
                "submitTime": vendor_time(first), "callTime": vendor_time(first),
                "hangupTime": vendor_time(first + Span::seconds(20)),
                "callDuration": 20, "chargedDuration": 10_000_000, "cost": "999999.0000",
                "billPeriodstring": "60+60"}),
            ],
        ),
        // Sent 3 hours before it was posted (the post says so in submittedAt); delivered then.
        "old-intake" => {
            let submit = first - Span::hours(3);
            (
                -1,
                vec![sms(submit, Some(submit + Span::seconds(5)), json!({}))],
                vec![],
            )
        }
        // The vendor queues the SMS late: it appears 20 s after the first poll, is still
        // running when the order reaches its maximum age (1 minute from intake), and is
        // delivered 68 s after the first poll, within max age of our first sight of it.
        "straggler" => {
            let done = (since >= 68).then(|| first + Span::seconds(68));
            let shown = if since >= 20 {
                vec![sms(first + Span::seconds(20), done, json!({}))]
            } else {
                vec![]
            };
            (-1, shown, vec![])
        }
        _ => return json!({"status": "-24", "reason": "Data does not exist"}),
    };
    json!({"status": "0", "reason": "success", "data": {
        "orderId": order_id, "flowId": null, "verifications": verifications(matched),
        "sms": sms_list, "call": calls, "sna": []}})
}

async fn order_record(State(v): State<Vendor>, Json(body): Json<Value>) -> Json<Value> {
    let id = body["orderId"].as_str().unwrap_or_default().to_owned();
    let now = clock::system().now();
    let first = *v
        .first_asked
        .lock()
        .unwrap()
        .entry(id.clone())
        .or_insert(now);
    *v.polls.lock().unwrap().entry(id.clone()).or_default() += 1;
    Json(record(&id, first, now))
}

async fn fake_vendor() -> (String, Vendor) {
    let vendor = Vendor::default();
    let app = axum::Router::new()
        .route(
            "/otp/flow/list",
            get(|| async { Json(json!({"status":"0","reason":"success","data":[]})) }),
        )
        .route(
            "/sms/getBalance",
            get(|| async {
                Json(json!({"status":"0","reason":"success","balance":"10.0000",
                            "gift":"0.0000","credit":"0.0000"}))
            }),
        )
        .route("/otp/verification/orderId/record", post(order_record))
        .with_state(vendor.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, vendor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrustworthy_vendor_times_and_numbers_lose_nothing_and_count_nothing_false() {
    let (url, vendor) = fake_vendor().await;
    let store = tempfile::tempdir().unwrap();
    let (agent, addr) = spawn(
        &[
            "run",
            "--web.listen-address",
            "127.0.0.1:0",
            "--api.base-url",
            &url,
            "--storage.path",
            store.path().to_str().unwrap(),
            // The fixed-interval schedule, whose 1 s / 2 s polls this test times against (the
            // freshness schedule's handling of vendor times is unit-tested in accounting).
            "--poll.freshness-target",
            "0s",
            "--poll.first-delay",
            "1s",
            "--poll.interval",
            "2s",
            "--poll.grace",
            "1s",
            "--tracking.verify-window",
            "10s",
            "--tracking.max-age",
            "1m",
        ],
        &[
            ("ITNIOTECH_API_KEY", "k3yk3y"),
            ("ITNIOTECH_API_SECRET", "s3cr3t"),
        ],
    );
    let http = reqwest::Client::new();
    let now = clock::system().now();
    let posted = Instant::now();
    let body = json!([
        {"appId": "hostile", "orderId": "late-clock"},
        {"appId": "hostile", "orderId": "garbage"},
        {"appId": "hostile", "orderId": "old-intake", "submittedAt": (now - Span::hours(3)).to_rfc3339()},
        {"appId": "hostile", "orderId": "straggler"},
    ]);
    let r = http
        .post(format!("http://{addr}/api/v1/orders"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());

    // A replay older than the duplicate horizon (24 h here) is refused, naming the item.
    let replay = json!([
        {"appId": "hostile", "orderId": "fresh"},
        {"appId": "hostile", "orderId": "ancient", "submittedAt": (now - Span::hours(25)).to_rfc3339()},
    ]);
    let r = http
        .post(format!("http://{addr}/api/v1/orders"))
        .json(&replay)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap();
    assert_eq!(
        (err["index"].clone(), err["field"].clone()),
        (json!(1), json!("submittedAt"))
    );
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("older than the duplicate horizon"),
        "{err}"
    );

    // The late-clock SMS is polled every second or so (not every 5 minutes, as a 3-hour-old
    // attempt would be) and counted soon after it is delivered.
    let late_counted = common::eventually(Duration::from_secs(30), || async {
        let m = scrape(&http, &addr).await?;
        (sum(&m, "itniotech_otp_sms_total", &[("status", "delivered")]) >= 3.0).then_some(())
    })
    .await;
    assert!(
        late_counted.is_some(),
        "late-clock, garbage and old-intake SMS counted"
    );
    let polls = vendor.polls.lock().unwrap()["late-clock"];
    assert!(
        polls >= 3,
        "late-clock polled {polls} times within the first seconds"
    );

    // The straggler: final as unresolved at max age (from intake), then followed until its
    // SMS is delivered and counted.
    let done = common::eventually(Duration::from_secs(150), || async {
        let m = scrape(&http, &addr).await?;
        (sum(&m, "itniotech_exporter_orders_pending", &[]) == 0.0
            && sum(&m, "itniotech_otp_sms_total", &[("status", "delivered")]) == 4.0)
            .then_some(m)
    })
    .await;
    let Some(done) = done else {
        let m = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let otp: Vec<&str> = m
            .lines()
            .filter(|l| {
                !l.starts_with('#')
                    && (l.contains("otp_") || l.contains("pending") || l.contains("anomal"))
            })
            .collect();
        panic!(
            "not done after {:?}; polls {:?}\n{}\n{}",
            posted.elapsed(),
            vendor.polls.lock().unwrap(),
            otp.join("\n"),
            agent.output()
        );
    };
    let m = &done;
    let count = |name: &str, labels: &[(&str, &str)]| sum(m, name, labels);
    assert_eq!(
        count("itniotech_otp_orders_total", &[("outcome", "delivered")]),
        3.0
    );
    assert_eq!(
        count("itniotech_otp_orders_total", &[("outcome", "unresolved")]),
        1.0
    );
    assert_eq!(count("itniotech_otp_orders_total", &[]), 4.0);
    assert_eq!(count("itniotech_otp_sms_total", &[]), 4.0);
    // Garbage numbers are out of the business counters...
    assert_eq!(count("itniotech_otp_sms_segments_total", &[]), 3.0);
    let sms_cost = count("itniotech_otp_cost_total", &[("channel", "sms")]);
    assert!((sms_cost - 3.0 * 0.031).abs() < 1e-9, "{sms_cost}");
    assert_eq!(
        count("itniotech_otp_cost_total", &[("channel", "call")]),
        0.0
    );
    assert_eq!(count("itniotech_otp_call_billed_seconds_total", &[]), 0.0);
    assert_eq!(
        count(
            "itniotech_otp_calls_total",
            &[("termination_code", "other")]
        ),
        1.0
    );
    // ...and each is counted once as an anomaly.
    for (field, n) in [
        ("sms_segments", 1.0),
        ("sms_cost", 1.0),
        ("call_cost", 1.0),
        ("call_billed_seconds", 1.0),
        ("termination_code", 1.0),
        ("call_duration", 0.0),
    ] {
        assert_eq!(
            count(
                "itniotech_exporter_record_anomalies_total",
                &[("field", field)]
            ),
            n,
            "{field}"
        );
    }
    for (kind, n) in [
        // late-clock: 3 hours before intake. old-intake: the client's submittedAt vouches for
        // its times. straggler: plausible.
        ("submit_before_intake", 1.0),
        ("submit_in_future", 0.0),
        ("submit_missing", 0.0),
        ("end_before_submit", 1.0),
    ] {
        assert_eq!(
            count(
                "itniotech_exporter_vendor_time_anomalies_total",
                &[("kind", kind)]
            ),
            n,
            "{kind}"
        );
    }
    // The order posted 3 hours late counts its (plausible) latency; the garbage one does not.
    assert_eq!(count("itniotech_otp_sms_delivery_seconds_count", &[]), 3.0);
}
