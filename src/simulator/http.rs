//! The HTTP face of the simulator: routes, authentication, chaos and vendor-shaped replies.

use super::config::CHAOS_TIMEOUT_HANG;
use super::presets::{SimChannel, SimFlowNode};
use super::state::{SimApiError, SimResult, SimSendRequest};
use super::Simulator;
use crate::api::model::StepTrigger;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use md5::{Digest, Md5};
use rand::Rng;
use serde_json::{json, Map, Value};
use std::time::{Duration, UNIX_EPOCH};

pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/otp/flow/list", get(flow_list))
        .route("/otp/flow/details/{id}", get(flow_details))
        .route("/otp/flow/add", post(flow_add))
        .route("/otp/flow/update/{id}", put(flow_update).post(flow_update))
        .route("/otp/verification/sendRule", post(send_rule))
        .route("/otp/verification/send", post(send))
        .route("/otp/verification/verify", post(verify))
        .route(
            "/otp/verification/record/{id}",
            get(record_by_verification_id),
        )
        .route("/otp/verification/orderId/record", post(record_by_order_id))
        .route("/sms/getBalance", get(get_balance))
        .route_layer(middleware::from_fn_with_state(sim.clone(), gate))
        .fallback(|| async { (StatusCode::NOT_FOUND, "Not Found") })
        .layer(middleware::from_fn_with_state(sim.clone(), date_header))
        .with_state(sim)
}

/// The vendor envelope: `{"status":"0","reason":"success","data":...}` or an error without data.
fn reply(result: SimResult) -> Response {
    let body = match result {
        Ok(data) => json!({"status": "0", "reason": "success", "data": data}),
        Err(e) => json!({"status": e.status, "reason": e.reason}),
    };
    json_response(&body)
}

fn json_response(body: &Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        body.to_string(),
    )
        .into_response()
}

/// Every reply, chaos and 404 included, carries the simulator's clock in `Date`.
async fn date_header(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let now = sim.server_now();
    let secs = u64::try_from(now.timestamp()).unwrap_or(0);
    let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert(header::DATE, v);
    }
    resp
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    Timeout,
    Http500,
    Http503,
    VendorError,
    Malformed,
}

/// Chaos first (infrastructure fails before auth), then authentication, then the handler.
async fn gate(State(sim): State<Simulator>, req: Request, next: Next) -> Response {
    let (fault, latency) = roll_chaos(&sim);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match fault {
        Some(Fault::Timeout) => {
            tokio::time::sleep(CHAOS_TIMEOUT_HANG).await;
            return (StatusCode::GATEWAY_TIMEOUT, "504 Gateway Time-out").into_response();
        }
        Some(Fault::Http500) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error",
            )
                .into_response()
        }
        Some(Fault::Http503) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "503 Service Temporarily Unavailable",
            )
                .into_response()
        }
        _ => {}
    }
    if let Err(e) = authenticate(&sim, req.headers()) {
        return reply(Err(e));
    }
    if fault == Some(Fault::VendorError) {
        return reply(Err(SimApiError::new("-18", "Port program unusual")));
    }
    let resp = next.run(req).await;
    if fault == Some(Fault::Malformed) {
        let (mut parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let mut cut = bytes[..bytes.len() / 2].to_vec();
        cut.extend_from_slice(b"<html>");
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::from(cut));
    }
    resp
}

fn roll_chaos(sim: &Simulator) -> (Option<Fault>, Duration) {
    let mut st = sim.lock();
    let faults = st.scenario.api_faults();
    let chaos = st.chaos.clone();
    let rng = &mut st.chaos_rng;
    let either = |a: f64, b: f64| 1.0 - (1.0 - a.clamp(0.0, 1.0)) * (1.0 - b.clamp(0.0, 1.0));
    let mut latency = chaos.latency;
    if let Some((lo, hi)) = faults.latency_ms {
        latency += Duration::from_millis(rng.random_range(lo..=hi));
    }
    let candidates = [
        (Fault::Timeout, chaos.timeout_rate.clamp(0.0, 1.0)),
        (Fault::Http500, chaos.http_500_rate.clamp(0.0, 1.0)),
        (
            Fault::Http503,
            either(chaos.http_503_rate, faults.http_503_rate),
        ),
        (
            Fault::VendorError,
            either(chaos.vendor_error_rate, faults.vendor_error_rate),
        ),
        (
            Fault::Malformed,
            either(chaos.malformed_rate, faults.malformed_rate),
        ),
    ];
    let fault = candidates
        .into_iter()
        .find(|&(_, p)| p > 0.0 && rng.random_bool(p))
        .map(|(f, _)| f);
    (fault, latency)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `Api-Key` must match, `Timestamp` must be within the window, and
/// `Sign = md5(key + secret + Timestamp)` (hex, any case).
fn authenticate(sim: &Simulator, headers: &HeaderMap) -> Result<(), SimApiError> {
    let auth_error = || SimApiError::new("-1", "Authentication error");
    let key = header_str(headers, "Api-Key").ok_or_else(auth_error)?;
    if key != sim.inner.api_key {
        return Err(auth_error());
    }
    let expired = || SimApiError::new("-16", "Timestamp expires");
    let ts_raw = header_str(headers, "Timestamp").ok_or_else(expired)?;
    let ts: i64 = ts_raw.parse().map_err(|_| expired())?;
    let skew = sim.server_now().timestamp().abs_diff(ts);
    if skew > sim.inner.timestamp_window.as_secs() {
        return Err(expired());
    }
    let mut md5 = Md5::new();
    md5.update(key.as_bytes());
    md5.update(sim.inner.api_secret.as_bytes());
    md5.update(ts_raw.as_bytes());
    let expected = hex::encode(md5.finalize());
    let received = header_str(headers, "Sign").ok_or_else(auth_error)?;
    if !crate::api::sign::sign_matches(&expected, received) {
        return Err(auth_error());
    }
    Ok(())
}

// ---- request parsing -------------------------------------------------------------------

fn body_object(body: &Bytes) -> Result<Map<String, Value>, SimApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(SimApiError::param(
            "Parameter exception: body must be a JSON object",
        )),
    }
}

/// A string field (numbers accepted too); `None` when missing or null.
fn opt_str(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, SimApiError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(SimApiError::param(format!("{key} must be a string"))),
    }
}

fn req_str(
    obj: &Map<String, Value>,
    key: &str,
    len: (usize, usize),
) -> Result<String, SimApiError> {
    let s = opt_str(obj, key)?.unwrap_or_default();
    let n = s.chars().count();
    if n < len.0 || n > len.1 {
        return Err(SimApiError::param(format!(
            "{key} must be {}-{} characters",
            len.0, len.1
        )));
    }
    Ok(s)
}

/// An integer field (numeric strings accepted); `None` when missing or null.
fn opt_int(obj: &Map<String, Value>, key: &str) -> Result<Option<i64>, SimApiError> {
    let bad = || SimApiError::param(format!("{key} must be an integer"));
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn parse_send(body: &Bytes, rule: bool) -> Result<SimSendRequest, SimApiError> {
    let obj = body_object(body)?;
    let app_id = req_str(&obj, "appId", (4, 32))?;
    let template_id = opt_int(&obj, "templateId")?;
    if !rule && template_id.is_none() {
        return Err(SimApiError::param("templateId is required"));
    }
    let flow_id = opt_int(&obj, "flowId")?;
    let to = opt_str(&obj, "to")?.unwrap_or_default();
    if !(10..=14).contains(&to.len()) || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SimApiError::param("to must be 10-14 digits"));
    }
    let channel = match opt_str(&obj, "channel")?.as_deref() {
        None | Some("") => SimChannel::Sms,
        Some(c) => SimChannel::parse(c).ok_or_else(|| SimApiError::param("unsupported channel"))?,
    };
    let order_id = opt_str(&obj, "orderId")?.filter(|s| !s.is_empty());
    if order_id.as_ref().is_some_and(|s| s.chars().count() > 64) {
        return Err(SimApiError::param("orderId must be at most 64 characters"));
    }
    let code = if rule {
        Some(req_str(&obj, "code", (1, 10))?)
    } else {
        None
    };
    Ok(SimSendRequest {
        app_id,
        to,
        channel,
        flow_id,
        order_id,
        code,
    })
}

fn parse_flow(body: &Bytes) -> Result<(String, Vec<SimFlowNode>), SimApiError> {
    let obj = body_object(body)?;
    let name = req_str(&obj, "name", (4, 32))?;
    let Some(Value::Array(raw)) = obj.get("flow") else {
        return Err(SimApiError::param("flow must be an array of nodes"));
    };
    if raw.is_empty() || raw.len() > 10 {
        return Err(SimApiError::param("flow must have 1-10 nodes"));
    }
    let mut nodes = Vec::with_capacity(raw.len());
    for node in raw {
        let Value::Object(n) = node else {
            return Err(SimApiError::param("flow node must be an object"));
        };
        let waiting_time = opt_int(n, "waitingTime")?
            .filter(|w| (30..=120).contains(w))
            .ok_or_else(|| SimApiError::param("waitingTime must be 30-120"))?;
        let trigger = match StepTrigger::from_code(opt_int(n, "status")?) {
            StepTrigger::Unknown => return Err(SimApiError::param("status must be 1 or 2")),
            known => known,
        };
        let channel = opt_str(n, "channel")?
            .as_deref()
            .and_then(SimChannel::parse)
            .ok_or_else(|| SimApiError::param("channel must be sms or call"))?;
        let channel_cut = opt_int(n, "channelCut")?.unwrap_or(0);
        if !matches!(channel_cut, 0 | 1) {
            return Err(SimApiError::param("channelCut must be 0 or 1"));
        }
        nodes.push(SimFlowNode {
            waiting_time: waiting_time as u32,
            trigger,
            channel,
            channel_cut: channel_cut as u8,
        });
    }
    Ok((name, nodes))
}

fn path_id(id: &str) -> Result<i64, SimApiError> {
    id.trim()
        .parse()
        .map_err(|_| SimApiError::param("id must be an integer"))
}

// ---- handlers ----------------------------------------------------------------------------

async fn flow_list(State(sim): State<Simulator>) -> Response {
    reply(sim.lock().flow_list())
}

async fn flow_details(State(sim): State<Simulator>, Path(id): Path<String>) -> Response {
    reply(path_id(&id).and_then(|id| sim.lock().flow_details(id)))
}

async fn flow_add(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(parse_flow(&body).and_then(|(name, nodes)| sim.lock().flow_add(name, nodes)))
}

async fn flow_update(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    reply(path_id(&id).and_then(|id| {
        let (name, nodes) = parse_flow(&body)?;
        sim.lock().flow_update(id, name, nodes)
    }))
}

async fn send_rule(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(parse_send(&body, true).and_then(|r| sim.with_now(|st, now| st.send(now, r))))
}

async fn send(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(parse_send(&body, false).and_then(|r| sim.with_now(|st, now| st.send(now, r))))
}

async fn verify(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(body_object(&body).and_then(|obj| {
        let id = req_str(&obj, "verificationId", (1, 64))?;
        let code = req_str(&obj, "code", (4, 10))?;
        sim.with_now(|st, now| st.verify(now, &id, &code))
    }))
}

async fn record_by_verification_id(
    State(sim): State<Simulator>,
    Path(id): Path<String>,
) -> Response {
    reply(sim.with_now(|st, now| st.record_by_verification_id(now, id.trim())))
}

async fn record_by_order_id(State(sim): State<Simulator>, body: Bytes) -> Response {
    reply(body_object(&body).and_then(|obj| {
        let app_id = req_str(&obj, "appId", (4, 32))?;
        let order_id = req_str(&obj, "orderId", (1, 64))?;
        sim.with_now(|st, now| st.record_by_order_id(now, &app_id, &order_id))
    }))
}

/// getBalance puts its fields at the top level, without `data`.
async fn get_balance(State(sim): State<Simulator>) -> Response {
    let balance = sim.with_now(|st, now| st.balance_at(now));
    json_response(&json!({
        "status": "0",
        "reason": "success",
        "balance": format!("{balance:.4}"),
        "gift": "0.0000",
        "credit": "0.0000",
    }))
}
