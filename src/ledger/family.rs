//! The ledger's families: their exposed names, help, label sets and buckets, and the typed
//! [`Update`] through which accounting increments them.
//!
//! Each family has one label struct whose field names are the label names, so a label set is
//! written `OrderLabels { app_id, flow_id, country, outcome }` and a missing or misplaced label
//! is a compile error. Closed label sets (outcomes, results, statuses) are enums whose variants
//! also give the sibling series a family is initialised with.

use crate::domain::Channel;
use serde::{Deserialize, Serialize};

/// Histogram bucket bounds, each fitted to its quantity.
const SMS_DELIVERY_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
const SMS_QUEUE_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];
const CALL_ANSWER_BUCKETS: &[f64] = &[2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0];
const CALL_DURATION_BUCKETS: &[f64] = &[5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0];
const ORDER_DELIVERY_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0,
];
const ORDER_VERIFICATION_BUCKETS: &[f64] = &[
    5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0,
];

/// A value that can stand in a label.
pub trait LabelValue {
    fn into_label(self) -> String;
}

impl LabelValue for String {
    fn into_label(self) -> String {
        self
    }
}

impl LabelValue for Channel {
    fn into_label(self) -> String {
        self.as_str().to_owned()
    }
}

/// A closed set of label values: the enum, its `ALL` variants, their `LABELS` and `as_str`.
macro_rules! label_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vm])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            /// The label values, in the order of [`Self::ALL`].
            pub const LABELS: &'static [&'static str] = &[$($label),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $crate::ledger::family::LabelValue for $name {
            fn into_label(self) -> String {
                self.as_str().to_owned()
            }
        }
    };
}
pub(crate) use label_enum;

/// A label set: a struct whose field names are the label names, in exposition order.
macro_rules! label_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name {
            $($(#[$fm])* pub $field: $ty),+
        }

        impl $name {
            /// The label names, in exposition order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),+];

            fn values(&self) -> Vec<String> {
                vec![$(LabelValue::into_label(self.$field.clone())),+]
            }
        }
    };
}

label_enum! {
    /// How a finalised order ended.
    OrderOutcome {
        /// An attempt delivered or the code was verified.
        Delivered => "delivered",
        /// Every attempt failed and nothing was verified.
        Failed => "failed",
        /// Undetermined when tracking ended (max age).
        Unresolved => "unresolved",
        /// The record never appeared.
        NotFound => "not_found",
    }
}

label_enum! {
    /// The verification result of a finalised order.
    VerificationResult {
        Verified => "verified",
        NotVerified => "not_verified",
        /// Wrong code, window closed.
        Failed => "failed",
        /// The platform did not know the verificationId.
        Unknown => "unknown",
    }
}

label_enum! {
    /// A terminal SMS attempt's status.
    SmsStatus {
        Delivered => "delivered",
        Failed => "failed",
    }
}

label_struct! {
    /// `itniotech_otp_orders_total`.
    OrderLabels { app_id: String, flow_id: String, country: String, outcome: OrderOutcome }
}
label_struct! {
    /// `itniotech_otp_verifications_total`.
    VerificationLabels {
        app_id: String,
        flow_id: String,
        country: String,
        channel: Channel,
        result: VerificationResult,
    }
}
label_struct! {
    /// `itniotech_otp_fallbacks_total`.
    FallbackLabels { app_id: String, flow_id: String, from_channel: Channel, to_channel: Channel }
}
label_struct! {
    /// `itniotech_otp_fallback_rescues_total`.
    RescueLabels { app_id: String, flow_id: String, to_channel: Channel }
}
label_struct! {
    /// `itniotech_otp_sms_total`.
    SmsLabels { app_id: String, country: String, mnc: String, status: SmsStatus }
}
label_struct! {
    /// `itniotech_otp_sms_failures_total`; `reason` is raw vendor text, normalised and capped
    /// by the ledger.
    SmsFailureLabels { app_id: String, country: String, reason: String }
}
label_struct! {
    /// `itniotech_otp_sms_delivery_seconds`.
    SmsDeliveryLabels { app_id: String, country: String, status: SmsStatus }
}
label_struct! {
    /// The families labelled by app and country only.
    AppCountryLabels { app_id: String, country: String }
}
label_struct! {
    /// `itniotech_otp_calls_total`; `termination_reason` is raw vendor text, normalised and
    /// capped by the ledger.
    CallLabels {
        app_id: String,
        country: String,
        termination_code: String,
        termination_reason: String,
    }
}
label_struct! {
    /// `itniotech_otp_cost_total`.
    CostLabels { app_id: String, channel: Channel, country: String, currency: String }
}
label_struct! {
    /// `itniotech_otp_send_requests_total`: send calls the capture proxy forwarded, by the
    /// vendor's answer (`"0"`, or a code such as the `-27`/`-28` send limits).
    SendRequestLabels { app_id: String, channel: Channel, country: String, status: String }
}
label_struct! {
    /// `itniotech_otp_order_delivery_seconds`.
    AppFlowLabels { app_id: String, flow_id: String }
}
label_struct! {
    /// `itniotech_otp_order_verification_seconds`.
    OrderVerificationLabels { app_id: String, flow_id: String, channel: Channel }
}

/// A family of the ledger (the persisted OTP metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LedgerFamily {
    Orders,
    Verifications,
    Fallbacks,
    FallbackRescues,
    Sms,
    SmsFailures,
    SmsDeliverySeconds,
    SmsQueueSeconds,
    SmsSegments,
    Calls,
    CallAnswerSeconds,
    CallDurationSeconds,
    CallBilledSeconds,
    Cost,
    OrderDeliverySeconds,
    OrderVerificationSeconds,
    SendRequests,
}

/// Static description of a ledger family.
pub struct FamilySpec {
    /// Exposed name; counters get `_total` appended by the encoder.
    pub name: &'static str,
    pub help: &'static str,
    /// Label names, in exposition order (the label struct's fields).
    pub labels: &'static [&'static str],
    /// `None` for counters, bucket upper bounds for histograms.
    pub buckets: Option<&'static [f64]>,
    /// A free-text label that is normalised and capped.
    pub free_text: Option<&'static str>,
    /// An outcome label and the values its siblings are initialised with, so ratios see zeros
    /// instead of missing series.
    pub siblings: Option<(&'static str, &'static [&'static str])>,
    /// Another family's series created at 0 with this one's first increment, its labels taken
    /// by name from this one's: the rescue counter of a fallback.
    pub companion: Option<(LedgerFamily, &'static [&'static str])>,
}

impl FamilySpec {
    const fn counter(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
    ) -> Self {
        FamilySpec {
            name,
            help,
            labels,
            buckets: None,
            free_text: None,
            siblings: None,
            companion: None,
        }
    }

    const fn histogram(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        buckets: &'static [f64],
    ) -> Self {
        FamilySpec {
            buckets: Some(buckets),
            ..Self::counter(name, help, labels)
        }
    }

    /// Position of a label, by name.
    pub fn position(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| *l == label)
    }
}

impl LedgerFamily {
    pub const ALL: [LedgerFamily; 17] = [
        LedgerFamily::Orders,
        LedgerFamily::Verifications,
        LedgerFamily::Fallbacks,
        LedgerFamily::FallbackRescues,
        LedgerFamily::Sms,
        LedgerFamily::SmsFailures,
        LedgerFamily::SmsDeliverySeconds,
        LedgerFamily::SmsQueueSeconds,
        LedgerFamily::SmsSegments,
        LedgerFamily::Calls,
        LedgerFamily::CallAnswerSeconds,
        LedgerFamily::CallDurationSeconds,
        LedgerFamily::CallBilledSeconds,
        LedgerFamily::Cost,
        LedgerFamily::OrderDeliverySeconds,
        LedgerFamily::OrderVerificationSeconds,
        LedgerFamily::SendRequests,
    ];

    pub fn spec(self) -> FamilySpec {
        use LedgerFamily::*;
        let (c, h) = (FamilySpec::counter, FamilySpec::histogram);
        match self {
            Orders => FamilySpec {
                siblings: Some(("outcome", OrderOutcome::LABELS)),
                ..c(
                    "itniotech_otp_orders",
                    "Finalised OTP orders by outcome.",
                    OrderLabels::NAMES,
                )
            },
            Verifications => FamilySpec {
                siblings: Some(("result", VerificationResult::LABELS)),
                ..c(
                    "itniotech_otp_verifications",
                    "Verification results of finalised orders.",
                    VerificationLabels::NAMES,
                )
            },
            Fallbacks => FamilySpec {
                companion: Some((FallbackRescues, RescueLabels::NAMES)),
                ..c(
                    "itniotech_otp_fallbacks",
                    "Switches from one attempt of an order to the next.",
                    FallbackLabels::NAMES,
                )
            },
            FallbackRescues => c(
                "itniotech_otp_fallback_rescues",
                "Orders whose first attempt failed or went unverified and a later attempt delivered or was verified.",
                RescueLabels::NAMES,
            ),
            Sms => FamilySpec {
                siblings: Some(("status", SmsStatus::LABELS)),
                ..c(
                    "itniotech_otp_sms",
                    "Terminal SMS attempts by status.",
                    SmsLabels::NAMES,
                )
            },
            SmsFailures => FamilySpec {
                free_text: Some("reason"),
                ..c(
                    "itniotech_otp_sms_failures",
                    "Failed SMS attempts by normalised reason.",
                    SmsFailureLabels::NAMES,
                )
            },
            SmsDeliverySeconds => FamilySpec {
                siblings: Some(("status", SmsStatus::LABELS)),
                ..h(
                    "itniotech_otp_sms_delivery_seconds",
                    "SMS submit to delivery report (submitTm to doneTm).",
                    SmsDeliveryLabels::NAMES,
                    SMS_DELIVERY_BUCKETS,
                )
            },
            SmsQueueSeconds => h(
                "itniotech_otp_sms_queue_seconds",
                "SMS submit to send (submitTm to sendTm).",
                AppCountryLabels::NAMES,
                SMS_QUEUE_BUCKETS,
            ),
            SmsSegments => c(
                "itniotech_otp_sms_segments",
                "Billed SMS segments (chargeCnt).",
                AppCountryLabels::NAMES,
            ),
            Calls => FamilySpec {
                free_text: Some("termination_reason"),
                ..c(
                    "itniotech_otp_calls",
                    "Terminal call attempts by termination code and normalised reason.",
                    CallLabels::NAMES,
                )
            },
            CallAnswerSeconds => h(
                "itniotech_otp_call_answer_seconds",
                "Call submit to answer (submitTime to answerTime) of answered calls.",
                AppCountryLabels::NAMES,
                CALL_ANSWER_BUCKETS,
            ),
            CallDurationSeconds => h(
                "itniotech_otp_call_duration_seconds",
                "Duration of terminal calls (callDuration).",
                AppCountryLabels::NAMES,
                CALL_DURATION_BUCKETS,
            ),
            CallBilledSeconds => c(
                "itniotech_otp_call_billed_seconds",
                "Billed call seconds (chargedDuration).",
                AppCountryLabels::NAMES,
            ),
            Cost => c(
                "itniotech_otp_cost",
                "Money charged for OTP attempts (SMS pay, call cost), in the account currency.",
                CostLabels::NAMES,
            ),
            OrderDeliverySeconds => h(
                "itniotech_otp_order_delivery_seconds",
                "First attempt submit to the completion of the first delivered attempt.",
                AppFlowLabels::NAMES,
                ORDER_DELIVERY_BUCKETS,
            ),
            OrderVerificationSeconds => h(
                "itniotech_otp_order_verification_seconds",
                "First attempt submit to the verification of the code.",
                OrderVerificationLabels::NAMES,
                ORDER_VERIFICATION_BUCKETS,
            ),
            SendRequests => c(
                "itniotech_otp_send_requests",
                "Send calls (send, sendRule, resend) seen by the capture proxy, by the vendor's status.",
                SendRequestLabels::NAMES,
            ),
        }
    }

    /// Stable key used in the store.
    pub fn key(self) -> &'static str {
        self.spec().name
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }
}

/// One increment (counters) or observation (histograms) of a ledger family, as accounting
/// computes it. Counters without a value count one.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    Order(OrderLabels),
    Verification(VerificationLabels),
    Fallback(FallbackLabels),
    FallbackRescue(RescueLabels),
    Sms(SmsLabels),
    SmsFailure(SmsFailureLabels),
    SmsDeliverySeconds(SmsDeliveryLabels, f64),
    SmsQueueSeconds(AppCountryLabels, f64),
    SmsSegments(AppCountryLabels, f64),
    Call(CallLabels),
    CallAnswerSeconds(AppCountryLabels, f64),
    CallDurationSeconds(AppCountryLabels, f64),
    CallBilledSeconds(AppCountryLabels, f64),
    Cost(CostLabels, f64),
    OrderDeliverySeconds(AppFlowLabels, f64),
    OrderVerificationSeconds(OrderVerificationLabels, f64),
    SendRequest(SendRequestLabels),
}

impl Update {
    /// The family, the label values in exposition order, and the increment or observation.
    pub fn series(&self) -> (LedgerFamily, Vec<String>, f64) {
        use LedgerFamily as F;
        match self {
            Update::Order(l) => (F::Orders, l.values(), 1.0),
            Update::Verification(l) => (F::Verifications, l.values(), 1.0),
            Update::Fallback(l) => (F::Fallbacks, l.values(), 1.0),
            Update::FallbackRescue(l) => (F::FallbackRescues, l.values(), 1.0),
            Update::Sms(l) => (F::Sms, l.values(), 1.0),
            Update::SmsFailure(l) => (F::SmsFailures, l.values(), 1.0),
            Update::SmsDeliverySeconds(l, v) => (F::SmsDeliverySeconds, l.values(), *v),
            Update::SmsQueueSeconds(l, v) => (F::SmsQueueSeconds, l.values(), *v),
            Update::SmsSegments(l, v) => (F::SmsSegments, l.values(), *v),
            Update::Call(l) => (F::Calls, l.values(), 1.0),
            Update::CallAnswerSeconds(l, v) => (F::CallAnswerSeconds, l.values(), *v),
            Update::CallDurationSeconds(l, v) => (F::CallDurationSeconds, l.values(), *v),
            Update::CallBilledSeconds(l, v) => (F::CallBilledSeconds, l.values(), *v),
            Update::Cost(l, v) => (F::Cost, l.values(), *v),
            Update::OrderDeliverySeconds(l, v) => (F::OrderDeliverySeconds, l.values(), *v),
            Update::OrderVerificationSeconds(l, v) => (F::OrderVerificationSeconds, l.values(), *v),
            Update::SendRequest(l) => (F::SendRequests, l.values(), 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_are_unique_and_round_trip() {
        let keys: std::collections::BTreeSet<_> =
            LedgerFamily::ALL.iter().map(|f| f.key()).collect();
        assert_eq!(keys.len(), LedgerFamily::ALL.len());
        for f in LedgerFamily::ALL {
            assert_eq!(LedgerFamily::from_key(f.key()), Some(f));
        }
    }

    #[test]
    fn label_roles_name_real_labels() {
        for f in LedgerFamily::ALL {
            let spec = f.spec();
            if let Some(label) = spec.free_text {
                assert!(spec.position(label).is_some(), "{f:?} {label}");
            }
            if let Some((label, values)) = spec.siblings {
                assert!(spec.position(label).is_some(), "{f:?} {label}");
                assert!(!values.is_empty());
            }
            if let Some((other, names)) = spec.companion {
                assert_eq!(other.spec().labels, names, "{f:?}");
                assert!(names.iter().all(|n| spec.position(n).is_some()), "{f:?}");
            }
        }
    }

    #[test]
    fn updates_carry_one_value_per_label_in_order() {
        let u = Update::Cost(
            CostLabels {
                app_id: "a".into(),
                channel: Channel::Call,
                country: "ID".into(),
                currency: "USD".into(),
            },
            0.5,
        );
        let (family, values, v) = u.series();
        assert_eq!(family, LedgerFamily::Cost);
        assert_eq!(values, ["a", "call", "ID", "USD"]);
        assert_eq!(
            family.spec().labels,
            ["app_id", "channel", "country", "currency"]
        );
        assert_eq!(v, 0.5);
    }
}
