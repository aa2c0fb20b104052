//! Pure planning: given an order's RNG, the destination and the conditions in force, decide
//! what one attempt (or the end user) will do and when. Nothing here reads a clock or the
//! simulator state, so every choice is a deterministic function of the seed.

use super::presets::{CountryPreset, OperatorPreset, CALL_FAILURES};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rust_decimal::{Decimal, RoundingStrategy};

/// One planned SMS attempt. All times are whole seconds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SmsPlan {
    pub submit: DateTime<Utc>,
    pub send: DateTime<Utc>,
    pub done: DateTime<Utc>,
    pub mcc: u16,
    pub mnc: u16,
    pub sender: &'static str,
    pub charge_cnt: u32,
    pub pay: Decimal,
    pub delivered: bool,
    /// Delivery report status text: `DELIVRD`, `UNDELIV`, `EXPIRED`, `REJECTD`, `UNKNOWN`.
    pub reason: &'static str,
}

/// One planned voice call attempt. `ringing`/`answer` are `None` when the call never got there.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct CallPlan {
    pub submit: DateTime<Utc>,
    pub call: DateTime<Utc>,
    pub ringing: Option<DateTime<Utc>>,
    pub answer: Option<DateTime<Utc>>,
    pub hangup: DateTime<Utc>,
    pub termination_code: i64,
    pub termination_reason: &'static str,
    pub call_duration: i64,
    pub charged_duration: i64,
    pub bill_period: &'static str,
    /// Region/operator label (the record's `code`).
    pub label: String,
    /// Price per minute.
    pub rate: Decimal,
    pub cost: Decimal,
}

/// A factor on every delay the simulator plans (queueing, delivery reports, call progress, the
/// user's think time, flow waits): 1 is real time; the soak test runs at 0.1 so an hour of
/// traffic fits in minutes. Planned values are drawn first and compressed after, so the same
/// seed makes the same choices at any scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct TimeScale(pub f64);

impl TimeScale {
    pub(crate) const REAL: TimeScale = TimeScale(1.0);

    /// `d` scaled, in whole seconds; a positive delay stays at least one second.
    pub(crate) fn delay(self, d: Duration) -> Duration {
        if self.0 == 1.0 || d <= Duration::zero() {
            return d;
        }
        let s = (d.num_seconds() as f64 * self.0).round() as i64;
        Duration::seconds(s.max(1))
    }

    /// `t`, an offset from `origin`, moved to its scaled offset.
    fn at(self, origin: DateTime<Utc>, t: DateTime<Utc>) -> DateTime<Utc> {
        origin + self.delay(t - origin)
    }
}

impl SmsPlan {
    /// The plan with its delays scaled.
    pub(crate) fn scaled(mut self, k: TimeScale) -> SmsPlan {
        let send = k.at(self.submit, self.send);
        self.done = k
            .at(self.submit, self.done)
            .max(send + Duration::seconds(1));
        self.send = send;
        self
    }
}

impl CallPlan {
    /// The plan with its delays scaled; durations, billed seconds and cost follow the new
    /// answer and hang-up times, so the record stays self-consistent.
    pub(crate) fn scaled(mut self, k: TimeScale) -> CallPlan {
        if k == TimeScale::REAL {
            return self;
        }
        let o = self.submit;
        self.call = k.at(o, self.call);
        self.ringing = self.ringing.map(|t| k.at(o, t).max(self.call));
        self.answer = self
            .answer
            .map(|t| k.at(o, t).max(self.ringing.unwrap_or(self.call)));
        self.hangup = k
            .at(o, self.hangup)
            .max(self.answer.or(self.ringing).unwrap_or(self.call) + Duration::seconds(1));
        if let Some(answer) = self.answer {
            self.call_duration = (self.hangup - answer).num_seconds();
            self.charged_duration = billed_seconds(self.call_duration, self.bill_period);
            self.cost = (self.rate * Decimal::from(self.charged_duration) / Decimal::from(60))
                .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
        }
        self
    }
}

/// Conditions an SMS attempt is planned under (scenario and chaos already applied).
#[derive(Clone, Copy, Debug)]
pub(crate) struct SmsConditions {
    pub delivery_prob: f64,
    /// An outage: failures come back quickly as `UNDELIV`.
    pub outage: bool,
}

/// A planned end-user action: typing `code` at `at`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct PlannedAction {
    pub at: DateTime<Utc>,
    pub code: String,
}

fn secs(s: i64) -> Duration {
    Duration::seconds(s)
}

/// Standard normal sample (Box–Muller).
fn std_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Log-normal sample with the given median and shape, rounded to whole seconds and clamped.
pub(crate) fn lognormal_secs(
    rng: &mut impl Rng,
    median: f64,
    sigma: f64,
    min: i64,
    max: i64,
) -> i64 {
    let x = median * (sigma * std_normal(rng)).exp();
    (x.round() as i64).clamp(min, max)
}

pub(crate) fn plan_sms(
    rng: &mut impl Rng,
    country: &CountryPreset,
    operator: &OperatorPreset,
    submit: DateTime<Utc>,
    cond: SmsConditions,
) -> SmsPlan {
    let queue = lognormal_secs(rng, 1.0, 0.6, 0, 30);
    let charge_cnt = if rng.random_bool(0.07) { 2 } else { 1 };
    let delivered = rng.random_bool(cond.delivery_prob.clamp(0.0, 1.0));
    let mut send = submit + secs(queue);
    let (done, reason) = if delivered {
        let lat = lognormal_secs(rng, country.sms_median_latency_secs, 1.0, 1, 900);
        (send + secs(lat), "DELIVRD")
    } else if cond.outage {
        // The carrier rejects quickly: the report lands before the shortest flow wait (30 s).
        send = submit + secs(queue.min(2));
        (send + secs(rng.random_range(3..=25)), "UNDELIV")
    } else {
        let r: f64 = rng.random();
        if r < 0.55 {
            let lat = lognormal_secs(rng, country.sms_median_latency_secs * 2.0, 0.8, 2, 600);
            (send + secs(lat), "UNDELIV")
        } else if r < 0.70 {
            send = submit;
            (submit + secs(1), "REJECTD")
        } else if r < 0.85 {
            (send + secs(rng.random_range(300..=1800)), "EXPIRED")
        } else {
            let lat = lognormal_secs(rng, country.sms_median_latency_secs * 3.0, 1.0, 2, 900);
            (send + secs(lat), "UNKNOWN")
        }
    };
    SmsPlan {
        submit,
        send,
        done,
        mcc: operator.mcc,
        mnc: operator.mnc,
        sender: country.sender,
        charge_cnt,
        pay: Decimal::new(country.sms_price_e4 * i64::from(charge_cnt), 4),
        delivered,
        reason,
    }
}

/// Billed seconds for a call of `duration` seconds under a `first+next` billing period.
pub(crate) fn billed_seconds(duration: i64, bill_period: &str) -> i64 {
    let (first, next) = bill_period
        .split_once('+')
        .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
        .unwrap_or((60, 60));
    if duration <= 0 {
        0
    } else if duration <= first || next <= 0 {
        first
    } else {
        first + (duration - first + next - 1) / next * next
    }
}

pub(crate) fn plan_call(
    rng: &mut impl Rng,
    country: &CountryPreset,
    operator: &OperatorPreset,
    submit: DateTime<Utc>,
) -> CallPlan {
    let call = submit + secs(rng.random_range(1..=3));
    let answered = rng.random_bool(country.call_answer_prob);
    let rate = Decimal::new(country.call_rate_e4, 4);
    let mut plan = CallPlan {
        submit,
        call,
        ringing: None,
        answer: None,
        hangup: call,
        termination_code: 0,
        termination_reason: "success",
        call_duration: 0,
        charged_duration: 0,
        bill_period: country.bill_period,
        label: format!("{}({})", country.name, operator.name),
        rate,
        cost: Decimal::ZERO,
    };
    if answered {
        let ringing = call + secs(rng.random_range(2..=6));
        let answer = ringing + secs(lognormal_secs(rng, 6.0, 0.5, 2, 30));
        let duration = rng.random_range(15..=45);
        plan.ringing = Some(ringing);
        plan.answer = Some(answer);
        plan.hangup = answer + secs(duration);
        plan.call_duration = duration;
        plan.charged_duration = billed_seconds(duration, country.bill_period);
        plan.cost = (rate * Decimal::from(plan.charged_duration) / Decimal::from(60))
            .round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
    } else {
        let total: f64 = CALL_FAILURES.iter().map(|f| f.weight).sum();
        let mut x = rng.random::<f64>() * total;
        let failure = CALL_FAILURES
            .iter()
            .find(|f| {
                x -= f.weight;
                x < 0.0
            })
            .unwrap_or(&CALL_FAILURES[0]);
        plan.termination_code = failure.code;
        plan.termination_reason = failure.reason;
        if failure.rang {
            let ringing = call + secs(rng.random_range(2..=6));
            plan.ringing = Some(ringing);
            plan.hangup = if failure.reason == "No Answer" {
                ringing + secs(rng.random_range(30..=45))
            } else {
                ringing + secs(rng.random_range(3..=15))
            };
        } else {
            plan.hangup = call + secs(rng.random_range(1..=4));
        }
    }
    plan
}

/// A code of the same length that differs from `code` (what a user mistypes).
pub(crate) fn wrong_code(code: &str, rng: &mut impl Rng) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    if chars.is_empty() {
        return "0000".into();
    }
    let i = rng.random_range(0..chars.len());
    chars[i] = match chars[i].to_digit(10) {
        Some(d) => char::from_digit((d + rng.random_range(1..10)) % 10, 10).unwrap_or('0'),
        None if chars[i] == 'X' => 'Y',
        None => 'X',
    };
    chars.into_iter().collect()
}

/// What the end user does once the code reached them at `reached`: nothing (probability
/// `1 - verify_prob`), or type it 5–60 s later, sometimes (8 %) after a wrong code first.
pub(crate) fn plan_user(
    rng: &mut impl Rng,
    reached: DateTime<Utc>,
    code: &str,
    verify_prob: f64,
) -> Vec<PlannedAction> {
    if !rng.random_bool(verify_prob.clamp(0.0, 1.0)) {
        return Vec::new();
    }
    let at = reached + secs(rng.random_range(5..=60));
    if rng.random_bool(0.08) {
        let wrong = wrong_code(code, rng);
        let later = at + secs(rng.random_range(5..=30));
        vec![
            PlannedAction { at, code: wrong },
            PlannedAction {
                at: later,
                code: code.to_owned(),
            },
        ]
    } else {
        vec![PlannedAction {
            at,
            code: code.to_owned(),
        }]
    }
}

/// A numeric OTP code of `len` digits.
pub(crate) fn numeric_code(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulator::presets::COUNTRIES;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn billing_rounds_up_to_the_period() {
        assert_eq!(billed_seconds(0, "60+60"), 0);
        assert_eq!(billed_seconds(21, "60+60"), 60);
        assert_eq!(billed_seconds(61, "60+60"), 120);
        assert_eq!(billed_seconds(21, "20+20"), 40);
        assert_eq!(billed_seconds(20, "20+20"), 20);
    }

    #[test]
    fn sms_plans_are_ordered_and_priced() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let c = &COUNTRIES[0];
        let cond = SmsConditions {
            delivery_prob: c.sms_delivery_prob,
            outage: false,
        };
        let mut delivered = 0;
        let mut latencies = Vec::new();
        for _ in 0..2000 {
            let p = plan_sms(&mut rng, c, &c.operators[0], t0(), cond);
            assert!(p.submit <= p.send && p.send < p.done);
            assert_eq!(p.pay, Decimal::new(310 * i64::from(p.charge_cnt), 4));
            assert_eq!(p.delivered, p.reason == "DELIVRD");
            if p.delivered {
                delivered += 1;
                latencies.push((p.done - p.send).num_seconds());
            }
        }
        let expected = (2000.0 * c.sms_delivery_prob).round() as i32;
        assert!(
            (delivered - expected).abs() <= 40,
            "{delivered} vs {expected}"
        );
        latencies.sort();
        let median = latencies[latencies.len() / 2];
        assert!((3..=5).contains(&median), "median {median}");
        assert!(*latencies.last().unwrap() > 30, "a tail to minutes");
    }

    #[test]
    fn outage_failures_come_back_before_the_shortest_waiting_time() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let c = &COUNTRIES[0];
        let cond = SmsConditions {
            delivery_prob: 0.0,
            outage: true,
        };
        for _ in 0..500 {
            let p = plan_sms(&mut rng, c, &c.operators[0], t0(), cond);
            assert_eq!(p.reason, "UNDELIV");
            assert!((p.done - p.submit).num_seconds() < 30);
        }
    }

    #[test]
    fn calls_have_consistent_times_and_costs() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let c = &COUNTRIES[1];
        for _ in 0..500 {
            let p = plan_call(&mut rng, c, &c.operators[0], t0());
            assert!(p.submit < p.call && p.call < p.hangup);
            if p.termination_code == 0 {
                let answer = p.answer.unwrap();
                assert!(p.ringing.unwrap() < answer);
                assert_eq!((p.hangup - answer).num_seconds(), p.call_duration);
                assert_eq!(p.charged_duration % 60, 0);
                assert_eq!(
                    p.cost,
                    (p.rate * Decimal::from(p.charged_duration) / Decimal::from(60)).round_dp(4)
                );
            } else {
                assert!(p.answer.is_none());
                assert_eq!((p.call_duration, p.cost), (0, Decimal::ZERO));
            }
        }
    }

    #[test]
    fn users_sometimes_mistype_first() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (mut none, mut wrong_first) = (0, 0);
        for _ in 0..1000 {
            let acts = plan_user(&mut rng, t0(), "123456", 0.85);
            match acts.as_slice() {
                [] => none += 1,
                [a] => assert_eq!(a.code, "123456"),
                [a, b] => {
                    wrong_first += 1;
                    assert_ne!(a.code, "123456");
                    assert_eq!(a.code.len(), 6);
                    assert_eq!(b.code, "123456");
                    assert!(a.at < b.at);
                }
                _ => unreachable!(),
            }
            if let Some(a) = acts.first() {
                assert!((5..=60).contains(&(a.at - t0()).num_seconds()));
            }
        }
        assert!((100..=200).contains(&none), "{none}");
        assert!((30..=110).contains(&wrong_first), "{wrong_first}");
    }
}
