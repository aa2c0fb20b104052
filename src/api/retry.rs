//! When a failed API call is tried again: a pure decision, tested without HTTP.
//!
//! - Transient failures (vendor -18/-15, HTTP 5xx and 429, timeouts, connect errors) are
//!   retried after a jittered exponential backoff, up to `max_attempts` attempts in all.
//! - Sending and verifying are resent only when the request surely never reached the vendor's
//!   application: a resend after an ambiguous failure could deliver a second OTP or consume the
//!   code.
//! - A `-16` (timestamp expired) is retried once, at once, when the same reply's `Date` header
//!   taught the client its clock skew; without that knowledge a retry would fail the same way.
//! - Auth failures, parameter errors and undecodable replies are never retried.

use super::endpoint::Endpoint;
use super::error::ApiError;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Return the error.
    GiveUp,
    /// Retry immediately (the timestamp was corrected).
    RetryNow,
    /// Retry after the next backoff delay.
    Backoff,
}

/// What the client learnt from a failed attempt about its clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SkewRetry {
    /// The reply was a `-16` and its `Date` header corrected the timestamp.
    pub corrected: bool,
    /// The one immediate retry after a correction was already spent on this call.
    pub used: bool,
}

/// The retry rules of one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (≥ 1).
    pub max_attempts: u32,
    /// First backoff delay before jitter.
    pub backoff_min: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
}

impl RetryPolicy {
    /// The first retry waits about 200 ms, doubling up to 5 s: long enough for a brief
    /// vendor hiccup, short enough that a poll round is not held up for long.
    pub const BACKOFF_MIN: Duration = Duration::from_millis(200);
    pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

    /// The production policy with `max_attempts` attempts per call.
    pub fn new(max_attempts: u32) -> Self {
        RetryPolicy {
            max_attempts,
            backoff_min: Self::BACKOFF_MIN,
            backoff_max: Self::BACKOFF_MAX,
        }
    }

    /// Decides after attempt number `attempt` (1-based) of a call to `endpoint` failed with
    /// `err`.
    pub fn decide(
        &self,
        attempt: u32,
        endpoint: Endpoint,
        err: &ApiError,
        skew: SkewRetry,
    ) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        if err.is_timestamp_expired() {
            return if skew.corrected && !skew.used {
                Decision::RetryNow
            } else {
                Decision::GiveUp
            };
        }
        let may_resend = endpoint.is_idempotent() || err.request_surely_not_processed();
        if err.is_retryable() && may_resend {
            Decision::Backoff
        } else {
            Decision::GiveUp
        }
    }

    /// The backoff delays of one call: jittered, doubling, capped at `backoff_max`.
    pub fn delays(&self) -> impl Iterator<Item = Duration> {
        let max = self.backoff_max;
        ExponentialBuilder::default()
            .with_min_delay(self.backoff_min)
            .with_max_delay(max)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build()
            .map(move |d| d.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::VendorCode;

    fn vendor(code: VendorCode) -> ApiError {
        ApiError::vendor(code, "x")
    }

    const NONE: SkewRetry = SkewRetry {
        corrected: false,
        used: false,
    };

    #[test]
    fn transient_failures_back_off_until_attempts_run_out() {
        let p = RetryPolicy::new(3);
        for err in [
            ApiError::Timeout,
            ApiError::Connect("refused".into()),
            ApiError::HttpStatus(503),
            ApiError::HttpStatus(429),
            vendor(VendorCode::ServerError),
            vendor(VendorCode::FrequentQuery),
        ] {
            assert_eq!(
                p.decide(1, Endpoint::RecordByOrderId, &err, NONE),
                Decision::Backoff,
                "{err}"
            );
            assert_eq!(
                p.decide(3, Endpoint::RecordByOrderId, &err, NONE),
                Decision::GiveUp,
                "{err}"
            );
        }
    }

    #[test]
    fn permanent_failures_give_up_at_once() {
        let p = RetryPolicy::new(4);
        for err in [
            vendor(VendorCode::AuthFailed),
            vendor(VendorCode::ParameterError),
            ApiError::decode("not json"),
            ApiError::HttpStatus(404),
        ] {
            assert_eq!(
                p.decide(1, Endpoint::Balance, &err, NONE),
                Decision::GiveUp,
                "{err}"
            );
        }
    }

    #[test]
    fn sends_are_resent_only_when_surely_not_processed() {
        let p = RetryPolicy::new(4);
        for endpoint in [Endpoint::Send, Endpoint::SendRule, Endpoint::Verify] {
            // Ambiguous: the first request may have delivered an OTP.
            for err in [
                ApiError::Timeout,
                ApiError::HttpStatus(500),
                vendor(VendorCode::ServerError),
            ] {
                assert_eq!(p.decide(1, endpoint, &err, NONE), Decision::GiveUp, "{err}");
            }
            for err in [
                ApiError::Connect("refused".into()),
                ApiError::HttpStatus(503),
                ApiError::HttpStatus(429),
                vendor(VendorCode::FrequentQuery),
            ] {
                assert_eq!(
                    p.decide(1, endpoint, &err, NONE),
                    Decision::Backoff,
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn an_expired_timestamp_is_retried_once_and_only_when_corrected() {
        let p = RetryPolicy::new(4);
        let expired = vendor(VendorCode::TimestampExpired);
        let e = Endpoint::FlowList;
        let fresh = SkewRetry {
            corrected: true,
            used: false,
        };
        assert_eq!(p.decide(1, e, &expired, fresh), Decision::RetryNow);
        let spent = SkewRetry {
            corrected: true,
            used: true,
        };
        assert_eq!(p.decide(2, e, &expired, spent), Decision::GiveUp);
        assert_eq!(p.decide(1, e, &expired, NONE), Decision::GiveUp);
        assert_eq!(
            RetryPolicy::new(1).decide(1, e, &expired, fresh),
            Decision::GiveUp
        );
    }

    #[test]
    fn delays_grow_and_stay_within_the_cap() {
        let p = RetryPolicy {
            max_attempts: 10,
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_millis(800),
        };
        let delays: Vec<Duration> = p.delays().take(8).collect();
        assert_eq!(delays.len(), 8);
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        assert!(delays[0] >= Duration::from_millis(100));
        assert_eq!(delays[7], Duration::from_millis(800));
    }
}
