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
//! places the next poll.

use crate::api::model::{Flow, OrderRecord};
use crate::config::{Config, HumanDuration};
use crate::country;
use crate::domain::Channel;
use crate::ledger::{OrderLabels, OrderOutcome, Update, VerificationLabels, VerificationResult};
use chrono::{DateTime, Duration, Utc};
use increments::OrderLabelsBase;
use lifecycle::Lifecycle;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use verdict::{verdict, Verdict};

mod increments;
mod lifecycle;
mod schedule;
mod verdict;

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
    };

    let mut updates = Vec::new();
    increments::fallbacks(&mut state, &life, &base, &mut updates);
    let freshness = increments::terminal_attempts(&mut state, &life, &base, now, &mut updates);
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

#[cfg(test)]
mod tests;
