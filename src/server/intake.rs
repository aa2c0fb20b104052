//! `POST /api/v1/orders`: admission, then parsing and the durable commit.
//!
//! In order, each step cheaper than the next, so a refused request costs little:
//! 1. credentials ([`super::guard`]), before anything else;
//! 2. `Content-Type` must be JSON or NDJSON (`415`): a web page cannot post here;
//! 3. `--intake.max-pending` orders already tracked: `503` with `Retry-After` (the count is the
//!    backlog gauge's, refreshed every second, not a store query per request);
//! 4. the body, under `--intake.read-timeout` (`408`), `--intake.max-body-bytes` (`413`) and the
//!    bytes all bodies may buffer together, `--intake.max-buffered-bytes` (`429`): a trickling
//!    upload holds only the bytes it sent, so slow clients cannot lock the intake;
//! 5. a slot of `--intake.concurrency` for parsing and storing (`429` with `Retry-After` when
//!    none is free: shed, don't queue);
//! 6. [`parse_orders`] (`400 {"error", "index", ...}`), then [`OrderSink::enqueue`], which
//!    returns once the orders are on disk (`202` with the [`EnqueueReport`]; `503` when the
//!    store is unavailable or the agent is shutting down).
//!
//! Counting, one writer per counter: `orders_received_total{source="http"}` counts the orders of
//! requests the store took (`202`), so received = accepted + duplicate + sampled_out;
//! `orders_rejected_total{reason="invalid"}` the items of requests refused for an invalid item
//! ([`crate::intake::IntakeError::rejected_items`]); every refused request counts once in
//! `itniotech_exporter_http_requests_rejected_total{reason}`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use serde_json::json;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{json_error, reject, unavailable, Rejection, Shared, RETRY_AFTER_SECS};
use crate::domain::EnqueueReport;
use crate::intake::{
    accepted_content_type, parse_orders, IntakeError, IntakeSource, RejectReason, SinkError,
};

/// Intake admission limits (the `intake.*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeLimits {
    /// Requests parsed and stored at once.
    pub concurrency: usize,
    /// Body bytes all intake requests may buffer together.
    pub max_buffered_bytes: usize,
    /// Time to receive a whole body.
    pub read_timeout: Duration,
    /// Tracked orders at which new requests get `503`.
    pub max_pending: u64,
}

impl Default for IntakeLimits {
    fn default() -> Self {
        let c = crate::config::IntakeConfig::default();
        IntakeLimits::from(&c)
    }
}

impl From<&crate::config::IntakeConfig> for IntakeLimits {
    fn from(c: &crate::config::IntakeConfig) -> Self {
        IntakeLimits {
            concurrency: c.concurrency,
            max_buffered_bytes: c.max_buffered_bytes,
            read_timeout: c.read_timeout.get(),
            max_pending: c.max_pending,
        }
    }
}

/// The intake's run-time admission state.
pub(super) struct IntakeGate {
    slots: Semaphore,
    bytes: Semaphore,
}

impl IntakeGate {
    pub(super) fn new(limits: &IntakeLimits) -> IntakeGate {
        IntakeGate {
            slots: Semaphore::new(limits.concurrency.max(1)),
            bytes: Semaphore::new(limits.max_buffered_bytes.min(Semaphore::MAX_PERMITS)),
        }
    }
}

enum BodyError {
    TooLarge,
    Read,
    /// The shared byte budget is spent.
    Budget,
}

/// Reads the body, each chunk paid from the shared byte budget (held until the request ends).
async fn read_body<'a>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    budget: &'a Semaphore,
) -> Result<(Bytes, Option<SemaphorePermit<'a>>), BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut paid: Option<SemaphorePermit<'a>> = None;
    let mut buf = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        let n = u32::try_from(chunk.len()).map_err(|_| BodyError::TooLarge)?;
        let permit = budget.try_acquire_many(n).map_err(|_| BodyError::Budget)?;
        match &mut paid {
            Some(p) => p.merge(permit),
            None => paid = Some(permit),
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((Bytes::from(buf), paid))
}

fn too_busy(message: &str) -> Response {
    let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

pub(super) async fn intake(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let state = &shared.state;
    let limits = &state.intake_limits;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !accepted_content_type(content_type) {
        return reject(
            &shared,
            Rejection::UnsupportedMediaType,
            json_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json or application/x-ndjson",
            ),
        );
    }
    if (state.pending)() >= limits.max_pending {
        return reject(
            &shared,
            Rejection::BacklogFull,
            unavailable("too many orders pending, retry later"),
        );
    }
    let read = tokio::time::timeout(
        limits.read_timeout,
        read_body(&headers, body, state.max_body_bytes, &shared.intake.bytes),
    )
    .await;
    let (bytes, _paid) = match read {
        Ok(Ok(read)) => read,
        Ok(Err(BodyError::TooLarge)) => {
            return reject(
                &shared,
                Rejection::BodyTooLarge,
                json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!(
                        "request body larger than {} bytes; split the batch",
                        state.max_body_bytes
                    ),
                ),
            );
        }
        Ok(Err(BodyError::Read)) => {
            return reject(
                &shared,
                Rejection::BadRequest,
                json_error(StatusCode::BAD_REQUEST, "could not read the request body"),
            );
        }
        Ok(Err(BodyError::Budget)) => {
            return reject(
                &shared,
                Rejection::Saturated,
                too_busy("intake saturated, retry later"),
            );
        }
        Err(_) => {
            return reject(
                &shared,
                Rejection::BodyTimeout,
                json_error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received in time",
                ),
            );
        }
    };
    let Ok(_slot) = shared.intake.slots.try_acquire() else {
        return reject(
            &shared,
            Rejection::Saturated,
            too_busy("intake saturated, retry later"),
        );
    };
    let orders = match parse_orders(content_type, &bytes, state.max_items) {
        Ok(orders) => orders,
        Err(e) => {
            let items = e.rejected_items();
            if items > 0 {
                state.observer.rejected(RejectReason::Invalid, items);
            }
            tracing::debug!(error = %e, "intake request rejected");
            return reject(
                &shared,
                Rejection::BadRequest,
                (StatusCode::BAD_REQUEST, Json(intake_error_body(&e))).into_response(),
            );
        }
    };
    // What only the sink can judge (a replay older than the duplicate horizon): 400 naming it.
    if let Err(e) = state.sink.check(&orders) {
        state
            .observer
            .rejected(RejectReason::Invalid, e.rejected_items());
        return reject(
            &shared,
            Rejection::BadRequest,
            (StatusCode::BAD_REQUEST, Json(intake_error_body(&e))).into_response(),
        );
    }
    let n = orders.len() as u64;
    match state.sink.enqueue(orders).await {
        Ok(report) => {
            state.observer.received(IntakeSource::Http, n);
            let EnqueueReport {
                duplicates,
                sampled_out,
                ..
            } = report;
            if duplicates > 0 {
                state
                    .observer
                    .rejected(RejectReason::Duplicate, duplicates as u64);
            }
            if sampled_out > 0 {
                state
                    .observer
                    .rejected(RejectReason::SampledOut, sampled_out as u64);
            }
            (StatusCode::ACCEPTED, Json(report)).into_response()
        }
        Err(SinkError::Unavailable(detail)) => {
            // Key 1 is no HTTP status: its own budget of one line per period.
            shared.logs.log(1, |suppressed| {
                tracing::warn!(%detail, suppressed, "intake: store unavailable");
            });
            reject(
                &shared,
                Rejection::Unavailable,
                // The store's failure kind and SQLite's message: no order data.
                unavailable(&format!("{detail}; retry later")),
            )
        }
        Err(SinkError::ShuttingDown) => reject(
            &shared,
            Rejection::Unavailable,
            unavailable("shutting down, retry later"),
        ),
    }
}

/// `{"error", "index", "line", "field"}` of a refused intake request.
fn intake_error_body(e: &IntakeError) -> serde_json::Value {
    let mut body = json!({ "error": e.to_string() });
    if let Some(index) = e.index() {
        body["index"] = json!(index);
    }
    if let Some(line) = e.line() {
        body["line"] = json!(line);
    }
    if let Some(field) = e.field() {
        body["field"] = json!(field);
    }
    body
}
