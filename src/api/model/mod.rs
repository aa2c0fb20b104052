//! Tolerant typed models of the vendor's replies.
//!
//! The vendor documentation contradicts itself (docs/vendor-api.md §4): `status` is a string at
//! the top level and an int inside records, `sms`/`call` are objects on one endpoint and arrays on
//! another, money is a decimal string, timestamps come in several shapes, many fields are
//! nullable and unknown keys appear. Every model here accepts all documented variants so that a
//! surprising reply degrades to `None` for one field instead of losing the whole record.

use chrono::{DateTime, FixedOffset};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::domain::Channel;
pub use lenient::{parse_time, parse_time_str};

mod lenient;
use lenient::*;

/// The common reply envelope: `{"status":"0","reason":"success","data":...}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
pub struct Envelope<T> {
    /// Vendor status code; `"0"` is success. Accepts a JSON string or number.
    #[serde(deserialize_with = "de_code")]
    pub status: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub reason: Option<String>,
    /// Missing or null on errors.
    #[serde(default = "none", deserialize_with = "de_opt_data")]
    pub data: Option<T>,
}

fn none<T>() -> Option<T> {
    None
}

/// One order's record, normalised from either record endpoint.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderRecord {
    #[serde(default, deserialize_with = "de_opt_string")]
    pub order_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub verification_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub flow_id: Option<i64>,
    #[serde(default, deserialize_with = "de_lenient")]
    pub verifications: Verifications,
    /// Object on the verificationId record, array on the orderId record: always a list here.
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub sms: Vec<SmsAttempt>,
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub call: Vec<CallAttempt>,
    /// Element fields are undocumented; kept raw so at least their count is known.
    #[serde(default, deserialize_with = "de_raw_list")]
    pub sna: Vec<Value>,
}

/// The verification state of an order.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verifications {
    #[serde(default, deserialize_with = "de_matched")]
    pub matched: Matched,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub verified_date: Option<DateTime<FixedOffset>>,
    /// Destination number: PII. Used only to derive the country, never stored or logged.
    #[serde(default, deserialize_with = "de_opt_string")]
    pub ori_receiver: Option<String>,
    /// The channel of the current attempt; `None` when absent or not one the vendor documents.
    #[serde(default, deserialize_with = "de_opt_channel")]
    pub channel: Option<Channel>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub order_id: Option<String>,
}

/// `verifications.matched`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Matched {
    /// -1: not checked yet.
    #[default]
    NotChecked,
    /// 0: the user entered the right code.
    Verified,
    /// 1: still sending.
    Sending,
    /// 2: the check failed (wrong code).
    Failed,
    /// 3: unknown verificationId.
    Unknown,
    /// Any other value, kept for logging.
    Other(i64),
}

impl Matched {
    pub fn from_code(code: i64) -> Self {
        match code {
            -1 => Matched::NotChecked,
            0 => Matched::Verified,
            1 => Matched::Sending,
            2 => Matched::Failed,
            3 => Matched::Unknown,
            other => Matched::Other(other),
        }
    }

    pub fn code(self) -> i64 {
        match self {
            Matched::NotChecked => -1,
            Matched::Verified => 0,
            Matched::Sending => 1,
            Matched::Failed => 2,
            Matched::Unknown => 3,
            Matched::Other(c) => c,
        }
    }

    /// Whether the verification result can no longer change. Verified and unknown (the
    /// platform does not know the verificationId) are final at once; a wrong code is final only
    /// once the verify window has closed, because users retype; anything else is not final.
    pub fn is_settled(self, window_closed: bool) -> bool {
        match self {
            Matched::Verified | Matched::Unknown => true,
            Matched::Failed => window_closed,
            Matched::NotChecked | Matched::Sending | Matched::Other(_) => false,
        }
    }
}

/// What starts the next step of a task flow (a flow node's `status`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum StepTrigger {
    /// 1: the attempt failed to send (submit failure or a failed delivery report).
    SendFailure,
    /// 2: the code was not verified (a wrong code included).
    Unverified,
    /// Absent or undocumented.
    #[default]
    Unknown,
}

impl StepTrigger {
    pub fn from_code(code: Option<i64>) -> Self {
        match code {
            Some(1) => StepTrigger::SendFailure,
            Some(2) => StepTrigger::Unverified,
            _ => StepTrigger::Unknown,
        }
    }

    /// The vendor's code, for replies the simulator writes.
    pub fn code(self) -> Option<i64> {
        match self {
            StepTrigger::SendFailure => Some(1),
            StepTrigger::Unverified => Some(2),
            StepTrigger::Unknown => None,
        }
    }

    /// The `trigger` label of `itniotech_otp_flow_step_info`.
    pub fn label(self) -> &'static str {
        match self {
            StepTrigger::SendFailure => "send_failure",
            StepTrigger::Unverified => "unverified",
            StepTrigger::Unknown => "unknown",
        }
    }
}

/// One SMS attempt.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SmsAttempt {
    #[serde(default, deserialize_with = "de_opt_time")]
    pub submit_tm: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub send_tm: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub done_tm: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub mcc: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub mnc: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub sender: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub charge_cnt: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub pay: Option<Decimal>,
    /// -1 sending, 0 delivered, 1 failed.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub status: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub reason: Option<String>,
}

impl SmsAttempt {
    /// Status 0 (delivered) or 1 (failed).
    pub fn is_terminal(&self) -> bool {
        matches!(self.status, Some(0) | Some(1))
    }
    pub fn is_delivered(&self) -> bool {
        self.status == Some(0)
    }
}

/// One voice-call attempt.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(from = "CallAttemptWire")]
pub struct CallAttempt {
    pub termination_code: Option<i64>,
    pub termination_reason: Option<String>,
    pub submit_time: Option<DateTime<FixedOffset>>,
    pub call_time: Option<DateTime<FixedOffset>>,
    pub ringing_time: Option<DateTime<FixedOffset>>,
    pub answer_time: Option<DateTime<FixedOffset>>,
    pub hangup_time: Option<DateTime<FixedOffset>>,
    pub call_duration: Option<i64>,
    pub charged_duration: Option<i64>,
    pub display_num: Option<String>,
    /// `billPeriodstring` in the docs (a typo of `billPeriod` + type); both keys accepted.
    pub bill_period: Option<String>,
    pub code: Option<String>,
    pub rate: Option<Decimal>,
    /// `cost` on the CN page, `costEur` on the EN one; both accepted.
    pub cost: Option<Decimal>,
}

/// The call object as it comes over the wire. The synonym keys are separate fields (not serde
/// aliases) because a reply carrying both `cost` and `costEur` would otherwise fail as a
/// "duplicate field" and the whole attempt would be dropped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallAttemptWire {
    #[serde(default, deserialize_with = "de_opt_i64")]
    termination_code: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    termination_reason: Option<String>,
    #[serde(default, deserialize_with = "de_opt_time")]
    submit_time: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_time")]
    call_time: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_time")]
    ringing_time: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_time")]
    answer_time: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_time")]
    hangup_time: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    call_duration: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    charged_duration: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    display_num: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    bill_period: Option<String>,
    #[serde(
        default,
        rename = "billPeriodstring",
        deserialize_with = "de_opt_string"
    )]
    bill_period_lower: Option<String>,
    #[serde(
        default,
        rename = "billPeriodString",
        deserialize_with = "de_opt_string"
    )]
    bill_period_upper: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    code: Option<String>,
    #[serde(default, deserialize_with = "de_opt_decimal")]
    rate: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_decimal")]
    cost: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_decimal")]
    cost_eur: Option<Decimal>,
}

impl From<CallAttemptWire> for CallAttempt {
    fn from(w: CallAttemptWire) -> Self {
        CallAttempt {
            termination_code: w.termination_code,
            termination_reason: w.termination_reason,
            submit_time: w.submit_time,
            call_time: w.call_time,
            ringing_time: w.ringing_time,
            answer_time: w.answer_time,
            hangup_time: w.hangup_time,
            call_duration: w.call_duration,
            charged_duration: w.charged_duration,
            display_num: w.display_num,
            bill_period: w
                .bill_period
                .or(w.bill_period_lower)
                .or(w.bill_period_upper),
            code: w.code,
            rate: w.rate,
            cost: w.cost.or(w.cost_eur),
        }
    }
}

impl CallAttempt {
    /// A call is over once it hung up or failed with a non-zero termination code.
    pub fn is_terminal(&self) -> bool {
        self.hangup_time.is_some() || matches!(self.termination_code, Some(c) if c != 0)
    }
    /// Answered and completed: termination code 0 with an answer time.
    pub fn is_delivered(&self) -> bool {
        self.termination_code == Some(0) && self.answer_time.is_some()
    }
}

/// A task flow (fallback sequence).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    #[serde(deserialize_with = "de_i64")]
    pub flow_id: i64,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_one_or_many")]
    pub flow: Vec<FlowNode>,
}

/// One step of a task flow.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FlowNode {
    /// Seconds to wait before evaluating the trigger (30–120).
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub waiting_time: Option<i64>,
    /// The vendor's `status`: 1 = next step on send failure, 2 = next step when not verified.
    #[serde(rename = "status", default, deserialize_with = "de_trigger")]
    pub trigger: StepTrigger,
    /// `None` when absent or not `sms`/`call`/`sna`.
    #[serde(default, deserialize_with = "de_opt_channel")]
    pub channel: Option<Channel>,
    /// 0 = switch channel for the next attempt, 1 = keep it.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub channel_cut: Option<i64>,
}

impl FlowNode {
    /// Whether the next attempt switches channel (`channelCut` 0, the vendor's default).
    pub fn switches_channel(&self) -> bool {
        self.channel_cut.unwrap_or(0) == 0
    }
}

/// `sms/getBalance`: fields at the top level, no `data`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BalanceReply {
    #[serde(deserialize_with = "de_code")]
    pub status: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub reason: Option<String>,
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub balance: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub gift: Option<Decimal>,
    #[serde(default, deserialize_with = "de_opt_decimal")]
    pub credit: Option<Decimal>,
}

/// Reply data of send / sendRule / resend.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendResult {
    #[serde(deserialize_with = "de_string")]
    pub verification_id: String,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub to: Option<String>,
    #[serde(default, deserialize_with = "de_opt_channel")]
    pub channel: Option<Channel>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub sna_url: Option<String>,
}

/// Reply data of verify (fields inferred from a white-label sibling; all optional).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResult {
    #[serde(default, deserialize_with = "de_opt_string")]
    pub verification_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_channel")]
    pub channel: Option<Channel>,
    #[serde(default, deserialize_with = "de_opt_matched")]
    pub matched: Option<Matched>,
}

/// App (verification application) details (docs/vendor-api.md §3.1). The agent does not call
/// the app endpoints; the model exists for the simulator and to pin the documented shape.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppInfo {
    #[serde(default, deserialize_with = "de_opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    /// Minutes.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub code_expiry: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_time")]
    pub create_time: Option<DateTime<FixedOffset>>,
    #[serde(default, deserialize_with = "de_lenient_opt")]
    pub period_total_send_limit: Option<PeriodLimit>,
    #[serde(default, deserialize_with = "de_lenient_opt")]
    pub period_phone_send_limit: Option<PeriodLimit>,
}

/// `periodTotalSendLimit` / `periodPhoneSendLimit` of an app.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeriodLimit {
    #[serde(default, deserialize_with = "de_bool")]
    pub enabled: bool,
    /// 1 day, 2 hour, 3 minute, 4 second.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub unit: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub period: Option<i64>,
    /// Up to 10^10: 64-bit.
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub limit: Option<i64>,
}

/// An OTP message template (docs/vendor-api.md §3.2).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub template_id: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub app_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub code_type: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub code_length: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub speech_rate: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub language: Option<String>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub max_duration: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_i64")]
    pub repeat_cnt: Option<i64>,
    #[serde(default, deserialize_with = "de_opt_string")]
    pub sender_id: Option<String>,
}

/// A `data` value that may be one object or an array of them (template list, flow list): always
/// a list. Elements that do not parse are skipped.
pub fn one_or_many<T: DeserializeOwned>(data: Value) -> Vec<T> {
    #[derive(Deserialize)]
    #[serde(bound(deserialize = "T: DeserializeOwned"))]
    struct Wrap<T>(#[serde(deserialize_with = "de_one_or_many")] Vec<T>);
    serde_json::from_value::<Wrap<T>>(data)
        .map(|w| w.0)
        .unwrap_or_default()
}
