//! The lifecycle view of one fetched record, computed once per poll: its attempts in
//! chronological order, and the facts the verdict and the schedule are decided from.

use super::{FlowCatalog, OrderState, Settings, VendorTimeAnomaly};
use crate::api::model::{CallAttempt, Matched, OrderRecord, SmsAttempt, StepTrigger};
use crate::domain::Channel;
use chrono::{DateTime, Duration, FixedOffset, Utc};

/// One attempt of either channel, in a common shape for ordering and outcome logic.
pub(super) struct Attempt<'a> {
    pub channel: Channel,
    index: usize,
    /// The vendor's submit time: the attempt's identity, and the start of its latencies (which
    /// are differences of vendor times, so a vendor clock that is off does not bias them).
    pub submit: Option<DateTime<FixedOffset>>,
    /// When the attempt started for scheduling: the vendor's submit time when plausible, else
    /// our first sight of it ([`plausible_submit`]).
    pub start: DateTime<Utc>,
    /// When the agent first saw the attempt (now for an attempt new in this poll).
    pub first_sight: DateTime<Utc>,
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
            start: DateTime::UNIX_EPOCH,
            first_sight: DateTime::UNIX_EPOCH,
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
            start: DateTime::UNIX_EPOCH,
            first_sight: DateTime::UNIX_EPOCH,
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

/// The attempt's vendor submit time when it is plausible: not before the order's submit (or
/// intake) time minus the tolerance, and not after our first sight of the attempt plus the
/// tolerance. Otherwise what is wrong with it; scheduling then uses our first sight.
pub(super) fn plausible_submit(
    submit: Option<DateTime<FixedOffset>>,
    first_sight: DateTime<Utc>,
    state: &OrderState,
    cfg: &Settings,
) -> Result<DateTime<Utc>, VendorTimeAnomaly> {
    let submit = submit
        .ok_or(VendorTimeAnomaly::SubmitMissing)?
        .with_timezone(&Utc);
    let intake = state.created_at.min(state.received_at());
    let earliest = DateTime::<Utc>::from_timestamp(intake, 0)
        .map(|t| t - cfg.vendor_time_tolerance)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    if submit < earliest {
        return Err(VendorTimeAnomaly::SubmitBeforeIntake);
    }
    if submit > first_sight + cfg.vendor_time_tolerance {
        return Err(VendorTimeAnomaly::SubmitInFuture);
    }
    Ok(submit)
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
    /// The latest attempt's start (its vendor submit time when plausible, else our first sight
    /// of it), else `created`: the verify window and the next flow step count from it.
    pub anchor: DateTime<Utc>,
    /// When a code sent at `anchor` can no longer be verified.
    pub window_end: DateTime<Utc>,
    /// When the flow's next step would start, if the flow has one whose trigger can hold.
    pub step_due: Option<DateTime<Utc>>,
    /// The next step may still start (or has just started and is not visible yet).
    pub step_possible: bool,
    /// Tracking has reached `max_age` (from intake): the order is final.
    pub expired: bool,
    /// An attempt is still running, or the first one has yet to appear.
    pub in_progress: bool,
    /// Until when a running attempt is still worth polling: `max_age` after our first sight of
    /// the latest one; `None` when none is running.
    pub running_until: Option<DateTime<Utc>>,
    /// When tracking reaches `max_age`.
    pub expires: DateTime<Utc>,
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
        let mut attempts = attempts(record);
        let matched = record.verifications.matched;
        let created = DateTime::<Utc>::from_timestamp(state.created_at, 0).unwrap_or(now);
        let received = DateTime::<Utc>::from_timestamp(state.received_at(), 0).unwrap_or(now);
        for a in &mut attempts {
            let id = a.id();
            let legacy = !state.first_seen.contains_key(&id) && state.seen.contains(&id);
            a.first_sight = state
                .first_seen
                .get(&id)
                .and_then(|ms| DateTime::<Utc>::from_timestamp_millis(*ms))
                .unwrap_or(now);
            a.start = if legacy {
                // Seen by a state written before first sights were kept: trust the vendor.
                a.submit.map_or(created, |t| t.with_timezone(&Utc))
            } else {
                plausible_submit(a.submit, a.first_sight, state, cfg).unwrap_or(a.first_sight)
            };
        }
        let anchor = attempts.iter().map(|a| a.start).max().unwrap_or(created);
        let window_end = anchor + cfg.verify_window;
        let last_delivered = attempts.last().is_some_and(|a| a.delivered);
        // Attempts seen across polls (a verificationId record shows only the current one).
        let seen =
            state.seen_count() + attempts.iter().filter(|a| !state.has_seen(&a.id())).count();
        let step_due = next_step_due(record, state, flows, seen, last_delivered, anchor, cfg);
        // A record without attempts yet (or an sna-only one, whose entries are undocumented) is
        // worth waiting for only while its code can still be verified.
        let awaiting_first = attempts.is_empty()
            && !matches!(matched, Matched::Verified | Matched::Unknown)
            && now < window_end;
        let running_until = attempts
            .iter()
            .filter(|a| !a.terminal)
            .map(|a| a.first_sight + cfg.max_age)
            .max();
        let expires = received + cfg.max_age;
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
            expired: now >= expires,
            in_progress: awaiting_first || attempts.iter().any(|a| !a.terminal),
            running_until,
            expires,
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

    /// The start (for scheduling) of the youngest attempt still running.
    pub fn youngest_running(&self) -> Option<DateTime<Utc>> {
        self.attempts
            .iter()
            .filter(|a| !a.terminal)
            .map(|a| a.start)
            .max()
    }

    /// A running attempt is still worth polling although the order has expired.
    pub fn attempts_outlive_expiry(&self, now: DateTime<Utc>) -> bool {
        self.running_until.is_some_and(|t| now < t)
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
