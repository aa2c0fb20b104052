//! The expected value of every business counter, computed from the simulator's own state
//! (`Simulator::truth`, not its replies) with the rules of docs/design.md §4, and the
//! comparison with what the agent serves.
//!
//! Labels whose value depends on which key form an order was tracked under (`app_id`: orders
//! known only by verificationId are `unknown`; `flow_id`: only the orderId record names the
//! flow) are summed away on both sides; every other label is compared series by series.

use crate::common::Sample;
use chrono::{DateTime, Utc};
use itniotech_exporter::country;
use itniotech_exporter::ledger::normalise_free_text;
use itniotech_exporter::simulator::SimOrderTruth;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// A family, and the labels compared series by series (the others are summed away).
pub const COMPARED: &[(&str, &[&str])] = &[
    ("itniotech_otp_orders_total", &["country", "outcome"]),
    (
        "itniotech_otp_verifications_total",
        &["country", "channel", "result"],
    ),
    (
        "itniotech_otp_fallbacks_total",
        &["from_channel", "to_channel"],
    ),
    ("itniotech_otp_fallback_rescues_total", &["to_channel"]),
    ("itniotech_otp_sms_total", &["country", "mnc", "status"]),
    ("itniotech_otp_sms_failures_total", &["country", "reason"]),
    (
        "itniotech_otp_sms_delivery_seconds_count",
        &["country", "status"],
    ),
    (
        "itniotech_otp_sms_delivery_seconds_sum",
        &["country", "status"],
    ),
    ("itniotech_otp_sms_queue_seconds_count", &["country"]),
    ("itniotech_otp_sms_queue_seconds_sum", &["country"]),
    ("itniotech_otp_sms_segments_total", &["country"]),
    (
        "itniotech_otp_calls_total",
        &["country", "termination_code", "termination_reason"],
    ),
    ("itniotech_otp_call_answer_seconds_count", &["country"]),
    ("itniotech_otp_call_answer_seconds_sum", &["country"]),
    ("itniotech_otp_call_duration_seconds_count", &["country"]),
    ("itniotech_otp_call_duration_seconds_sum", &["country"]),
    ("itniotech_otp_call_billed_seconds_total", &["country"]),
    ("itniotech_otp_cost_total", &["channel", "country"]),
    ("itniotech_otp_order_delivery_seconds_count", &[]),
    ("itniotech_otp_order_delivery_seconds_sum", &[]),
    (
        "itniotech_otp_order_verification_seconds_count",
        &["channel"],
    ),
    ("itniotech_otp_order_verification_seconds_sum", &["channel"]),
];

/// Family → label values (in [`COMPARED`] order) → value.
pub type Counters = BTreeMap<&'static str, BTreeMap<Vec<String>, f64>>;

#[derive(Default)]
struct Expect {
    counters: Counters,
    /// Costs summed exactly, converted once at the end.
    costs: BTreeMap<Vec<String>, Decimal>,
}

impl Expect {
    fn add(&mut self, family: &'static str, labels: &[&str], v: f64) {
        *self
            .counters
            .entry(family)
            .or_default()
            .entry(labels.iter().map(|s| s.to_string()).collect())
            .or_default() += v;
    }

    fn observe(&mut self, hist: &'static str, labels: &[&str], secs: f64) {
        let (count, sum) = match hist {
            "sms_delivery" => (
                "itniotech_otp_sms_delivery_seconds_count",
                "itniotech_otp_sms_delivery_seconds_sum",
            ),
            "sms_queue" => (
                "itniotech_otp_sms_queue_seconds_count",
                "itniotech_otp_sms_queue_seconds_sum",
            ),
            "call_answer" => (
                "itniotech_otp_call_answer_seconds_count",
                "itniotech_otp_call_answer_seconds_sum",
            ),
            "call_duration" => (
                "itniotech_otp_call_duration_seconds_count",
                "itniotech_otp_call_duration_seconds_sum",
            ),
            "order_delivery" => (
                "itniotech_otp_order_delivery_seconds_count",
                "itniotech_otp_order_delivery_seconds_sum",
            ),
            "order_verification" => (
                "itniotech_otp_order_verification_seconds_count",
                "itniotech_otp_order_verification_seconds_sum",
            ),
            other => panic!("unknown histogram {other}"),
        };
        self.add(count, labels, 1.0);
        self.add(sum, labels, secs);
    }
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> Option<f64> {
    let d = (to - from).num_milliseconds() as f64 / 1000.0;
    (d >= 0.0).then_some(d)
}

/// What the agent must have counted for these (settled) orders.
pub fn expected(orders: &[SimOrderTruth]) -> Counters {
    let mut e = Expect::default();
    for o in orders {
        assert!(o.settled, "the oracle needs every order played out");
        let receiver = country::from_number(&o.receiver);
        let first_sms_country = o
            .attempts
            .iter()
            .filter_map(|a| a.sms.as_ref())
            .map(|s| country::from_mcc(i64::from(s.mcc)))
            .find(|c| *c != country::UNKNOWN);
        let oc = if receiver != country::UNKNOWN {
            receiver.clone()
        } else {
            first_sms_country.unwrap_or(country::UNKNOWN).to_string()
        };
        let oc = oc.as_str();
        for pair in o.attempts.windows(2) {
            e.add(
                "itniotech_otp_fallbacks_total",
                &[pair[0].channel, pair[1].channel],
                1.0,
            );
        }
        let mut first_delivery: Option<DateTime<Utc>> = None;
        for a in &o.attempts {
            assert!(a.ended, "a settled order's attempts have ended");
            if let Some(s) = &a.sms {
                let c = match country::from_mcc(i64::from(s.mcc)) {
                    country::UNKNOWN => receiver.as_str(),
                    c => c,
                };
                let status = if a.reached_user {
                    "delivered"
                } else {
                    "failed"
                };
                let mnc = s.mnc.to_string();
                e.add("itniotech_otp_sms_total", &[c, &mnc, status], 1.0);
                if !a.reached_user {
                    let reason = normalise_free_text(s.reason);
                    e.add("itniotech_otp_sms_failures_total", &[c, &reason], 1.0);
                }
                if let Some(d) = secs(a.submit, s.done) {
                    e.observe("sms_delivery", &[c, status], d);
                }
                if let Some(d) = secs(a.submit, s.send) {
                    e.observe("sms_queue", &[c], d);
                }
                if s.charge_cnt > 0 {
                    e.add(
                        "itniotech_otp_sms_segments_total",
                        &[c],
                        f64::from(s.charge_cnt),
                    );
                }
                *e.costs.entry(vec!["sms".into(), c.into()]).or_default() += s.pay;
                if a.reached_user {
                    first_delivery = first_delivery.min(Some(s.done)).or(Some(s.done));
                }
            }
            if let Some(c) = &a.call {
                let code = c.termination_code.to_string();
                let reason = normalise_free_text(c.termination_reason);
                e.add("itniotech_otp_calls_total", &[oc, &code, &reason], 1.0);
                if let (0, Some(answer)) = (c.termination_code, c.answer) {
                    if let Some(d) = secs(a.submit, answer) {
                        e.observe("call_answer", &[oc], d);
                    }
                    if a.reached_user {
                        first_delivery = first_delivery.min(Some(answer)).or(Some(answer));
                    }
                }
                e.observe("call_duration", &[oc], c.call_duration as f64);
                if c.charged_duration > 0 {
                    e.add(
                        "itniotech_otp_call_billed_seconds_total",
                        &[oc],
                        c.charged_duration as f64,
                    );
                }
                *e.costs.entry(vec!["call".into(), oc.into()]).or_default() += c.cost;
            }
        }
        let verified = o.matched == 0;
        let delivered = verified || o.attempts.iter().any(|a| a.reached_user);
        let outcome = if delivered { "delivered" } else { "failed" };
        e.add("itniotech_otp_orders_total", &[oc, outcome], 1.0);
        let result = match o.matched {
            0 => "verified",
            2 => "failed",
            _ => "not_verified",
        };
        e.add(
            "itniotech_otp_verifications_total",
            &[oc, o.channel, result],
            1.0,
        );
        let first_submit = o.attempts.first().map(|a| a.submit);
        if let (Some(sub), Some(done)) = (first_submit, first_delivery) {
            if let Some(d) = secs(sub, done) {
                e.observe("order_delivery", &[], d);
            }
        }
        if let (true, Some(sub), Some(at)) = (verified, first_submit, o.verified_at) {
            if let Some(d) = secs(sub, at) {
                e.observe("order_verification", &[o.channel], d);
            }
        }
        // docs/design.md §4.2: the first attempt did not do the job and a later one did.
        if o.attempts.len() >= 2 {
            let verified_at = o.verified_at.filter(|_| verified);
            let first_did_it =
                o.attempts[0].reached_user && verified_at.is_some_and(|v| v < o.attempts[1].submit);
            let rescuer = o.attempts[1..]
                .iter()
                .find(|a| a.reached_user)
                .or(verified_at.and(o.attempts.last()))
                .map(|a| a.channel);
            if let Some(ch) = rescuer.filter(|_| !first_did_it) {
                e.add("itniotech_otp_fallback_rescues_total", &[ch], 1.0);
            }
        }
    }
    let cost = e.counters.entry("itniotech_otp_cost_total").or_default();
    for (labels, v) in e.costs {
        cost.insert(labels, v.to_f64().unwrap_or(f64::NAN));
    }
    e.counters
}

/// The agent's series, summed over the labels not compared.
pub fn served(samples: &[Sample]) -> Counters {
    let mut out = Counters::new();
    for (family, labels) in COMPARED {
        let m = out.entry(family).or_default();
        for s in samples.iter().filter(|s| s.name == *family) {
            let key = labels
                .iter()
                .map(|l| s.labels.get(*l).cloned().unwrap_or_default())
                .collect();
            *m.entry(key).or_default() += s.value;
        }
    }
    out
}

/// Every series where the agent differs from the oracle (zeros on either side match absent
/// series: the agent creates sibling series at 0), as readable lines.
pub fn differences(expected: &Counters, served: &Counters) -> Vec<String> {
    let mut out = Vec::new();
    for (family, _) in COMPARED {
        let empty = BTreeMap::new();
        let e = expected.get(family).unwrap_or(&empty);
        let s = served.get(family).unwrap_or(&empty);
        let keys: std::collections::BTreeSet<&Vec<String>> = e.keys().chain(s.keys()).collect();
        for k in keys {
            let (want, got) = (
                e.get(k).copied().unwrap_or(0.0),
                s.get(k).copied().unwrap_or(0.0),
            );
            // Costs are decimal sums exported as floats; everything else is a count or a sum
            // of whole seconds.
            let tolerance = if *family == "itniotech_otp_cost_total" {
                1e-6 * want.abs().max(1.0)
            } else {
                1e-9
            };
            if (want - got).abs() > tolerance {
                out.push(format!("{family}{k:?}: expected {want}, served {got}"));
            }
        }
    }
    out
}

/// Series compared (non-zero on either side).
pub fn series_compared(expected: &Counters) -> usize {
    expected.values().map(|m| m.len()).sum()
}
