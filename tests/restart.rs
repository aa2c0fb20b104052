//! Crash safety with the real binaries: the simulator and the agent run as processes, orders
//! are posted to the intake, the agent is killed with SIGKILL while orders are in flight and
//! restarted on the same store. Every total must then equal the oracle computed from the
//! simulator's records: nothing lost, nothing twice. The agent's logs and /metrics are also
//! checked for phone numbers, order ids and secrets.

mod common;

use common::{order_key, scrape, sum, Proc};
use itniotech_exporter::api::model::Matched;
use itniotech_exporter::api::{NoopObserver, OtpSender, RecordSource, SendRequest};
use itniotech_exporter::simulator::{random_receiver, COUNTRIES, DEMO_API_KEY};
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "s3cr3t-Restart-Test";

/// Starts the binary with the test's credentials.
fn spawn(args: &[&str]) -> (Proc, String) {
    common::spawn(
        args,
        &[
            ("ITNIOTECH_API_KEY", DEMO_API_KEY),
            ("ITNIOTECH_API_SECRET", SECRET),
        ],
    )
}

fn agent_args<'a>(sim: &'a str, store: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--web.listen-address",
        "127.0.0.1:0",
        "--api.base-url",
        sim,
        "--storage.path",
        store,
        "--poll.first-delay",
        "1s",
        "--poll.interval",
        "2s",
        // Longer than delivery (≤ 50 s with this seed) plus the simulated users' delay
        // (≤ 60 s), so whether an order was verified does not depend on poll timing.
        "--tracking.verify-window",
        "120s",
        "--flows.refresh-interval",
        "30s",
        "--log.level",
        "debug",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_and_counts_nothing_twice() {
    let store = tempfile::tempdir().unwrap();
    let store_path = store.path().to_str().unwrap().to_string();
    // The simulator checks the same secret the agent signs with.
    let (_sim, sim_addr) = spawn(&[
        "simulate",
        "--web.listen-address",
        "127.0.0.1:0",
        // With this seed every attempt of the 60 orders below is terminal within 50 s (the
        // simulator's plan is deterministic per seed and order sequence); other seeds include
        // EXPIRED reports that take up to 30 minutes.
        "--seed",
        "6",
    ]);
    let sim_url = format!("http://{sim_addr}");
    let (mut agent, agent_addr) = spawn(&agent_args(&sim_url, &store_path));
    let http = reqwest::Client::new();
    let reader = common::sim_client(
        &sim_url,
        DEMO_API_KEY,
        SECRET,
        itniotech_exporter::clock::system(),
        Arc::new(NoopObserver),
    );
    let gen = OtpSender::new(reader.clone());

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut receivers = Vec::new();
    let mut order_ids = Vec::new();
    // Order i: its sendRule request and its intake item. Every 5th of the first 40 is a voice
    // OTP (the seed above was chosen for exactly this sequence).
    let mut order = |i: usize| {
        let country = &COUNTRIES[i % COUNTRIES.len()];
        let to = random_receiver(country, &mut rng);
        receivers.push(to.clone());
        let order_id = format!("rst-{i:04}");
        order_ids.push(order_id.clone());
        let item = serde_json::json!({"appId": "rstApp", "orderId": order_id});
        let req = SendRequest {
            app_id: "rstApp".into(),
            template_id: None,
            flow_id: None,
            to,
            channel: Some(if i < 40 && i % 5 == 0 { "call" } else { "sms" }.into()),
            order_id: Some(order_id),
            code: Some("123456".into()),
        };
        (req, item)
    };
    let post = |addr: String, items: Vec<serde_json::Value>| {
        let http = http.clone();
        async move {
            let r = http
                .post(format!("http://{addr}/api/v1/orders"))
                .json(&items)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202, "{}", r.text().await.unwrap());
        }
    };
    let mut batch = Vec::new();
    for i in 0..40 {
        let (req, item) = order(i);
        gen.send_rule(&req).await.unwrap();
        batch.push(item);
    }
    post(agent_addr.clone(), batch).await;
    // Let some polls land, then kill -9 while most orders are still in flight.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = scrape(&http, &agent_addr).await.unwrap();
    assert!(sum(&before_kill, "itniotech_exporter_orders_pending", &[]) > 0.0);
    let first_logs = agent.output();
    agent.kill9();

    let (agent2, agent_addr2) = spawn(&agent_args(&sim_url, &store_path));
    let mut batch = Vec::new();
    for i in 40..60 {
        let (req, item) = order(i);
        gen.send_rule(&req).await.unwrap();
        batch.push(item);
    }
    // A resubmission of pre-crash orders is a duplicate, not a second order.
    batch.push(serde_json::json!({"appId": "rstApp", "orderId": "rst-0000"}));
    post(agent_addr2.clone(), batch).await;

    let done = common::eventually(Duration::from_secs(240), || async {
        let m = scrape(&http, &agent_addr2).await?;
        (sum(&m, "itniotech_exporter_orders_pending", &[]) == 0.0
            && sum(&m, "itniotech_otp_orders_total", &[]) == 60.0)
            .then_some(m)
    })
    .await;
    let Some(done) = done else {
        let m = scrape(&http, &agent_addr2).await.unwrap_or_default();
        let interesting: Vec<String> = m
            .iter()
            .filter(|s| {
                s.name.starts_with("itniotech_exporter_") || s.name == "itniotech_otp_orders_total"
            })
            .filter(|s| s.value != 0.0)
            .map(|s| format!("{} {:?} {}", s.name, s.labels, s.value))
            .collect();
        let conn = rusqlite::Connection::open(store.path().join("itniotech-exporter.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT key, state, next_poll FROM orders")
            .unwrap();
        let rows: Vec<String> = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{} {} {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?
                ))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let mut recs = Vec::new();
        for row in &rows {
            let id = row.split(' ').next().unwrap().rsplit(':').next().unwrap();
            recs.push(format!(
                "{:?}",
                reader.record(&order_key("rstApp", id)).await
            ));
        }
        panic!(
            "orders did not finish:\n{}\n{}\n{}",
            interesting.join("\n"),
            rows.join("\n"),
            recs.join("\n")
        );
    };

    // Oracle from the simulator's records.
    let (mut sms_ok, mut sms_fail, mut calls, mut delivered, mut verified) =
        (0.0, 0.0, 0.0, 0.0, 0.0);
    for id in &order_ids {
        let rec = reader
            .record(&order_key("rstApp", id))
            .await
            .unwrap()
            .unwrap();
        sms_ok += rec.sms.iter().filter(|s| s.status == Some(0)).count() as f64;
        sms_fail += rec.sms.iter().filter(|s| s.status == Some(1)).count() as f64;
        calls += rec.call.len() as f64;
        let ok = rec.sms.iter().any(|s| s.status == Some(0))
            || rec.call.iter().any(|c| c.is_delivered())
            || rec.verifications.matched == Matched::Verified;
        delivered += f64::from(u8::from(ok));
        verified += f64::from(u8::from(rec.verifications.matched == Matched::Verified));
    }
    assert_eq!(
        sum(&done, "itniotech_otp_sms_total", &[("status", "delivered")]),
        sms_ok
    );
    assert_eq!(
        sum(&done, "itniotech_otp_sms_total", &[("status", "failed")]),
        sms_fail
    );
    assert_eq!(sum(&done, "itniotech_otp_calls_total", &[]), calls);
    assert_eq!(
        sum(
            &done,
            "itniotech_otp_orders_total",
            &[("outcome", "delivered")]
        ),
        delivered
    );
    assert_eq!(
        sum(
            &done,
            "itniotech_otp_verifications_total",
            &[("result", "verified")]
        ),
        verified
    );
    assert!(
        sum(
            &done,
            "itniotech_exporter_orders_rejected_total",
            &[("reason", "duplicate")]
        ) >= 1.0
    );

    // No phone number, order id or secret in /metrics or in the logs (debug level).
    let body = http
        .get(format!("http://{agent_addr2}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let logs = format!("{first_logs}\n{}", agent2.output());
    assert!(!logs.is_empty());
    for (what, text) in [("metrics", &body), ("logs", &logs)] {
        assert!(!text.contains(SECRET), "secret in {what}");
        for r in &receivers {
            assert!(!text.contains(r.as_str()), "phone number in {what}");
        }
        for id in &order_ids {
            assert!(!text.contains(id.as_str()), "order id {id} in {what}");
        }
    }
}
