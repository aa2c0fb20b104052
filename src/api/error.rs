//! Errors of the API client and their metric labels.

use super::status::VendorCode;

/// Longest free text kept in an error (vendor reason, decode detail, transport message).
pub const MAX_TEXT_CHARS: usize = 200;

/// A failed API call.
///
/// Texts carried here are sanitised: capped at [`MAX_TEXT_CHARS`], control characters replaced,
/// long digit runs (phone numbers) masked, and the client's key and secret never included.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The vendor answered with a non-zero `status`.
    #[error("vendor status {code}: {reason}")]
    Vendor { code: VendorCode, reason: String },
    /// The request or the reply body timed out.
    #[error("request timed out")]
    Timeout,
    /// The connection could not be established (DNS, refused, TLS handshake).
    #[error("connection failed: {0}")]
    Connect(String),
    /// An HTTP status other than 200.
    #[error("unexpected HTTP status {0}")]
    HttpStatus(u16),
    /// The reply is not JSON, not the envelope, or its `data` has the wrong shape.
    #[error("undecodable reply: {0}")]
    Decode(String),
    /// Invalid client configuration.
    #[error("invalid API client configuration: {0}")]
    Build(String),
    /// Any other transport failure (connection reset mid-body, protocol error, …).
    #[error("transport error: {0}")]
    Transport(String),
}

impl ApiError {
    /// A vendor error with a sanitised reason.
    pub fn vendor(code: VendorCode, reason: &str) -> Self {
        ApiError::Vendor {
            code,
            reason: sanitize(reason, &[]),
        }
    }

    /// A decode error with a sanitised detail.
    pub fn decode(detail: impl AsRef<str>) -> Self {
        ApiError::Decode(sanitize(detail.as_ref(), &[]))
    }

    /// The `status` label of `itniotech_api_requests_total`: the vendor code (`"-16"`; unknown
    /// non-numeric codes become `"other"`) or the transport class `timeout`, `connect`,
    /// `http_4xx`, `http_5xx`, `decode`, `other`.
    pub fn status_label(&self) -> String {
        match self {
            ApiError::Vendor { code, .. } => code.label(),
            ApiError::Timeout => "timeout".into(),
            ApiError::Connect(_) => "connect".into(),
            ApiError::HttpStatus(s) if (400..500).contains(s) => "http_4xx".into(),
            ApiError::HttpStatus(s) if (500..600).contains(s) => "http_5xx".into(),
            ApiError::HttpStatus(_) => "other".into(),
            ApiError::Decode(_) => "decode".into(),
            ApiError::Build(_) | ApiError::Transport(_) => "other".into(),
        }
    }

    /// Worth retrying after a backoff: vendor -18/-15, HTTP 5xx and 429, timeouts, connect
    /// errors. Never auth failures, -22 or other vendor codes, decode or config errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Vendor { code, .. } => code.is_retryable(),
            ApiError::Timeout | ApiError::Connect(_) => true,
            ApiError::HttpStatus(s) => *s == 429 || (500..600).contains(s),
            ApiError::Decode(_) | ApiError::Build(_) | ApiError::Transport(_) => false,
        }
    }

    /// Whether a request that failed this way surely never reached the vendor's application,
    /// so resending a non-idempotent call (send) cannot deliver a second OTP.
    pub fn request_surely_not_processed(&self) -> bool {
        match self {
            ApiError::Connect(_) => true,
            ApiError::HttpStatus(s) => matches!(s, 429 | 502 | 503),
            ApiError::Vendor { code, .. } => *code == VendorCode::FrequentQuery,
            _ => false,
        }
    }

    /// The vendor rejected the credentials or the caller (-1, -2, -30, -31, -32).
    pub fn is_auth_failure(&self) -> bool {
        matches!(self, ApiError::Vendor { code, .. } if code.is_auth_failure())
    }

    /// `-16`: the request timestamp was outside the vendor's window.
    pub fn is_timestamp_expired(&self) -> bool {
        matches!(
            self,
            ApiError::Vendor {
                code: VendorCode::TimestampExpired,
                ..
            }
        )
    }

    /// Whether the attempt that produced this error still shows an authenticated, answering API
    /// (`itniotech_up`): true for ordinary vendor business errors (-22, -24, -28, …), false for
    /// auth failures, -16, -18 and every transport, HTTP or decode failure.
    pub fn api_up(&self) -> bool {
        match self {
            ApiError::Vendor { code, .. } => {
                !(code.is_auth_failure()
                    || matches!(code, VendorCode::TimestampExpired | VendorCode::ServerError))
            }
            _ => false,
        }
    }
}

/// Makes free text safe to keep in an error or a log line: removes each non-empty `secret`,
/// masks digit runs of 7 or more (phone numbers), replaces control characters and caps the
/// length at [`MAX_TEXT_CHARS`] characters.
pub fn sanitize(text: &str, secrets: &[&str]) -> String {
    let mut s = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        if s.contains(secret) {
            s = s.replace(secret, "<redacted>");
        }
    }
    let mut out = String::with_capacity(s.len().min(MAX_TEXT_CHARS + 8));
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut String| {
        if digits.chars().count() >= 7 {
            out.push_str("<number>");
        } else {
            out.push_str(digits);
        }
        digits.clear();
    };
    for c in s.chars().take(MAX_TEXT_CHARS) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        flush(&mut digits, &mut out);
        out.push(if c.is_control() { ' ' } else { c });
    }
    flush(&mut digits, &mut out);
    if s.chars().count() > MAX_TEXT_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_vendor_code_or_the_transport_class() {
        let v = |s: &str| ApiError::vendor(VendorCode::from_status(s), "x");
        assert_eq!(v("-16").status_label(), "-16");
        assert_eq!(v("-1").status_label(), "-1");
        assert_eq!(v("-77").status_label(), "-77");
        assert_eq!(v("weird text").status_label(), "other");
        assert_eq!(ApiError::Timeout.status_label(), "timeout");
        assert_eq!(
            ApiError::Connect("refused".into()).status_label(),
            "connect"
        );
        assert_eq!(ApiError::HttpStatus(404).status_label(), "http_4xx");
        assert_eq!(ApiError::HttpStatus(429).status_label(), "http_4xx");
        assert_eq!(ApiError::HttpStatus(503).status_label(), "http_5xx");
        assert_eq!(ApiError::HttpStatus(302).status_label(), "other");
        assert_eq!(ApiError::decode("eof").status_label(), "decode");
        assert_eq!(ApiError::Build("bad url".into()).status_label(), "other");
        assert_eq!(ApiError::Transport("reset".into()).status_label(), "other");
    }

    #[test]
    fn only_transient_failures_are_retryable() {
        let v = |c: VendorCode| ApiError::vendor(c, "");
        assert!(v(VendorCode::ServerError).is_retryable());
        assert!(v(VendorCode::FrequentQuery).is_retryable());
        assert!(!v(VendorCode::AuthFailed).is_retryable());
        assert!(!v(VendorCode::IpNotAllowed).is_retryable());
        assert!(!v(VendorCode::ParameterError).is_retryable());
        assert!(!v(VendorCode::TimestampExpired).is_retryable());
        assert!(!v(VendorCode::Unknown("-99".into())).is_retryable());
        assert!(ApiError::Timeout.is_retryable());
        assert!(ApiError::Connect(String::new()).is_retryable());
        assert!(ApiError::HttpStatus(503).is_retryable());
        assert!(ApiError::HttpStatus(429).is_retryable());
        assert!(!ApiError::HttpStatus(404).is_retryable());
        assert!(!ApiError::decode("x").is_retryable());
    }

    #[test]
    fn up_is_false_for_auth_clock_server_and_transport_failures() {
        let v = |c: VendorCode| ApiError::vendor(c, "");
        assert!(v(VendorCode::NotExist).api_up());
        assert!(v(VendorCode::PeriodPhoneSendLimit).api_up());
        assert!(!v(VendorCode::AuthFailed).api_up());
        assert!(!v(VendorCode::NoPermission).api_up());
        assert!(!v(VendorCode::TimestampExpired).api_up());
        assert!(!v(VendorCode::ServerError).api_up());
        assert!(!ApiError::Timeout.api_up());
        assert!(!ApiError::HttpStatus(500).api_up());
        assert!(!ApiError::decode("x").api_up());
    }

    #[test]
    fn sanitize_caps_masks_numbers_and_removes_secrets() {
        let long = "x".repeat(1000);
        let s = sanitize(&long, &[]);
        assert_eq!(s.chars().count(), MAX_TEXT_CHARS + 1);
        assert_eq!(
            sanitize("bad number 6281234567890 (code 1234)\n", &[]),
            "bad number <number> (code 1234) "
        );
        assert_eq!(
            sanitize(
                "key bDqJFiq9 secret 7bz1lzh9",
                &["bDqJFiq9", "7bz1lzh9", ""]
            ),
            "key <redacted> secret <redacted>"
        );
        let e = ApiError::vendor(VendorCode::MalformedNumber, "to=6281234567890");
        assert_eq!(e.to_string(), "vendor status -9: to=<number>");
    }
}
