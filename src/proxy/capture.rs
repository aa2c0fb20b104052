//! What the capture proxy learns from the vendor calls it forwards: pure parsing of the send and
//! verify requests and replies, tested without HTTP.
//!
//! The destination number (`to`) is read only to derive its country; it is never kept.

use crate::api::model::{Channel, Matched, SendResult, VerifyResult};
use crate::api::VendorCode;
use crate::country;
use crate::domain::OrderKey;
use serde_json::Value;

/// The vendor calls the proxy looks into; everything else is only forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Captured {
    /// `POST /otp/verification/send`.
    Send,
    /// `POST /otp/verification/sendRule`.
    SendRule,
    /// `POST /otp/verification/resend`: a new verificationId for an existing order.
    Resend,
    /// `POST /otp/verification/verify`.
    Verify,
}

impl Captured {
    /// The call `method path` is, when it is one the proxy captures. `path` is relative to the
    /// vendor's base URL (the proxy's own path prefix already removed).
    pub fn of(method: &axum::http::Method, path: &str) -> Option<Captured> {
        if method != axum::http::Method::POST {
            return None;
        }
        match path.trim_end_matches('/') {
            "/otp/verification/send" => Some(Captured::Send),
            "/otp/verification/sendRule" => Some(Captured::SendRule),
            "/otp/verification/resend" => Some(Captured::Resend),
            "/otp/verification/verify" => Some(Captured::Verify),
            _ => None,
        }
    }
}

/// A send request as far as monitoring cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendRequestInfo {
    pub app_id: Option<String>,
    pub order_id: Option<String>,
    pub flow_id: Option<i64>,
    /// `sms` when absent (the vendor's default).
    pub channel: Channel,
    /// From the destination's calling code; `unknown` when absent or unrecognised.
    pub country: String,
    /// The verificationId a resend refers to.
    pub resent_verification_id: Option<String>,
}

/// Reads a send/sendRule/resend body. `None` when it is not a JSON object (the vendor will
/// reject it; the proxy only forwards).
pub fn send_request(kind: Captured, body: &[u8]) -> Option<SendRequestInfo> {
    let Value::Object(obj) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let text = |k: &str| {
        obj.get(k).and_then(|v| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let channel = match text("channel") {
        None => Channel::Sms,
        Some(c) => Channel::parse(&c).unwrap_or(Channel::Sms),
    };
    let country = match text("to") {
        Some(to) => country::from_number(&to),
        None => country::UNKNOWN.to_string(),
    };
    Some(SendRequestInfo {
        app_id: text("appId").filter(|_| kind != Captured::Resend),
        order_id: text("orderId").filter(|_| kind != Captured::Resend),
        flow_id: text("flowId").and_then(|f| f.parse().ok()),
        channel,
        country,
        resent_verification_id: text("verificationId").filter(|_| kind == Captured::Resend),
    })
}

/// The vendor's verdict on a call: its status label (`"0"`, `"-28"`, …, as in
/// `itniotech_api_requests_total`) and the reply's `data`, when the reply is the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct VendorReply {
    pub status: String,
    pub data: Value,
}

/// Reads a vendor reply body; `None` when it is not the envelope.
pub fn vendor_reply(body: &[u8]) -> Option<VendorReply> {
    let Value::Object(mut obj) = serde_json::from_slice::<Value>(body).ok()? else {
        return None;
    };
    let status = match obj.get("status")? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    Some(VendorReply {
        status: VendorCode::from_status(&status).label(),
        data: obj.remove("data").unwrap_or(Value::Null),
    })
}

impl VendorReply {
    pub fn is_success(&self) -> bool {
        self.status == "0"
    }

    /// The verificationId a successful send/resend reply carries.
    pub fn verification_id(&self) -> Option<String> {
        serde_json::from_value::<SendResult>(self.data.clone())
            .ok()
            .map(|r| r.verification_id)
            .filter(|v| !v.is_empty())
    }

    /// The `matched` a successful verify reply carries.
    pub fn matched(&self) -> Option<Matched> {
        serde_json::from_value::<VerifyResult>(self.data.clone())
            .ok()
            .and_then(|r| r.matched)
    }
}

/// The keys of an order sent through the proxy: `(appId, orderId)` when the app gave an
/// orderId (its record is then fetched by it), else the verificationId; and the other key when
/// both are known, as an alias of the same order.
pub fn order_keys(
    info: &SendRequestInfo,
    verification_id: Option<String>,
) -> Option<(OrderKey, Option<OrderKey>)> {
    let by_vid = verification_id.map(|verification_id| OrderKey::Verification { verification_id });
    match (&info.app_id, &info.order_id) {
        (Some(app_id), Some(order_id)) => Some((
            OrderKey::Order {
                app_id: app_id.clone(),
                order_id: order_id.clone(),
            },
            by_vid,
        )),
        _ => by_vid.map(|k| (k, None)),
    }
}

/// The verificationId a verify request names.
pub fn verify_request(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    match v.get("verificationId")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_send_and_verify_calls_are_captured() {
        let post = axum::http::Method::POST;
        assert_eq!(
            Captured::of(&post, "/otp/verification/send"),
            Some(Captured::Send)
        );
        assert_eq!(
            Captured::of(&post, "/otp/verification/sendRule/"),
            Some(Captured::SendRule)
        );
        assert_eq!(
            Captured::of(&post, "/otp/verification/verify"),
            Some(Captured::Verify)
        );
        assert_eq!(
            Captured::of(&post, "/otp/verification/orderId/record"),
            None
        );
        assert_eq!(
            Captured::of(&axum::http::Method::GET, "/otp/verification/send"),
            None
        );
    }

    #[test]
    fn a_send_keeps_the_country_and_never_the_number() {
        let body = br#"{"appId":"Qw7rT2kZ","templateId":812,"flowId":7,"to":"6281234567890","orderId":"o-1","code":"4821"}"#;
        let info = send_request(Captured::SendRule, body).unwrap();
        assert_eq!(
            info,
            SendRequestInfo {
                app_id: Some("Qw7rT2kZ".into()),
                order_id: Some("o-1".into()),
                flow_id: Some(7),
                channel: Channel::Sms,
                country: "ID".into(),
                resent_verification_id: None,
            }
        );
        assert!(!format!("{info:?}").contains("6281234567890"));
        let call = send_request(
            Captured::Send,
            br#"{"appId":"a","to":"919876543210","channel":"call"}"#,
        )
        .unwrap();
        assert_eq!((call.channel, call.country.as_str()), (Channel::Call, "IN"));
        assert_eq!(send_request(Captured::Send, b"not json"), None);
        assert_eq!(send_request(Captured::Send, b"[1]"), None);
    }

    #[test]
    fn keys_prefer_the_order_id_and_keep_the_verification_id_as_alias() {
        let info = send_request(
            Captured::SendRule,
            br#"{"appId":"app1","orderId":"o-1","to":"6281234567890"}"#,
        )
        .unwrap();
        let (key, alias) = order_keys(&info, Some("2405".into())).unwrap();
        assert_eq!(
            key,
            OrderKey::Order {
                app_id: "app1".into(),
                order_id: "o-1".into()
            }
        );
        assert_eq!(
            alias,
            Some(OrderKey::Verification {
                verification_id: "2405".into()
            })
        );
        let no_order_id =
            send_request(Captured::Send, br#"{"appId":"app1","to":"6281234567890"}"#).unwrap();
        assert_eq!(
            order_keys(&no_order_id, Some("2405".into())),
            Some((
                OrderKey::Verification {
                    verification_id: "2405".into()
                },
                None
            ))
        );
        assert_eq!(order_keys(&no_order_id, None), None);
    }

    #[test]
    fn vendor_replies_give_status_and_data() {
        let ok = vendor_reply(br#"{"status":"0","reason":"success","data":{"verificationId":"2405","to":"62812","channel":"sms"}}"#).unwrap();
        assert!(ok.is_success());
        assert_eq!(ok.verification_id().as_deref(), Some("2405"));
        let limited =
            vendor_reply(br#"{"status":"-28","reason":"Period phone send limit"}"#).unwrap();
        assert_eq!(limited.status, "-28");
        assert!(!limited.is_success());
        assert_eq!(limited.verification_id(), None);
        let verified =
            vendor_reply(br#"{"status":"0","data":{"verificationId":"2405","matched":0}}"#)
                .unwrap();
        assert_eq!(verified.matched(), Some(Matched::Verified));
        assert_eq!(vendor_reply(b"<html>"), None);
        assert_eq!(
            verify_request(br#"{"verificationId":"2405","code":"1"}"#).as_deref(),
            Some("2405")
        );
    }
}
