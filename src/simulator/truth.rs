//! The simulator's ground truth: every order as its own state says it is (not as its replies
//! show it), for tests that check what an agent counted against what happened.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// One order, as the simulator knows it at some moment.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOrderTruth {
    pub app_id: String,
    pub order_id: Option<String>,
    pub verification_id: String,
    pub flow_id: Option<i64>,
    /// The destination number (a made-up one: the simulator's own traffic).
    pub receiver: String,
    /// Attempts started by then, in start order.
    pub attempts: Vec<SimAttemptTruth>,
    /// `verifications.matched`: -1 not checked, 0 verified, 2 wrong code.
    pub matched: i8,
    pub verified_at: Option<DateTime<Utc>>,
    /// `verifications.channel`: the latest attempt's channel.
    pub channel: &'static str,
    /// Nothing more will happen to the order (no attempt, user action or flow step to come).
    pub settled: bool,
}

/// One attempt.
#[derive(Clone, Debug, PartialEq)]
pub struct SimAttemptTruth {
    /// `sms` or `call`.
    pub channel: &'static str,
    pub submit: DateTime<Utc>,
    /// The attempt's outcome is known (SMS report, call hang-up).
    pub ended: bool,
    /// The code reached the user (SMS delivered, call answered), once ended.
    pub reached_user: bool,
    pub sms: Option<SimSmsTruth>,
    pub call: Option<SimCallTruth>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimSmsTruth {
    pub send: DateTime<Utc>,
    pub done: DateTime<Utc>,
    pub mcc: u16,
    pub mnc: u16,
    pub charge_cnt: u32,
    pub pay: Decimal,
    /// Delivery report text (`DELIVRD`, `UNDELIV`, ...).
    pub reason: &'static str,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimCallTruth {
    pub termination_code: i64,
    pub termination_reason: &'static str,
    pub answer: Option<DateTime<Utc>>,
    pub hangup: DateTime<Utc>,
    pub call_duration: i64,
    pub charged_duration: i64,
    pub cost: Decimal,
}
