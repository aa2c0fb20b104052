//! The capture proxy: the agent as a transparent proxy for the vendor's API, so teams point
//! their itniotech base URL at it and change nothing else.
//!
//! Every request is forwarded verbatim to `--api.base-url` (method, path, query, headers with
//! the app's own `Api-Key`/`Timestamp`/`Sign`, body) and the vendor's reply goes back unchanged:
//! status, headers, body. Nothing is retried or reordered. On the way, the send calls
//! (`send`, `sendRule`, `resend`) are captured: the order is committed to the store with both of
//! its keys **before** the reply goes back, so nothing the app was told about can be missed;
//! verify replies make the order's next poll come at once. Capture fails open: when the store
//! cannot commit, the app still gets the vendor's reply, and
//! `itniotech_exporter_capture_failures_total{reason}` counts the miss.
//!
//! Nothing sensitive is kept or logged: the destination number is read only for its country,
//! and the signing headers pass through untouched.

pub mod capture;
mod forward;

pub use forward::{ProxyEndpoint, UpstreamErrorKind};

use crate::clock::SharedClock;
use crate::domain::{NewOrder, OrderKey};
use crate::intake::{IntakeObserver, IntakeSource, RejectReason, SinkError};
use crate::ledger::{SendRequestLabels, Update};
use crate::metrics::Operational;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use capture::{Captured, SendRequestInfo, VendorReply};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest request body forwarded; the vendor's own bodies are a few hundred bytes.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;
/// Largest reply body read for capture (the client reads at most as much).
pub const MAX_CAPTURED_REPLY_BYTES: usize = 4 << 20;

/// An order seen on the send path: tracked under `order.key`, also known as `alias`.
#[derive(Debug, Clone, PartialEq)]
pub struct CapturedOrder {
    pub order: NewOrder,
    /// The order's other key (its verificationId when it is tracked by orderId).
    pub alias: Option<OrderKey>,
}

/// What the proxy commits. Implemented by the tracker; the proxy's tests use a fake.
pub trait CaptureSink: Send + Sync + 'static {
    /// Commits, in one transaction, the orders of a send the vendor accepted (none when it
    /// refused) and the send's count by status. Resolves once durable.
    fn capture_send(
        &self,
        orders: Vec<CapturedOrder>,
        count: Vec<Update>,
    ) -> BoxFuture<'static, Result<crate::domain::EnqueueReport, SinkError>>;

    /// A code was checked for the order known by `key`: poll it at once, so its verification is
    /// counted now instead of at the next scheduled poll (the poll alone counts it: once).
    fn poll_soon(&self, key: OrderKey) -> BoxFuture<'static, Result<(), SinkError>>;
}

/// Why a capture did not commit; the reply still went back to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFailure {
    /// The store could not commit (disk full, I/O, shutting down).
    Store,
    /// The send's request or reply could not be read, so its order has no key.
    Unreadable,
}

impl CaptureFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureFailure::Store => "store",
            CaptureFailure::Unreadable => "unreadable",
        }
    }
}

/// Everything the proxy needs.
pub struct ProxyState {
    /// The vendor's base URL (`--api.base-url`); a path prefix is kept.
    pub upstream: reqwest::Url,
    pub http: reqwest::Client,
    pub sink: Arc<dyn CaptureSink>,
    pub metrics: Arc<Operational>,
    pub clock: SharedClock,
}

impl std::fmt::Debug for ProxyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyState")
            .field("upstream", &self.upstream.as_str())
            .finish_non_exhaustive()
    }
}

/// The HTTP client the proxy forwards with: no redirects followed (a redirect would replay the
/// app's signed headers elsewhere), no decompression (bytes pass unchanged), `timeout` per
/// request.
pub fn upstream_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
}

/// The proxy's router: every method and path goes to [`proxy`].
pub fn router(state: ProxyState) -> Router {
    Router::new().fallback(proxy).with_state(Arc::new(state))
}

async fn proxy(State(st): State<Arc<ProxyState>>, req: Request) -> Response {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let endpoint = ProxyEndpoint::of(parts.uri.path());
    let captured = Captured::of(&parts.method, parts.uri.path());
    let body = match axum::body::to_bytes(body, MAX_REQUEST_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large for the itniotech API",
            )
                .into_response()
        }
    };
    st.metrics.proxy_bytes_in(body.len());
    let upstream = forward::send(&st, &parts, body.clone()).await;
    let upstream_started = upstream.started;
    let response = match upstream.result {
        Err(kind) => {
            st.metrics.proxy_upstream_error(kind);
            tracing::warn!(
                endpoint = endpoint.as_str(),
                kind = kind.as_str(),
                "itniotech API unreachable through the proxy"
            );
            forward::bad_gateway()
        }
        Ok(resp) => match captured {
            // Not captured: stream the reply back as it arrives.
            None => forward::stream_back(&st, resp),
            Some(kind) => {
                let (status, headers, reply) = match forward::read_back(resp).await {
                    Ok(r) => r,
                    Err(kind) => {
                        st.metrics.proxy_upstream_error(kind);
                        return forward::bad_gateway();
                    }
                };
                let upstream_done = upstream_started.elapsed();
                st.metrics.proxy_bytes_out(reply.len());
                capture(&st, kind, &body, &reply).await;
                let response = forward::respond(status, headers, Body::from(reply));
                st.metrics.proxy_request(
                    endpoint,
                    response.status().as_u16(),
                    started.elapsed(),
                    upstream_done,
                );
                return response;
            }
        },
    };
    st.metrics.proxy_request(
        endpoint,
        response.status().as_u16(),
        started.elapsed(),
        upstream_started.elapsed(),
    );
    response
}

/// Commits what a captured call says, before its reply goes back. Fails open.
async fn capture(st: &ProxyState, kind: Captured, request: &Bytes, reply: &Bytes) {
    let reply = capture::vendor_reply(reply);
    match kind {
        Captured::Verify => {
            let (Some(reply), Some(vid)) = (reply, capture::verify_request(request)) else {
                return;
            };
            if !reply.is_success() {
                return;
            }
            let key = OrderKey::Verification {
                verification_id: vid,
            };
            if let Err(e) = st.sink.poll_soon(key).await {
                fail(st, CaptureFailure::Store, &e);
            }
        }
        Captured::Send | Captured::SendRule | Captured::Resend => {
            let info = capture::send_request(kind, request);
            let (Some(info), Some(reply)) = (info, reply) else {
                st.metrics.capture_failed(CaptureFailure::Unreadable);
                return;
            };
            capture_send(st, kind, &info, &reply).await;
        }
    }
}

async fn capture_send(
    st: &ProxyState,
    kind: Captured,
    info: &SendRequestInfo,
    reply: &VendorReply,
) {
    let count = vec![Update::SendRequest(SendRequestLabels {
        app_id: info.app_id.clone().unwrap_or_else(|| "unknown".to_owned()),
        channel: info.channel,
        country: info.country.clone(),
        status: reply.status.clone(),
    })];
    let mut orders = Vec::new();
    if reply.is_success() {
        let verification_id = reply.verification_id();
        match (kind, capture::order_keys(info, verification_id.clone())) {
            // A resend continues an order already tracked: poll it soon instead.
            (Captured::Resend, _) => {
                if let Some(old) = info.resent_verification_id.clone() {
                    let key = OrderKey::Verification {
                        verification_id: old,
                    };
                    if let Err(e) = st.sink.poll_soon(key).await {
                        fail(st, CaptureFailure::Store, &e);
                    }
                }
            }
            (_, Some((key, alias))) => orders.push(CapturedOrder {
                order: NewOrder {
                    key,
                    flow_id: info.flow_id,
                    submitted_at: Some(st.clock.now()),
                },
                alias,
            }),
            (_, None) => st.metrics.capture_failed(CaptureFailure::Unreadable),
        }
    }
    let n = orders.len() as u64;
    match st.sink.capture_send(orders, count).await {
        Ok(report) => {
            if n > 0 {
                st.metrics.received(IntakeSource::Proxy, n);
            }
            if report.duplicates > 0 {
                st.metrics
                    .rejected(RejectReason::Duplicate, report.duplicates as u64);
            }
            if report.sampled_out > 0 {
                st.metrics
                    .rejected(RejectReason::SampledOut, report.sampled_out as u64);
            }
        }
        Err(e) => fail(st, CaptureFailure::Store, &e),
    }
}

fn fail(st: &ProxyState, reason: CaptureFailure, e: &SinkError) {
    st.metrics.capture_failed(reason);
    tracing::warn!(reason = reason.as_str(), error = %e, "capture failed; the vendor's reply was still returned");
}
