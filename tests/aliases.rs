//! One vendor order, two names (issue 8): `{appId, orderId}` and `{verificationId}`. The real
//! agent against the simulator: an order posted under both forms in two requests is tracked
//! twice until its first record links them, then merged and counted once; an order posted
//! with both in one item, or whose other name a record already showed, makes any later post
//! under either name a duplicate. Every business counter is compared with the simulator's own
//! truth (the soak's oracle), so a doubled SMS or cost shows as a difference.

mod common;
#[path = "soak/oracle.rs"]
mod oracle;

use common::{scrape, spawn, sum, TestApi};
use itniotech_exporter::api::{NoopObserver, SendRequest};
use itniotech_exporter::clock;
use itniotech_exporter::simulator::{SimConfig, Simulator, DEMO_API_KEY};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const SECRET: &str = "s3cr3t-Alias-Test";

async fn post(http: &reqwest::Client, addr: &str, items: Value) -> Value {
    let r = http
        .post(format!("http://{addr}/api/v1/orders"))
        .json(&items)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_under_both_key_forms_is_one_order() {
    let sim = Simulator::new(
        SimConfig {
            seed: 8,
            api_key: DEMO_API_KEY.into(),
            api_secret: SECRET.into(),
            time_scale: 0.05,
            ..SimConfig::default()
        },
        clock::system(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router = sim.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
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
            // Long enough that both posts of an order land before its first poll links them.
            "--poll.first-delay",
            "5s",
            "--poll.interval",
            "2s",
            "--poll.grace",
            "1s",
            "--tracking.verify-window",
            "60s",
        ],
        &[
            ("ITNIOTECH_API_KEY", DEMO_API_KEY),
            ("ITNIOTECH_API_SECRET", SECRET),
        ],
    );
    let api = TestApi::new(common::sim_client(
        &url,
        DEMO_API_KEY,
        SECRET,
        clock::system(),
        Arc::new(NoopObserver),
    ));
    let http = reqwest::Client::new();
    let mut vids = Vec::new();
    for (i, order_id) in ["twice-a", "twice-b", "one-item"].iter().enumerate() {
        let sent = api
            .send_rule(&SendRequest {
                app_id: "aliasApp".into(),
                template_id: None,
                // Flow 1: an SMS, then a call if it fails (a verificationId record shows the
                // latest attempt of each channel, so no flow with two SMS steps).
                flow_id: Some(1),
                to: format!("62812000000{i}"),
                channel: Some("sms".into()),
                order_id: Some(order_id.to_string()),
                code: Some("135790".into()),
            })
            .await
            .unwrap();
        vids.push(sent.verification_id);
    }
    let by_order = |o: &str| json!({"appId": "aliasApp", "orderId": o});
    let by_vid = |v: &str| json!({"verificationId": v});
    // twice-a: orderId first, verificationId in a second request; twice-b: the reverse.
    post(&http, &addr, json!([by_order("twice-a")])).await;
    post(&http, &addr, json!([by_vid(&vids[1])])).await;
    post(&http, &addr, json!([by_vid(&vids[0])])).await;
    post(&http, &addr, json!([by_order("twice-b")])).await;
    // one-item: both names at once; a later post under the other form is a duplicate.
    post(
        &http,
        &addr,
        json!([{"appId": "aliasApp", "orderId": "one-item", "verificationId": vids[2]}]),
    )
    .await;
    let dup = post(&http, &addr, json!([by_vid(&vids[2])])).await;
    assert_eq!(dup["duplicates"], 1, "{dup}");

    // The first polls link each twice-posted order's names: two merges, exactly.
    let merged = common::eventually(Duration::from_secs(60), || async {
        let m = scrape(&http, &addr).await?;
        (sum(&m, "itniotech_exporter_orders_merged_total", &[]) == 2.0).then_some(())
    })
    .await;
    assert!(merged.is_some(), "{}", agent.output());
    // Now each name of twice-a is known: posting either again is a duplicate.
    let dup = post(&http, &addr, json!([by_vid(&vids[0]), by_order("twice-a")])).await;
    assert_eq!(dup["duplicates"], 2, "{dup}");

    let done = common::eventually(Duration::from_secs(180), || async {
        let m = scrape(&http, &addr).await?;
        (sim.settled()
            && sum(&m, "itniotech_exporter_orders_pending", &[]) == 0.0
            && sum(&m, "itniotech_otp_orders_total", &[]) >= 3.0)
            .then_some(m)
    })
    .await
    .unwrap_or_else(|| panic!("not settled\n{}", agent.output()));
    assert_eq!(sum(&done, "itniotech_otp_orders_total", &[]), 3.0);
    assert_eq!(sum(&done, "itniotech_exporter_orders_pending", &[]), 0.0);
    assert_eq!(
        sum(&done, "itniotech_exporter_orders_merged_total", &[]),
        2.0
    );
    assert_eq!(
        sum(
            &done,
            "itniotech_exporter_orders_rejected_total",
            &[("reason", "duplicate")]
        ),
        3.0
    );
    let expected = oracle::expected(&sim.truth());
    assert!(oracle::series_compared(&expected) >= 10);
    let differences = oracle::differences(&expected, &oracle::served(&done));
    assert!(differences.is_empty(), "{differences:#?}");
}
