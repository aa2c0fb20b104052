//! The metric increments of one poll: fallbacks as attempts appear, each terminal attempt once,
//! the order's delivery latency once, and the order itself when its verdict is final.

use super::lifecycle::{plausible_submit, secs_between, Attempt, Lifecycle};
use super::{
    Anomaly, OrderState, RecordField, Settings, VendorTimeAnomaly, MAX_CALL_SECONDS,
    MAX_SMS_SEGMENTS, MAX_TERMINATION_CODE,
};
use crate::api::model::{CallAttempt, SmsAttempt};
use crate::country;
use crate::domain::Channel;
use crate::ledger::{
    AppCountryLabels, AppFlowLabels, CallLabels, CostLabels, FallbackLabels, OrderLabels,
    OrderOutcome, OrderVerificationLabels, RescueLabels, SmsDeliveryLabels, SmsFailureLabels,
    SmsLabels, SmsStatus, Update, VerificationLabels, VerificationResult,
};
use chrono::{DateTime, FixedOffset, Utc};

/// Labels every increment of one order shares.
pub(super) struct OrderLabelsBase<'a> {
    pub app: &'a str,
    pub flow: &'a str,
    /// The order's country: the receiver's calling code, else the first SMS's MCC.
    pub country: &'a str,
    /// The receiver's country, for SMS whose MCC is missing or unknown.
    pub receiver_country: Option<&'a str>,
    pub currency: &'a str,
    /// Costs above this (or negative) are left out and reported.
    pub max_attempt_cost: rust_decimal::Decimal,
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

/// Records when each attempt was first seen, reports a vendor submit time scheduling will not
/// trust (once per attempt), and counts each attempt after the first as a fallback when it
/// first appears.
pub(super) fn new_attempts(
    state: &mut OrderState,
    life: &Lifecycle<'_>,
    base: &OrderLabelsBase<'_>,
    cfg: &Settings,
    updates: &mut Vec<Update>,
    anomalies: &mut Vec<Anomaly>,
) {
    for a in &life.attempts {
        let id = a.id();
        if !state.has_seen(&id) {
            if let Err(kind) = plausible_submit(a.submit, a.first_sight, state, cfg) {
                anomalies.push(Anomaly::VendorTime(kind));
            }
            state
                .first_seen
                .insert(id, a.first_sight.timestamp_millis());
            if let Some(prev) = state.last_channel.filter(|_| state.seen_count() > 1) {
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
    anomalies: &mut Vec<Anomaly>,
) -> Vec<f64> {
    let mut freshness = Vec::new();
    for a in life.attempts.iter().filter(|a| a.terminal) {
        match (a.sms, a.call) {
            (Some(s), _) if state.counted.insert(a.id()) => {
                if let Some(done) = s.done_tm {
                    freshness.push(secs_between(done, now.fixed_offset()).unwrap_or(0.0));
                }
                sms(a, s, base, updates, anomalies);
            }
            (_, Some(c)) if state.counted.insert(a.id()) => {
                if let Some(end) = c.hangup_time {
                    freshness.push(secs_between(end, now.fixed_offset()).unwrap_or(0.0));
                }
                call(c, base, updates, anomalies);
            }
            _ => {}
        }
    }
    freshness
}

/// Whether a vendor time ends before its attempt began (the latency is then left out).
fn ends_before(start: Option<DateTime<FixedOffset>>, end: Option<DateTime<FixedOffset>>) -> bool {
    matches!((start, end), (Some(s), Some(e)) if e < s)
}

/// A vendor count within `0..=max`, else reported under `field` and left out.
fn bounded(
    v: Option<i64>,
    max: i64,
    field: RecordField,
    anomalies: &mut Vec<Anomaly>,
) -> Option<i64> {
    match v {
        Some(n) if (0..=max).contains(&n) => Some(n),
        Some(_) => {
            anomalies.push(Anomaly::Record(field));
            None
        }
        None => None,
    }
}

fn sms(
    a: &Attempt<'_>,
    s: &SmsAttempt,
    base: &OrderLabelsBase<'_>,
    updates: &mut Vec<Update>,
    anomalies: &mut Vec<Anomaly>,
) {
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
    if ends_before(s.submit_tm, s.done_tm) || ends_before(s.submit_tm, s.send_tm) {
        anomalies.push(Anomaly::VendorTime(VendorTimeAnomaly::EndBeforeSubmit));
    }
    let segments = s.charge_cnt;
    if let Some(n) = bounded(
        segments,
        MAX_SMS_SEGMENTS,
        RecordField::SmsSegments,
        anomalies,
    )
    .filter(|n| *n > 0)
    {
        updates.push(Update::SmsSegments(base.app_country(&c), n as f64));
    }
    if let Some(pay) = s.pay {
        if let Some(u) = cost(base, Channel::Sms, &c, pay, RecordField::SmsCost, anomalies) {
            updates.push(u);
        }
    }
}

fn call(
    c: &CallAttempt,
    base: &OrderLabelsBase<'_>,
    updates: &mut Vec<Update>,
    anomalies: &mut Vec<Anomaly>,
) {
    let country = base.country;
    let code = match c.termination_code {
        None => "unknown".to_owned(),
        Some(x) if (-MAX_TERMINATION_CODE..=MAX_TERMINATION_CODE).contains(&x) => x.to_string(),
        Some(_) => {
            anomalies.push(Anomaly::Record(RecordField::TerminationCode));
            "other".to_owned()
        }
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
    if ends_before(c.submit_time, c.answer_time) || ends_before(c.submit_time, c.hangup_time) {
        anomalies.push(Anomaly::VendorTime(VendorTimeAnomaly::EndBeforeSubmit));
    }
    let duration = c.call_duration;
    if let Some(d) = bounded(
        duration,
        MAX_CALL_SECONDS,
        RecordField::CallDuration,
        anomalies,
    ) {
        updates.push(Update::CallDurationSeconds(
            base.app_country(country),
            d as f64,
        ));
    }
    let billed = c.charged_duration;
    if let Some(d) = bounded(
        billed,
        MAX_CALL_SECONDS,
        RecordField::CallBilledSeconds,
        anomalies,
    )
    .filter(|d| *d > 0)
    {
        updates.push(Update::CallBilledSeconds(
            base.app_country(country),
            d as f64,
        ));
    }
    if let Some(amount) = c.cost {
        if let Some(u) = cost(
            base,
            Channel::Call,
            country,
            amount,
            RecordField::CallCost,
            anomalies,
        ) {
            updates.push(u);
        }
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

/// A cost increment, or `None` (reported under `field`) when the amount is negative or above
/// the plausible maximum. Money is exact up to here; only the export rounds it to a float.
fn cost(
    base: &OrderLabelsBase<'_>,
    channel: Channel,
    country: &str,
    amount: rust_decimal::Decimal,
    field: RecordField,
    anomalies: &mut Vec<Anomaly>,
) -> Option<Update> {
    use rust_decimal::prelude::ToPrimitive;
    let plausible = amount >= rust_decimal::Decimal::ZERO && amount <= base.max_attempt_cost;
    let Some(amount) = amount.to_f64().filter(|f| plausible && f.is_finite()) else {
        anomalies.push(Anomaly::Record(field));
        return None;
    };
    Some(Update::Cost(
        CostLabels {
            app_id: base.app.to_owned(),
            channel,
            country: country.to_owned(),
            currency: base.currency.to_owned(),
        },
        amount,
    ))
}
