//! One simulated order: its attempts along the task flow, their planned outcomes, the end
//! user's behaviour, and the record JSON the vendor would show at a given time.

use super::super::config::{Chaos, Scenario};
use super::super::plan::{self, CallPlan, PlannedAction, SmsConditions, SmsPlan};
use super::super::presets::{CountryPreset, OperatorPreset, SimChannel, SimFlowNode};
use super::super::UserAction;
use super::{fmt_money, fmt_time, visible};
use crate::api::model::StepTrigger;
use chrono::{DateTime, Duration, Utc};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::VecDeque;

#[derive(Clone, Debug)]
pub(super) enum AttemptKind {
    Sms(SmsPlan),
    Call(CallPlan),
}

#[derive(Clone, Debug)]
pub(super) struct Attempt {
    /// Index of the flow node this attempt runs.
    pub(super) node: usize,
    pub(super) kind: AttemptKind,
    pub(super) charged: bool,
    /// The outcome has been looked at (and the end user planned if the code reached them).
    pub(super) settled: bool,
}

impl Attempt {
    pub(super) fn start(&self) -> DateTime<Utc> {
        match &self.kind {
            AttemptKind::Sms(s) => s.submit,
            AttemptKind::Call(c) => c.submit,
        }
    }
    pub(super) fn channel(&self) -> SimChannel {
        match self.kind {
            AttemptKind::Sms(_) => SimChannel::Sms,
            AttemptKind::Call(_) => SimChannel::Call,
        }
    }
    pub(super) fn charge(&self) -> (DateTime<Utc>, Decimal) {
        match &self.kind {
            AttemptKind::Sms(s) => (s.submit, s.pay),
            AttemptKind::Call(c) => (c.hangup, c.cost),
        }
    }
    /// When the outcome is known.
    pub(super) fn settles_at(&self) -> DateTime<Utc> {
        match &self.kind {
            AttemptKind::Sms(s) => s.done,
            AttemptKind::Call(c) => c.hangup,
        }
    }
    pub(super) fn reached_user(&self) -> bool {
        match &self.kind {
            AttemptKind::Sms(s) => s.delivered,
            AttemptKind::Call(c) => c.termination_code == 0,
        }
    }
    pub(super) fn failed_by(&self, t: DateTime<Utc>) -> bool {
        !self.reached_user() && self.settles_at() <= t
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Event {
    Charge(usize),
    Settle(usize),
    User,
    Decide,
}

/// What an order needs from the account while it evolves.
pub(super) struct Env<'a> {
    pub(super) scenario: Scenario,
    pub(super) chaos: &'a Chaos,
    pub(super) balance: &'a mut Decimal,
    pub(super) virtual_users: bool,
    pub(super) outbox: &'a mut Vec<UserAction>,
}

#[derive(Clone, Debug)]
pub(super) struct Order {
    pub(super) verification_id: String,
    pub(super) order_id: Option<String>,
    pub(super) app_id: String,
    pub(super) to: String,
    pub(super) country: &'static CountryPreset,
    pub(super) operator: &'static OperatorPreset,
    pub(super) flow_id: Option<i64>,
    pub(super) nodes: Vec<SimFlowNode>,
    pub(super) code: String,
    pub(super) rng: ChaCha8Rng,
    pub(super) attempts: Vec<Attempt>,
    pub(super) decision_at: Option<DateTime<Utc>>,
    pub(super) pending_user: VecDeque<PlannedAction>,
    pub(super) matched: i8,
    pub(super) verified_date: Option<DateTime<Utc>>,
}

/// SMS delivery conditions for a destination under a scenario and chaos knobs.
pub(crate) fn sms_conditions(
    scenario: Scenario,
    chaos: &Chaos,
    country: &CountryPreset,
    operator: &OperatorPreset,
) -> SmsConditions {
    let forced = chaos
        .outage_country
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case(country.iso2))
        || chaos.outage_operator == Some((operator.mcc, operator.mnc));
    if forced {
        return SmsConditions {
            delivery_prob: 0.0,
            outage: true,
        };
    }
    if scenario == Scenario::CarrierOutage && (operator.mcc, operator.mnc) == (510, 10) {
        return SmsConditions {
            delivery_prob: 0.05,
            outage: true,
        };
    }
    SmsConditions {
        delivery_prob: country.sms_delivery_prob,
        outage: false,
    }
}

/// Probability that the end user types a code that reached them.
pub(crate) fn verify_prob(scenario: Scenario, country: &CountryPreset) -> f64 {
    if scenario == Scenario::SmsPumping && country.iso2 == "UZ" {
        0.02
    } else {
        country.verify_prob
    }
}

impl Order {
    pub(super) fn start_attempt(&mut self, node: usize, at: DateTime<Utc>, env: &mut Env<'_>) {
        let kind = match self.nodes[node].channel {
            SimChannel::Sms => {
                let cond = sms_conditions(env.scenario, env.chaos, self.country, self.operator);
                AttemptKind::Sms(plan::plan_sms(
                    &mut self.rng,
                    self.country,
                    self.operator,
                    at,
                    cond,
                ))
            }
            SimChannel::Call => AttemptKind::Call(plan::plan_call(
                &mut self.rng,
                self.country,
                self.operator,
                at,
            )),
        };
        self.attempts.push(Attempt {
            node,
            kind,
            charged: false,
            settled: false,
        });
        self.decision_at = (node + 1 < self.nodes.len())
            .then(|| at + Duration::seconds(i64::from(self.nodes[node].waiting_time)));
    }

    pub(super) fn next_event(&self) -> Option<(DateTime<Utc>, Event)> {
        let mut events = Vec::new();
        for (i, a) in self.attempts.iter().enumerate() {
            if !a.charged {
                events.push((a.charge().0, Event::Charge(i)));
            }
            if !a.settled {
                events.push((a.settles_at(), Event::Settle(i)));
            }
        }
        if let Some(p) = self.pending_user.front() {
            events.push((p.at, Event::User));
        }
        if let Some(t) = self.decision_at {
            events.push((t, Event::Decide));
        }
        events.into_iter().min()
    }

    /// Replay every event with time ≤ now. Returns whether anything is still to happen.
    pub(super) fn advance(&mut self, now: DateTime<Utc>, env: &mut Env<'_>) -> bool {
        while let Some((t, ev)) = self.next_event() {
            if t > now {
                return true;
            }
            match ev {
                Event::Charge(i) => {
                    let a = &mut self.attempts[i];
                    a.charged = true;
                    *env.balance -= a.charge().1;
                }
                Event::Settle(i) => {
                    self.attempts[i].settled = true;
                    if self.attempts[i].reached_user()
                        && self.matched != 0
                        && self.pending_user.is_empty()
                    {
                        let p = verify_prob(env.scenario, self.country);
                        let actions = plan::plan_user(&mut self.rng, t, &self.code, p);
                        self.pending_user.extend(actions);
                    }
                }
                Event::User => {
                    let action = self.pending_user.pop_front().expect("event exists");
                    if env.virtual_users {
                        self.apply_verify(&action.code, action.at);
                    } else {
                        env.outbox.push(UserAction {
                            verification_id: self.verification_id.clone(),
                            code: action.code,
                        });
                    }
                }
                Event::Decide => {
                    self.decision_at = None;
                    let last = self.attempts.last().expect("an order has an attempt");
                    let node = last.node;
                    let trigger = match self.nodes[node].trigger {
                        StepTrigger::SendFailure => last.failed_by(t),
                        StepTrigger::Unverified | StepTrigger::Unknown => self.matched != 0,
                    };
                    if trigger && node + 1 < self.nodes.len() && *env.balance > Decimal::ZERO {
                        self.start_attempt(node + 1, t, env);
                    }
                }
            }
        }
        false
    }

    /// Check a code typed at `at`; returns the `matched` value of this check.
    pub(super) fn apply_verify(&mut self, code: &str, at: DateTime<Utc>) -> i8 {
        if code == self.code {
            if self.matched != 0 {
                self.matched = 0;
                self.verified_date = Some(at);
            }
            0
        } else {
            if self.matched != 0 {
                self.matched = 2;
                self.verified_date = Some(at);
            }
            2
        }
    }

    pub(super) fn channel(&self) -> SimChannel {
        self.attempts
            .last()
            .map(Attempt::channel)
            .unwrap_or(self.nodes[0].channel)
    }

    pub(super) fn verifications_json(&self) -> Value {
        json!({
            "matched": self.matched,
            "verifiedDate": self.verified_date.map(fmt_time),
            "oriReceiver": self.to,
            "channel": self.channel().as_str(),
            "orderId": self.order_id,
        })
    }

    pub(super) fn visible_attempts(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(move |a| a.start() <= now)
    }

    /// `sms`/`call` as arrays (orderId record) or as the latest attempt's object.
    pub(super) fn record_json(&self, now: DateTime<Utc>, arrays: bool) -> Value {
        let sms: Vec<Value> = self
            .visible_attempts(now)
            .filter_map(|a| match &a.kind {
                AttemptKind::Sms(s) => Some(sms_json(s, now)),
                AttemptKind::Call(_) => None,
            })
            .collect();
        let call: Vec<Value> = self
            .visible_attempts(now)
            .filter_map(|a| match &a.kind {
                AttemptKind::Call(c) => Some(call_json(c, now)),
                AttemptKind::Sms(_) => None,
            })
            .collect();
        if arrays {
            json!({
                "orderId": self.order_id,
                "flowId": self.flow_id,
                "verifications": self.verifications_json(),
                "sms": sms,
                "call": call,
                "sna": [],
            })
        } else {
            let mut data = json!({
                "verificationId": self.verification_id,
                "verifications": self.verifications_json(),
            });
            if let Some(s) = sms.into_iter().last() {
                data["sms"] = s;
            }
            if let Some(c) = call.into_iter().last() {
                data["call"] = c;
            }
            data
        }
    }
}

pub(super) fn sms_json(s: &SmsPlan, now: DateTime<Utc>) -> Value {
    let done = s.done <= now;
    json!({
        "submitTm": fmt_time(s.submit),
        "sendTm": visible(s.send, now),
        "doneTm": visible(s.done, now),
        "mcc": s.mcc,
        "mnc": s.mnc,
        "sender": s.sender,
        "chargeCnt": s.charge_cnt,
        "pay": fmt_money(s.pay),
        "status": if !done { -1 } else if s.delivered { 0 } else { 1 },
        "reason": if done { s.reason } else { "" },
    })
}

pub(super) fn call_json(c: &CallPlan, now: DateTime<Utc>) -> Value {
    let over = c.hangup <= now;
    let opt = |t: Option<DateTime<Utc>>| t.map_or(Value::Null, |t| visible(t, now));
    json!({
        "terminationCode": if over { json!(c.termination_code) } else { Value::Null },
        "terminationReason": if over { json!(c.termination_reason) } else { Value::Null },
        "submitTime": fmt_time(c.submit),
        "callTime": visible(c.call, now),
        "ringingTime": opt(c.ringing),
        "answerTime": opt(c.answer),
        "hangupTime": visible(c.hangup, now),
        "callDuration": if over { c.call_duration } else { 0 },
        "chargedDuration": if over { c.charged_duration } else { 0 },
        "displayNum": Value::Null,
        "billPeriodstring": c.bill_period,
        "code": c.label,
        "rate": fmt_money(c.rate),
        "cost": fmt_money(if over { c.cost } else { Decimal::ZERO }),
    })
}
