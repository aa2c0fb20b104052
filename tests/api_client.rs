//! The API client against a mock vendor on 127.0.0.1 that checks `Api-Key`, `Timestamp` and
//! `Sign` exactly as the vendor does. Backoff is kept at a millisecond so nothing waits.

mod common;

use common::{Recorder, TestApi};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use itniotech_exporter::api::model::Matched;
use itniotech_exporter::api::sign::{sign, sign_matches};
use itniotech_exporter::api::{
    ApiError, Client, ClientConfig, Credentials, Endpoint, RetryPolicy, SendRequest, VendorCode,
};
use itniotech_exporter::clock::{self, OffsetClock, SharedClock};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

const KEY: &str = "bDqJFiq9";
const SECRET: &str = "7bz1lzh9";
const WINDOW_SECS: i64 = 300;

// ---------------------------------------------------------------------------------------------
// Mock vendor
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Script {
    /// The next replies are these HTTP statuses (empty body), one per request.
    http_failures: VecDeque<u16>,
    /// Every authenticated request is answered with this vendor status.
    vendor_status: Option<&'static str>,
    /// Every authenticated request is answered with a broken body.
    malformed: bool,
}

#[derive(Default)]
struct Mock {
    requests: AtomicUsize,
    bodies: Mutex<Vec<(String, Value)>>,
    script: Mutex<Script>,
}

impl Mock {
    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap()
    }
}

fn vendor(status: &str, reason: &str) -> Response {
    axum::Json(json!({"status": status, "reason": reason})).into_response()
}

fn ok(data: Value) -> Response {
    axum::Json(json!({"status": "0", "reason": "success", "data": data})).into_response()
}

async fn handle(
    State(mock): State<Arc<Mock>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    mock.requests.fetch_add(1, Ordering::SeqCst);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };

    // Auth exactly as the vendor: key + md5(key + secret + timestamp), then the window.
    assert_eq!(header("content-type"), "application/json;charset=UTF-8");
    let Ok(ts) = header("Timestamp").parse::<i64>() else {
        return vendor("-22", "Timestamp missing");
    };
    if header("Api-Key") != KEY || !sign_matches(&sign(KEY, SECRET, ts), header("Sign")) {
        return vendor("-1", "Authentication error");
    }
    // This mock plays the vendor, whose clock is the real one.
    let now = clock::system().now().timestamp();
    if (now - ts).abs() > WINDOW_SECS {
        return vendor("-16", "Timestamp expires");
    }

    {
        let mut script = mock.script();
        if let Some(code) = script.http_failures.pop_front() {
            return StatusCode::from_u16(code).unwrap().into_response();
        }
        if script.malformed {
            return (StatusCode::OK, "{\"status\":\"0\",\"data\":{\"orderId\":").into_response();
        }
        if let Some(status) = script.vendor_status {
            return vendor(status, "scripted failure");
        }
    }

    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).expect("client sends JSON")
    };
    mock.bodies
        .lock()
        .unwrap()
        .push((uri.path().to_string(), body.clone()));

    let segments: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("GET", ["otp", "flow", "list"]) => ok(json!([
            {"flowId": 7, "name": "sms_then_voice", "flow": [
                {"waitingTime": 60, "status": 2, "channel": "sms", "channelCut": 0},
                {"waitingTime": 90, "status": 1, "channel": "call", "channelCut": 1}]},
            {"name": "broken flow without id"}
        ])),
        ("GET", ["otp", "flow", "details", "7"]) => ok(json!(
            {"flowId": 7, "name": "sms_then_voice", "flow": {"waitingTime": 60, "status": 2, "channel": "sms"}}
        )),
        ("POST", ["otp", "verification", "orderId", "record"]) => {
            assert_eq!(body["appId"], "Qw7rT2kZ");
            match body["orderId"].as_str() {
                Some("missing") => vendor("-24", "Data does not exist"),
                Some("empty") => ok(Value::Null),
                Some(order) => ok(json!({"flowId": 7,
                    "verifications": {"matched": -1, "oriReceiver": "919876543210", "channel": "call"},
                    "sms": [{"mcc": 404, "mnc": 45, "pay": "0.0045", "status": 1}],
                    "call": [{"terminationCode": 0, "costEur": "0.0120",
                              "answerTime": "2024-05-14T10:00:41+08:00",
                              "hangupTime": "2024-05-14T10:01:02+08:00"}],
                    "orderIdEcho": order})),
                None => vendor("-22", "orderId missing"),
            }
        }
        ("GET", ["otp", "verification", "record", "missing"]) => {
            vendor("-24", "Data does not exist")
        }
        ("GET", ["otp", "verification", "record", _id]) => ok(json!({
            "verifications": {"matched": 0, "verifiedDate": "2024-05-14T09:14:02+08:00", "channel": "sms"},
            "sms": {"mcc": "510", "mnc": "10", "pay": "0.0310", "status": 0}})),
        ("GET", ["sms", "getBalance"]) => axum::Json(json!({"status": "0", "reason": "success",
            "balance": "152.3841", "gift": "5.0000", "credit": "0.0000"}))
        .into_response(),
        ("POST", ["otp", "verification", "sendRule"]) => {
            assert!(body["code"].is_string(), "sendRule carries the code");
            ok(
                json!({"verificationId": "24051409123310000417", "to": body["to"], "channel": "sms", "snaUrl": null}),
            )
        }
        ("POST", ["otp", "verification", "send"]) => {
            assert!(body["templateId"].is_i64(), "send carries the template");
            ok(
                json!({"verificationId": "24051409123310000418", "to": body["to"], "channel": "call"}),
            )
        }
        ("POST", ["otp", "verification", "verify"]) => {
            let matched = if body["code"] == "4821" { 0 } else { 2 };
            ok(
                json!({"verificationId": body["verificationId"], "channel": "sms", "matched": matched}),
            )
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn start_mock() -> (Arc<Mock>, SocketAddr) {
    let mock = Arc::new(Mock::default());
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (mock, addr)
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

fn config(addr: SocketAddr) -> ClientConfig {
    ClientConfig {
        base_url: format!("http://{addr}"),
        timeout: Duration::from_secs(10),
        max_rps: None,
        retry: RetryPolicy {
            max_attempts: 4,
            backoff_min: Duration::from_millis(1),
            backoff_max: Duration::from_millis(2),
        },
    }
}

fn client_with(cfg: ClientConfig, secret: &str, clock: SharedClock) -> (TestApi, Arc<Recorder>) {
    let rec = Arc::new(Recorder::default());
    let client = Client::new(cfg, Credentials::new(KEY, secret), clock, rec.clone()).unwrap();
    (TestApi::new(client), rec)
}

fn attempts(n: u32, cfg: ClientConfig) -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            max_attempts: n,
            ..cfg.retry.clone()
        },
        ..cfg
    }
}

fn send_request() -> SendRequest {
    SendRequest {
        app_id: "Qw7rT2kZ".into(),
        template_id: Some(812),
        flow_id: Some(7),
        to: "6281234567890".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_endpoint_round_trips() {
    let (mock, addr) = start_mock().await;
    let cfg = ClientConfig {
        max_rps: Some(1000.0),
        ..config(addr)
    };
    let (client, rec) = client_with(cfg, SECRET, clock::system());

    let flows = client.flow_list().await.unwrap();
    assert_eq!(flows.len(), 1, "the flow without an id is skipped");
    assert_eq!(flows[0].flow_id, 7);
    assert_eq!(flows[0].flow.len(), 2);

    let rec_o = client
        .record_by_order_id("Qw7rT2kZ", "ord-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rec_o.order_id.as_deref(), Some("ord-1"));
    assert_eq!(rec_o.flow_id, Some(7));
    assert_eq!(rec_o.sms[0].pay, Some(Decimal::from_str("0.0045").unwrap()));
    assert_eq!(
        rec_o.call[0].cost,
        Some(Decimal::from_str("0.0120").unwrap())
    );

    let rec_v = client
        .record_by_verification_id("24051409123310000417")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        rec_v.verification_id.as_deref(),
        Some("24051409123310000417"),
        "filled from the path"
    );
    assert_eq!(rec_v.verifications.matched, Matched::Verified);
    assert_eq!(rec_v.sms[0].mcc, Some(510));

    let balance = client.balance().await.unwrap();
    assert_eq!(
        balance.balance,
        Some(Decimal::from_str("152.3841").unwrap())
    );
    assert_eq!(balance.gift, Some(Decimal::from_str("5.0000").unwrap()));
    assert_eq!(balance.credit, Some(Decimal::from_str("0.0000").unwrap()));

    let rule = SendRequest {
        template_id: None,
        flow_id: None,
        code: Some("4821".into()),
        order_id: Some("ord-2".into()),
        ..send_request()
    };
    let sent = client.send_rule(&rule).await.unwrap();
    assert_eq!(sent.verification_id, "24051409123310000417");
    let sent = client.send(&send_request()).await.unwrap();
    assert_eq!(sent.verification_id, "24051409123310000418");
    assert_eq!(
        sent.channel,
        Some(itniotech_exporter::domain::Channel::Call)
    );

    let good = client.verify("24051409123310000417", "4821").await.unwrap();
    assert_eq!(good.matched, Some(Matched::Verified));
    assert_eq!(
        good.verification_id.as_deref(),
        Some("24051409123310000417")
    );
    let bad = client.verify("24051409123310000417", "0000").await.unwrap();
    assert_eq!(bad.matched, Some(Matched::Failed));

    assert_eq!(mock.requests(), 8);
    let calls = rec.calls();
    assert_eq!(
        calls.iter().map(|c| c.0).collect::<Vec<_>>(),
        [
            Endpoint::FlowList,
            Endpoint::RecordByOrderId,
            Endpoint::RecordByVerificationId,
            Endpoint::Balance,
            Endpoint::SendRule,
            Endpoint::Send,
            Endpoint::Verify,
            Endpoint::Verify
        ]
    );
    assert!(calls.iter().all(|c| c.1 == "0" && c.2), "{calls:?}");

    // Bodies as the vendor documents them: camelCase, no nulls.
    let bodies = mock.bodies.lock().unwrap().clone();
    let body_of = |path: &str| bodies.iter().find(|b| b.0 == path).unwrap().1.clone();
    assert_eq!(
        body_of("/otp/verification/orderId/record"),
        json!({"appId": "Qw7rT2kZ", "orderId": "ord-1"})
    );
    assert_eq!(
        body_of("/otp/verification/sendRule"),
        json!({"appId": "Qw7rT2kZ", "to": "6281234567890", "orderId": "ord-2", "code": "4821"})
    );
    assert_eq!(
        body_of("/otp/verification/send"),
        json!({"appId": "Qw7rT2kZ", "templateId": 812, "flowId": 7, "to": "6281234567890"})
    );
    assert_eq!(
        body_of("/otp/verification/verify"),
        json!({"verificationId": "24051409123310000417", "code": "4821"})
    );

    // Every reply carried a Date header: skew measured, near zero on the same machine.
    let skew = rec.last_skew().unwrap();
    assert!(skew.abs() < 3.0, "{skew}");
    assert_eq!(rec.skews.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn wrong_secret_is_an_auth_failure_after_one_request() {
    let (mock, addr) = start_mock().await;
    let (client, rec) = client_with(config(addr), "not-the-secret", clock::system());
    let err = client.balance().await.unwrap_err();
    assert!(
        matches!(
            &err,
            ApiError::Vendor {
                code: VendorCode::AuthFailed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_auth_failure());
    assert!(!err.to_string().contains("not-the-secret"));
    assert_eq!(mock.requests(), 1);
    assert_eq!(rec.calls(), [(Endpoint::Balance, "-1".to_string(), false)]);
}

#[tokio::test]
async fn client_clock_behind_is_corrected_from_the_date_header() {
    let (mock, addr) = start_mock().await;
    let behind: SharedClock = Arc::new(OffsetClock {
        inner: clock::system(),
        offset: chrono::Duration::seconds(-1000),
    });
    let (client, rec) = client_with(config(addr), SECRET, behind);

    let flows = client.flow_list().await.unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(mock.requests(), 2, "one -16, one corrected retry");
    assert_eq!(rec.labels(), ["-16", "0"]);
    assert_eq!(
        rec.calls().iter().map(|c| c.2).collect::<Vec<_>>(),
        [false, true]
    );
    let skew = rec.last_skew().unwrap();
    assert!((skew + 1000.0).abs() < 3.0, "skew {skew}");
    assert!(rec
        .skews
        .lock()
        .unwrap()
        .iter()
        .all(|s| (s + 1000.0).abs() < 3.0));

    // The correction sticks: the next call needs one request.
    client.balance().await.unwrap();
    assert_eq!(mock.requests(), 3);
}

#[tokio::test]
async fn timestamp_rejected_twice_is_returned() {
    let (mock, addr) = start_mock().await;
    let (client, rec) = client_with(config(addr), SECRET, clock::system());
    mock.script().vendor_status = Some("-16");
    let err = client.balance().await.unwrap_err();
    assert!(err.is_timestamp_expired(), "{err:?}");
    assert_eq!(mock.requests(), 2, "one corrected retry only");
    assert_eq!(rec.labels(), ["-16", "-16"]);
}

#[tokio::test]
async fn http_503_twice_then_success() {
    let (mock, addr) = start_mock().await;
    let (client, rec) = client_with(config(addr), SECRET, clock::system());
    mock.script().http_failures = [503, 503].into();
    let flows = client.flow_list().await.unwrap();
    assert_eq!(flows[0].flow_id, 7);
    assert_eq!(mock.requests(), 3);
    assert_eq!(
        rec.calls(),
        [
            (Endpoint::FlowList, "http_5xx".to_string(), false),
            (Endpoint::FlowList, "http_5xx".to_string(), false),
            (Endpoint::FlowList, "0".to_string(), true),
        ]
    );
}

#[tokio::test]
async fn server_error_forever_stops_after_max_attempts() {
    let (mock, addr) = start_mock().await;
    let cfg = attempts(3, config(addr));
    let (client, rec) = client_with(cfg, SECRET, clock::system());
    mock.script().vendor_status = Some("-18");
    let err = client.record_by_verification_id("2405").await.unwrap_err();
    assert!(
        matches!(
            &err,
            ApiError::Vendor {
                code: VendorCode::ServerError,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(mock.requests(), 3);
    assert_eq!(rec.labels(), ["-18", "-18", "-18"]);
}

#[tokio::test]
async fn parameter_error_is_not_retried() {
    let (mock, addr) = start_mock().await;
    let (client, rec) = client_with(config(addr), SECRET, clock::system());
    mock.script().vendor_status = Some("-22");
    let err = client.flow_list().await.unwrap_err();
    assert!(
        matches!(&err, ApiError::Vendor { code: VendorCode::ParameterError, reason } if reason == "scripted failure"),
        "{err:?}"
    );
    assert_eq!(mock.requests(), 1);
    assert_eq!(rec.calls(), [(Endpoint::FlowList, "-22".to_string(), true)]);
}

#[tokio::test]
async fn malformed_json_is_a_decode_error() {
    let (mock, addr) = start_mock().await;
    let (client, rec) = client_with(config(addr), SECRET, clock::system());
    mock.script().malformed = true;
    let err = client
        .record_by_order_id("Qw7rT2kZ", "ord-1")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::Decode(_)), "{err:?}");
    assert_eq!(mock.requests(), 1);
    assert_eq!(
        rec.calls(),
        [(Endpoint::RecordByOrderId, "decode".to_string(), false)]
    );
}

#[tokio::test]
async fn not_found_is_none() {
    let (mock, addr) = start_mock().await;
    let (client, rec) = client_with(config(addr), SECRET, clock::system());
    assert_eq!(
        client
            .record_by_order_id("Qw7rT2kZ", "missing")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client.record_by_verification_id("missing").await.unwrap(),
        None
    );
    assert_eq!(
        client
            .record_by_order_id("Qw7rT2kZ", "empty")
            .await
            .unwrap(),
        None,
        "success with null data"
    );
    assert_eq!(mock.requests(), 3);
    assert_eq!(
        rec.calls(),
        [
            (Endpoint::RecordByOrderId, "-24".to_string(), true),
            (Endpoint::RecordByVerificationId, "-24".to_string(), true),
            (Endpoint::RecordByOrderId, "0".to_string(), true),
        ]
    );
}

#[tokio::test]
async fn send_is_not_resent_after_an_ambiguous_failure() {
    let (mock, addr) = start_mock().await;
    let (client, rec) = client_with(config(addr), SECRET, clock::system());
    mock.script().http_failures = [500].into();
    let err = client.send(&send_request()).await.unwrap_err();
    assert_eq!(err, ApiError::HttpStatus(500));
    assert_eq!(
        mock.requests(),
        1,
        "the first send may have delivered an OTP"
    );

    // 503 means the request was not processed: resending is safe.
    mock.script().http_failures = [503].into();
    client.send(&send_request()).await.unwrap();
    assert_eq!(mock.requests(), 3);
    assert_eq!(rec.labels(), ["http_5xx", "http_5xx", "0"]);
}

#[tokio::test]
async fn unknown_path_is_http_4xx() {
    let (_mock, addr) = start_mock().await;
    let cfg = ClientConfig {
        base_url: format!("http://{addr}/nothing-here"),
        ..config(addr)
    };
    let (client, rec) = client_with(cfg, SECRET, clock::system());
    assert_eq!(
        client.balance().await.unwrap_err(),
        ApiError::HttpStatus(404)
    );
    assert_eq!(rec.labels(), ["http_4xx"]);
}

#[tokio::test]
async fn refused_connection_is_retried_then_reported() {
    // A port that was just free: connections are refused.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let cfg = attempts(2, config(addr));
    let (client, rec) = client_with(cfg, SECRET, clock::system());
    let err = client.flow_list().await.unwrap_err();
    assert!(matches!(err, ApiError::Connect(_)), "{err:?}");
    assert_eq!(rec.labels(), ["connect", "connect"]);
    assert_eq!(rec.last_skew(), None);
}

#[tokio::test]
async fn a_single_attempt_still_learns_the_skew_from_a_minus_16() {
    let (mock, addr) = start_mock().await;
    let behind: SharedClock = Arc::new(OffsetClock {
        inner: clock::system(),
        offset: chrono::Duration::seconds(-1000),
    });
    let cfg = attempts(1, config(addr));
    let (client, rec) = client_with(cfg, SECRET, behind);
    assert!(client.balance().await.unwrap_err().is_timestamp_expired());
    client.balance().await.unwrap();
    assert_eq!(mock.requests(), 2);
    assert_eq!(rec.labels(), ["-16", "0"]);
}
