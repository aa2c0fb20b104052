//! Delay distributions the freshness scheduler places polls by, learnt from what the agent
//! has seen: per destination country and channel, how long an attempt runs (submit → SMS
//! delivery report or call hang-up) and how long users take to verify a delivered code
//! (delivery → `verifiedDate`).
//!
//! Each distribution is a histogram over fixed log-spaced buckets (1 s to 2 h, 8 per
//! doubling) whose counts are halved whenever they reach [`HALF_LIFE_SAMPLES`], so a carrier
//! that slows down moves the quantiles within a few hundred orders while one odd order does
//! not. A country/channel with fewer than [`MIN_SAMPLES`] observations borrows the channel's
//! all-country distribution, and before that a cold-start default (log-normal, wide enough to
//! be safe on a slow carrier: the scheduler then spends a few more calls, never fewer).
//!
//! The state lives in memory only: after a restart the agent is back at the defaults and
//! learns again within minutes of traffic.

use super::lifecycle::{attempts, secs_between};
use super::OrderState;
use crate::api::model::{Matched, OrderRecord};
use crate::domain::Channel;
use std::collections::HashMap;
use std::sync::RwLock;

/// Observations of one country/channel before its own distribution is trusted.
pub const MIN_SAMPLES: f64 = 30.0;
/// The counts of a distribution are halved when they reach this many observations.
pub const HALF_LIFE_SAMPLES: f64 = 2000.0;

/// Bucket upper bounds in seconds: 1 s × 2^(i/8), up to 2 h.
fn bounds() -> &'static [f64] {
    static BOUNDS: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    BOUNDS.get_or_init(|| {
        (0..)
            .map(|i| 2f64.powf(f64::from(i) / 8.0))
            .take_while(|b| *b <= 7200.0 * 1.1)
            .collect()
    })
}

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DelayKind {
    /// An attempt's submit → its end (SMS delivery report, call hang-up).
    AttemptEnd,
    /// A delivered attempt's delivery (SMS done, call answered) → the code verified.
    Verify,
}

/// One observation, taken from a record when an attempt is counted or an order verified.
#[derive(Clone, Debug, PartialEq)]
pub struct DelaySample {
    pub country: Option<String>,
    pub channel: Channel,
    pub kind: DelayKind,
    pub secs: f64,
}

#[derive(Clone)]
struct Histogram {
    counts: Vec<f64>,
    total: f64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0.0; bounds().len() + 1],
            total: 0.0,
        }
    }

    /// A log-normal with this median and shape, as `weight` pseudo-observations.
    fn lognormal(median: f64, sigma: f64, weight: f64) -> Self {
        let mut h = Histogram::new();
        let cdf =
            |x: f64| 0.5 * (1.0 + erf((x / median).ln() / (sigma * std::f64::consts::SQRT_2)));
        let mut prev = 0.0;
        for (i, b) in bounds().iter().enumerate() {
            let c = cdf(*b);
            h.counts[i] = (c - prev) * weight;
            prev = c;
        }
        h.counts[bounds().len()] = (1.0 - prev) * weight;
        h.total = weight;
        h
    }

    fn add(&mut self, secs: f64) {
        let i = bounds().partition_point(|b| *b < secs);
        self.counts[i] += 1.0;
        self.total += 1.0;
        if self.total >= HALF_LIFE_SAMPLES {
            self.counts.iter_mut().for_each(|c| *c /= 2.0);
            self.total /= 2.0;
        }
    }

    /// The `q` quantile in seconds, interpolated within its bucket.
    fn quantile(&self, q: f64) -> f64 {
        let b = bounds();
        let target = q.clamp(0.0, 1.0) * self.total;
        let mut acc = 0.0;
        for (i, c) in self.counts.iter().enumerate() {
            if *c > 0.0 && acc + c >= target {
                let lo = if i == 0 { 0.0 } else { b[i - 1] };
                let hi = b.get(i).copied().unwrap_or(b[b.len() - 1] * 2.0);
                return lo + (hi - lo) * ((target - acc) / c).clamp(0.0, 1.0);
            }
            acc += c;
        }
        b[b.len() - 1]
    }
}

/// Abramowitz–Stegun 7.1.26 (|error| < 1.5e-7): enough for a prior.
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t
            + 0.254_829_592)
            * t
            * (-x * x).exp();
    y.copysign(x)
}

type Key = (Option<String>, Channel, DelayKind);

/// The learnt distributions, shared by the poller (which feeds them) and accounting (which
/// reads quantiles).
#[derive(Debug, Default)]
pub struct Delays {
    learnt: RwLock<HashMap<Key, Histogram>>,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Histogram({} samples)", self.total)
    }
}

impl Delays {
    /// Records observations (each also counts for its channel's all-country distribution).
    pub fn learn(&self, samples: &[DelaySample]) {
        if samples.is_empty() {
            return;
        }
        let mut map = self.learnt.write().unwrap_or_else(|e| e.into_inner());
        for s in samples
            .iter()
            .filter(|s| s.secs.is_finite() && s.secs >= 0.0)
        {
            if let Some(c) = &s.country {
                map.entry((Some(c.clone()), s.channel, s.kind))
                    .or_insert_with(Histogram::new)
                    .add(s.secs);
            }
            map.entry((None, s.channel, s.kind))
                .or_insert_with(Histogram::new)
                .add(s.secs);
        }
    }

    /// The `q` quantile of `kind` for this country and channel, in seconds: the country's own
    /// distribution once it has enough observations, else the channel's, else the default.
    pub fn quantile(
        &self,
        country: Option<&str>,
        channel: Channel,
        kind: DelayKind,
        q: f64,
    ) -> f64 {
        let map = self.learnt.read().unwrap_or_else(|e| e.into_inner());
        let own = country.and_then(|c| map.get(&(Some(c.to_owned()), channel, kind)));
        let all = map.get(&(None, channel, kind));
        match own
            .filter(|h| h.total >= MIN_SAMPLES)
            .or(all.filter(|h| h.total >= MIN_SAMPLES))
        {
            Some(h) => h.quantile(q),
            None => prior(channel, kind).quantile(q),
        }
    }

    /// Observations behind the distribution `quantile` would use (0 on the default).
    pub fn samples(&self, country: Option<&str>, channel: Channel, kind: DelayKind) -> f64 {
        let map = self.learnt.read().unwrap_or_else(|e| e.into_inner());
        let own = country.and_then(|c| map.get(&(Some(c.to_owned()), channel, kind)));
        let all = map.get(&(None, channel, kind));
        own.filter(|h| h.total >= MIN_SAMPLES)
            .or(all.filter(|h| h.total >= MIN_SAMPLES))
            .map_or(0.0, |h| h.total)
    }
}

/// What one poll taught: the run time of each attempt it counted, and the time to verify when
/// it finalised a verified order. `prev`/`next` are the order's state before and after.
pub fn delay_samples(
    prev: &OrderState,
    record: &OrderRecord,
    next: &OrderState,
) -> Vec<DelaySample> {
    let list = attempts(record);
    let mut out = Vec::new();
    for a in list.iter().filter(|a| a.terminal) {
        let id = a.id();
        if prev.counted.contains(&id) || !next.counted.contains(&id) {
            continue;
        }
        let end = match (a.sms, a.call) {
            (Some(s), _) => s.done_tm,
            (_, Some(c)) => c.hangup_time,
            _ => None,
        };
        if let Some(secs) = a.submit.zip(end).and_then(|(s, e)| secs_between(s, e)) {
            out.push(DelaySample {
                country: next.country.clone(),
                channel: a.channel,
                kind: DelayKind::AttemptEnd,
                secs,
            });
        }
    }
    let verified = record.verifications.matched == Matched::Verified;
    if verified && !prev.finalised && next.finalised {
        let delivered = list
            .iter()
            .filter(|a| a.delivered)
            .find(|a| a.delivered_at.is_some());
        let at = record.verifications.verified_date;
        if let Some((a, secs)) = delivered.and_then(|a| {
            let secs = secs_between(a.delivered_at?, at?)?;
            Some((a, secs))
        }) {
            out.push(DelaySample {
                country: next.country.clone(),
                channel: a.channel,
                kind: DelayKind::Verify,
                secs,
            });
        }
    }
    out
}

/// Cold-start defaults: SMS reports mostly within seconds with a tail of minutes; calls ring,
/// are answered and talk for about half a minute; users type a code within a minute.
fn prior(channel: Channel, kind: DelayKind) -> &'static Histogram {
    static PRIORS: std::sync::OnceLock<[Histogram; 3]> = std::sync::OnceLock::new();
    let p = PRIORS.get_or_init(|| {
        [
            Histogram::lognormal(8.0, 1.0, 100.0),
            Histogram::lognormal(30.0, 0.6, 100.0),
            Histogram::lognormal(30.0, 0.7, 100.0),
        ]
    });
    match (kind, channel) {
        (DelayKind::Verify, _) => &p[2],
        (DelayKind::AttemptEnd, Channel::Call) => &p[1],
        (DelayKind::AttemptEnd, _) => &p[0],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_what_was_seen() {
        let d = Delays::default();
        let cold = d.quantile(Some("ID"), Channel::Sms, DelayKind::AttemptEnd, 0.5);
        assert!((6.0..=10.0).contains(&cold), "default median {cold}");
        let samples: Vec<DelaySample> = (1..=100)
            .map(|i| DelaySample {
                country: Some("ID".into()),
                channel: Channel::Sms,
                kind: DelayKind::AttemptEnd,
                secs: f64::from(i),
            })
            .collect();
        d.learn(&samples);
        let median = d.quantile(Some("ID"), Channel::Sms, DelayKind::AttemptEnd, 0.5);
        assert!((45.0..=56.0).contains(&median), "learnt median {median}");
        let p95 = d.quantile(Some("ID"), Channel::Sms, DelayKind::AttemptEnd, 0.95);
        assert!((88.0..=102.0).contains(&p95), "learnt p95 {p95}");
        // Another country borrows the channel's all-country distribution…
        let other = d.quantile(Some("BR"), Channel::Sms, DelayKind::AttemptEnd, 0.5);
        assert_eq!(other, median);
        // …but not another channel's or kind's.
        assert!(d.quantile(Some("ID"), Channel::Call, DelayKind::AttemptEnd, 0.5) < 40.0);
        assert_eq!(d.samples(Some("ID"), Channel::Sms, DelayKind::Verify), 0.0);
    }

    #[test]
    fn old_observations_fade() {
        let d = Delays::default();
        let at = |secs| DelaySample {
            country: None,
            channel: Channel::Sms,
            kind: DelayKind::AttemptEnd,
            secs,
        };
        d.learn(&vec![at(5.0); 3000]);
        d.learn(&vec![at(100.0); 3000]);
        let median = d.quantile(None, Channel::Sms, DelayKind::AttemptEnd, 0.5);
        assert!(median > 80.0, "the recent regime dominates: {median}");
        assert!(d.samples(None, Channel::Sms, DelayKind::AttemptEnd) < HALF_LIFE_SAMPLES);
    }

    #[test]
    fn a_poll_teaches_the_run_time_of_what_it_counted_and_the_time_to_verify() {
        use crate::accounting::{on_record, FlowCatalog, Settings};
        use crate::api::model::Envelope;
        let rec: Envelope<OrderRecord> = serde_json::from_value(serde_json::json!({"status":"0","data":{
            "verifications":{"matched":0,"verifiedDate":"2024-05-14T10:00:40+08:00","oriReceiver":"6281234567890"},
            "sms":[{"submitTm":"2024-05-14T10:00:00+08:00","doneTm":"2024-05-14T10:00:06+08:00","status":0}]}}))
        .unwrap();
        let rec = rec.data.unwrap();
        let cfg = Settings::default();
        let created = chrono::DateTime::from_timestamp(1_715_652_000, 0).unwrap(); // 02:00:00Z
        let st = OrderState::new("app1", None, created);
        let now = created + chrono::Duration::seconds(45);
        let out = on_record(&st, &rec, &FlowCatalog::new(), now, &cfg);
        let samples = delay_samples(&st, &rec, &out.state);
        let sample = |kind, secs| DelaySample {
            country: Some("ID".into()),
            channel: Channel::Sms,
            kind,
            secs,
        };
        assert_eq!(
            samples,
            vec![
                sample(DelayKind::AttemptEnd, 6.0),
                sample(DelayKind::Verify, 34.0)
            ]
        );
        // Polling the same record again teaches nothing new.
        let again = on_record(&out.state, &rec, &FlowCatalog::new(), now, &cfg);
        assert!(delay_samples(&out.state, &rec, &again.state).is_empty());
    }

    #[test]
    fn the_prior_is_a_log_normal() {
        let h = Histogram::lognormal(8.0, 1.0, 100.0);
        assert!((h.quantile(0.5) - 8.0).abs() < 0.7, "{}", h.quantile(0.5));
        // exp(1.645) × 8 ≈ 41.5
        assert!(
            (h.quantile(0.95) - 41.5).abs() < 4.0,
            "{}",
            h.quantile(0.95)
        );
    }
}
