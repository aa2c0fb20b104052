//! The metric increments of one poll: fallbacks as attempts appear, each terminal attempt once,
//! the order's delivery latency once, and the order itself when its verdict is final.

use super::lifecycle::{secs_between, Attempt, Lifecycle};
use super::OrderState;
use crate::api::model::{CallAttempt, SmsAttempt};
use crate::country;
use crate::domain::Channel;
use crate::ledger::{
    AppCountryLabels, AppFlowLabels, CallLabels, CostLabels, FallbackLabels, OrderLabels,
    OrderOutcome, OrderVerificationLabels, RescueLabels, SmsDeliveryLabels, SmsFailureLabels,
    SmsLabels, SmsStatus, Update, VerificationLabels, VerificationResult,
};
use chrono::{DateTime, Utc};

/// Labels every increment of one order shares.
pub(super) struct OrderLabelsBase<'a> {
    pub app: &'a str,
    pub flow: &'a str,
    /// The order's country: the receiver's calling code, else the first SMS's MCC.
    pub country: &'a str,
    /// The receiver's country, for SMS whose MCC is missing or unknown.
    pub receiver_country: Option<&'a str>,
    pub currency: &'a str,
}

impl OrderLabelsBase<'_> {
    fn app_country(&self, country: &str) -> AppCountryLabels {
        AppCountryLabels {
            app_id: self.app.to_owned(),
            country: country.to_owned(),
        }
    }

    fn sms_country(&self, s: &SmsAttempt) -> String {
        match s.mcc.map(country::from_mcc) {
            Some(c) if c != country::UNKNOWN => c.to_string(),
            _ => self
                .receiver_country
                .unwrap_or(country::UNKNOWN)
                .to_string(),
        }
    }
}

/// Each attempt after the first is a fallback, counted when it first appears.
pub(super) fn fallbacks(
    state: &mut OrderState,
    life: &Lifecycle<'_>,
    base: &OrderLabelsBase<'_>,
    updates: &mut Vec<Update>,
) {
    for a in &life.attempts {
        if state.seen.insert(a.id()) {
            if let Some(prev) = state.last_channel.filter(|_| state.seen.len() > 1) {
                updates.push(Update::Fallback(FallbackLabels {
                    app_id: base.app.to_owned(),
                    flow_id: base.flow.to_owned(),
                    from_channel: prev,
                    to_channel: a.channel,
                }));
            }
            state.last_channel = Some(a.channel);
        }
    }
}

/// Counts each terminal attempt once; returns, per counted attempt, the seconds from its end to
/// `now` (how stale the metric was when it landed).
pub(super) fn terminal_attempts(
    state: &mut OrderState,
    life: &Lifecycle<'_>,
    base: &OrderLabelsBase<'_>,
    now: DateTime<Utc>,
    updates: &mut Vec<Update>,
) -> Vec<f64> {
    let mut freshness = Vec::new();
    for a in life.attempts.iter().filter(|a| a.terminal) {
        match (a.sms, a.call) {
            (Some(s), _) if state.counted.insert(a.id()) => {
                if let Some(done) = s.done_tm {
                    freshness.push(secs_between(done, now.fixed_offset()).unwrap_or(0.0));
                }
                sms(a, s, base, updates);
            }
            (_, Some(c)) if state.counted.insert(a.id()) => {
                if let Some(end) = c.hangup_time {
                    freshness.push(secs_between(end, now.fixed_offset()).unwrap_or(0.0));
                }
                call(c, base, updates);
            }
            _ => {}
        }
    }
    freshness
}

fn sms(a: &Attempt<'_>, s: &SmsAttempt, base: &OrderLabelsBase<'_>, updates: &mut Vec<Update>) {
    let c = base.sms_country(s);
    let status = if a.delivered {
        SmsStatus::Delivered
    } else {
        SmsStatus::Failed
    };
    let mnc = s
        .mnc
        .map(|m| m.to_string())
        .filter(|m| m.len() <= 4)
        .unwrap_or_else(|| "unknown".into());
    updates.push(Update::Sms(SmsLabels {
        app_id: base.app.to_owned(),
        country: c.clone(),
        mnc,
        status,
    }));
    if !a.delivered {
        updates.push(Update::SmsFailure(SmsFailureLabels {
            app_id: base.app.to_owned(),
            country: c.clone(),
            reason: s.reason.clone().unwrap_or_else(|| "unknown".into()),
        }));
    }
    if let (Some(sub), Some(done)) = (s.submit_tm, s.done_tm) {
        if let Some(d) = secs_between(sub, done) {
            let labels = SmsDeliveryLabels {
                app_id: base.app.to_owned(),
                country: c.clone(),
                status,
            };
            updates.push(Update::SmsDeliverySeconds(labels, d));
        }
    }
    if let (Some(sub), Some(sent)) = (s.submit_tm, s.send_tm) {
        if let Some(d) = secs_between(sub, sent) {
            updates.push(Update::SmsQueueSeconds(base.app_country(&c), d));
        }
    }
    if let Some(n) = s.charge_cnt.filter(|n| *n > 0) {
        updates.push(Update::SmsSegments(base.app_country(&c), n as f64));
    }
    if let Some(pay) = s.pay {
        updates.push(cost(base, Channel::Sms, &c, pay));
    }
}

fn call(c: &CallAttempt, base: &OrderLabelsBase<'_>, updates: &mut Vec<Update>) {
    let country = base.country;
    let code = c
        .termination_code
        .map(|x| x.to_string())
        .unwrap_or_else(|| "unknown".into());
    let code = if code.len() > 12 {
        "other".into()
    } else {
        code
    };
    updates.push(Update::Call(CallLabels {
        app_id: base.app.to_owned(),
        country: country.to_owned(),
        termination_code: code,
        termination_reason: c
            .termination_reason
            .clone()
            .unwrap_or_else(|| "unknown".into()),
    }));
    if let (Some(sub), Some(ans)) = (c.submit_time, c.answer_time) {
        if c.termination_code == Some(0) {
            if let Some(d) = secs_between(sub, ans) {
                updates.push(Update::CallAnswerSeconds(base.app_country(country), d));
            }
        }
    }
    if let Some(d) = c.call_duration.filter(|d| *d >= 0) {
        updates.push(Update::CallDurationSeconds(
            base.app_country(country),
            d as f64,
        ));
    }
    if let Some(d) = c.charged_duration.filter(|d| *d > 0) {
        updates.push(Update::CallBilledSeconds(
            base.app_country(country),
            d as f64,
        ));
    }
    if let Some(amount) = c.cost {
        updates.push(cost(base, Channel::Call, country, amount));
    }
}

/// The order's delivery latency, once: first submit to the first delivered attempt.
pub(super) fn order_delivery(
    state: &mut OrderState,
    life: &Lifecycle<'_>,
    base: &OrderLabelsBase<'_>,
    updates: &mut Vec<Update>,
) {
    if state.delivery_observed {
        return;
    }
    if let (Some(sub), Some(done)) = (life.first_submit, life.first_delivery()) {
        if let Some(d) = secs_between(sub, done) {
            let labels = AppFlowLabels {
                app_id: base.app.to_owned(),
                flow_id: base.flow.to_owned(),
            };
            updates.push(Update::OrderDeliverySeconds(labels, d));
        }
        state.delivery_observed = true;
    }
}

/// The order's outcome, verification result, time to verify and rescue, at finalisation.
pub(super) fn finalisation(
    life: &Lifecycle<'_>,
    base: &OrderLabelsBase<'_>,
    outcome: OrderOutcome,
    result: VerificationResult,
    updates: &mut Vec<Update>,
) {
    updates.push(Update::Order(OrderLabels {
        app_id: base.app.to_owned(),
        flow_id: base.flow.to_owned(),
        country: base.country.to_owned(),
        outcome,
    }));
    let channel = life.verification_channel();
    updates.push(Update::Verification(VerificationLabels {
        app_id: base.app.to_owned(),
        flow_id: base.flow.to_owned(),
        country: base.country.to_owned(),
        channel,
        result,
    }));
    if life.verified {
        if let (Some(sub), Some(at)) = (life.first_submit, life.record.verifications.verified_date)
        {
            if let Some(d) = secs_between(sub, at) {
                let labels = OrderVerificationLabels {
                    app_id: base.app.to_owned(),
                    flow_id: base.flow.to_owned(),
                    channel,
                };
                updates.push(Update::OrderVerificationSeconds(labels, d));
            }
        }
    }
    if let Some(to) = life.rescue_channel() {
        updates.push(Update::FallbackRescue(RescueLabels {
            app_id: base.app.to_owned(),
            flow_id: base.flow.to_owned(),
            to_channel: to,
        }));
    }
}

/// A cost increment. Money is exact up to here; only the export rounds it to a float.
fn cost(
    base: &OrderLabelsBase<'_>,
    channel: Channel,
    country: &str,
    amount: rust_decimal::Decimal,
) -> Update {
    use rust_decimal::prelude::ToPrimitive;
    let amount = amount
        .to_f64()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .unwrap_or(0.0);
    Update::Cost(
        CostLabels {
            app_id: base.app.to_owned(),
            channel,
            country: country.to_owned(),
            currency: base.currency.to_owned(),
        },
        amount,
    )
}
