//! Sending and verifying OTPs: what the demo's traffic generator and the tests do through the
//! signed client. The agent itself never sends.
//!
//! None of these calls is resent after an ambiguous failure (timeout, 5xx other than
//! 502/503/429, -18): the first request may have delivered an OTP or consumed a code.

use std::fmt;

use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::client::{take_data, Client};
use super::endpoint::Endpoint;
use super::error::ApiError;
use super::model::{SendResult, VerifyResult};

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
        let hidden = |present: bool| if present { "<redacted>" } else { "None" };
        f.debug_struct("SendRequest")
            .field("app_id", &self.app_id)
            .field("template_id", &self.template_id)
            .field("flow_id", &self.flow_id)
            .field("to", &format_args!("<redacted>"))
            .field("channel", &self.channel)
            .field("order_id", &self.order_id)
            .field("code", &format_args!("{}", hidden(self.code.is_some())))
            .finish()
    }
}

/// Sends and verifies OTPs through a [`Client`].
#[derive(Clone, Debug)]
pub struct OtpSender {
    client: Client,
}

impl OtpSender {
    pub fn new(client: Client) -> Self {
        OtpSender { client }
    }

    /// `POST /otp/verification/sendRule` (the caller supplies `code`).
    pub async fn send_rule(&self, req: &SendRequest) -> Result<SendResult, ApiError> {
        self.send_to(Endpoint::SendRule, "sendRule", req).await
    }

    /// `POST /otp/verification/send` (the platform generates the code).
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
        let call = self.client.call(
            endpoint,
            Method::POST,
            &["otp", "verification", path],
            Some(&body),
        )?;
        self.client
            .execute(call, |mut reply| match take_data(&mut reply) {
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
    /// Success without `data` gives `matched: None`.
    pub async fn verify(
        &self,
        verification_id: &str,
        code: &str,
    ) -> Result<VerifyResult, ApiError> {
        let body = serde_json::json!({ "verificationId": verification_id, "code": code });
        let call = self.client.call(
            Endpoint::Verify,
            Method::POST,
            &["otp", "verification", "verify"],
            Some(&body),
        )?;
        self.client
            .execute(call, |mut reply| {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
