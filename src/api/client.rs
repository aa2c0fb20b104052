//! The signed HTTP transport every vendor call goes through.
//!
//! One attempt at a time: wait for the client-side rate limiter, sign afresh (`Timestamp` from
//! the injected clock plus the [`ClockSkew`] correction, `Sign = md5(key + secret +
//! Timestamp)`), send, read the envelope, report the attempt once to the [`ApiObserver`], and let
//! the [`RetryPolicy`] decide what happens after a failure. The endpoint calls themselves live in
//! [`super::records`] (what the agent polls) and [`super::sender`] (what the demo and tests send).
//!
//! Nothing here logs the key, the secret, the sign, phone numbers, URLs or reply bodies.

use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, DATE};
use reqwest::{Method, Url};
use serde::Deserialize;
use serde_json::Value;

use super::credentials::Credentials;
use super::endpoint::{ApiObserver, Endpoint};
use super::error::{sanitize, ApiError};
use super::model::Envelope;
use super::retry::{Decision, RetryPolicy, SkewRetry};
use super::sign::sign;
use super::skew::ClockSkew;
use super::status::VendorCode;
use crate::clock::SharedClock;

/// The largest reply body read; anything longer is a decode error.
const MAX_BODY_BYTES: usize = 4 << 20;
const JSON_UTF8: &str = "application/json;charset=UTF-8";

/// Client settings; the agent builds them from its [`ApiConfig`](crate::config::ApiConfig).
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// Vendor host, e.g. `https://api.itniotech.com`. OTP calls go to `{base}/otp/...`, the
    /// balance to `{base}/sms/getBalance`. A path prefix is kept.
    pub base_url: String,
    /// Per-attempt timeout (connect, request and body).
    pub timeout: Duration,
    /// Client-side request rate limit in requests per second, applied to every attempt; burst
    /// `max(1, ceil(rps))`. `None`: unlimited (the demo's traffic generator).
    pub max_rps: Option<f64>,
    /// When failed attempts are retried.
    pub retry: RetryPolicy,
}

impl From<&crate::config::ApiConfig> for ClientConfig {
    fn from(cfg: &crate::config::ApiConfig) -> Self {
        ClientConfig {
            base_url: cfg.base_url.to_string(),
            timeout: cfg.timeout.get(),
            max_rps: Some(cfg.max_rps.get()),
            retry: RetryPolicy::new(cfg.max_attempts),
        }
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
    retry: RetryPolicy,
    skew: ClockSkew,
}

/// One HTTP call to make, possibly several times.
pub(crate) struct Call {
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
            .field("retry", &self.inner.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Validates the configuration and builds the client. Fails with [`ApiError::Build`] on an
    /// unusable base URL, a zero timeout, a rate that is not a positive finite number,
    /// `max_attempts` 0, a backoff minimum above its maximum, or empty/invalid credentials.
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
        let limiter = match cfg.max_rps {
            None => None,
            Some(rps) if rps.is_finite() && rps > 0.0 => rate_limiter(rps),
            Some(_) => {
                return Err(ApiError::Build(
                    "max_rps must be a finite number above 0 (or no limit)".into(),
                ))
            }
        };
        if cfg.retry.max_attempts == 0 {
            return Err(ApiError::Build("max_attempts must be at least 1".into()));
        }
        if cfg.retry.backoff_min > cfg.retry.backoff_max {
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
                limiter,
                creds,
                clock,
                observer,
                retry: cfg.retry,
                skew: ClockSkew::default(),
            }),
        })
    }

    /// A call to `segments` under the base URL (path segments are percent-encoded).
    pub(crate) fn call(
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

    /// Runs `call` until it succeeds or the retry policy gives up; `parse` turns a successful
    /// (`status` "0") reply into the result.
    pub(crate) async fn execute<T>(
        &self,
        call: Call,
        parse: impl Fn(Value) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let inner = &self.inner;
        let endpoint = call.endpoint;
        let mut delays = inner.retry.delays();
        let mut skew_retry_used = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if let Some(limiter) = &inner.limiter {
                limiter.until_ready().await;
            }
            let started = tokio::time::Instant::now();
            let (raw, measured_skew) = self.attempt(&call).await;
            let outcome = raw.and_then(&parse);
            let (label, up) = match &outcome {
                Ok(_) => ("0".to_string(), true),
                Err(e) => (e.status_label(), e.api_up()),
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
            let corrected = match measured_skew {
                Some(skew) if err.is_timestamp_expired() => {
                    inner.skew.correct(skew);
                    true
                }
                _ => false,
            };
            let skew = SkewRetry {
                corrected,
                used: skew_retry_used,
            };
            match inner.retry.decide(attempt, endpoint, &err, skew) {
                Decision::GiveUp => {
                    tracing::debug!(endpoint = endpoint.as_str(), attempt, status = %label, "API call failed");
                    return Err(err);
                }
                Decision::RetryNow => {
                    skew_retry_used = true;
                    tracing::warn!(
                        endpoint = endpoint.as_str(),
                        attempt,
                        skew_seconds = measured_skew.unwrap_or_default(),
                        "timestamp rejected (-16): corrected by the server's Date header, retrying"
                    );
                }
                Decision::Backoff => {
                    let delay = delays.next().unwrap_or(inner.retry.backoff_max);
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
        self.inner.skew.timestamp(self.inner.clock.now())
    }

    /// Local minus server time from the `Date` header, recorded and reported to the observer.
    fn measure_skew(&self, headers: &HeaderMap) -> Option<f64> {
        let date = headers.get(DATE)?.to_str().ok()?;
        let skew = self.inner.skew.measure(date, self.inner.clock.now())?;
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
    let period = Duration::try_from_secs_f64(1.0 / max_rps).ok()?;
    let burst = NonZeroU32::new(max_rps.ceil().clamp(1.0, u32::MAX as f64) as u32)?;
    // A zero period (absurdly high rate) means no limit.
    let quota = Quota::with_period(period)?.allow_burst(burst);
    Some(RateLimiter::direct(quota))
}

/// The `data` of a reply, taken out (null when absent).
pub(crate) fn take_data(reply: &mut Value) -> Value {
    reply
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null)
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

    fn cfg() -> ClientConfig {
        ClientConfig {
            base_url: "https://api.itniotech.com".into(),
            timeout: Duration::from_secs(10),
            max_rps: Some(10.0),
            retry: RetryPolicy::new(4),
        }
    }

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
    fn config_is_validated() {
        assert!(client(cfg()).is_ok());
        assert!(client(ClientConfig {
            max_rps: None,
            ..cfg()
        })
        .is_ok());
        let bad = [
            ClientConfig {
                base_url: "ftp://x".into(),
                ..cfg()
            },
            ClientConfig {
                base_url: "not a url".into(),
                ..cfg()
            },
            ClientConfig {
                retry: RetryPolicy::new(0),
                ..cfg()
            },
            ClientConfig {
                max_rps: Some(f64::NAN),
                ..cfg()
            },
            ClientConfig {
                max_rps: Some(0.0),
                ..cfg()
            },
            ClientConfig {
                max_rps: Some(-1.0),
                ..cfg()
            },
            ClientConfig {
                timeout: Duration::ZERO,
                ..cfg()
            },
            ClientConfig {
                retry: RetryPolicy {
                    backoff_min: Duration::from_secs(10),
                    ..RetryPolicy::new(4)
                },
                ..cfg()
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
        let c = client(cfg()).unwrap();
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
            ..cfg()
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
        let c = client(cfg()).unwrap();
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
        let l = rate_limiter(0.5).unwrap();
        assert!(l.check().is_ok());
        assert!(l.check().is_err());
        let l = rate_limiter(2.5).unwrap();
        assert!((0..3).all(|_| l.check().is_ok()));
        assert!(l.check().is_err());
    }
}
