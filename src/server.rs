//! The HTTP server: routes, limits, authentication and request logs; nothing else.
//!
//! | route | answer |
//! |---|---|
//! | `GET <telemetry_path>` (default `/metrics`) | the registry in OpenMetrics text |
//! | `GET /-/healthy` | `200 Healthy` while the process serves |
//! | `GET /-/ready` | `200 Ready`, or `503 Not ready` until the agent can take orders |
//! | `GET /` | an HTML landing page with links |
//! | `POST /api/v1/orders` | intake, see below |
//!
//! Intake, in order: optional bearer token (`401`), body size limit (`413`), parsing and
//! validation by [`crate::intake::parse_orders`] (`400 {"error", "index", ...}`), then
//! [`OrderSink::enqueue`], which returns once the orders are durably stored (`202` with the
//! [`EnqueueReport`]; `503` when the store is unavailable or the agent is shutting down). Every
//! error body is JSON `{"error": "..."}`.
//!
//! Counting: a rejected request counts `rejected("invalid", items)` (items as far as known,
//! at least 1; an oversized body counts 1). An accepted request counts `received("http", n)`
//! before the sink is called, then `rejected("duplicate", d)` and `rejected("sampled_out", s)`
//! from the sink's report. An unauthorised request counts nothing.
//!
//! Every request is logged with method, path (never the query), status and latency; bodies and
//! tokens are never logged.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::json;
use subtle::ConstantTimeEq;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::TelemetryPath;
use crate::domain::EnqueueReport;
use crate::intake::{
    parse_orders, IntakeObserver, IntakeSource, OrderSink, RejectReason, SinkError,
};

/// The intake route.
pub const INTAKE_PATH: &str = "/api/v1/orders";
/// The liveness route.
pub const HEALTHY_PATH: &str = "/-/healthy";
/// The readiness route.
pub const READY_PATH: &str = "/-/ready";
/// Paths the telemetry path must not take.
pub const RESERVED_PATHS: &[&str] = &["/", HEALTHY_PATH, READY_PATH, INTAKE_PATH];
/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Whole-request deadline (reading the body, parsing and the durable commit included); past it
/// the client gets `503` and may retry: duplicates are acknowledged, never tracked twice.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Intake requests handled at once; more wait (until [`REQUEST_TIMEOUT`]), which bounds memory
/// to about `INTAKE_CONCURRENCY × max_body_bytes`.
pub const INTAKE_CONCURRENCY: usize = 16;
/// `Retry-After` seconds sent with a `503` from the intake.
pub const RETRY_AFTER_SECS: u64 = 5;

/// What the landing page shows.
#[derive(Debug, Clone)]
pub struct LandingInfo {
    /// Shown as the title.
    pub name: String,
    /// One sentence under the title.
    pub description: String,
    /// The build's version.
    pub version: String,
    /// Extra links after the built-in ones (metrics, health, readiness, intake): `(text, href)`.
    pub links: Vec<(String, String)>,
}

impl Default for LandingInfo {
    fn default() -> Self {
        Self {
            name: "itniotech-exporter".to_owned(),
            description: env!("CARGO_PKG_DESCRIPTION").to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            links: Vec::new(),
        }
    }
}

/// Everything the routes need; built by `main` from the other stages.
pub struct ServerState {
    /// Where parsed orders go (the tracker).
    pub sink: Arc<dyn OrderSink>,
    /// Intake counters.
    pub observer: Arc<dyn IntakeObserver>,
    /// Renders the registry as OpenMetrics text.
    pub render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Whether the agent can take orders (the store is open).
    pub ready: Arc<dyn Fn() -> bool + Send + Sync>,
    /// When set, the intake requires `Authorization: Bearer <token>`. An empty token matches
    /// nothing.
    pub intake_token: Option<String>,
    /// The path of the metrics route.
    pub telemetry_path: TelemetryPath,
    /// Larger intake bodies get `413`.
    pub max_body_bytes: usize,
    /// Intake requests with more items get `400`.
    pub max_items: usize,
    /// The landing page's text.
    pub landing: LandingInfo,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field(
                "intake_token",
                &self.intake_token.as_ref().map(|_| "<redacted>"),
            )
            .field("telemetry_path", &self.telemetry_path)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("max_items", &self.max_items)
            .field("landing", &self.landing)
            .finish_non_exhaustive()
    }
}

/// Build the router.
pub fn router(state: ServerState) -> Router {
    let telemetry_path = state.telemetry_path.clone();
    let state = Arc::new(state);
    Router::new()
        .route("/", get(landing))
        .route(telemetry_path.as_str(), get(metrics))
        .route(HEALTHY_PATH, get(healthy))
        .route(READY_PATH, get(ready))
        .route(
            INTAKE_PATH,
            post(intake).layer(ConcurrencyLimitLayer::new(INTAKE_CONCURRENCY)),
        )
        .fallback(not_found)
        .with_state(state)
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn(log_request))
}

/// Serve `router` on `listener` until `shutdown` resolves, then finish in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // The path only: a query string could carry anything.
    let path = req.uri().path().to_owned();
    let start = tokio::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, latency_ms, "request");
    } else if status >= 400 {
        tracing::info!(%method, %path, status, latency_ms, "request");
    } else {
        // Scrapes, probes and accepted intake posts arrive every second: debug only.
        tracing::debug!(%method, %path, status, latency_ms, "request");
    }
    response
}

async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let body = (state.render_metrics)();
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
        )],
        body,
    )
        .into_response()
}

async fn healthy() -> &'static str {
    "Healthy"
}

async fn ready(State(state): State<Arc<ServerState>>) -> (StatusCode, &'static str) {
    if (state.ready)() {
        (StatusCode::OK, "Ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Not ready")
    }
}

async fn not_found() -> (StatusCode, &'static str) {
    (StatusCode::NOT_FOUND, "Not found")
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn unavailable(message: &str) -> Response {
    let mut response = json_error(StatusCode::SERVICE_UNAVAILABLE, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// Constant-time check of `Authorization: Bearer <token>` (scheme case-insensitive).
fn authorized(expected: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return true;
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    let token = token.trim();
    scheme.eq_ignore_ascii_case("bearer")
        && !expected.is_empty()
        && bool::from(token.as_bytes().ct_eq(expected.as_bytes()))
}

enum BodyError {
    TooLarge,
    Read,
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        if buf.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

async fn intake(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: Body) -> Response {
    if !authorized(state.intake_token.as_deref(), &headers) {
        let mut response = json_error(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token (Authorization: Bearer <token>)",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let bytes = match read_body(&headers, body, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            state.observer.rejected(RejectReason::Invalid, 1);
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &format!(
                    "request body larger than {} bytes; split the batch",
                    state.max_body_bytes
                ),
            );
        }
        Err(BodyError::Read) => {
            return json_error(StatusCode::BAD_REQUEST, "could not read the request body");
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let orders = match parse_orders(content_type, &bytes, state.max_items) {
        Ok(orders) => orders,
        Err(e) => {
            state
                .observer
                .rejected(RejectReason::Invalid, e.rejected_items());
            tracing::debug!(error = %e, "intake request rejected");
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
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    state
        .observer
        .received(IntakeSource::Http, orders.len() as u64);
    match state.sink.enqueue(orders).await {
        Ok(report) => {
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
            tracing::warn!(%detail, "intake: store unavailable");
            unavailable("store unavailable, retry later")
        }
        Err(SinkError::ShuttingDown) => unavailable("shutting down, retry later"),
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn landing(State(state): State<Arc<ServerState>>) -> Html<String> {
    Html(landing_page(&state))
}

fn landing_page(state: &ServerState) -> String {
    let info = &state.landing;
    // Relative links keep working behind a reverse proxy that adds a path prefix.
    let rel = |path: &str| format!(".{path}");
    let mut links = vec![
        ("Metrics".to_owned(), rel(state.telemetry_path.as_str())),
        ("Health".to_owned(), rel(HEALTHY_PATH)),
        ("Readiness".to_owned(), rel(READY_PATH)),
        ("Intake API".to_owned(), "#intake".to_owned()),
    ];
    links.extend(info.links.iter().cloned());
    let items: String = links
        .iter()
        .map(|(text, href)| {
            format!(
                "<li><a href=\"{}\">{}</a></li>\n",
                escape(href),
                escape(text)
            )
        })
        .collect();
    let auth = if state.intake_token.is_some() {
        "Requests need <code>Authorization: Bearer &lt;token&gt;</code>."
    } else {
        "No token is configured."
    };
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{name}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0; }}
header {{ background: #e6522c; color: #fff; padding: 0.6em 1em; }}
header h1 {{ margin: 0; font-size: 1.4em; }}
main {{ padding: 0 1em 1em; max-width: 60em; }}
pre, code {{ background: #f4f4f4; }}
pre {{ padding: 0.6em; overflow-x: auto; }}
</style>
</head>
<body>
<header><h1>{name}</h1></header>
<main>
<p>{description}</p>
<p>Version: {version}</p>
<ul>
{items}</ul>
<h2 id="intake">Intake API</h2>
<p><code>POST {intake}</code> takes a JSON object, a JSON array of objects, or NDJSON (one object
per line), each <code>{{"appId", "orderId"}}</code> or <code>{{"verificationId"}}</code>, with the
optional <code>flowId</code> and <code>submittedAt</code> (RFC 3339 or epoch seconds). At most
{max_items} items and {max_body_bytes} bytes per request. {auth}</p>
<p><code>202</code> once the orders are durably stored, with
<code>{{"accepted", "duplicates", "sampled_out"}}</code>; <code>400</code> names the bad item
(<code>index</code>, 0-based) and rejects the whole request.</p>
<pre>curl -X POST -H 'Content-Type: application/json' \
  -d '{{"appId":"Qw7rT2kZ","orderId":"ord-88231","flowId":7}}' \
  http://HOST{intake}</pre>
</main>
</body>
</html>
"#,
        name = escape(&info.name),
        description = escape(&info.description),
        version = escape(&info.version),
        intake = INTAKE_PATH,
        max_items = state.max_items,
        max_body_bytes = state.max_body_bytes,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn bearer_token_check() {
        assert!(authorized(None, &HeaderMap::new()));
        assert!(!authorized(Some("s3cret"), &HeaderMap::new()));
        assert!(authorized(Some("s3cret"), &headers("Bearer s3cret")));
        assert!(authorized(Some("s3cret"), &headers("bearer  s3cret ")));
        assert!(!authorized(Some("s3cret"), &headers("Bearer s3cre")));
        assert!(!authorized(Some("s3cret"), &headers("Bearer s3cret2")));
        assert!(!authorized(Some("s3cret"), &headers("Basic s3cret")));
        assert!(!authorized(Some("s3cret"), &headers("s3cret")));
        assert!(!authorized(Some(""), &headers("Bearer ")));
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
