//! Accounting: turns one poll of an order's record into metric updates and the next poll time.
//!
//! Pure functions over data (no I/O, no clock): given what was already counted for an order
//! ([`OrderState`], persisted by the tracker) and the record just fetched, [`on_record`] returns
//! the new state, the [`Update`]s to apply and when to poll next. The tracker commits state and
//! updates in one transaction, which is what makes every attempt and every order count exactly
//! once, across restarts.
//!
//! Rules (spec.md §3): an attempt is counted as soon as it is terminal; an order is counted
//! once, when final; an order whose late attempts are still in progress (or whose flow may still
//! start a step) keeps being polled after it is final, until those settle or `max_age` passes.

use crate::api::model::{CallAttempt, Flow, Matched, OrderRecord, SmsAttempt, StepTrigger};
use crate::config::{Config, HumanDuration};
use crate::country;
use crate::domain::Channel;
use crate::ledger::{
    AppCountryLabels, AppFlowLabels, CallLabels, CostLabels, FallbackLabels, OrderLabels,
    OrderOutcome, OrderVerificationLabels, RescueLabels, SmsDeliveryLabels, SmsFailureLabels,
    SmsLabels, SmsStatus, Update, VerificationLabels, VerificationResult,
};
use chrono::{DateTime, Duration, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// What the tracker remembers about an order between polls. No phone number, ever.
///
/// `#[serde(default)]`: a state written by an older release (fewer fields) still loads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrderState {
    /// `app_id` label value (`unknown` for orders known only by verificationId).
    pub app_id: String,
    /// Flow id given at intake, used until the record names one.
    pub flow_hint: Option<i64>,
    /// When the order was submitted (intake `submittedAt`) or received.
    pub created_at: i64,
    /// Country from the receiver's calling code, derived once; the number itself is dropped.
    pub country: Option<String>,
    /// Identities (see [`attempt_id`]) of attempts already counted as terminal.
    pub counted: BTreeSet<String>,
    /// Identities of attempts seen so far; each new one after the first is a fallback.
    pub seen: BTreeSet<String>,
    /// Channel of the latest attempt seen (a verificationId record shows only the current one).
    pub last_channel: Option<Channel>,
    /// A record was found at least once.
    pub record_seen: bool,
    /// Consecutive failed polls (transport or vendor errors), for backoff.
    pub errors: u32,
    /// The order-level delivery latency has been observed.
    pub delivery_observed: bool,
    /// The order's outcome and verification have been counted.
    pub finalised: bool,
    /// Consecutive polls that found no record.
    pub not_found: u32,
}

impl OrderState {
    pub fn new(app_id: &str, flow_hint: Option<i64>, created_at: DateTime<Utc>) -> Self {
        OrderState {
            app_id: app_id.to_string(),
            flow_hint,
            created_at: created_at.timestamp(),
            ..Default::default()
        }
    }
}

/// Scheduling and labelling settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Currency label of `pay`/`cost`.
    pub currency: String,
    /// First poll after submit, and the shortest re-poll of an in-progress attempt.
    pub first_delay: Duration,
    /// Longest re-poll interval while an attempt is in progress.
    pub interval: Duration,
    /// Slack after the moment a flow step or verification window is due.
    pub grace: Duration,
    /// How long after the last attempt's submit a code can still be verified.
    pub verify_window: Duration,
    /// Orders older than this are finalised (`unresolved` if undetermined) and forgotten.
    pub max_age: Duration,
    /// Polls that may find no record before the order counts as `not_found`.
    pub not_found_retries: u32,
}

impl From<&Config> for Settings {
    fn from(cfg: &Config) -> Self {
        let d = |h: HumanDuration| Duration::from_std(h.get()).unwrap_or(Duration::MAX);
        Settings {
            currency: cfg.api.currency.to_string(),
            first_delay: d(cfg.poll.first_delay),
            interval: d(cfg.poll.interval),
            grace: d(cfg.poll.grace),
            verify_window: d(cfg.tracking.verify_window),
            max_age: d(cfg.tracking.max_age),
            not_found_retries: cfg.tracking.not_found_retries,
        }
    }
}

/// The settings of the default configuration.
impl Default for Settings {
    fn default() -> Self {
        Settings::from(&Config::default())
    }
}

impl Settings {
    /// Checks the relations the schedule relies on; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("first_delay", self.first_delay),
            ("interval", self.interval),
            ("verify_window", self.verify_window),
            ("max_age", self.max_age),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, d)| *d <= Duration::zero()) {
            return Err(format!("{name} must be above 0"));
        }
        if self.grace < Duration::zero() {
            return Err("grace must not be negative".into());
        }
        if self.max_age <= self.verify_window {
            return Err("max_age must be longer than verify_window".into());
        }
        Ok(())
    }
}

/// What to do with the order after this poll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    PollAt(DateTime<Utc>),
    /// Everything about the order has been counted: delete it.
    Forget,
}

/// The result of accounting one poll.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub state: OrderState,
    pub updates: Vec<Update>,
    pub next: Next,
    /// For each attempt counted by this poll: seconds from its end (SMS `doneTm`, call
    /// `hangupTime`) to now, i.e. how stale the metric was when it landed.
    pub freshness: Vec<f64>,
}

/// Flows by id, from the flow catalog poller.
pub type FlowCatalog = HashMap<i64, Flow>;

/// One attempt of either channel, in a common shape for ordering and outcome logic.
struct Attempt<'a> {
    channel: Channel,
    index: usize,
    submit: Option<DateTime<FixedOffset>>,
    terminal: bool,
    delivered: bool,
    /// When the attempt reached the user (SMS done, call answered).
    delivered_at: Option<DateTime<FixedOffset>>,
    sms: Option<&'a SmsAttempt>,
    call: Option<&'a CallAttempt>,
}

/// A stable identity for an attempt: its channel and submit time. Array positions are not
/// stable: the verificationId record shows only the current attempt as a single object, and the
/// vendor does not document the order of the orderId record's arrays.
fn attempt_id(a: &Attempt<'_>) -> String {
    match a.submit {
        Some(t) => format!("{}@{}", a.channel.as_str(), t.timestamp_millis()),
        None => format!("{}#{}", a.channel.as_str(), a.index),
    }
}

fn attempts(record: &OrderRecord) -> Vec<Attempt<'_>> {
    let mut all: Vec<Attempt<'_>> = record
        .sms
        .iter()
        .enumerate()
        .map(|(index, s)| Attempt {
            channel: Channel::Sms,
            index,
            submit: s.submit_tm.or(s.send_tm),
            terminal: s.is_terminal(),
            delivered: s.is_delivered(),
            delivered_at: s.done_tm,
            sms: Some(s),
            call: None,
        })
        .chain(record.call.iter().enumerate().map(|(index, c)| Attempt {
            channel: Channel::Call,
            index,
            submit: c.submit_time.or(c.call_time),
            terminal: c.is_terminal(),
            delivered: c.is_delivered(),
            delivered_at: c.answer_time,
            sms: None,
            call: Some(c),
        }))
        .collect();
    // Chronological; attempts without a submit time go last, in array order.
    all.sort_by_key(|a| {
        (
            a.submit.is_none(),
            a.submit,
            a.channel == Channel::Call,
            a.index,
        )
    });
    all
}

fn secs_between(from: DateTime<FixedOffset>, to: DateTime<FixedOffset>) -> Option<f64> {
    let d = (to - from).num_milliseconds() as f64 / 1000.0;
    (d.is_finite() && d >= 0.0).then_some(d)
}

fn flow_label(state: &OrderState, record: Option<&OrderRecord>) -> String {
    record
        .and_then(|r| r.flow_id)
        .or(state.flow_hint)
        .map(|f| f.to_string())
        .unwrap_or_else(|| "none".into())
}

/// Accounts one fetched record.
pub fn on_record(
    prev: &OrderState,
    record: &OrderRecord,
    flows: &FlowCatalog,
    now: DateTime<Utc>,
    cfg: &Settings,
) -> Outcome {
    let mut state = prev.clone();
    state.not_found = 0;
    let mut updates = Vec::new();
    let mut freshness = Vec::new();
    let app = state.app_id.clone();
    let flow = flow_label(&state, Some(record));
    let currency = cfg.currency.as_str();

    if state.country.is_none() {
        if let Some(number) = record.verifications.ori_receiver.as_deref() {
            let c = country::from_number(number);
            if c != country::UNKNOWN {
                state.country = Some(c);
            }
        }
    }
    let list = attempts(record);
    let sms_country = |s: &SmsAttempt| -> String {
        match s.mcc.map(country::from_mcc) {
            Some(c) if c != country::UNKNOWN => c.to_string(),
            _ => state
                .country
                .clone()
                .unwrap_or_else(|| country::UNKNOWN.into()),
        }
    };
    let order_country = state
        .country
        .clone()
        .or_else(|| {
            list.iter()
                .filter_map(|a| a.sms)
                .find_map(|s| s.mcc.map(country::from_mcc))
                .filter(|c| *c != country::UNKNOWN)
                .map(str::to_string)
        })
        .unwrap_or_else(|| country::UNKNOWN.into());

    state.record_seen = true;
    state.errors = 0;
    // Fallbacks: each attempt after the first, counted when it first appears.
    for a in &list {
        if state.seen.insert(attempt_id(a)) {
            if let Some(prev) = state.last_channel.filter(|_| state.seen.len() > 1) {
                updates.push(Update::Fallback(FallbackLabels {
                    app_id: app.clone(),
                    flow_id: flow.clone(),
                    from_channel: prev,
                    to_channel: a.channel,
                }));
            }
            state.last_channel = Some(a.channel);
        }
    }

    // Terminal attempts, each once.
    for a in list.iter().filter(|a| a.terminal) {
        match (a.sms, a.call) {
            (Some(s), _) if state.counted.insert(attempt_id(a)) => {
                let c = sms_country(s);
                let status = if a.delivered {
                    SmsStatus::Delivered
                } else {
                    SmsStatus::Failed
                };
                if let Some(done) = s.done_tm {
                    freshness.push(secs_between(done, now.fixed_offset()).unwrap_or(0.0));
                }
                let mnc = s
                    .mnc
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "unknown".into());
                let mnc = if mnc.len() > 4 { "unknown".into() } else { mnc };
                let app_country = AppCountryLabels {
                    app_id: app.clone(),
                    country: c.clone(),
                };
                updates.push(Update::Sms(SmsLabels {
                    app_id: app.clone(),
                    country: c.clone(),
                    mnc,
                    status,
                }));
                if !a.delivered {
                    updates.push(Update::SmsFailure(SmsFailureLabels {
                        app_id: app.clone(),
                        country: c.clone(),
                        reason: s.reason.clone().unwrap_or_else(|| "unknown".into()),
                    }));
                }
                if let (Some(sub), Some(done)) = (s.submit_tm, s.done_tm) {
                    if let Some(d) = secs_between(sub, done) {
                        let labels = SmsDeliveryLabels {
                            app_id: app.clone(),
                            country: c.clone(),
                            status,
                        };
                        updates.push(Update::SmsDeliverySeconds(labels, d));
                    }
                }
                if let (Some(sub), Some(sent)) = (s.submit_tm, s.send_tm) {
                    if let Some(d) = secs_between(sub, sent) {
                        updates.push(Update::SmsQueueSeconds(app_country.clone(), d));
                    }
                }
                if let Some(n) = s.charge_cnt.filter(|n| *n > 0) {
                    updates.push(Update::SmsSegments(app_country, n as f64));
                }
                if let Some(pay) = s.pay {
                    updates.push(cost(&app, Channel::Sms, &c, currency, pay));
                }
            }
            (_, Some(call)) if state.counted.insert(attempt_id(a)) => {
                let c = order_country.clone();
                if let Some(end) = call.hangup_time {
                    freshness.push(secs_between(end, now.fixed_offset()).unwrap_or(0.0));
                }
                let code = call
                    .termination_code
                    .map(|x| x.to_string())
                    .unwrap_or_else(|| "unknown".into());
                let code = if code.len() > 12 {
                    "other".into()
                } else {
                    code
                };
                let app_country = AppCountryLabels {
                    app_id: app.clone(),
                    country: c.clone(),
                };
                updates.push(Update::Call(CallLabels {
                    app_id: app.clone(),
                    country: c.clone(),
                    termination_code: code,
                    termination_reason: call
                        .termination_reason
                        .clone()
                        .unwrap_or_else(|| "unknown".into()),
                }));
                if let (Some(sub), Some(ans)) = (call.submit_time, call.answer_time) {
                    if call.termination_code == Some(0) {
                        if let Some(d) = secs_between(sub, ans) {
                            updates.push(Update::CallAnswerSeconds(app_country.clone(), d));
                        }
                    }
                }
                if let Some(d) = call.call_duration.filter(|d| *d >= 0) {
                    updates.push(Update::CallDurationSeconds(app_country.clone(), d as f64));
                }
                if let Some(d) = call.charged_duration.filter(|d| *d > 0) {
                    updates.push(Update::CallBilledSeconds(app_country, d as f64));
                }
                if let Some(amount) = call.cost {
                    updates.push(cost(&app, Channel::Call, &c, currency, amount));
                }
            }
            _ => {}
        }
    }

    let first_submit = list.iter().filter_map(|a| a.submit).min();
    let first_delivery = list
        .iter()
        .filter(|a| a.delivered)
        .filter_map(|a| a.delivered_at)
        .min();
    if !state.delivery_observed {
        if let (Some(sub), Some(done)) = (first_submit, first_delivery) {
            if let Some(d) = secs_between(sub, done) {
                let labels = AppFlowLabels {
                    app_id: app.clone(),
                    flow_id: flow.clone(),
                };
                updates.push(Update::OrderDeliverySeconds(labels, d));
            }
            state.delivery_observed = true;
        }
    }

    let matched = record.verifications.matched;
    let verified = matched == Matched::Verified;
    let any_delivered = list.iter().any(|a| a.delivered);
    let all_failed = !list.is_empty() && list.iter().all(|a| a.terminal && !a.delivered);
    let last_submit = list.iter().filter_map(|a| a.submit).max();
    let created = DateTime::<Utc>::from_timestamp(state.created_at, 0).unwrap_or(now);
    let anchor = last_submit
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(created);

    // May the flow still start another step?
    let step_due = next_step_due(record, &state, flows, state.seen.len(), anchor, cfg);
    let step_possible = step_due.is_some_and(|due| now <= due + cfg.interval * 2);
    let window_end = anchor + cfg.verify_window;
    let expired = now - created >= cfg.max_age;
    // A record without attempts yet (or an sna-only one, whose entries are undocumented) is
    // worth waiting for only while its code can still be verified.
    let awaiting_first = list.is_empty()
        && !matches!(matched, Matched::Verified | Matched::Unknown)
        && now < window_end;
    let in_progress = awaiting_first || list.iter().any(|a| !a.terminal);

    // Unknown verificationId (matched 3) settles the order as it is: nothing more will come.
    let determinable =
        verified || any_delivered || matched == Matched::Unknown || (all_failed && !step_possible);
    let settled = matched.is_settled(now >= window_end);
    let final_now = !state.finalised
        && (expired
            || (settled && determinable)
            || (!in_progress && !step_possible && now >= window_end && determinable));
    if final_now {
        let outcome = if verified || any_delivered {
            OrderOutcome::Delivered
        } else if all_failed {
            OrderOutcome::Failed
        } else {
            OrderOutcome::Unresolved
        };
        updates.push(Update::Order(OrderLabels {
            app_id: app.clone(),
            flow_id: flow.clone(),
            country: order_country.clone(),
            outcome,
        }));
        let channel = verification_channel(record, &list);
        let result = match matched {
            Matched::Verified => VerificationResult::Verified,
            Matched::Failed => VerificationResult::Failed,
            Matched::Unknown => VerificationResult::Unknown,
            _ => VerificationResult::NotVerified,
        };
        updates.push(Update::Verification(VerificationLabels {
            app_id: app.clone(),
            flow_id: flow.clone(),
            country: order_country.clone(),
            channel,
            result,
        }));
        if verified {
            if let (Some(sub), Some(at)) = (first_submit, record.verifications.verified_date) {
                if let Some(d) = secs_between(sub, at) {
                    let labels = OrderVerificationLabels {
                        app_id: app.clone(),
                        flow_id: flow.clone(),
                        channel,
                    };
                    updates.push(Update::OrderVerificationSeconds(labels, d));
                }
            }
        }
        if let Some(to) = rescue_channel(&list, record) {
            updates.push(Update::FallbackRescue(RescueLabels {
                app_id: app.clone(),
                flow_id: flow.clone(),
                to_channel: to,
            }));
        }
        state.finalised = true;
    }

    let next = if expired || (state.finalised && !in_progress && !step_possible) {
        Next::Forget
    } else {
        let mut at = now + cfg.max_age; // replaced below by a nearer reason
        if in_progress {
            let youngest = list
                .iter()
                .filter(|a| !a.terminal)
                .filter_map(|a| a.submit)
                .max()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(created);
            // Poll young attempts often (most SMS complete within seconds), old ones less; a
            // report that lags for minutes (or an order already counted) is checked rarely.
            let age = now - youngest;
            let max_delay = if state.finalised || age > Duration::minutes(5) {
                cfg.interval.max(Duration::minutes(5))
            } else {
                cfg.interval
            };
            let delay = (age / 4)
                .max(cfg.first_delay)
                .min(max_delay.max(cfg.first_delay));
            at = at.min(now + delay);
        }
        if let Some(due) = step_due.filter(|_| step_possible) {
            at = at.min(if due > now { due } else { now + cfg.interval });
        }
        if !state.finalised && now < window_end + cfg.grace {
            at = at.min(window_end + cfg.grace);
            if any_delivered && !settled {
                // Most users verify within a minute of delivery: look again after 1×, 2×, 4×…
                // the code's age instead of waiting for the window to close, so the order's
                // outcome is fresh at the cost of a few calls.
                let age = now - anchor;
                let delay = age.clamp(cfg.interval, (cfg.verify_window / 2).max(cfg.interval));
                at = at.min(now + delay);
            }
        }
        if !state.finalised && !in_progress && !step_possible && now >= window_end {
            // Nothing more will happen but the outcome is undetermined: wait for max age.
            at = at.min(now + cfg.interval * 4);
        }
        at = at.min(created + cfg.max_age);
        Next::PollAt(at.max(now + Duration::seconds(1)))
    };
    Outcome {
        state,
        updates,
        next,
        freshness,
    }
}

/// When the next step of the order's flow would start, if the flow has one and its trigger can
/// still hold.
fn next_step_due(
    record: &OrderRecord,
    state: &OrderState,
    flows: &FlowCatalog,
    attempts: usize,
    anchor: DateTime<Utc>,
    cfg: &Settings,
) -> Option<DateTime<Utc>> {
    let flow_id = record.flow_id.or(state.flow_hint)?;
    let flow = flows.get(&flow_id)?;
    if attempts == 0 || attempts >= flow.flow.len() {
        return None;
    }
    let node = &flow.flow[attempts - 1];
    // The trigger of a step that starts on send failure cannot hold once the attempt delivered;
    // one that starts when unverified cannot hold once verified.
    let last_delivered = attempts_last_delivered(record);
    match node.trigger {
        StepTrigger::SendFailure if last_delivered => return None,
        _ if record.verifications.matched == Matched::Verified => return None,
        _ => {}
    }
    let wait = Duration::seconds(node.waiting_time.unwrap_or(60).clamp(0, 3600));
    Some(anchor + wait + cfg.grace)
}

fn attempts_last_delivered(record: &OrderRecord) -> bool {
    attempts(record).last().is_some_and(|a| a.delivered)
}

fn verification_channel(record: &OrderRecord, list: &[Attempt<'_>]) -> Channel {
    record.verifications.channel.unwrap_or_else(|| {
        list.iter()
            .rev()
            .find(|a| a.delivered)
            .or(list.last())
            .map_or(Channel::Sms, |a| a.channel)
    })
}

/// The channel that rescued an order whose first attempt failed or went unverified.
fn rescue_channel(list: &[Attempt<'_>], record: &OrderRecord) -> Option<Channel> {
    if list.len() < 2 {
        return None;
    }
    let verified_at = (record.verifications.matched == Matched::Verified)
        .then_some(record.verifications.verified_date)
        .flatten();
    let second_submit = list[1].submit;
    let first_did_it = list[0].delivered
        && match (verified_at, second_submit) {
            (Some(v), Some(s)) => v < s,
            _ => false,
        };
    if first_did_it {
        return None;
    }
    if let Some(a) = list[1..].iter().find(|a| a.delivered) {
        return Some(a.channel);
    }
    verified_at.map(|_| list[list.len() - 1].channel)
}

/// A poll that found no record.
pub fn on_not_found(prev: &OrderState, now: DateTime<Utc>, cfg: &Settings) -> Outcome {
    if prev.record_seen {
        // The record existed: a passing "not found" is an API hiccup, not a lost order.
        return on_error(prev, now, cfg);
    }
    let mut state = prev.clone();
    state.not_found += 1;
    if state.not_found > cfg.not_found_retries || is_expired(&state, now, cfg) {
        return give_up(state, OrderOutcome::NotFound);
    }
    // Records can lag the send by a few seconds: back off 1×, 2×, 4× the first delay.
    let backoff = cfg.first_delay * (1 << state.not_found.min(6));
    wait(state, now + backoff)
}

/// A poll that failed (transport or vendor error): nothing is counted; retry later, and give
/// up at max age with the order `unresolved`.
pub fn on_error(prev: &OrderState, now: DateTime<Utc>, cfg: &Settings) -> Outcome {
    let mut state = prev.clone();
    state.errors = state.errors.saturating_add(1);
    if is_expired(&state, now, cfg) {
        return give_up(state, OrderOutcome::Unresolved);
    }
    // Back off: 1×, 2×, 4×… the interval, at most 10 minutes, so one broken order cannot
    // spend the account's query quota.
    let backoff = (cfg.interval * (1 << (state.errors - 1).min(6))).min(Duration::minutes(10));
    wait(state, now + backoff.max(Duration::seconds(1)))
}

fn is_expired(state: &OrderState, now: DateTime<Utc>, cfg: &Settings) -> bool {
    let created = DateTime::<Utc>::from_timestamp(state.created_at, 0).unwrap_or(now);
    now - created >= cfg.max_age
}

fn wait(state: OrderState, at: DateTime<Utc>) -> Outcome {
    Outcome {
        state,
        updates: Vec::new(),
        next: Next::PollAt(at),
        freshness: Vec::new(),
    }
}

/// Finalises (if not yet) an order whose record cannot be read, and forgets it.
fn give_up(mut state: OrderState, outcome: OrderOutcome) -> Outcome {
    let mut updates = Vec::new();
    if !state.finalised {
        let flow = flow_label(&state, None);
        let c = state
            .country
            .clone()
            .unwrap_or_else(|| country::UNKNOWN.into());
        updates.push(Update::Order(OrderLabels {
            app_id: state.app_id.clone(),
            flow_id: flow.clone(),
            country: c.clone(),
            outcome,
        }));
        if outcome != OrderOutcome::NotFound {
            // The order existed, so its (unknown) verification counts as not verified.
            updates.push(Update::Verification(VerificationLabels {
                app_id: state.app_id.clone(),
                flow_id: flow,
                country: c,
                channel: state.last_channel.unwrap_or(Channel::Sms),
                result: VerificationResult::NotVerified,
            }));
        }
        state.finalised = true;
    }
    Outcome {
        state,
        updates,
        next: Next::Forget,
        freshness: Vec::new(),
    }
}

/// A cost increment. Money is exact up to here; only the export rounds it to a float.
fn cost(
    app: &str,
    channel: Channel,
    country: &str,
    currency: &str,
    amount: rust_decimal::Decimal,
) -> Update {
    use rust_decimal::prelude::ToPrimitive;
    let amount = amount
        .to_f64()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .unwrap_or(0.0);
    Update::Cost(
        CostLabels {
            app_id: app.to_owned(),
            channel,
            country: country.to_owned(),
            currency: currency.to_owned(),
        },
        amount,
    )
}

#[cfg(test)]
mod tests;
