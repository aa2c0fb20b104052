//! The freshness scheduler (`--poll.freshness-target`): places each poll so that 95 % of
//! attempts are counted within the target of their end, with as few record calls as the
//! learnt delay distributions ([`super::estimate`]) allow.
//!
//! - A running attempt (or the first one, not visible yet) is first looked at `target` after
//!   the [`HEAD`] quantile of its country/channel's run time: only the few attempts that end
//!   sooner than that are counted later than the target, and most have ended by then.
//! - Still running: again every `target` until the attempt is older than the [`TAIL`]
//!   quantile, then at half its age (at most every 5 minutes): the rare long tail (SMS that
//!   expire after 5–30 minutes) costs a handful of calls instead of one per `target`.
//! - A delivered code not yet verified: at the [`VERIFY_RUNGS`] quantiles of the time users
//!   take to verify, then when the verify window closes.
//! - A flow step that may start: `target` after it is due.
//!
//! Exactly-once does not depend on any of this: a poll only decides when the next one is.

use super::estimate::DelayKind;
use super::lifecycle::Lifecycle;
use super::{Next, OrderState, Settings};
use crate::domain::Channel;
use chrono::{DateTime, Duration, Utc};

/// Share of attempts whose end the first poll may miss by more than the target.
pub const HEAD: f64 = 0.03;
/// Run-time quantile beyond which a running attempt is polled at half its age.
pub const TAIL: f64 = 0.97;
/// Quantiles of the time to verify at which an unverified delivered code is looked at again.
pub const VERIFY_RUNGS: &[f64] = &[0.9];

fn secs(s: f64) -> Duration {
    Duration::milliseconds((s * 1000.0).round() as i64)
}

/// When the tracker first polls a new order under `target` (its country is not known yet:
/// the all-country SMS distribution, which the flows start with).
pub(super) fn first_poll(cfg: &Settings, target: Duration) -> Duration {
    secs(
        cfg.delays
            .quantile(None, Channel::Sms, DelayKind::AttemptEnd, HEAD),
    ) + target
}

pub(super) fn next_poll(
    state: &OrderState,
    life: &Lifecycle<'_>,
    now: DateTime<Utc>,
    cfg: &Settings,
    target: Duration,
) -> Next {
    if (life.expired && !life.attempts_outlive_expiry(now))
        || (state.finalised && !life.in_progress && !life.step_possible)
    {
        return Next::Forget;
    }
    let country = state.country.as_deref();
    let q = |channel, kind, p| secs(cfg.delays.quantile(country, channel, kind, p));
    let mut at = now + cfg.max_age; // replaced below by a nearer reason
    if life.in_progress {
        let mut running: Vec<(DateTime<Utc>, Channel)> = life
            .attempts
            .iter()
            .filter(|a| !a.terminal)
            // The attempt's start on our clock when the vendor's is implausible (issue 8).
            .map(|a| (a.start, a.channel))
            .collect();
        if running.is_empty() {
            // The first attempt is not in the record yet.
            running.push((life.created, state.last_channel.unwrap_or(Channel::Sms)));
        }
        for (start, channel) in running {
            let first = start + q(channel, DelayKind::AttemptEnd, HEAD) + target;
            let age = now - start;
            let poll = if now + Duration::seconds(1) < first {
                first
            } else if age < q(channel, DelayKind::AttemptEnd, TAIL) {
                now + target
            } else {
                now + (age / 2).clamp(target, target.max(Duration::minutes(5)))
            };
            at = at.min(poll);
        }
    }
    if let Some(due) = life.step_due.filter(|_| life.step_possible) {
        at = at.min((due + target).max(now + target.min(cfg.interval)));
    }
    let window_end = life.window_end;
    if !state.finalised && now < window_end + cfg.grace {
        at = at.min(window_end + cfg.grace);
        if life.any_delivered && !life.matched.is_settled(now >= window_end) {
            let delivered = life
                .attempts
                .iter()
                .filter(|a| a.delivered)
                .find_map(|a| Some((a.delivered_at?.with_timezone(&Utc), a.channel)));
            let (from, channel) = delivered.unwrap_or((life.anchor, Channel::Sms));
            let rung = VERIFY_RUNGS
                .iter()
                .map(|p| from + q(channel, DelayKind::Verify, *p))
                .find(|t| *t > now + Duration::seconds(1));
            if let Some(t) = rung {
                at = at.min(t);
            }
        }
    }
    if !state.finalised && !life.in_progress && !life.step_possible && now >= window_end {
        // Nothing more will happen but the outcome is undetermined: wait for max age.
        at = at.min(now + cfg.interval * 4);
    }
    // Max age counts from intake, except for an attempt still running then: it is followed
    // until it ends or max age after our first sight of it.
    let stop = match life.running_until {
        Some(until) if life.expired => until,
        _ => life.expires,
    };
    at = at.min(stop);
    Next::PollAt(at.max(now + Duration::seconds(1)))
}

#[cfg(test)]
mod tests {
    use super::super::estimate::DelaySample;
    use super::super::{on_record, FlowCatalog, OrderState, Settings};
    use super::*;
    use crate::api::model::{Envelope, OrderRecord};

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn record(json: serde_json::Value) -> OrderRecord {
        let env: Envelope<OrderRecord> =
            serde_json::from_value(serde_json::json!({"status":"0","reason":"ok","data":json}))
                .unwrap();
        env.data.unwrap()
    }

    fn at(next: Next) -> DateTime<Utc> {
        match next {
            Next::PollAt(at) => at,
            Next::Forget => panic!("forgot the order"),
        }
    }

    /// Submitted 02:00:00 UTC (10:00:00 +08:00), Indonesian receiver.
    const SUBMIT: &str = "2024-05-14T02:00:00Z";

    fn running() -> OrderRecord {
        record(
            serde_json::json!({"verifications":{"matched":-1,"oriReceiver":"6281234567890"},
            "sms":[{"submitTm":"2024-05-14T10:00:00+08:00","status":-1}]}),
        )
    }

    #[test]
    fn the_default_is_a_30s_target_and_the_first_poll_waits_for_most_reports() {
        let cfg = Settings::default();
        assert_eq!(cfg.freshness_target, Some(Duration::seconds(30)));
        // 30 s after the 3 % quantile of the default SMS run time (8 s median, σ 1: ≈ 1.2 s).
        let first = cfg.first_poll_delay();
        assert!(
            (Duration::milliseconds(30_800)..=Duration::milliseconds(31_800)).contains(&first),
            "{first}"
        );
    }

    #[test]
    fn a_running_attempt_is_polled_every_target_then_at_half_its_age() {
        let cfg = Settings::default();
        let st = OrderState::new("app1", None, t(SUBMIT));
        let now = t("2024-05-14T02:00:32Z");
        let out = on_record(&st, &running(), &FlowCatalog::new(), now, &cfg);
        assert_eq!(at(out.next), now + Duration::seconds(30));
        // Past the 97 % quantile (≈ 54 s by default): half its age.
        let late = t("2024-05-14T02:20:00Z");
        let out = on_record(&out.state, &running(), &FlowCatalog::new(), late, &cfg);
        assert_eq!(at(out.next), late + Duration::minutes(5));
    }

    #[test]
    fn a_delivered_code_is_looked_at_again_at_the_verify_quantile_then_at_window_end() {
        let cfg = Settings::default();
        let st = OrderState::new("app1", None, t(SUBMIT));
        let rec = record(
            serde_json::json!({"verifications":{"matched":-1,"oriReceiver":"6281234567890"},
            "sms":[{"submitTm":"2024-05-14T10:00:00+08:00","doneTm":"2024-05-14T10:00:06+08:00","status":0}]}),
        );
        let now = t("2024-05-14T02:00:32Z");
        let out = on_record(&st, &rec, &FlowCatalog::new(), now, &cfg);
        assert_eq!(out.freshness, vec![26.0]);
        // Default time to verify: log-normal, median 30 s, σ 0.7 → p90 ≈ 73.5 s after delivery.
        let rung = at(out.next);
        let expected = t("2024-05-14T02:00:06Z") + Duration::milliseconds(73_500);
        assert!((rung - expected).num_seconds().abs() <= 2, "{rung}");
        // Still unverified at the rung: the window's end (5 min after submit) + grace.
        let out = on_record(&out.state, &rec, &FlowCatalog::new(), rung, &cfg);
        assert_eq!(at(out.next), t("2024-05-14T02:05:05Z"));
    }

    #[test]
    fn what_the_agent_learnt_moves_the_polls() {
        let cfg = Settings::default();
        // Indonesian reports now take 40–60 s.
        let samples: Vec<DelaySample> = (0..200)
            .map(|i| DelaySample {
                country: Some("ID".into()),
                channel: Channel::Sms,
                kind: DelayKind::AttemptEnd,
                secs: 40.0 + f64::from(i % 21),
            })
            .collect();
        cfg.delays.learn(&samples);
        let st = OrderState::new("app1", None, t(SUBMIT));
        // A first poll at 5 s (e.g. the fixed first delay) finds it running and waits for the
        // learnt 3 % quantile (≈ 40 s) + 30 s, not 30 s.
        let now = t("2024-05-14T02:00:05Z");
        let out = on_record(&st, &running(), &FlowCatalog::new(), now, &cfg);
        let next = at(out.next) - t(SUBMIT);
        assert!(
            (Duration::seconds(68)..=Duration::seconds(72)).contains(&next),
            "{next}"
        );
        // Clones of the settings share what was learnt.
        assert_eq!(
            cfg.clone()
                .delays
                .samples(Some("ID"), Channel::Sms, DelayKind::AttemptEnd),
            200.0
        );
    }
}
