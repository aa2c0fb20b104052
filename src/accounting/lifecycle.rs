//! The lifecycle view of one fetched record, computed once per poll: its attempts in
//! chronological order, and the facts the verdict and the schedule are decided from.

use super::{FlowCatalog, OrderState, Settings};
use crate::api::model::{CallAttempt, Matched, OrderRecord, SmsAttempt, StepTrigger};
use crate::domain::Channel;
use chrono::{DateTime, Duration, FixedOffset, Utc};

/// One attempt of either channel, in a common shape for ordering and outcome logic.
pub(super) struct Attempt<'a> {
    pub channel: Channel,
    index: usize,
    pub submit: Option<DateTime<FixedOffset>>,
    pub terminal: bool,
    pub delivered: bool,
    /// When the attempt reached the user (SMS done, call answered).
    pub delivered_at: Option<DateTime<FixedOffset>>,
    pub sms: Option<&'a SmsAttempt>,
    pub call: Option<&'a CallAttempt>,
}

impl Attempt<'_> {
    /// A stable identity: channel and submit time. Array positions are not stable: the
    /// verificationId record shows only the current attempt as a single object, and the vendor
    /// does not document the order of the orderId record's arrays.
    pub fn id(&self) -> String {
        match self.submit {
            Some(t) => format!("{}@{}", self.channel.as_str(), t.timestamp_millis()),
            None => format!("{}#{}", self.channel.as_str(), self.index),
        }
    }
}

/// The record's attempts, chronological; attempts without a submit time go last, in array
/// order.
pub(super) fn attempts(record: &OrderRecord) -> Vec<Attempt<'_>> {
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

/// Seconds from `from` to `to`; `None` when negative (clocks disagree) or not finite.
pub(super) fn secs_between(from: DateTime<FixedOffset>, to: DateTime<FixedOffset>) -> Option<f64> {
    let d = (to - from).num_milliseconds() as f64 / 1000.0;
    (d.is_finite() && d >= 0.0).then_some(d)
}

/// What the record says about the order at `now`.
pub(super) struct Lifecycle<'a> {
    pub record: &'a OrderRecord,
    pub attempts: Vec<Attempt<'a>>,
    pub matched: Matched,
    pub verified: bool,
    pub any_delivered: bool,
    /// Every attempt is terminal and none delivered (and there is at least one).
    pub all_failed: bool,
    pub first_submit: Option<DateTime<FixedOffset>>,
    /// When the intake (or the client's `submittedAt`) says the order began.
    pub created: DateTime<Utc>,
    /// The latest attempt's submit time, else `created`: the verify window and the next flow
    /// step count from it.
    pub anchor: DateTime<Utc>,
    /// When a code sent at `anchor` can no longer be verified.
    pub window_end: DateTime<Utc>,
    /// When the flow's next step would start, if the flow has one whose trigger can hold.
    pub step_due: Option<DateTime<Utc>>,
    /// The next step may still start (or has just started and is not visible yet).
    pub step_possible: bool,
    /// Tracking has reached `max_age`.
    pub expired: bool,
    /// An attempt is still running, or the first one has yet to appear.
    pub in_progress: bool,
}

impl<'a> Lifecycle<'a> {
    /// `state` is the order's state before this poll.
    pub fn new(
        record: &'a OrderRecord,
        state: &OrderState,
        flows: &FlowCatalog,
        now: DateTime<Utc>,
        cfg: &Settings,
    ) -> Self {
        let attempts = attempts(record);
        let matched = record.verifications.matched;
        let created = DateTime::<Utc>::from_timestamp(state.created_at, 0).unwrap_or(now);
        let last_submit = attempts.iter().filter_map(|a| a.submit).max();
        let anchor = last_submit
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(created);
        let window_end = anchor + cfg.verify_window;
        let last_delivered = attempts.last().is_some_and(|a| a.delivered);
        // Attempts seen across polls (a verificationId record shows only the current one).
        let seen = state.seen.len()
            + attempts
                .iter()
                .filter(|a| !state.seen.contains(&a.id()))
                .count();
        let step_due = next_step_due(record, state, flows, seen, last_delivered, anchor, cfg);
        // A record without attempts yet (or an sna-only one, whose entries are undocumented) is
        // worth waiting for only while its code can still be verified.
        let awaiting_first = attempts.is_empty()
            && !matches!(matched, Matched::Verified | Matched::Unknown)
            && now < window_end;
        Lifecycle {
            record,
            matched,
            verified: matched == Matched::Verified,
            any_delivered: attempts.iter().any(|a| a.delivered),
            all_failed: !attempts.is_empty() && attempts.iter().all(|a| a.terminal && !a.delivered),
            first_submit: attempts.iter().filter_map(|a| a.submit).min(),
            created,
            anchor,
            window_end,
            step_due,
            step_possible: step_due.is_some_and(|due| now <= due + cfg.interval * 2),
            expired: now - created >= cfg.max_age,
            in_progress: awaiting_first || attempts.iter().any(|a| !a.terminal),
            attempts,
        }
    }

    /// When the first delivered attempt reached the user.
    pub fn first_delivery(&self) -> Option<DateTime<FixedOffset>> {
        self.attempts
            .iter()
            .filter(|a| a.delivered)
            .filter_map(|a| a.delivered_at)
            .min()
    }

    /// The submit time of the youngest attempt still running.
    pub fn youngest_running(&self) -> Option<DateTime<Utc>> {
        self.attempts
            .iter()
            .filter(|a| !a.terminal)
            .filter_map(|a| a.submit)
            .max()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The channel the code was verified on (or last sent on).
    pub fn verification_channel(&self) -> Channel {
        self.record.verifications.channel.unwrap_or_else(|| {
            self.attempts
                .iter()
                .rev()
                .find(|a| a.delivered)
                .or(self.attempts.last())
                .map_or(Channel::Sms, |a| a.channel)
        })
    }

    /// The channel that rescued an order whose first attempt failed or went unverified.
    pub fn rescue_channel(&self) -> Option<Channel> {
        let list = &self.attempts;
        if list.len() < 2 {
            return None;
        }
        let verified_at = self
            .verified
            .then_some(self.record.verifications.verified_date)
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
}

/// When the next step of the order's flow would start, if the flow has one and its trigger can
/// still hold.
fn next_step_due(
    record: &OrderRecord,
    state: &OrderState,
    flows: &FlowCatalog,
    attempts: usize,
    last_delivered: bool,
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
    match node.trigger {
        StepTrigger::SendFailure if last_delivered => return None,
        _ if record.verifications.matched == Matched::Verified => return None,
        _ => {}
    }
    let wait = Duration::seconds(node.waiting_time.unwrap_or(60).clamp(0, 3600));
    Some(anchor + wait + cfg.grace)
}
