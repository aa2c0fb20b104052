//! The vocabulary every stage shares: how an order is identified, what the intake hands the
//! tracker, and the channels an OTP travels on.
//!
//! This is the lowest layer: it depends on nothing else in the crate, so the store, the intake,
//! the accounting and the metrics can all speak of an [`OrderKey`] or a [`Channel`] without
//! depending on each other.

use chrono::{DateTime, Utc};
use std::fmt;

/// The identity of an order on the platform: how its record is fetched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OrderKey {
    /// Fetched with `POST /verification/orderId/record`.
    Order { app_id: String, order_id: String },
    /// Fetched with `GET /verification/record/{verificationId}`.
    Verification { verification_id: String },
}

impl OrderKey {
    /// The `app_id` label of the order's metrics: orders known only by their verificationId
    /// carry no app, hence `unknown`.
    pub fn app_id(&self) -> &str {
        match self {
            OrderKey::Order { app_id, .. } => app_id,
            OrderKey::Verification { .. } => "unknown",
        }
    }

    /// Stable text form, used as the store's primary key and for sampling:
    /// `o:<appId>:<orderId>` (an appId has no `:`) or `v:<verificationId>`.
    pub fn to_key_string(&self) -> String {
        match self {
            OrderKey::Order { app_id, order_id } => format!("o:{app_id}:{order_id}"),
            OrderKey::Verification { verification_id } => format!("v:{verification_id}"),
        }
    }

    /// Parses [`OrderKey::to_key_string`]'s form.
    pub fn from_key_string(s: &str) -> Option<OrderKey> {
        if let Some(rest) = s.strip_prefix("o:") {
            let (app_id, order_id) = rest.split_once(':')?;
            return Some(OrderKey::Order {
                app_id: app_id.into(),
                order_id: order_id.into(),
            });
        }
        s.strip_prefix("v:").map(|v| OrderKey::Verification {
            verification_id: v.into(),
        })
    }
}

/// One validated order from the intake, on its way to the tracker.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub key: OrderKey,
    /// The task flow the order was sent with, when the caller knows it.
    pub flow_id: Option<i64>,
    /// When the caller submitted the order to the platform, when known.
    pub submitted_at: Option<DateTime<Utc>>,
}

/// What the tracker did with a batch of orders; returned to the HTTP client as JSON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EnqueueReport {
    /// Newly tracked orders.
    pub accepted: usize,
    /// Orders already tracked (acknowledged, not tracked twice).
    pub duplicates: usize,
    /// Orders left out by sampling.
    pub sampled_out: usize,
}

/// The channel an OTP attempt travels on, as the vendor names it and as the `channel` labels
/// show it. Serialised in the vendor's spelling (the store keeps it in order state).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Sms,
    Call,
    /// Silent network authentication; never part of a task flow.
    Sna,
}

impl Channel {
    pub const ALL: [Channel; 3] = [Channel::Sms, Channel::Call, Channel::Sna];

    /// The vendor's spelling, which is also the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Call => "call",
            Channel::Sna => "sna",
        }
    }

    /// Decodes the vendor's spelling (case-insensitive, surrounding spaces ignored).
    pub fn parse(s: &str) -> Option<Channel> {
        let s = s.trim();
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_even_with_colons_in_order_ids() {
        for k in [
            OrderKey::Order {
                app_id: "app1".into(),
                order_id: "a:b:c".into(),
            },
            OrderKey::Verification {
                verification_id: "24051409123310000417".into(),
            },
        ] {
            assert_eq!(OrderKey::from_key_string(&k.to_key_string()), Some(k));
        }
        assert_eq!(OrderKey::from_key_string("x:1"), None);
        assert_eq!(OrderKey::from_key_string("o:no-colon"), None);
    }

    #[test]
    fn channels_decode_the_vendor_spelling() {
        assert_eq!(Channel::parse(" SMS "), Some(Channel::Sms));
        assert_eq!(Channel::parse("call"), Some(Channel::Call));
        assert_eq!(Channel::parse("sna"), Some(Channel::Sna));
        assert_eq!(Channel::parse("fax"), None);
        assert_eq!(Channel::Call.to_string(), "call");
    }
}
