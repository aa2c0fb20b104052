//! The server on a real socket (127.0.0.1, ephemeral port) with a real HTTP client, including
//! graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use itniotech_exporter::domain::{EnqueueReport, NewOrder};
use itniotech_exporter::intake::{
    IntakeObserver, IntakeSource, OrderSink, RejectReason, SinkError,
};
use itniotech_exporter::server::{router, serve, LandingInfo, ServerState};

struct Sink;
impl OrderSink for Sink {
    fn enqueue(
        &self,
        orders: Vec<NewOrder>,
    ) -> BoxFuture<'static, Result<EnqueueReport, SinkError>> {
        let n = orders.len();
        Box::pin(async move {
            Ok(EnqueueReport {
                accepted: n,
                ..Default::default()
            })
        })
    }
}

struct Observer;
impl IntakeObserver for Observer {
    fn received(&self, _: IntakeSource, _: u64) {}
    fn rejected(&self, _: RejectReason, _: u64) {}
}

#[tokio::test]
async fn serves_on_a_socket_and_shuts_down() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(ServerState {
        sink: Arc::new(Sink),
        observer: Arc::new(Observer),
        render_metrics: Arc::new(|| "itniotech_up 1\n# EOF\n".to_owned()),
        ready: Arc::new(|| true),
        intake_token: Some("tok".into()),
        telemetry_path: "/metrics".parse().unwrap(),
        max_body_bytes: 1 << 20,
        max_items: 100,
        landing: LandingInfo::default(),
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, app, async {
        let _ = stop_rx.await;
    }));

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://{addr}");

    let resp = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert_eq!(resp.text().await.unwrap(), "itniotech_up 1\n# EOF\n");

    let resp = client
        .post(format!("{base}/api/v1/orders"))
        .bearer_auth("tok")
        .header("content-type", "application/x-ndjson")
        .body("{\"verificationId\":\"1\"}\n{\"appId\":\"abcd\",\"orderId\":\"x\"}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["accepted"], 2);

    let resp = client
        .post(format!("{base}/api/v1/orders"))
        .body("{\"verificationId\":\"1\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = client
        .get(format!("{base}/-/healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.text().await.unwrap(), "Healthy");

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("server stops after the shutdown signal")
        .unwrap()
        .unwrap();
}
