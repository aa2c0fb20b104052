//! The HTTP server: routes, authentication, limits and request logs; nothing else.
//!
//! | route | answer |
//! |---|---|
//! | `GET <telemetry_path>` (default `/metrics`) | the registry in OpenMetrics text |
//! | `GET /-/healthy` | `200 Healthy` while the process serves |
//! | `GET /-/ready` | `200 Ready` when the store commits and the vendor API answered recently, else `503 Not ready`; the body says why, one line per check |
//! | `GET /-/ready/intake` | the same for what the intake needs: the store commits (Kubernetes' readiness probe, so a vendor outage does not take every replica out of the intake Service) |
//! | `GET /` | an HTML landing page with links |
//! | `POST /api/v1/orders` | intake ([`intake`]) |
//!
//! Every route, in order ([`guard`]): the web config's `rate_limit` (`429`), then
//! authentication: basic auth from the web config on every route (like the exporter-toolkit),
//! and on the intake the bearer token of `--intake.token-file` (either one when both are set);
//! then the route; then the web config's response headers. Client certificates are checked
//! during the TLS handshake ([`conn`]). Nothing is read from a body before authentication.
//!
//! Connections ([`conn`]): TLS from the web config, header/idle/write timeouts, a maximum
//! number of connections (the longest-idle one gives way to a new one), and a shutdown that
//! waits at most `--web.shutdown-timeout` for in-flight requests.
//!
//! Every refusal is counted (`itniotech_exporter_http_requests_rejected_total{reason}`,
//! `itniotech_exporter_http_connections_dropped_total{reason}`) and logged at most once per
//! reason every [`LOG_EVERY`] with the number of lines suppressed, so a flood cannot flood the
//! logs. Logs show method, path (never the query), status and latency; never bodies or
//! credentials.

pub mod auth;
pub mod conn;
pub mod intake;
mod landing;
pub mod reload;
pub mod tls;
pub mod web_config;

pub use conn::{serve, ConnInfo, ServeOptions};
pub use intake::IntakeLimits;
pub use reload::{watch_web_config, WebConfigHandle};
pub use web_config::{WebConfig, WebConfigError};

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tower_http::timeout::TimeoutLayer;

use crate::config::TelemetryPath;
use crate::intake::{IntakeObserver, OrderSink};
use crate::ledger::family::label_enum;
use auth::{BcryptGate, Check};

/// The intake route.
pub const INTAKE_PATH: &str = "/api/v1/orders";
/// The liveness route.
pub const HEALTHY_PATH: &str = "/-/healthy";
/// The readiness route.
pub const READY_PATH: &str = "/-/ready";
/// The intake's readiness route.
pub const INTAKE_READY_PATH: &str = "/-/ready/intake";
/// Paths the telemetry path must not take.
pub const RESERVED_PATHS: &[&str] = &[
    "/",
    HEALTHY_PATH,
    READY_PATH,
    INTAKE_READY_PATH,
    INTAKE_PATH,
];
/// The content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Whole-request deadline once the headers are in (reading the body, parsing and the durable
/// commit included); past it the client gets `503` and may retry: duplicates are
/// acknowledged, never tracked twice.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `Retry-After` seconds sent with a `503` or `429`.
pub const RETRY_AFTER_SECS: u64 = 5;
/// A rejection reason is logged at most once per this period.
pub const LOG_EVERY: Duration = Duration::from_secs(10);
/// The realm of the basic-auth challenge.
const REALM: &str = "Basic realm=\"itniotech-exporter\"";

label_enum! {
    /// Why the server refused a request: the `reason` label of
    /// `itniotech_exporter_http_requests_rejected_total`.
    Rejection {
        /// `401`: missing or wrong credentials.
        Unauthorized => "unauthorized",
        /// `429`: too many uncached password checks right now (bcrypt is rationed).
        AuthThrottled => "auth_throttled",
        /// `429`: the web config's `rate_limit`.
        RateLimited => "rate_limited",
        /// `415`: an intake body that is not JSON or NDJSON.
        UnsupportedMediaType => "unsupported_media_type",
        /// `413`: an intake body over `--intake.max-body-bytes`.
        BodyTooLarge => "body_too_large",
        /// `408`: an intake body not sent within `--intake.read-timeout`.
        BodyTimeout => "body_timeout",
        /// `400`: an intake body that is not a valid list of orders.
        BadRequest => "bad_request",
        /// `429`: the intake is at `--intake.concurrency` or `--intake.max-buffered-bytes`.
        Saturated => "saturated",
        /// `503`: `--intake.max-pending` orders are already tracked.
        BacklogFull => "backlog_full",
        /// `503`: the store cannot take orders, or the agent is shutting down.
        Unavailable => "unavailable",
    }
}

label_enum! {
    /// Why the server closed a connection itself: the `reason` label of
    /// `itniotech_exporter_http_connections_dropped_total`.
    ConnDrop {
        /// No complete request head within `--web.read-header-timeout`.
        HeaderTimeout => "header_timeout",
        /// No new request within `--web.idle-timeout`.
        IdleTimeout => "idle_timeout",
        /// A response not taken within `--web.write-timeout`.
        WriteTimeout => "write_timeout",
        /// Closed, as the longest-idle connection, to make room at `--web.max-connections`.
        Evicted => "evicted",
        /// Refused at `--web.max-connections`: every connection was busy.
        Refused => "refused",
        /// No TLS handshake within `--web.read-header-timeout`.
        TlsHandshakeTimeout => "tls_handshake_timeout",
        /// A failed TLS handshake (wrong protocol, no or untrusted client certificate, ...).
        TlsHandshakeError => "tls_handshake_error",
        /// A client certificate without an allowed SAN (`client_allowed_sans`).
        ClientNotAllowed => "client_not_allowed",
        /// Still busy when `--web.shutdown-timeout` ran out.
        Shutdown => "shutdown",
    }
}

/// The server's own metrics, implemented by the operational metrics. The server is their only
/// writer.
pub trait HttpObserver: Send + Sync + 'static {
    /// The configured limits, once at start.
    fn limits(&self, max_connections: usize, max_pending: u64);
    fn connection_opened(&self);
    fn connection_closed(&self);
    fn connection_dropped(&self, why: ConnDrop);
    fn request_rejected(&self, why: Rejection);
    /// A web config (re)load was tried at `unix_seconds`.
    fn web_config_loaded(&self, ok: bool, unix_seconds: f64);
}

/// An observer that records nothing (tests of the routes alone).
#[derive(Debug, Default)]
pub struct NoopHttpObserver;

impl HttpObserver for NoopHttpObserver {
    fn limits(&self, _: usize, _: u64) {}
    fn connection_opened(&self) {}
    fn connection_closed(&self) {}
    fn connection_dropped(&self, _: ConnDrop) {}
    fn request_rejected(&self, _: Rejection) {}
    fn web_config_loaded(&self, _: bool, _: f64) {}
}

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

/// The checks behind `/-/ready`: each `Ok(what is fine)` or `Err(why not)`, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// The store commits (all the intake needs).
    pub store: Result<String, String>,
    /// The vendor API answered recently.
    pub vendor: Result<String, String>,
}

impl Readiness {
    /// Both checks pass with `why`.
    pub fn ready(why: &str) -> Readiness {
        Readiness {
            store: Ok(why.to_owned()),
            vendor: Ok(why.to_owned()),
        }
    }

    /// Both checks fail with `why`.
    pub fn not_ready(why: &str) -> Readiness {
        Readiness {
            store: Err(why.to_owned()),
            vendor: Err(why.to_owned()),
        }
    }
}

/// Everything the routes need; built by the agent from the other stages.
pub struct ServerState {
    /// Where parsed orders go (the tracker).
    pub sink: Arc<dyn OrderSink>,
    /// Intake counters.
    pub observer: Arc<dyn IntakeObserver>,
    /// The server's own counters.
    pub http: Arc<dyn HttpObserver>,
    /// Renders the registry as OpenMetrics text.
    pub render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// The readiness checks, evaluated per request.
    pub ready: Arc<dyn Fn() -> Readiness + Send + Sync>,
    /// Orders tracked now, as of the last backlog refresh (no store query per request).
    pub pending: Arc<dyn Fn() -> u64 + Send + Sync>,
    /// When set, the intake takes `Authorization: Bearer <token>`. An empty token matches
    /// nothing.
    pub intake_token: Option<String>,
    /// The web config in force (TLS, basic auth, headers, rate limit); reloadable.
    pub web: WebConfigHandle,
    /// The path of the metrics route.
    pub telemetry_path: TelemetryPath,
    /// Larger intake bodies get `413`.
    pub max_body_bytes: usize,
    /// Intake requests with more items get `400`.
    pub max_items: usize,
    /// Intake admission: concurrency, buffered bytes, body timeout, backlog ceiling.
    pub intake_limits: IntakeLimits,
    /// The landing page's text.
    pub landing: LandingInfo,
}

impl ServerState {
    /// A state with the given intake ends and every other field at its default: ready, no
    /// token, no web config, the default limits and landing page.
    pub fn new(
        sink: Arc<dyn OrderSink>,
        observer: Arc<dyn IntakeObserver>,
        render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> ServerState {
        ServerState {
            sink,
            observer,
            http: Arc::new(NoopHttpObserver),
            render_metrics,
            ready: Arc::new(|| Readiness::ready("ok")),
            pending: Arc::new(|| 0),
            intake_token: None,
            web: WebConfigHandle::default(),
            telemetry_path: "/metrics".parse().expect("a valid path"),
            max_body_bytes: 1 << 20,
            max_items: 10_000,
            intake_limits: IntakeLimits::default(),
            landing: LandingInfo::default(),
        }
    }
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
            .field("intake_limits", &self.intake_limits)
            .field("landing", &self.landing)
            .finish_non_exhaustive()
    }
}

/// The state shared by the routes: the configuration and what the server owns at run time.
struct Shared {
    state: ServerState,
    intake: intake::IntakeGate,
    bcrypt: BcryptGate,
    logs: LogLimiter,
}

/// Build the router.
pub fn router(state: ServerState) -> Router {
    let telemetry_path = state.telemetry_path.clone();
    let shared = Arc::new(Shared {
        intake: intake::IntakeGate::new(&state.intake_limits),
        state,
        bcrypt: BcryptGate::default(),
        logs: LogLimiter::default(),
    });
    Router::new()
        .route("/", get(landing::landing))
        .route(telemetry_path.as_str(), get(metrics))
        .route(HEALTHY_PATH, get(healthy))
        .route(READY_PATH, get(ready))
        .route(INTAKE_READY_PATH, get(intake_ready))
        .route(INTAKE_PATH, post(intake::intake))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared.clone())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            REQUEST_TIMEOUT,
        ))
        .layer(middleware::from_fn_with_state(shared, log_request))
}

/// What a route needs before it runs: the web config's rate limit, then credentials.
async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let web = shared.state.web.current();
    let intake = req.uri().path() == INTAKE_PATH;
    let token = shared.state.intake_token.as_deref().filter(|_| intake);
    let client = client_ip(&req);
    if let Err((why, response)) =
        admit(&web, &shared.bcrypt, req.headers(), client, token, intake).await
    {
        return reject(&shared, why, response);
    }
    let mut response = next.run(req).await;
    add_headers(&web, &mut response);
    response
}

/// The web config's rate limit, then its basic auth (or, on the intake, the bearer token
/// `token`): the refusal when the request may not go on.
async fn admit(
    web: &reload::Generation,
    bcrypt: &BcryptGate,
    headers: &axum::http::HeaderMap,
    client: IpAddr,
    token: Option<&str>,
    intake: bool,
) -> Result<(), (Rejection, Response)> {
    if let Some(limiter) = &web.rate_limiter {
        if limiter.check().is_err() {
            return Err((Rejection::RateLimited, too_many("rate limit exceeded")));
        }
    }
    let basic = web.config.basic_auth.as_ref();
    if basic.is_none() && token.is_none() {
        return Ok(());
    }
    if token.is_some_and(|t| auth::bearer_matches(t, headers)) {
        return Ok(());
    }
    let check = match (basic, auth::basic_credentials(headers)) {
        (Some(users), Some((user, password))) => {
            bcrypt.check(users, client, &user, &password).await
        }
        _ => Check::Invalid,
    };
    match check {
        Check::Valid => Ok(()),
        Check::Invalid => Err((
            Rejection::Unauthorized,
            unauthorized(intake, basic.is_some(), token.is_some()),
        )),
        Check::Throttled => Err((
            Rejection::AuthThrottled,
            too_many("too many password checks, retry later"),
        )),
    }
}

/// The client's address, for the per-address budget of password checks.
fn client_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnInfo>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.peer.ip())
}

fn add_headers(web: &reload::Generation, response: &mut Response) {
    for (name, value) in &web.config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
}

/// What [`protect`] needs at run time.
struct Protected {
    web: WebConfigHandle,
    http: Arc<dyn HttpObserver>,
    bcrypt: BcryptGate,
}

/// Puts another listener's routes (the capture proxy) behind the web config like the server's
/// own: its rate limit, its basic auth on every request, its response headers. The
/// `Authorization` header that carried our credentials is removed before the routes see the
/// request, so the proxy never forwards it to the vendor.
pub fn protect(router: Router, web: WebConfigHandle, http: Arc<dyn HttpObserver>) -> Router {
    let protected = Arc::new(Protected {
        web,
        http,
        bcrypt: BcryptGate::default(),
    });
    router.layer(middleware::from_fn_with_state(protected, protect_guard))
}

async fn protect_guard(State(p): State<Arc<Protected>>, mut req: Request, next: Next) -> Response {
    let web = p.web.current();
    let client = client_ip(&req);
    if let Err((why, response)) = admit(&web, &p.bcrypt, req.headers(), client, None, false).await {
        p.http.request_rejected(why);
        return response;
    }
    if web.config.basic_auth.is_some() {
        req.headers_mut().remove(header::AUTHORIZATION);
    }
    let mut response = next.run(req).await;
    add_headers(&web, &mut response);
    response
}

fn unauthorized(intake: bool, basic: bool, bearer: bool) -> Response {
    let mut response = if intake {
        json_error(StatusCode::UNAUTHORIZED, "missing or invalid credentials")
    } else {
        (StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
    };
    let h = response.headers_mut();
    if basic {
        h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    }
    if bearer {
        h.append(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn too_many(message: &str) -> Response {
    let mut response = json_error(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(1u64));
    response
}

/// Counts a refusal and returns its response.
fn reject(shared: &Shared, why: Rejection, response: Response) -> Response {
    shared.state.http.request_rejected(why);
    response
}

async fn log_request(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    // The path only: a query string could carry anything.
    let path = req.uri().path().to_owned();
    let start = tokio::time::Instant::now();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
    if status >= 400 {
        // Refusals come in floods when something is wrong or someone is probing: one line per
        // status every LOG_EVERY, with the count of the lines left out.
        shared.logs.log(status, |suppressed| {
            if status >= 500 {
                tracing::warn!(%method, %path, status, latency_ms, suppressed, "request");
            } else {
                tracing::info!(%method, %path, status, latency_ms, suppressed, "request");
            }
        });
    } else {
        // Scrapes, probes and accepted intake posts arrive every second: debug only.
        tracing::debug!(%method, %path, status, latency_ms, "request");
    }
    response
}

/// At most one log line per key every [`LOG_EVERY`].
#[derive(Debug, Default)]
pub struct LogLimiter {
    last: Mutex<HashMap<u16, (tokio::time::Instant, u64)>>,
}

impl LogLimiter {
    /// Calls `emit(suppressed)` when `key` was not logged within [`LOG_EVERY`]; otherwise
    /// counts the line as suppressed.
    pub fn log(&self, key: u16, emit: impl FnOnce(u64)) {
        self.log_at(key, tokio::time::Instant::now(), emit);
    }

    fn log_at(&self, key: u16, now: tokio::time::Instant, emit: impl FnOnce(u64)) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let entry = last.entry(key).or_insert((now - LOG_EVERY, 0));
        if now.duration_since(entry.0) >= LOG_EVERY {
            let suppressed = entry.1;
            *entry = (now, 0);
            drop(last);
            emit(suppressed);
        } else {
            entry.1 += 1;
        }
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let body = (shared.state.render_metrics)();
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

/// `Ready` or `Not ready`, then one line per check.
fn readiness_answer(checks: &[(&str, &Result<String, String>)]) -> (StatusCode, String) {
    let ok = checks.iter().all(|(_, r)| r.is_ok());
    let mut body = String::from(if ok { "Ready\n" } else { "Not ready\n" });
    for (name, r) in checks {
        let (Ok(line) | Err(line)) = r;
        body.push_str(&format!("{name}: {line}\n"));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

async fn ready(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    let r = (shared.state.ready)();
    readiness_answer(&[("store", &r.store), ("vendor API", &r.vendor)])
}

async fn intake_ready(State(shared): State<Arc<Shared>>) -> (StatusCode, String) {
    let r = (shared.state.ready)();
    readiness_answer(&[("store", &r.store)])
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn protect_asks_for_credentials_and_does_not_pass_them_on() {
        use tower::ServiceExt;
        let hash = bcrypt::hash("pw", 4).unwrap();
        let config = WebConfig::parse(
            std::path::Path::new("web.yml"),
            std::path::Path::new("."),
            &format!("basic_auth_users:\n  app: '{hash}'\n"),
        )
        .unwrap();
        // The route answers with the Authorization header it saw (none, once protected).
        let inner = Router::new().fallback(|req: Request| async move {
            format!("{:?}", req.headers().get(header::AUTHORIZATION))
        });
        let app = protect(
            inner,
            WebConfigHandle::new(config),
            Arc::new(NoopHttpObserver),
        );
        let request = |auth: Option<&str>| {
            let mut b = Request::builder().uri("/sms/getBalance");
            if let Some(a) = auth {
                b = b.header(header::AUTHORIZATION, a);
            }
            b.body(axum::body::Body::empty()).unwrap()
        };
        let r = app.clone().oneshot(request(None)).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        // "app:pw"
        let r = app.oneshot(request(Some("Basic YXBwOnB3"))).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], b"None");
    }

    #[test]
    fn log_limiter_emits_once_per_period_and_counts_the_rest() {
        let limiter = LogLimiter::default();
        let t0 = tokio::time::Instant::now();
        let mut emitted = Vec::new();
        for _ in 0..5 {
            limiter.log_at(401, t0, |s| emitted.push(s));
        }
        limiter.log_at(503, t0, |s| emitted.push(s));
        assert_eq!(emitted, [0, 0]);
        limiter.log_at(401, t0 + LOG_EVERY / 2, |s| emitted.push(s));
        assert_eq!(emitted, [0, 0]);
        limiter.log_at(401, t0 + LOG_EVERY, |s| emitted.push(s));
        assert_eq!(emitted, [0, 0, 5]);
    }
}
