//! Router tests without a socket: every route, status and content type through `oneshot`.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures::future::BoxFuture;
use itniotech_exporter::domain::{EnqueueReport, NewOrder, OrderKey};
use itniotech_exporter::intake::{
    IntakeObserver, IntakeSource, OrderSink, RejectReason, SinkError,
};
use itniotech_exporter::server::{router, LandingInfo, ServerState, OPENMETRICS_CONTENT_TYPE};
use tower::ServiceExt;

#[derive(Clone, Copy)]
enum Mode {
    Ok,
    Duplicates,
    Unavailable,
    ShuttingDown,
}

struct FakeSink {
    mode: Mode,
    got: Mutex<Vec<NewOrder>>,
}

impl OrderSink for FakeSink {
    fn enqueue(
        &self,
        orders: Vec<NewOrder>,
    ) -> BoxFuture<'static, Result<EnqueueReport, SinkError>> {
        let n = orders.len();
        self.got.lock().unwrap().extend(orders);
        let result = match self.mode {
            Mode::Ok => Ok(EnqueueReport {
                accepted: n,
                duplicates: 0,
                sampled_out: 0,
            }),
            Mode::Duplicates => Ok(EnqueueReport {
                accepted: n - 2,
                duplicates: 1,
                sampled_out: 1,
            }),
            Mode::Unavailable => Err(SinkError::Unavailable(
                "disk I/O error at /secret/path".into(),
            )),
            Mode::ShuttingDown => Err(SinkError::ShuttingDown),
        };
        Box::pin(async move { result })
    }
}

#[derive(Default)]
struct FakeObserver {
    events: Mutex<Vec<(String, String, u64)>>,
}

impl IntakeObserver for FakeObserver {
    fn received(&self, source: IntakeSource, n: u64) {
        self.events
            .lock()
            .unwrap()
            .push(("received".into(), source.as_str().into(), n));
    }
    fn rejected(&self, reason: RejectReason, n: u64) {
        self.events
            .lock()
            .unwrap()
            .push(("rejected".into(), reason.as_str().into(), n));
    }
}

struct Harness {
    app: axum::Router,
    sink: Arc<FakeSink>,
    observer: Arc<FakeObserver>,
}

fn harness_with(mode: Mode, token: Option<&str>, ready: bool, telemetry_path: &str) -> Harness {
    let sink = Arc::new(FakeSink {
        mode,
        got: Mutex::new(Vec::new()),
    });
    let observer = Arc::new(FakeObserver::default());
    let state = ServerState {
        sink: sink.clone(),
        observer: observer.clone(),
        render_metrics: Arc::new(|| {
            "# TYPE itniotech_up gauge\nitniotech_up 1\n# EOF\n".to_owned()
        }),
        ready: Arc::new(move || ready),
        intake_token: token.map(str::to_owned),
        telemetry_path: telemetry_path.parse().unwrap(),
        max_body_bytes: 1024,
        max_items: 5,
        landing: LandingInfo {
            version: "1.2.3-test".into(),
            links: vec![("Docs <here>".into(), "https://example.invalid/docs".into())],
            ..LandingInfo::default()
        },
    };
    Harness {
        app: router(state),
        sink,
        observer,
    }
}

fn harness(mode: Mode) -> Harness {
    harness_with(mode, None, true, "/metrics")
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, Option<String>, String, axum::http::HeaderMap) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        ct,
        String::from_utf8(body.to_vec()).unwrap(),
        headers,
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(body: &str) -> Request<Body> {
    Request::post("/api/v1/orders")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn metrics_route_serves_openmetrics() {
    let h = harness(Mode::Ok);
    let (status, ct, body, _) = send(&h.app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
    assert!(body.contains("itniotech_up 1"));

    let h = harness_with(Mode::Ok, None, true, "/prom/metrics");
    assert_eq!(send(&h.app, get("/prom/metrics")).await.0, StatusCode::OK);
    assert_eq!(send(&h.app, get("/metrics")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn health_and_readiness() {
    let h = harness_with(Mode::Ok, None, false, "/metrics");
    let (status, _, body, _) = send(&h.app, get("/-/healthy")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Healthy"));
    let (status, _, body, _) = send(&h.app, get("/-/ready")).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready")
    );
    let h = harness(Mode::Ok);
    let (status, _, body, _) = send(&h.app, get("/-/ready")).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "Ready"));
}

#[tokio::test]
async fn landing_page_links() {
    let h = harness_with(Mode::Ok, None, true, "/prom/metrics");
    let (status, ct, body, _) = send(&h.app, get("/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(ct.unwrap().starts_with("text/html"));
    for needle in [
        "itniotech-exporter",
        "1.2.3-test",
        "href=\"./prom/metrics\"",
        "href=\"./-/healthy\"",
        "href=\"./-/ready\"",
        "href=\"#intake\"",
        "id=\"intake\"",
        "POST /api/v1/orders",
        "Docs &lt;here&gt;",
        "href=\"https://example.invalid/docs\"",
    ] {
        assert!(
            body.contains(needle),
            "landing page lacks {needle}:\n{body}"
        );
    }
}

#[tokio::test]
async fn intake_accepts_and_reports() {
    let h = harness(Mode::Ok);
    let (status, ct, body, _) = send(
        &h.app,
        post(r#"[{"appId":"Qw7rT2kZ","orderId":"o1","flowId":7},{"verificationId":"24051409123310000417"}]"#),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert_eq!(
        json(&body),
        serde_json::json!({"accepted": 2, "duplicates": 0, "sampled_out": 0})
    );
    let got = h.sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].key,
        OrderKey::Order {
            app_id: "Qw7rT2kZ".into(),
            order_id: "o1".into()
        }
    );
    assert_eq!(
        *h.observer.events.lock().unwrap(),
        vec![("received".into(), "http".into(), 2)]
    );
}

#[tokio::test]
async fn intake_ndjson() {
    let h = harness(Mode::Ok);
    let req = Request::post("/api/v1/orders")
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(
            "{\"verificationId\":\"1\"}\n{\"verificationId\":\"2\"}\n{\"verificationId\":\"3\"}\n",
        ))
        .unwrap();
    let (status, _, body, _) = send(&h.app, req).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(json(&body)["accepted"], 3);
}

#[tokio::test]
async fn intake_counts_duplicates_and_sampled_out() {
    let h = harness(Mode::Duplicates);
    let body = r#"[{"verificationId":"1"},{"verificationId":"2"},{"verificationId":"3"}]"#;
    let (status, _, resp, _) = send(&h.app, post(body)).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(
        json(&resp),
        serde_json::json!({"accepted": 1, "duplicates": 1, "sampled_out": 1})
    );
    assert_eq!(
        *h.observer.events.lock().unwrap(),
        vec![
            ("received".into(), "http".into(), 3),
            ("rejected".into(), "duplicate".into(), 1),
            ("rejected".into(), "sampled_out".into(), 1),
        ]
    );
}

#[tokio::test]
async fn intake_400_names_the_item() {
    let h = harness(Mode::Ok);
    let (status, ct, body, _) = send(
        &h.app,
        post(r#"[{"verificationId":"1"},{"appId":"x","orderId":"6281234567890"},{"verificationId":"3"}]"#),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(ct.as_deref(), Some("application/json"));
    let v = json(&body);
    assert_eq!(v["index"], 1);
    assert_eq!(v["field"], "appId");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .starts_with("item 1: field `appId`"),
        "{v}"
    );
    assert!(!body.contains("6281234567890"));
    assert!(h.sink.got.lock().unwrap().is_empty(), "nothing enqueued");
    assert_eq!(
        *h.observer.events.lock().unwrap(),
        vec![("rejected".into(), "invalid".into(), 3)]
    );

    // Malformed JSON and empty bodies: 400 too, counted as one rejected item.
    let h = harness(Mode::Ok);
    let (status, _, body, _) = send(&h.app, post("{nope")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    let (status, _, _, _) = send(&h.app, post("")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Too many items (max 5).
    let many = format!("[{}]", [r#"{"verificationId":"1"}"#; 6].join(","));
    let (status, _, body, _) = send(&h.app, post(&many)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("too many items"));
    assert_eq!(
        *h.observer.events.lock().unwrap(),
        vec![
            ("rejected".into(), "invalid".into(), 1),
            ("rejected".into(), "invalid".into(), 1),
            ("rejected".into(), "invalid".into(), 6),
        ]
    );
}

#[tokio::test]
async fn intake_bearer_token() {
    let h = harness_with(Mode::Ok, Some("t0ken"), true, "/metrics");
    let body = r#"{"verificationId":"1"}"#;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic t0ken"),
        Some("t0ken"),
    ] {
        let mut req = post(body);
        if let Some(a) = auth {
            req.headers_mut()
                .insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        let (status, ct, resp, headers) = send(&h.app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(ct.as_deref(), Some("application/json"));
        assert!(json(&resp)["error"].is_string());
        assert_eq!(headers.get(header::WWW_AUTHENTICATE).unwrap(), "Bearer");
    }
    let mut req = post(body);
    req.headers_mut()
        .insert(header::AUTHORIZATION, "Bearer t0ken".parse().unwrap());
    assert_eq!(send(&h.app, req).await.0, StatusCode::ACCEPTED);
    // Unauthorised requests count nothing; the good one counts once.
    assert_eq!(h.observer.events.lock().unwrap().len(), 1);
    // Other routes stay open.
    assert_eq!(send(&h.app, get("/metrics")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn intake_413_on_large_body() {
    let h = harness(Mode::Ok);
    let big = format!(r#"{{"verificationId":"1","x":"{}"}}"#, "a".repeat(2000));
    let (status, ct, body, _) = send(&h.app, post(&big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(ct.as_deref(), Some("application/json"));
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("1024 bytes"));

    // A streamed body without Content-Length is cut off too.
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..20).map(|_| Ok("a".repeat(100))).collect();
    let req = Request::post("/api/v1/orders")
        .body(Body::from_stream(futures::stream::iter(chunks)))
        .unwrap();
    assert_eq!(send(&h.app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(h.sink.got.lock().unwrap().is_empty());
}

#[tokio::test]
async fn intake_503_when_sink_fails() {
    for mode in [Mode::Unavailable, Mode::ShuttingDown] {
        let h = harness(mode);
        let (status, ct, body, headers) = send(&h.app, post(r#"{"verificationId":"1"}"#)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ct.as_deref(), Some("application/json"));
        assert!(json(&body)["error"].is_string());
        assert!(
            !body.contains("/secret/path"),
            "internal detail leaked: {body}"
        );
        assert!(headers.get(header::RETRY_AFTER).is_some());
    }
}

#[tokio::test]
async fn method_not_allowed_and_not_found() {
    let h = harness(Mode::Ok);
    let (status, _, _, headers) = send(&h.app, get("/api/v1/orders")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(headers
        .get(header::ALLOW)
        .unwrap()
        .to_str()
        .unwrap()
        .contains("POST"));
    let req = Request::post("/metrics").body(Body::empty()).unwrap();
    assert_eq!(send(&h.app, req).await.0, StatusCode::METHOD_NOT_ALLOWED);
    let req = Request::delete("/-/ready").body(Body::empty()).unwrap();
    assert_eq!(send(&h.app, req).await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(send(&h.app, get("/nope")).await.0, StatusCode::NOT_FOUND);
}
