//! Router tests without a socket: every route, status and content type through `oneshot`.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use futures::future::BoxFuture;
use itniotech_exporter::domain::{EnqueueReport, NewOrder, OrderKey};
use itniotech_exporter::intake::{
    IntakeError, IntakeObserver, IntakeSource, OrderSink, RejectReason, SinkError,
};
use itniotech_exporter::server::{
    router, LandingInfo, Readiness, ServerState, OPENMETRICS_CONTENT_TYPE,
};
use tower::ServiceExt;

#[derive(Clone, Copy)]
enum Mode {
    Ok,
    Duplicates,
    Unavailable,
    ShuttingDown,
    /// `check` refuses the second item (a replay older than the duplicate horizon).
    RefuseReplay,
}

struct FakeSink {
    mode: Mode,
    got: Mutex<Vec<NewOrder>>,
}

impl OrderSink for FakeSink {
    fn check(&self, orders: &[NewOrder]) -> Result<(), IntakeError> {
        match self.mode {
            Mode::RefuseReplay => Err(IntakeError::Invalid {
                index: 1,
                line: None,
                field: Some("submittedAt".into()),
                reason: "field `submittedAt` is older than the duplicate horizon (1day)".into(),
                items: orders.len(),
            }),
            _ => Ok(()),
        }
    }

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
                "the store cannot commit since 2026-03-01T00:00:00Z (disk_full: the disk is full)"
                    .into(),
            )),
            Mode::ShuttingDown => Err(SinkError::ShuttingDown),
            Mode::RefuseReplay => unreachable!("refused by check"),
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

fn state_with(
    sink: Arc<FakeSink>,
    observer: Arc<FakeObserver>,
    token: Option<&str>,
    telemetry_path: &str,
) -> ServerState {
    let mut state = ServerState::new(
        sink,
        observer,
        Arc::new(|| "# TYPE itniotech_up gauge\nitniotech_up 1\n# EOF\n".to_owned()),
    );
    state.ready = Arc::new(|| Readiness {
        store: Ok("the store commits (last commit 1s ago)".into()),
        vendor: Ok("answered 3s ago".into()),
    });
    state.intake_token = token.map(str::to_owned);
    state.telemetry_path = telemetry_path.parse().unwrap();
    state.max_body_bytes = 1024;
    state.max_items = 5;
    state.landing = LandingInfo {
        version: "1.2.3-test".into(),
        links: vec![("Docs <here>".into(), "https://example.invalid/docs".into())],
        ..LandingInfo::default()
    };
    state
}

fn harness_with(mode: Mode, token: Option<&str>, ready: bool, telemetry_path: &str) -> Harness {
    let sink = Arc::new(FakeSink {
        mode,
        got: Mutex::new(Vec::new()),
    });
    let observer = Arc::new(FakeObserver::default());
    let mut state = ServerState::new(
        sink.clone(),
        observer.clone(),
        Arc::new(|| "# TYPE itniotech_up gauge\nitniotech_up 1\n# EOF\n".to_owned()),
    );
    state.ready = Arc::new(move || Readiness {
        store: Ok("the store commits (last commit 1s ago)".into()),
        vendor: if ready {
            Ok("answered 3s ago".into())
        } else {
            Err("no answer from the vendor API yet; last call: status -1".into())
        },
    });
    state.intake_token = token.map(str::to_owned);
    state.telemetry_path = telemetry_path.parse().unwrap();
    state.max_body_bytes = 1024;
    state.max_items = 5;
    state.landing = LandingInfo {
        version: "1.2.3-test".into(),
        links: vec![("Docs <here>".into(), "https://example.invalid/docs".into())],
        ..LandingInfo::default()
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
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready\nstore: the store commits (last commit 1s ago)\n\
             vendor API: no answer from the vendor API yet; last call: status -1\n"
        )
    );
    // The intake needs only the store: a vendor outage keeps the replica in the intake Service.
    let (status, _, body, _) = send(&h.app, get("/-/ready/intake")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::OK,
            "Ready\nstore: the store commits (last commit 1s ago)\n"
        )
    );
    let h = harness(Mode::Ok);
    let (status, _, body, _) = send(&h.app, get("/-/ready")).await;
    assert_eq!(
        (status, body.as_str()),
        (
            StatusCode::OK,
            "Ready\nstore: the store commits (last commit 1s ago)\nvendor API: answered 3s ago\n"
        )
    );
    // A store that cannot commit: not ready for anything.
    let sink = Arc::new(FakeSink {
        mode: Mode::Ok,
        got: Mutex::new(Vec::new()),
    });
    let app = router(ServerState {
        ready: Arc::new(|| Readiness {
            store: Err(
                "the store cannot commit since 2026-03-01T00:00:00Z (disk_full: the disk is full)"
                    .into(),
            ),
            vendor: Ok("answered 3s ago".into()),
        }),
        ..state_with(sink, Arc::new(FakeObserver::default()), None, "/metrics")
    });
    for path in ["/-/ready", "/-/ready/intake"] {
        let (status, _, body, _) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(
            body.contains("store: the store cannot commit since"),
            "{body}"
        );
    }
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

    // Malformed JSON, empty bodies and too many items: 400 too; they name no orders, so no
    // order counts as rejected (the request counts in http_requests_rejected_total).
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
    assert!(h.observer.events.lock().unwrap().is_empty());
}

#[tokio::test]
async fn intake_415_for_anything_but_json_and_ndjson() {
    let h = harness(Mode::Ok);
    let body = r#"{"verificationId":"1"}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
    ] {
        let mut req = Request::post("/api/v1/orders");
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let (status, ctype, resp, _) = send(&h.app, req.body(Body::from(body)).unwrap()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
        assert_eq!(ctype.as_deref(), Some("application/json"));
        assert!(json(&resp)["error"]
            .as_str()
            .unwrap()
            .contains("application/json"));
    }
    assert!(h.sink.got.lock().unwrap().is_empty());
    assert!(h.observer.events.lock().unwrap().is_empty());
    let req = Request::post("/api/v1/orders")
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .body(Body::from(body))
        .unwrap();
    assert_eq!(send(&h.app, req).await.0, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn intake_503_with_retry_after_when_the_backlog_is_full() {
    let sink = Arc::new(FakeSink {
        mode: Mode::Ok,
        got: Mutex::new(Vec::new()),
    });
    let observer = Arc::new(FakeObserver::default());
    let mut state = ServerState::new(sink.clone(), observer.clone(), Arc::new(String::new));
    state.intake_limits.max_pending = 10;
    let pending = Arc::new(std::sync::atomic::AtomicU64::new(9));
    let p = pending.clone();
    state.pending = Arc::new(move || p.load(std::sync::atomic::Ordering::Relaxed));
    let app = router(state);
    assert_eq!(
        send(&app, post(r#"{"verificationId":"1"}"#)).await.0,
        StatusCode::ACCEPTED
    );
    pending.store(10, std::sync::atomic::Ordering::Relaxed);
    let (status, _, body, headers) = send(&app, post(r#"{"verificationId":"2"}"#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "5");
    assert!(json(&body)["error"].as_str().unwrap().contains("pending"));
    assert_eq!(sink.got.lock().unwrap().len(), 1);
}

/// A sink that holds every enqueue until released, to keep intake slots busy.
struct HeldSink {
    release: Arc<tokio::sync::Notify>,
    entered: Arc<std::sync::atomic::AtomicUsize>,
}

impl OrderSink for HeldSink {
    fn enqueue(
        &self,
        orders: Vec<NewOrder>,
    ) -> BoxFuture<'static, Result<EnqueueReport, SinkError>> {
        let release = self.release.clone();
        self.entered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            release.notified().await;
            Ok(EnqueueReport {
                accepted: orders.len(),
                ..Default::default()
            })
        })
    }
}

#[tokio::test]
async fn intake_sheds_with_429_when_every_slot_is_busy() {
    let release = Arc::new(tokio::sync::Notify::new());
    let entered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let observer = Arc::new(FakeObserver::default());
    let mut state = ServerState::new(
        Arc::new(HeldSink {
            release: release.clone(),
            entered: entered.clone(),
        }),
        observer.clone(),
        Arc::new(String::new),
    );
    state.intake_limits.concurrency = 1;
    let app = router(state);
    let first = tokio::spawn({
        let app = app.clone();
        async move { send(&app, post(r#"{"verificationId":"1"}"#)).await.0 }
    });
    // Once the first request holds the only slot (its enqueue is parked) ...
    for _ in 0..500 {
        if entered.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(entered.load(std::sync::atomic::Ordering::SeqCst), 1);
    // ... the next one is shed at once, not queued.
    let (status, _, _, headers) = send(&app, post(r#"{"verificationId":"2"}"#)).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers.get(header::RETRY_AFTER).unwrap(), "5");
    assert_eq!(entered.load(std::sync::atomic::Ordering::SeqCst), 1);
    release.notify_one();
    assert_eq!(first.await.unwrap(), StatusCode::ACCEPTED);
    assert_eq!(
        *observer.events.lock().unwrap(),
        vec![("received".into(), "http".into(), 1)]
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
        assert!(h.sink.got.lock().unwrap().is_empty());
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
        .header(header::CONTENT_TYPE, "application/json")
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
        let error = json(&body)["error"].as_str().unwrap().to_owned();
        let expected = match mode {
            // The store's reason reaches the client: retrying blindly is not all it can do.
            Mode::Unavailable => "the store cannot commit since 2026-03-01T00:00:00Z (disk_full: the disk is full); retry later",
            _ => "shutting down, retry later",
        };
        assert_eq!(error, expected);
        assert!(headers.get(header::RETRY_AFTER).is_some());
    }
}

#[tokio::test]
async fn intake_400_when_the_sink_refuses_a_replay() {
    let h = harness(Mode::RefuseReplay);
    let body =
        r#"[{"verificationId":"1"},{"verificationId":"2","submittedAt":"2020-01-01T00:00:00Z"}]"#;
    let (status, _, body, _) = send(&h.app, post(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let v = json(&body);
    assert_eq!(v["index"], 1);
    assert_eq!(v["field"], "submittedAt");
    assert_eq!(
        v["error"],
        "item 1: field `submittedAt` is older than the duplicate horizon (1day)"
    );
    assert!(h.sink.got.lock().unwrap().is_empty());
    assert_eq!(
        *h.observer.events.lock().unwrap(),
        vec![("rejected".to_owned(), "invalid".to_owned(), 2)],
        "refused as a whole, never counted as received"
    );
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
