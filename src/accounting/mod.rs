//! Accounting: turns one poll of an order's record into metric updates and the next poll time.
//!
//! Pure functions over data (no I/O, no clock): given what was already counted for an order
//! ([`OrderState`], persisted by the tracker) and the record just fetched, [`on_record`] returns
//! the new state, the [`Update`]s to apply and when to poll next. The tracker commits state and
//! updates in one transaction, which is what makes every attempt and every order count exactly
//! once, across restarts.
//!
//! Rules (docs/design.md §4): an attempt is counted as soon as it is terminal; an order is
//! counted once, when final; an order whose late attempts are still in progress (or whose flow
//! may still start a step) keeps being polled after it is final, until those settle or
//! `max_age` passes.
//!
//! One poll, in the shape of the problem: [`lifecycle`] computes once what the record says
//! (attempts, delivery, verification, flow step, window, age); [`increments`] counts what became
//! countable; [`verdict`] decides whether the order is final and how it ended; [`schedule`]
//! places the next poll: by default [`freshness`] (polls placed at the quantiles of the delay
//! distributions [`estimate`] learns from what the agent has seen, to meet
//! `--poll.freshness-target`), or the fixed intervals of `--poll.interval` when the target is
//! 0.

use crate::api::model::{Flow, OrderRecord};
use crate::config::{Config, HumanDuration};
use crate::country;
use crate::domain::{Channel, OrderAlias, OrderKey};
use crate::ledger::{OrderLabels, OrderOutcome, Update, VerificationLabels, VerificationResult};
use chrono::{DateTime, Duration, Utc};
use increments::OrderLabelsBase;
use lifecycle::Lifecycle;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use verdict::{verdict, Verdict};

mod anomalies;
mod estimate;
mod freshness;
mod increments;
mod lifecycle;
mod schedule;
mod verdict;

pub use anomalies::{
    Anomaly, RecordField, VendorTimeAnomaly, MAX_CALL_SECONDS, MAX_SMS_SEGMENTS,
    MAX_TERMINATION_CODE,
};
pub use estimate::{delay_samples, DelayKind, DelaySample, Delays};

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
    /// When the order was submitted: the intake's `submittedAt`, clamped to the time of intake,
    /// else the time of intake (unix seconds). The first poll and the verify window of a record
    /// without attempts count from it.
    pub created_at: i64,
    /// When the agent received the order (unix seconds, the agent's clock; 0 in states written
    /// before schema 2, which then use `created_at`). Expiry counts from it, never from a time
    /// a client or the vendor supplied.
    pub received: i64,
    /// Country from the receiver's calling code, derived once; the number itself is dropped.
    pub country: Option<String>,
    /// Identities (channel and vendor submit time, `lifecycle::Attempt::id`) of attempts already
    /// counted as terminal.
    pub counted: BTreeSet<String>,
    /// Identities of attempts seen by states written before schema 2 (new attempts go to
    /// `first_seen`).
    #[serde(skip_serializing_if = "BTreeSet::is_empty")]
    pub seen: BTreeSet<String>,
    /// Each attempt seen so far, with when the agent first saw it (unix ms, our clock). Each new
    /// one after the first is a fallback. When the vendor's submit time of an attempt is
    /// implausible, scheduling uses this instead, and a running attempt is polled until it is
    /// terminal or `max_age` after this.
    pub first_seen: BTreeMap<String, i64>,
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
    /// An order received at `created_at`, without a client-supplied submit time.
    pub fn new(app_id: &str, flow_hint: Option<i64>, created_at: DateTime<Utc>) -> Self {
        Self::received_at_time(app_id, flow_hint, created_at, created_at)
    }

    /// An order received at `received`, submitted (as the client says) at `submitted`, which is
    /// clamped to `received` at the latest.
    pub fn received_at_time(
        app_id: &str,
        flow_hint: Option<i64>,
        submitted: DateTime<Utc>,
        received: DateTime<Utc>,
    ) -> Self {
        OrderState {
            app_id: app_id.to_string(),
            flow_hint,
            created_at: submitted.min(received).timestamp(),
            received: received.timestamp(),
            ..Default::default()
        }
    }

    /// When the agent received the order (unix seconds).
    pub fn received_at(&self) -> i64 {
        if self.received > 0 {
            self.received
        } else {
            self.created_at
        }
    }

    /// Whether an attempt was seen by an earlier poll.
    pub fn has_seen(&self, id: &str) -> bool {
        self.first_seen.contains_key(id) || self.seen.contains(id)
    }

    /// Attempts seen so far.
    pub fn seen_count(&self) -> usize {
        self.first_seen.len() + self.seen.len()
    }

    /// Takes over what `other` (the same vendor order, tracked under its other key until the
    /// two were linked) has counted and seen, so nothing is counted a second time.
    pub fn absorb(&mut self, other: &OrderState) {
        self.counted.extend(other.counted.iter().cloned());
        for (id, at) in &other.first_seen {
            let e = self.first_seen.entry(id.clone()).or_insert(*at);
            *e = (*e).min(*at);
        }
        self.seen.extend(
            other
                .seen
                .iter()
                .filter(|id| !self.first_seen.contains_key(*id))
                .cloned()
                .collect::<Vec<_>>(),
        );
        self.finalised |= other.finalised;
        self.delivery_observed |= other.delivery_observed;
        self.record_seen |= other.record_seen;
        if self.country.is_none() {
            self.country.clone_from(&other.country);
        }
        if self.last_channel.is_none() {
            self.last_channel = other.last_channel;
        }
        self.received = self.received_at().min(other.received_at());
        self.created_at = self.created_at.min(other.created_at);
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
    /// How far an attempt's vendor submit time may lie before the order's submit (or intake)
    /// time, or after our first sight of it, before scheduling distrusts it.
    pub vendor_time_tolerance: Duration,
    /// Largest plausible cost of one attempt, in the account currency; above it (or negative)
    /// the cost is left out of `itniotech_otp_cost_total` and counted as a record anomaly.
    pub max_attempt_cost: rust_decimal::Decimal,
    /// The p95 delay accepted between an attempt's end and its metric; `None`: the fixed
    /// intervals above place the polls instead.
    pub freshness_target: Option<Duration>,
    /// The delay distributions the freshness scheduler places polls by, fed by the poller
    /// (see [`delay_samples`]). Clones of the settings share them.
    pub delays: Arc<Delays>,
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
            vendor_time_tolerance: d(cfg.tracking.vendor_time_tolerance),
            max_attempt_cost: cfg.records.max_attempt_cost,
            freshness_target: Some(d(cfg.poll.freshness_target)).filter(|t| *t > Duration::zero()),
            delays: Arc::default(),
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
        if self.grace < Duration::zero() || self.vendor_time_tolerance < Duration::zero() {
            return Err("grace and vendor_time_tolerance must not be negative".into());
        }
        if self.max_attempt_cost <= rust_decimal::Decimal::ZERO {
            return Err("max_attempt_cost must be above 0".into());
        }
        if self.max_age <= self.verify_window {
            return Err("max_age must be longer than verify_window".into());
        }
        if self.freshness_target.is_some_and(|t| t <= Duration::zero()) {
            return Err("freshness_target must be above 0 (or unset)".into());
        }
        Ok(())
    }

    /// How long after submit a new order is first polled.
    pub fn first_poll_delay(&self) -> Duration {
        match self.freshness_target {
            Some(target) => freshness::first_poll(self, target),
            None => self.first_delay,
        }
    }
}

/// How long after submit a new order is first polled (the tracker's first schedule).
pub fn first_poll_delay(cfg: &Settings) -> Duration {
    cfg.first_poll_delay()
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
    /// Vendor times and numbers this poll distrusted or left out, each reported once.
    pub anomalies: Vec<Anomaly>,
    /// The order's other name, when its record showed it (set by the poller, from
    /// [`record_alias`]): the tracker links the two keys, and merges two pending orders that
    /// turn out to be one.
    pub alias: Option<OrderAlias>,
}

/// The name of the order under its other key form, when the record shows it: the
/// verificationId record names the `orderId`, and the orderId record may carry the
/// `verificationId`.
pub fn record_alias(key: &OrderKey, record: &OrderRecord) -> Option<OrderAlias> {
    let alias = match key {
        OrderKey::Order { .. } => record
            .verification_id
            .clone()
            .filter(|v| !v.is_empty())
            .map(OrderAlias::VerificationId),
        OrderKey::Verification { .. } => record
            .verifications
            .order_id
            .clone()
            .or_else(|| record.order_id.clone())
            .filter(|o| !o.is_empty())
            .map(OrderAlias::OrderId),
    };
    alias.filter(|a| *a != key.alias())
}

/// Flows by id, from the flow catalog poller.
pub type FlowCatalog = HashMap<i64, Flow>;

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
    state.record_seen = true;
    state.errors = 0;
    if state.country.is_none() {
        if let Some(number) = record.verifications.ori_receiver.as_deref() {
            let c = country::from_number(number);
            if c != country::UNKNOWN {
                state.country = Some(c);
            }
        }
    }
    let mut anomalies = Vec::new();
    let life = Lifecycle::new(record, &state, flows, now, cfg);
    let app = state.app_id.clone();
    let flow = flow_label(&state, Some(record));
    let order_country = state
        .country
        .clone()
        .or_else(|| {
            life.attempts
                .iter()
                .filter_map(|a| a.sms)
                .find_map(|s| s.mcc.map(country::from_mcc))
                .filter(|c| *c != country::UNKNOWN)
                .map(str::to_string)
        })
        .unwrap_or_else(|| country::UNKNOWN.into());
    let receiver_country = state.country.clone();
    let base = OrderLabelsBase {
        app: &app,
        flow: &flow,
        country: &order_country,
        receiver_country: receiver_country.as_deref(),
        currency: &cfg.currency,
        max_attempt_cost: cfg.max_attempt_cost,
    };

    let mut updates = Vec::new();
    increments::new_attempts(&mut state, &life, &base, cfg, &mut updates, &mut anomalies);
    let freshness =
        increments::terminal_attempts(&mut state, &life, &base, now, &mut updates, &mut anomalies);
    increments::order_delivery(&mut state, &life, &base, &mut updates);
    if let Verdict::FinalNow { outcome, result } = verdict(&life, state.finalised, now) {
        increments::finalisation(&life, &base, outcome, result, &mut updates);
        state.finalised = true;
    }
    let next = schedule::next_poll(&state, &life, now, cfg);
    Outcome {
        state,
        updates,
        next,
        freshness,
        anomalies,
        alias: None,
    }
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
        return give_up(state, OrderOutcome::NotFound, Next::Forget);
    }
    // Records can lag the send by a few seconds: back off 1×, 2×, 4× the first delay.
    let backoff = cfg.first_delay * (1 << state.not_found.min(6));
    wait(state, now + backoff)
}

/// A poll that failed (transport or vendor error): nothing is counted; retry later. At max age
/// (from intake) the order is finalised `unresolved`; it is forgotten once no attempt it saw
/// running can still end (`max_age` after our first sight of it).
pub fn on_error(prev: &OrderState, now: DateTime<Utc>, cfg: &Settings) -> Outcome {
    let mut state = prev.clone();
    state.errors = state.errors.saturating_add(1);
    // Back off: 1×, 2×, 4×… the interval, at most 10 minutes, so one broken order cannot
    // spend the account's query quota.
    let backoff = (cfg.interval * (1 << (state.errors - 1).min(6))).min(Duration::minutes(10));
    let retry = now + backoff.max(Duration::seconds(1));
    if is_expired(&state, now, cfg) {
        let next = match unfinished_until(&state, cfg).filter(|t| *t > now) {
            Some(until) => Next::PollAt(retry.min(until)),
            None => Next::Forget,
        };
        return give_up(state, OrderOutcome::Unresolved, next);
    }
    wait(state, retry)
}

fn is_expired(state: &OrderState, now: DateTime<Utc>, cfg: &Settings) -> bool {
    let received = DateTime::<Utc>::from_timestamp(state.received_at(), 0).unwrap_or(now);
    now - received >= cfg.max_age
}

/// Until when the attempts seen running but not yet counted are worth polling: `max_age` after
/// our first sight of the latest of them.
fn unfinished_until(state: &OrderState, cfg: &Settings) -> Option<DateTime<Utc>> {
    state
        .first_seen
        .iter()
        .filter(|(id, _)| !state.counted.contains(*id))
        .filter_map(|(_, ms)| DateTime::<Utc>::from_timestamp_millis(*ms))
        .max()
        .map(|t| t + cfg.max_age)
}

fn wait(state: OrderState, at: DateTime<Utc>) -> Outcome {
    Outcome {
        state,
        updates: Vec::new(),
        next: Next::PollAt(at),
        freshness: Vec::new(),
        anomalies: Vec::new(),
        alias: None,
    }
}

/// Finalises (if not yet) an order whose record cannot be read; `next` says whether it is
/// forgotten or still polled for attempts that may yet end.
fn give_up(mut state: OrderState, outcome: OrderOutcome, next: Next) -> Outcome {
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
        next,
        freshness: Vec::new(),
        anomalies: Vec::new(),
        alias: None,
    }
}

#[cfg(test)]
mod tests;
