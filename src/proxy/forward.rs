//! Forwarding: the request to the vendor as the app sent it, the reply back as the vendor sent
//! it. Only hop-by-hop headers (RFC 9110 §7.6.1), which describe one connection and not the
//! message, are left out; `Host` names the vendor.

use super::{ProxyState, MAX_CAPTURED_REPLY_BYTES};
use axum::body::{Body, Bytes};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use std::time::Instant;

/// The vendor endpoint of a proxied path, for the proxy's metric labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProxyEndpoint {
    Send,
    SendRule,
    Resend,
    Verify,
    RecordByVerificationId,
    RecordByOrderId,
    Flow,
    App,
    Template,
    Backfill,
    Balance,
    /// Anything else (a bounded label for unknown paths).
    Other,
}

impl ProxyEndpoint {
    pub const ALL: [ProxyEndpoint; 12] = [
        ProxyEndpoint::Send,
        ProxyEndpoint::SendRule,
        ProxyEndpoint::Resend,
        ProxyEndpoint::Verify,
        ProxyEndpoint::RecordByVerificationId,
        ProxyEndpoint::RecordByOrderId,
        ProxyEndpoint::Flow,
        ProxyEndpoint::App,
        ProxyEndpoint::Template,
        ProxyEndpoint::Backfill,
        ProxyEndpoint::Balance,
        ProxyEndpoint::Other,
    ];

    /// The endpoint of `path` (relative to the vendor's base URL).
    pub fn of(path: &str) -> ProxyEndpoint {
        let p = path.trim_end_matches('/');
        match p {
            "/otp/verification/send" => ProxyEndpoint::Send,
            "/otp/verification/sendRule" => ProxyEndpoint::SendRule,
            "/otp/verification/resend" => ProxyEndpoint::Resend,
            "/otp/verification/verify" => ProxyEndpoint::Verify,
            "/otp/verification/orderId/record" => ProxyEndpoint::RecordByOrderId,
            "/otp/backfillRate" | "/otp/postback/backfill" => ProxyEndpoint::Backfill,
            "/sms/getBalance" => ProxyEndpoint::Balance,
            _ if p.starts_with("/otp/verification/record/") => {
                ProxyEndpoint::RecordByVerificationId
            }
            _ if p.starts_with("/otp/flow/") => ProxyEndpoint::Flow,
            _ if p.starts_with("/otp/app/") => ProxyEndpoint::App,
            _ if p.starts_with("/otp/template/") => ProxyEndpoint::Template,
            _ => ProxyEndpoint::Other,
        }
    }

    /// The `api_endpoint` label (the client's names where the client calls the same endpoint).
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyEndpoint::Send => "send",
            ProxyEndpoint::SendRule => "send_rule",
            ProxyEndpoint::Resend => "resend",
            ProxyEndpoint::Verify => "verify",
            ProxyEndpoint::RecordByVerificationId => "record_by_verification_id",
            ProxyEndpoint::RecordByOrderId => "record_by_order_id",
            ProxyEndpoint::Flow => "flow",
            ProxyEndpoint::App => "app",
            ProxyEndpoint::Template => "template",
            ProxyEndpoint::Backfill => "backfill",
            ProxyEndpoint::Balance => "balance",
            ProxyEndpoint::Other => "other",
        }
    }
}

/// Why the vendor could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    Connect,
    Timeout,
    Tls,
    Other,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 4] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Tls,
        UpstreamErrorKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Tls => "tls",
            UpstreamErrorKind::Other => "other",
        }
    }

    fn of(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return UpstreamErrorKind::Timeout;
        }
        let chain = {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s.to_ascii_lowercase()
        };
        if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake") {
            UpstreamErrorKind::Tls
        } else if e.is_connect() {
            UpstreamErrorKind::Connect
        } else {
            UpstreamErrorKind::Other
        }
    }
}

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `headers` without the hop-by-hop ones (and those the `Connection` header names).
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if HOP_BY_HOP.contains(name) || named.iter().any(|n| n == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The upstream's reply, or why there is none; with when the forward started.
pub(super) struct Upstream {
    pub started: Instant,
    pub result: Result<reqwest::Response, UpstreamErrorKind>,
}

/// Sends the app's request to the vendor.
pub(super) async fn send(st: &ProxyState, parts: &Parts, body: Bytes) -> Upstream {
    let mut url = st.upstream.clone();
    let base = st.upstream.path().trim_end_matches('/');
    url.set_path(&format!("{base}{}", parts.uri.path()));
    url.set_query(parts.uri.query());
    let mut headers = end_to_end(&parts.headers);
    headers.remove(header::HOST);
    let started = Instant::now();
    let result = st
        .http
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(|e| UpstreamErrorKind::of(&e));
    Upstream { started, result }
}

/// The reply as the vendor sent it, streamed back as it arrives.
pub(super) fn stream_back(st: &ProxyState, resp: reqwest::Response) -> Response {
    let status = resp.status();
    let headers = end_to_end(resp.headers());
    let metrics = st.metrics.clone();
    let stream = resp.bytes_stream().inspect_ok(move |chunk| {
        metrics.proxy_bytes_out(chunk.len());
    });
    respond(status, headers, Body::from_stream(stream))
}

/// The whole reply, for the calls the proxy captures.
pub(super) async fn read_back(
    mut resp: reqwest::Response,
) -> Result<(StatusCode, HeaderMap, Bytes), UpstreamErrorKind> {
    let status = resp.status();
    let headers = end_to_end(resp.headers());
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| UpstreamErrorKind::of(&e))? {
        if buf.len() + chunk.len() > MAX_CAPTURED_REPLY_BYTES {
            return Err(UpstreamErrorKind::Other);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok((status, headers, Bytes::from(buf)))
}

pub(super) fn respond(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// What the app sees when the vendor cannot be reached: a gateway error, as from any proxy.
pub(super) fn bad_gateway() -> Response {
    (
        StatusCode::BAD_GATEWAY,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "the itniotech API could not be reached through the proxy",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert("Api-Key", HeaderValue::from_static("k"));
        h.insert("Sign", HeaderValue::from_static("s"));
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Hop"),
        );
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let out = end_to_end(&h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["api-key", "sign", "content-type"]);
    }

    #[test]
    fn paths_map_to_bounded_endpoint_labels() {
        for (path, want) in [
            ("/otp/verification/sendRule", "send_rule"),
            ("/otp/verification/record/2405", "record_by_verification_id"),
            ("/otp/flow/update/7", "flow"),
            ("/sms/getBalance", "balance"),
            ("/anything/else", "other"),
        ] {
            assert_eq!(ProxyEndpoint::of(path).as_str(), want, "{path}");
        }
    }
}
