//! The signed HTTP client.
//!
//! Every attempt is signed afresh (`Timestamp` from the injected clock plus the skew
//! correction, `Sign = md5(key + secret + Timestamp)`), passes the client-side rate limiter, and
//! is reported once to the [`ApiObserver`]. Transient failures are retried with jittered
//! exponential backoff; a `-16` (timestamp expired) reply corrects the timestamp by the clock
//! skew read from that reply's `Date` header and is retried once at once.
//!
//! Nothing here logs the key, the secret, the sign, phone numbers, URLs or reply bodies.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use backon::{BackoffBuilder, ExponentialBuilder};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, DATE};
use reqwest::{Method, Url};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::credentials::Credentials;
use super::endpoint::{ApiObserver, Endpoint};
use super::error::{sanitize, ApiError};
use super::model::{
    one_or_many, BalanceReply, Envelope, Flow, OrderRecord, SendResult, VerifyResult,
};
use super::sign::sign;
use super::status::VendorCode;
use crate::clock::SharedClock;

/// The largest reply body read; anything longer is a decode error.
const MAX_BODY_BYTES: usize = 4 << 20;
const JSON_UTF8: &str = "application/json;charset=UTF-8";

/// Client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Vendor host, e.g. `https://api.itniotech.com`. OTP calls go to `{base}/otp/...`, the
    /// balance to `{base}/sms/getBalance`. A path prefix is kept.
    pub base_url: String,
    /// Per-attempt timeout (connect, request and body). Default 10 s.
    pub timeout: Duration,
    /// Client-side request rate limit in requests per second, applied to every attempt;
    /// burst `max(1, ceil(max_rps))`. `0` = unlimited. Default 10.
    pub max_rps: f64,
    /// Attempts per call, first one included (>= 1). Default 4.
    pub max_attempts: u32,
    /// First retry delay before jitter. Default 200 ms.
    pub backoff_min: Duration,
    /// Largest retry delay. Default 5 s.
    pub backoff_max: Duration,
}

impl ClientConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.itniotech.com";
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: Self::DEFAULT_BASE_URL.to_string(),
            timeout: Duration::from_secs(10),
            max_rps: 10.0,
            max_attempts: 4,
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// The account balance (`sms/getBalance`). Currency is not stated by the vendor (USD inferred).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub balance: Option<Decimal>,
    pub gift: Option<Decimal>,
    pub credit: Option<Decimal>,
}

/// Body of `verification/send` and `verification/sendRule`, serialised camelCase without nulls.
///
/// `Debug` hides `to` (a phone number) and `code` (the OTP).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendRequest {
    pub app_id: String,
    /// Required by `send`, optional for `sendRule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<i64>,
    /// Country code + number, digits only.
    pub to: String,
    /// `sms` (vendor default), `call` or `sna`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// The caller's code (`sendRule` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl fmt::Debug for SendRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendRequest")
            .field("app_id", &self.app_id)
            .field("template_id", &self.template_id)
            .field("flow_id", &self.flow_id)
            .field("to", &format_args!("<redacted>"))
            .field("channel", &self.channel)
            .field("order_id", &self.order_id)
            .field(
                "code",
                &format_args!(
                    "{}",
                    if self.code.is_some() {
                        "<redacted>"
                    } else {
                        "None"
                    }
                ),
            )
            .finish()
    }
}

/// The signed itniotech API client. Cheap to clone; clones share the connection pool, the rate
/// limiter and the clock-skew state.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    creds: Credentials,
    clock: SharedClock,
    observer: Arc<dyn ApiObserver>,
    limiter: Option<DefaultDirectRateLimiter>,
    max_attempts: u32,
    backoff_min: Duration,
    backoff_max: Duration,
    skew: Mutex<SkewState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct SkewState {
    /// Last measured local-minus-server skew, seconds.
    last: Option<f64>,
    /// Added to the local clock to make the `Timestamp` header (set after a `-16`).
    correction: f64,
}

/// One HTTP call to make, possibly several times.
struct Call {
    endpoint: Endpoint,
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("credentials", &self.inner.creds)
            .field("max_attempts", &self.inner.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates the configuration and builds the client. Fails with [`ApiError::Build`] on an
    /// unusable base URL, a zero timeout, a negative or non-finite `max_rps`, `max_attempts` 0,
    /// `backoff_min > backoff_max`, or empty/invalid credentials.
    pub fn new(
        cfg: ClientConfig,
        creds: Credentials,
        clock: SharedClock,
        observer: Arc<dyn ApiObserver>,
    ) -> Result<Client, ApiError> {
        let base = Url::parse(cfg.base_url.trim())
            .map_err(|e| ApiError::Build(format!("base_url: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ApiError::Build("base_url must be an http(s) URL".into()));
        }
        if cfg.timeout.is_zero() {
            return Err(ApiError::Build("timeout must be positive".into()));
        }
        if !cfg.max_rps.is_finite() || cfg.max_rps < 0.0 {
            return Err(ApiError::Build(
                "max_rps must be a finite number >= 0".into(),
            ));
        }
        if cfg.max_attempts == 0 {
            return Err(ApiError::Build("max_attempts must be at least 1".into()));
        }
        if cfg.backoff_min > cfg.backoff_max {
            return Err(ApiError::Build(
                "backoff_min must not exceed backoff_max".into(),
            ));
        }
        if creds.api_key().is_empty() || creds.expose_secret().is_empty() {
            return Err(ApiError::Build(
                "API key and secret must not be empty".into(),
            ));
        }
        if HeaderValue::from_str(creds.api_key()).is_err() {
            return Err(ApiError::Build(
                "API key contains characters not allowed in a header".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            // A redirect would replay the signed headers to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("itniotech-exporter/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Build(sanitize(&error_chain(&e), &[])))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                limiter: rate_limiter(cfg.max_rps),
                creds,
                clock,
                observer,
                max_attempts: cfg.max_attempts,
                backoff_min: cfg.backoff_min,
                backoff_max: cfg.backoff_max,
                skew: Mutex::new(SkewState::default()),
            }),
        })
    }

    /// `GET /otp/flow/list`. A single object as `data` is accepted; flows that do not parse are
    /// skipped (and logged); null `data` is an empty list.
    pub async fn flow_list(&self) -> Result<Vec<Flow>, ApiError> {
        let call = self.call(
            Endpoint::FlowList,
            Method::GET,
            &["otp", "flow", "list"],
            None,
        )?;
        self.execute(call, |mut reply| {
            let data = take_data(&mut reply);
            let expected = match &data {
                Value::Null => return Ok(Vec::new()),
                Value::Array(items) => items.len(),
                Value::Object(_) => 1,
                _ => return Err(ApiError::decode("flow list data is not an array")),
            };
            let flows: Vec<Flow> = one_or_many(data);
            if flows.len() != expected {
                tracing::warn!(
                    endpoint = Endpoint::FlowList.as_str(),
                    skipped = expected - flows.len(),
                    "skipped flows that could not be parsed"
                );
            }
            Ok(flows)
        })
        .await
    }

    /// `GET /otp/flow/details/{flowId}`.
    pub async fn flow_details(&self, flow_id: i64) -> Result<Flow, ApiError> {
        let id = flow_id.to_string();
        let call = self.call(
            Endpoint::FlowDetails,
            Method::GET,
            &["otp", "flow", "details", &id],
            None,
        )?;
        self.execute(call, |mut reply| match take_data(&mut reply) {
            Value::Null => Err(ApiError::decode("flow details without data")),
            data => serde_json::from_value(data)
                .map_err(|e| ApiError::decode(format!("flow details: {e}"))),
        })
        .await
    }

    /// `POST /otp/verification/orderId/record`. `Ok(None)`: no such record (vendor -24 or -14,
    /// or success without data). `order_id` is filled from the request when the reply lacks it.
    pub async fn record_by_order_id(
        &self,
        app_id: &str,
        order_id: &str,
    ) -> Result<Option<OrderRecord>, ApiError> {
        let body = serde_json::json!({ "appId": app_id, "orderId": order_id });
        let call = self.call(
            Endpoint::RecordByOrderId,
            Method::POST,
            &["otp", "verification", "orderId", "record"],
            Some(&body),
        )?;
        let res = self
            .execute(call, |mut reply| {
                parse_record(take_data(&mut reply)).map(|rec| {
                    rec.map(|mut rec| {
                        rec.order_id.get_or_insert_with(|| order_id.to_string());
                        rec
                    })
                })
            })
            .await;
        not_found_as_none(res)
    }

    /// `GET /otp/verification/record/{verificationId}`. `Ok(None)`: no such record (vendor -24
    /// or -14, or success without data). `verification_id` is filled from the path when the
    /// reply lacks it.
    pub async fn record_by_verification_id(
        &self,
        verification_id: &str,
    ) -> Result<Option<OrderRecord>, ApiError> {
        let call = self.call(
            Endpoint::RecordByVerificationId,
            Method::GET,
            &["otp", "verification", "record", verification_id],
            None,
        )?;
        let res = self
            .execute(call, |mut reply| {
                parse_record(take_data(&mut reply)).map(|rec| {
                    rec.map(|mut rec| {
                        rec.verification_id
                            .get_or_insert_with(|| verification_id.to_string());
                        rec
                    })
                })
            })
            .await;
        not_found_as_none(res)
    }

    /// `GET /sms/getBalance` (fields at the top level, no `data`).
    pub async fn balance(&self) -> Result<Balance, ApiError> {
        let call = self.call(Endpoint::Balance, Method::GET, &["sms", "getBalance"], None)?;
        self.execute(call, |reply| {
            let r: BalanceReply = serde_json::from_value(reply)
                .map_err(|e| ApiError::decode(format!("balance: {e}")))?;
            Ok(Balance {
                balance: r.balance,
                gift: r.gift,
                credit: r.credit,
            })
        })
        .await
    }

    /// `POST /otp/verification/sendRule` (the caller supplies `code`).
    ///
    /// Not resent after an ambiguous failure (timeout, 5xx other than 502/503/429, -18): the
    /// first request may have delivered an OTP.
    pub async fn send_rule(&self, req: &SendRequest) -> Result<SendResult, ApiError> {
        self.send_to(Endpoint::SendRule, "sendRule", req).await
    }

    /// `POST /otp/verification/send` (the platform generates the code). Retries as
    /// [`Client::send_rule`].
    pub async fn send(&self, req: &SendRequest) -> Result<SendResult, ApiError> {
        self.send_to(Endpoint::Send, "send", req).await
    }

    async fn send_to(
        &self,
        endpoint: Endpoint,
        path: &str,
        req: &SendRequest,
    ) -> Result<SendResult, ApiError> {
        let body = serde_json::to_value(req).map_err(|e| ApiError::Build(e.to_string()))?;
        let call = self.call(
            endpoint,
            Method::POST,
            &["otp", "verification", path],
            Some(&body),
        )?;
        self.execute(call, |mut reply| match take_data(&mut reply) {
            Value::Null => Err(ApiError::decode("send reply without data")),
            data => serde_json::from_value(data)
                .map_err(|e| ApiError::decode(format!("send reply: {e}"))),
        })
        .await
    }

    /// `POST /otp/verification/verify`.
    ///
    /// A right or wrong code answered with status `"0"` comes back as `Ok` with `matched`
    /// (`Verified` / `Failed`) as the vendor reports it. The vendor does not document whether a
    /// wrong code may instead be a non-zero status; if so, that status is returned as
    /// [`ApiError::Vendor`] unchanged: callers must treat a vendor error here as "not verified".
    /// Success without `data` gives `matched: None`. Not resent after ambiguous failures.
    pub async fn verify(
        &self,
        verification_id: &str,
        code: &str,
    ) -> Result<VerifyResult, ApiError> {
        let body = serde_json::json!({ "verificationId": verification_id, "code": code });
        let call = self.call(
            Endpoint::Verify,
            Method::POST,
            &["otp", "verification", "verify"],
            Some(&body),
        )?;
        self.execute(call, |mut reply| {
            let mut result = match take_data(&mut reply) {
                Value::Null => VerifyResult::default(),
                data => serde_json::from_value::<VerifyResult>(data)
                    .map_err(|e| ApiError::decode(format!("verify reply: {e}")))?,
            };
            result
                .verification_id
                .get_or_insert_with(|| verification_id.to_string());
            Ok(result)
        })
        .await
    }

    /// The last measured clock skew (local minus server, seconds), if any reply carried a
    /// `Date` header yet.
    pub fn clock_skew(&self) -> Option<f64> {
        self.skew_state().last
    }

    // -----------------------------------------------------------------------------------------

    fn skew_state(&self) -> SkewState {
        *self.inner.skew.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn call(
        &self,
        endpoint: Endpoint,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> Result<Call, ApiError> {
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|_| ApiError::Build("base_url cannot carry a path".into()))?
            .pop_if_empty()
            .extend(segments);
        let body = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| ApiError::Build(e.to_string()))?;
        Ok(Call {
            endpoint,
            method,
            url,
            body,
        })
    }

    /// Runs `call` with rate limiting, retries and skew correction; `parse` turns a successful
    /// (`status` "0") reply into the result.
    async fn execute<T>(
        &self,
        call: Call,
        parse: impl Fn(Value) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let inner = &self.inner;
        let endpoint = call.endpoint;
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(inner.backoff_min)
            .with_max_delay(inner.backoff_max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        let mut skew_retry_done = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(limiter) = &inner.limiter {
                limiter.until_ready().await;
            }
            let started = tokio::time::Instant::now();
            let (raw, measured_skew) = self.attempt(&call).await;
            let (outcome, label, up) = match raw {
                Ok(reply) => match parse(reply) {
                    Ok(v) => (Ok(v), "0".to_string(), true),
                    Err(e) => {
                        let label = e.status_label();
                        (Err(e), label, false)
                    }
                },
                Err(e) => {
                    let (label, up) = (e.status_label(), e.api_up());
                    (Err(e), label, up)
                }
            };
            inner
                .observer
                .on_request(endpoint, &label, up, started.elapsed());
            tracing::debug!(endpoint = endpoint.as_str(), attempt, status = %label, "API attempt");

            let err = match outcome {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            // A -16 teaches the skew even when no attempt is left, so the next call is right.
            let skew_corrected = match measured_skew {
                Some(skew) if err.is_timestamp_expired() => {
                    self.inner
                        .skew
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .correction = -skew;
                    true
                }
                _ => false,
            };
            if attempt >= inner.max_attempts {
                tracing::debug!(endpoint = endpoint.as_str(), attempt, status = %label, "API call failed, no attempts left");
                return Err(err);
            }
            if err.is_timestamp_expired() {
                if skew_corrected && !skew_retry_done {
                    skew_retry_done = true;
                    tracing::warn!(
                        endpoint = endpoint.as_str(),
                        attempt,
                        skew_seconds = measured_skew.unwrap_or_default(),
                        "timestamp rejected (-16): corrected by the server's Date header, retrying"
                    );
                    continue;
                }
                return Err(err);
            }
            let may_resend = endpoint.is_idempotent() || err.request_surely_not_processed();
            if !(err.is_retryable() && may_resend) {
                return Err(err);
            }
            let delay = backoff
                .next()
                .unwrap_or(inner.backoff_max)
                .min(inner.backoff_max);
            tracing::warn!(
                endpoint = endpoint.as_str(),
                attempt,
                status = %label,
                delay_ms = delay.as_millis() as u64,
                "API call failed, retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One signed HTTP attempt. Returns the whole reply when its `status` is "0", and the clock
    /// skew measured from the reply's `Date` header when there was one.
    async fn attempt(&self, call: &Call) -> (Result<Value, ApiError>, Option<f64>) {
        let inner = &self.inner;
        let ts = self.timestamp();
        let headers = match self.signed_headers(ts) {
            Ok(h) => h,
            Err(e) => return (Err(e), None),
        };
        let mut req = inner
            .http
            .request(call.method.clone(), call.url.clone())
            .headers(headers);
        if let Some(body) = &call.body {
            req = req.body(body.clone());
        }
        let resp = match req.send().await {
            Ok(resp) => resp,
            Err(e) => return (Err(map_reqwest(e)), None),
        };
        let skew = self.measure_skew(resp.headers());
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            return (Err(ApiError::HttpStatus(status.as_u16())), skew);
        }
        let body = match read_capped(resp).await {
            Ok(b) => b,
            Err(e) => return (Err(e), skew),
        };
        (self.check_envelope(&body), skew)
    }

    fn signed_headers(&self, ts: i64) -> Result<HeaderMap, ApiError> {
        let creds = &self.inner.creds;
        let sensitive = |s: &str| {
            let mut v = HeaderValue::from_str(s)
                .map_err(|_| ApiError::Build("invalid header value".into()))?;
            v.set_sensitive(true);
            Ok::<_, ApiError>(v)
        };
        let mut h = HeaderMap::with_capacity(4);
        h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_UTF8));
        h.insert("Api-Key", sensitive(creds.api_key())?);
        h.insert("Timestamp", HeaderValue::from(ts));
        h.insert(
            "Sign",
            sensitive(&sign(creds.api_key(), creds.expose_secret(), ts))?,
        );
        Ok(h)
    }

    /// Unix seconds for the `Timestamp` header: the clock plus the skew correction.
    fn timestamp(&self) -> i64 {
        let now = self.inner.clock.now();
        let correction = self.skew_state().correction;
        if correction == 0.0 {
            return now.timestamp();
        }
        (unix_seconds_f64(now) + correction).floor() as i64
    }

    /// Local minus server time from the `Date` header, recorded and reported to the observer.
    /// The header has one-second resolution (truncated), so the server time is taken as the
    /// middle of that second.
    fn measure_skew(&self, headers: &HeaderMap) -> Option<f64> {
        let date = headers.get(DATE)?.to_str().ok()?;
        let server = httpdate::parse_http_date(date).ok()?;
        let server = server.duration_since(UNIX_EPOCH).ok()?.as_secs_f64() + 0.5;
        let local = unix_seconds_f64(self.inner.clock.now());
        let skew = local - server;
        self.inner
            .skew
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last = Some(skew);
        self.inner.observer.on_clock_skew(skew);
        Some(skew)
    }

    /// Parses the envelope; a non-zero status becomes [`ApiError::Vendor`].
    fn check_envelope(&self, body: &[u8]) -> Result<Value, ApiError> {
        let reply: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::decode(format!("reply is not JSON: {e}")))?;
        if !reply.is_object() {
            return Err(ApiError::decode("reply is not a JSON object"));
        }
        let env = Envelope::<Value>::deserialize(&reply)
            .map_err(|e| ApiError::decode(format!("reply is not the envelope: {e}")))?;
        let code = VendorCode::from_status(&env.status);
        if code.is_success() {
            return Ok(reply);
        }
        let creds = &self.inner.creds;
        Err(ApiError::Vendor {
            code,
            reason: sanitize(
                env.reason.as_deref().unwrap_or(""),
                &[creds.expose_secret(), creds.api_key()],
            ),
        })
    }
}

fn rate_limiter(max_rps: f64) -> Option<DefaultDirectRateLimiter> {
    if max_rps <= 0.0 {
        return None;
    }
    let period = Duration::try_from_secs_f64(1.0 / max_rps).ok()?;
    let burst = NonZeroU32::new(max_rps.ceil().clamp(1.0, u32::MAX as f64) as u32)?;
    // A zero period (absurdly high rate) means no limit.
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(RateLimiter::direct(quota))
}

fn unix_seconds_f64(t: chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

fn take_data(reply: &mut Value) -> Value {
    reply
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null)
}

fn parse_record(data: Value) -> Result<Option<OrderRecord>, ApiError> {
    if data.is_null() {
        return Ok(None);
    }
    if !data.is_object() {
        return Err(ApiError::decode("record data is not an object"));
    }
    serde_json::from_value(data)
        .map(Some)
        .map_err(|e| ApiError::decode(format!("record: {e}")))
}

fn not_found_as_none<T>(res: Result<Option<T>, ApiError>) -> Result<Option<T>, ApiError> {
    match res {
        Err(ApiError::Vendor { code, .. }) if code.is_not_found() => Ok(None),
        other => other,
    }
}

async fn read_capped(mut resp: reqwest::Response) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(map_reqwest)? {
        if buf.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::decode("reply body larger than 4 MiB"));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn map_reqwest(e: reqwest::Error) -> ApiError {
    let e = e.without_url();
    if e.is_timeout() {
        ApiError::Timeout
    } else if e.is_connect() {
        ApiError::Connect(sanitize(&error_chain(&e), &[]))
    } else if e.is_builder() {
        ApiError::Build(sanitize(&error_chain(&e), &[]))
    } else {
        ApiError::Transport(sanitize(&error_chain(&e), &[]))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::endpoint::NoopObserver;
    use crate::clock::ManualClock;

    fn client(cfg: ClientConfig) -> Result<Client, ApiError> {
        let clock = Arc::new(ManualClock::new(
            chrono::DateTime::from_timestamp(1_630_468_800, 0).unwrap(),
        ));
        Client::new(
            cfg,
            Credentials::new("bDqJFiq9", "7bz1lzh9"),
            clock,
            Arc::new(NoopObserver),
        )
    }

    #[test]
    fn send_request_debug_hides_phone_number_and_code() {
        let req = SendRequest {
            app_id: "Qw7rT2kZ".into(),
            template_id: Some(812),
            to: "6281234567890".into(),
            code: Some("482913".into()),
            ..Default::default()
        };
        let dbg = format!("{req:?}");
        assert!(!dbg.contains("6281234567890"), "{dbg}");
        assert!(!dbg.contains("482913"), "{dbg}");
        assert!(dbg.contains("Qw7rT2kZ") && dbg.contains("812"), "{dbg}");
    }

    #[test]
    fn send_request_serialises_camel_case_without_nulls() {
        let req = SendRequest {
            app_id: "Qw7rT2kZ".into(),
            flow_id: Some(7),
            to: "6281234567890".into(),
            order_id: Some("ord-1".into()),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({"appId":"Qw7rT2kZ","flowId":7,"to":"6281234567890","orderId":"ord-1"})
        );
    }

    #[test]
    fn config_is_validated() {
        assert!(client(ClientConfig::default()).is_ok());
        let bad = [
            ClientConfig {
                base_url: "ftp://x".into(),
                ..Default::default()
            },
            ClientConfig {
                base_url: "not a url".into(),
                ..Default::default()
            },
            ClientConfig {
                max_attempts: 0,
                ..Default::default()
            },
            ClientConfig {
                max_rps: f64::NAN,
                ..Default::default()
            },
            ClientConfig {
                max_rps: -1.0,
                ..Default::default()
            },
            ClientConfig {
                timeout: Duration::ZERO,
                ..Default::default()
            },
            ClientConfig {
                backoff_min: Duration::from_secs(10),
                ..Default::default()
            },
        ];
        for cfg in bad {
            assert!(
                matches!(client(cfg.clone()), Err(ApiError::Build(_))),
                "{cfg:?}"
            );
        }
    }

    #[test]
    fn client_debug_does_not_show_the_secret() {
        let c = client(ClientConfig::default()).unwrap();
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("7bz1lzh9") && !dbg.contains("bDqJFiq9"),
            "{dbg}"
        );
    }

    #[test]
    fn urls_keep_a_base_path_and_encode_ids() {
        let c = client(ClientConfig {
            base_url: "http://127.0.0.1:9/prefix/".into(),
            ..Default::default()
        })
        .unwrap();
        let call = c
            .call(
                Endpoint::RecordByVerificationId,
                Method::GET,
                &["otp", "verification", "record", "a/b c"],
                None,
            )
            .unwrap();
        assert_eq!(
            call.url.as_str(),
            "http://127.0.0.1:9/prefix/otp/verification/record/a%2Fb%20c"
        );
    }

    #[test]
    fn headers_are_signed_with_the_vendor_test_vector() {
        let c = client(ClientConfig::default()).unwrap();
        let ts = c.timestamp();
        assert_eq!(ts, 1_630_468_800);
        let h = c.signed_headers(ts).unwrap();
        assert_eq!(h["Sign"], "05d7a50893e22a5c4bb3216ae3396c7c");
        assert_eq!(h["Timestamp"], "1630468800");
        assert_eq!(h["Api-Key"], "bDqJFiq9");
        assert_eq!(h[CONTENT_TYPE], JSON_UTF8);
        assert!(h["Sign"].is_sensitive());
    }

    #[test]
    fn rate_limiter_burst_is_at_least_one() {
        assert!(rate_limiter(0.0).is_none());
        let l = rate_limiter(0.5).unwrap();
        assert!(l.check().is_ok());
        assert!(l.check().is_err());
        let l = rate_limiter(2.5).unwrap();
        assert!((0..3).all(|_| l.check().is_ok()));
        assert!(l.check().is_err());
    }
}
