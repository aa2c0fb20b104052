//! The vendor endpoints the agent calls, and the hook through which the client reports each
//! HTTP attempt to the metrics.

use std::fmt;
use std::time::Duration;

/// An API endpoint, as the `endpoint` label of the API metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    FlowList,
    RecordByOrderId,
    RecordByVerificationId,
    Balance,
    SendRule,
    Send,
    Verify,
}

impl Endpoint {
    pub const ALL: [Endpoint; 7] = [
        Endpoint::FlowList,
        Endpoint::RecordByOrderId,
        Endpoint::RecordByVerificationId,
        Endpoint::Balance,
        Endpoint::SendRule,
        Endpoint::Send,
        Endpoint::Verify,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::FlowList => "flow_list",
            Endpoint::RecordByOrderId => "record_by_order_id",
            Endpoint::RecordByVerificationId => "record_by_verification_id",
            Endpoint::Balance => "balance",
            Endpoint::SendRule => "send_rule",
            Endpoint::Send => "send",
            Endpoint::Verify => "verify",
        }
    }

    /// Whether resending after an ambiguous failure (timeout, 5xx, -18) is harmless. Sending is
    /// not (the first request may have delivered an OTP), nor is verifying (the first request
    /// may have consumed the code).
    pub fn is_idempotent(self) -> bool {
        !matches!(self, Endpoint::Send | Endpoint::SendRule | Endpoint::Verify)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Receives one report per HTTP attempt (retries included) and every clock-skew measurement.
/// Implemented by the metrics module; must be cheap and must not block.
pub trait ApiObserver: Send + Sync + 'static {
    /// `status_label`: the vendor code (`"0"`, `"-16"`, …) or a transport class (`timeout`,
    /// `connect`, `http_4xx`, `http_5xx`, `decode`, `other`). `up`: the reply authenticated and
    /// answered (false on auth failures, -16, -18, timeouts, connect errors, HTTP errors and
    /// undecodable replies).
    fn on_request(&self, endpoint: Endpoint, status_label: &str, up: bool, elapsed: Duration);

    /// Local clock minus server clock in seconds, measured from the `Date` header of a reply.
    fn on_clock_skew(&self, seconds: f64);
}

/// An observer that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopObserver;

impl ApiObserver for NoopObserver {
    fn on_request(&self, _: Endpoint, _: &str, _: bool, _: Duration) {}
    fn on_clock_skew(&self, _: f64) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_labels_are_stable_and_unique() {
        let labels: Vec<_> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
        assert_eq!(
            labels,
            [
                "flow_list",
                "record_by_order_id",
                "record_by_verification_id",
                "balance",
                "send_rule",
                "send",
                "verify"
            ]
        );
        assert_eq!(Endpoint::Verify.to_string(), "verify");
        assert!(!Endpoint::Send.is_idempotent());
        assert!(!Endpoint::Verify.is_idempotent());
        assert!(Endpoint::RecordByOrderId.is_idempotent());
    }
}
