//! Every metric the exporter serves, defined in one place.
//!
//! Two kinds of state live here:
//! - the **ledger**: the OTP delivery counters and histograms of the metric contract. They are
//!   driven by [`Update`]s that the accounting stage computes, persisted by the tracker in the
//!   same transaction as the order state that caused them, and restored at start, so a restart
//!   neither loses nor repeats an increment. prometheus-client's own histogram cannot be restored
//!   from stored buckets, hence the ledger and its [`Collector`].
//! - **operational** metrics of the agent itself (API calls, intake, backlog, flows, balance),
//!   plain prometheus-client metrics that start from zero like any exporter's.
//!
//! Label values are passed positionally but only through the typed constructors on [`Update`],
//! so a wrong label set is a compile error.

use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family as PFamily;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

/// Distinct values kept per free-text label (`reason`, `termination_reason`); the rest → `other`.
pub const FREE_TEXT_CAP: usize = 50;
/// Longest normalised free-text label value.
pub const FREE_TEXT_MAX_LEN: usize = 40;
/// Labels whose values come from intake callers or the vendor's catalog rather than a fixed
/// set, with the distinct values kept per family; later values become `other`. A typo'd or
/// hostile `appId` at intake must not grow the series count without bound.
pub const CAPPED_LABELS: &[(&str, usize)] = &[("app_id", 200), ("flow_id", 200)];

const SMS_DELIVERY_BUCKETS: &[f64] = &[
    1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
const SMS_QUEUE_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];
const CALL_ANSWER_BUCKETS: &[f64] = &[2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0];
const CALL_DURATION_BUCKETS: &[f64] = &[5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 300.0];
const ORDER_DELIVERY_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0,
];
const ORDER_VERIFICATION_BUCKETS: &[f64] = &[
    5.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0, 1800.0,
];
const FRESHNESS_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0];
const API_DURATION_BUCKETS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Label values that every series of a family is initialised with, so ratios see zeros
/// instead of missing series.
pub const ORDER_OUTCOMES: &[&str] = &["delivered", "failed", "unresolved", "not_found"];
pub const VERIFICATION_RESULTS: &[&str] = &["verified", "not_verified", "failed", "unknown"];
pub const SMS_STATUSES: &[&str] = &["delivered", "failed"];
pub const REJECT_REASONS: &[&str] = &["invalid", "duplicate", "sampled_out"];
pub const POLL_RESULTS: &[&str] = &["ok", "not_found", "error"];

/// A family of the ledger (the persisted OTP metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LedgerFamily {
    Orders,
    Verifications,
    Fallbacks,
    FallbackRescues,
    Sms,
    SmsFailures,
    SmsDeliverySeconds,
    SmsQueueSeconds,
    SmsSegments,
    Calls,
    CallAnswerSeconds,
    CallDurationSeconds,
    CallBilledSeconds,
    Cost,
    OrderDeliverySeconds,
    OrderVerificationSeconds,
}

/// Static description of a ledger family.
pub struct FamilySpec {
    /// Exposed name; counters get `_total` appended by the encoder.
    pub name: &'static str,
    pub help: &'static str,
    pub labels: &'static [&'static str],
    /// `None` for counters, bucket upper bounds for histograms.
    pub buckets: Option<&'static [f64]>,
    /// Position of a free-text label that is normalised and capped.
    pub free_text: Option<usize>,
    /// Position of an outcome label and the values its siblings are initialised with.
    pub siblings: Option<(usize, &'static [&'static str])>,
}

impl LedgerFamily {
    pub const ALL: [LedgerFamily; 16] = [
        LedgerFamily::Orders,
        LedgerFamily::Verifications,
        LedgerFamily::Fallbacks,
        LedgerFamily::FallbackRescues,
        LedgerFamily::Sms,
        LedgerFamily::SmsFailures,
        LedgerFamily::SmsDeliverySeconds,
        LedgerFamily::SmsQueueSeconds,
        LedgerFamily::SmsSegments,
        LedgerFamily::Calls,
        LedgerFamily::CallAnswerSeconds,
        LedgerFamily::CallDurationSeconds,
        LedgerFamily::CallBilledSeconds,
        LedgerFamily::Cost,
        LedgerFamily::OrderDeliverySeconds,
        LedgerFamily::OrderVerificationSeconds,
    ];

    pub fn spec(self) -> FamilySpec {
        use LedgerFamily::*;
        let c = |name, help, labels| FamilySpec {
            name,
            help,
            labels,
            buckets: None,
            free_text: None,
            siblings: None,
        };
        let h = |name, help, labels, buckets| FamilySpec {
            name,
            help,
            labels,
            buckets: Some(buckets),
            free_text: None,
            siblings: None,
        };
        match self {
            Orders => FamilySpec {
                siblings: Some((3, ORDER_OUTCOMES)),
                ..c(
                    "itniotech_otp_orders",
                    "Finalised OTP orders by outcome.",
                    &["app_id", "flow_id", "country", "outcome"],
                )
            },
            Verifications => FamilySpec {
                siblings: Some((4, VERIFICATION_RESULTS)),
                ..c(
                    "itniotech_otp_verifications",
                    "Verification results of finalised orders.",
                    &["app_id", "flow_id", "country", "channel", "result"],
                )
            },
            Fallbacks => c(
                "itniotech_otp_fallbacks",
                "Switches from one attempt of an order to the next.",
                &["app_id", "flow_id", "from_channel", "to_channel"],
            ),
            FallbackRescues => c(
                "itniotech_otp_fallback_rescues",
                "Orders whose first attempt failed or went unverified and a later attempt delivered or was verified.",
                &["app_id", "flow_id", "to_channel"],
            ),
            Sms => FamilySpec {
                siblings: Some((3, SMS_STATUSES)),
                ..c(
                    "itniotech_otp_sms",
                    "Terminal SMS attempts by status.",
                    &["app_id", "country", "mnc", "status"],
                )
            },
            SmsFailures => FamilySpec {
                free_text: Some(2),
                ..c(
                    "itniotech_otp_sms_failures",
                    "Failed SMS attempts by normalised reason.",
                    &["app_id", "country", "reason"],
                )
            },
            SmsDeliverySeconds => FamilySpec {
                siblings: Some((2, SMS_STATUSES)),
                ..h(
                    "itniotech_otp_sms_delivery_seconds",
                    "SMS submit to delivery report (submitTm to doneTm).",
                    &["app_id", "country", "status"],
                    SMS_DELIVERY_BUCKETS,
                )
            },
            SmsQueueSeconds => h(
                "itniotech_otp_sms_queue_seconds",
                "SMS submit to send (submitTm to sendTm).",
                &["app_id", "country"],
                SMS_QUEUE_BUCKETS,
            ),
            SmsSegments => c(
                "itniotech_otp_sms_segments",
                "Billed SMS segments (chargeCnt).",
                &["app_id", "country"],
            ),
            Calls => FamilySpec {
                free_text: Some(3),
                ..c(
                    "itniotech_otp_calls",
                    "Terminal call attempts by termination code and normalised reason.",
                    &["app_id", "country", "termination_code", "termination_reason"],
                )
            },
            CallAnswerSeconds => h(
                "itniotech_otp_call_answer_seconds",
                "Call submit to answer (submitTime to answerTime) of answered calls.",
                &["app_id", "country"],
                CALL_ANSWER_BUCKETS,
            ),
            CallDurationSeconds => h(
                "itniotech_otp_call_duration_seconds",
                "Duration of terminal calls (callDuration).",
                &["app_id", "country"],
                CALL_DURATION_BUCKETS,
            ),
            CallBilledSeconds => c(
                "itniotech_otp_call_billed_seconds",
                "Billed call seconds (chargedDuration).",
                &["app_id", "country"],
            ),
            Cost => c(
                "itniotech_otp_cost",
                "Money charged for OTP attempts (SMS pay, call cost), in the account currency.",
                &["app_id", "channel", "country", "currency"],
            ),
            OrderDeliverySeconds => h(
                "itniotech_otp_order_delivery_seconds",
                "First attempt submit to the completion of the first delivered attempt.",
                &["app_id", "flow_id"],
                ORDER_DELIVERY_BUCKETS,
            ),
            OrderVerificationSeconds => h(
                "itniotech_otp_order_verification_seconds",
                "First attempt submit to the verification of the code.",
                &["app_id", "flow_id", "channel"],
                ORDER_VERIFICATION_BUCKETS,
            ),
        }
    }

    /// Stable key used in the store.
    pub fn key(self) -> &'static str {
        self.spec().name
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.key() == key)
    }
}

/// One increment (counters) or observation (histograms) of a ledger family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Update {
    pub family: LedgerFamily,
    pub labels: Vec<String>,
    pub value: f64,
}

fn s(v: &str) -> String {
    v.to_string()
}

impl Update {
    fn new(family: LedgerFamily, labels: Vec<String>, value: f64) -> Self {
        debug_assert_eq!(labels.len(), family.spec().labels.len());
        Update {
            family,
            labels,
            value,
        }
    }
    pub fn order(app: &str, flow: &str, country: &str, outcome: &str) -> Self {
        Self::new(
            LedgerFamily::Orders,
            vec![s(app), s(flow), s(country), s(outcome)],
            1.0,
        )
    }
    pub fn verification(app: &str, flow: &str, country: &str, channel: &str, result: &str) -> Self {
        Self::new(
            LedgerFamily::Verifications,
            vec![s(app), s(flow), s(country), s(channel), s(result)],
            1.0,
        )
    }
    pub fn fallback(app: &str, flow: &str, from: &str, to: &str) -> Self {
        Self::new(
            LedgerFamily::Fallbacks,
            vec![s(app), s(flow), s(from), s(to)],
            1.0,
        )
    }
    pub fn fallback_rescue(app: &str, flow: &str, to: &str) -> Self {
        Self::new(
            LedgerFamily::FallbackRescues,
            vec![s(app), s(flow), s(to)],
            1.0,
        )
    }
    pub fn sms(app: &str, country: &str, mnc: &str, status: &str) -> Self {
        Self::new(
            LedgerFamily::Sms,
            vec![s(app), s(country), s(mnc), s(status)],
            1.0,
        )
    }
    /// `reason` is raw vendor text: the ledger normalises and caps it.
    pub fn sms_failure(app: &str, country: &str, reason: &str) -> Self {
        Self::new(
            LedgerFamily::SmsFailures,
            vec![s(app), s(country), s(reason)],
            1.0,
        )
    }
    pub fn sms_delivery_seconds(app: &str, country: &str, status: &str, secs: f64) -> Self {
        Self::new(
            LedgerFamily::SmsDeliverySeconds,
            vec![s(app), s(country), s(status)],
            secs,
        )
    }
    pub fn sms_queue_seconds(app: &str, country: &str, secs: f64) -> Self {
        Self::new(
            LedgerFamily::SmsQueueSeconds,
            vec![s(app), s(country)],
            secs,
        )
    }
    pub fn sms_segments(app: &str, country: &str, n: f64) -> Self {
        Self::new(LedgerFamily::SmsSegments, vec![s(app), s(country)], n)
    }
    /// `reason` is raw vendor text: the ledger normalises and caps it.
    pub fn call(app: &str, country: &str, code: &str, reason: &str) -> Self {
        Self::new(
            LedgerFamily::Calls,
            vec![s(app), s(country), s(code), s(reason)],
            1.0,
        )
    }
    pub fn call_answer_seconds(app: &str, country: &str, secs: f64) -> Self {
        Self::new(
            LedgerFamily::CallAnswerSeconds,
            vec![s(app), s(country)],
            secs,
        )
    }
    pub fn call_duration_seconds(app: &str, country: &str, secs: f64) -> Self {
        Self::new(
            LedgerFamily::CallDurationSeconds,
            vec![s(app), s(country)],
            secs,
        )
    }
    pub fn call_billed_seconds(app: &str, country: &str, secs: f64) -> Self {
        Self::new(
            LedgerFamily::CallBilledSeconds,
            vec![s(app), s(country)],
            secs,
        )
    }
    pub fn cost(app: &str, channel: &str, country: &str, currency: &str, amount: f64) -> Self {
        Self::new(
            LedgerFamily::Cost,
            vec![s(app), s(channel), s(country), s(currency)],
            amount,
        )
    }
    pub fn order_delivery_seconds(app: &str, flow: &str, secs: f64) -> Self {
        Self::new(
            LedgerFamily::OrderDeliverySeconds,
            vec![s(app), s(flow)],
            secs,
        )
    }
    pub fn order_verification_seconds(app: &str, flow: &str, channel: &str, secs: f64) -> Self {
        Self::new(
            LedgerFamily::OrderVerificationSeconds,
            vec![s(app), s(flow), s(channel)],
            secs,
        )
    }
}

/// Lower-case, `[a-z0-9_]`, runs of anything else folded to one `_`, capped in length.
pub fn normalise_free_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(FREE_TEXT_MAX_LEN));
    for ch in raw.chars() {
        if out.len() >= FREE_TEXT_MAX_LEN {
            break;
        }
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    if out.is_empty() {
        "unknown".to_string()
    } else {
        out
    }
}

/// The value of one ledger series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SeriesValue {
    Counter(f64),
    /// Per-bucket (non-cumulative) counts, one per bound plus the `+Inf` bucket.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<u64>,
    },
}

pub type SeriesKey = (LedgerFamily, Vec<String>);

/// The persisted OTP metrics: one owner (the tracker's writer) mutates it, scrapes read it.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    series: BTreeMap<SeriesKey, SeriesValue>,
    /// Admitted values per (family, label position) for free-text and capped labels
    /// (restored from the series themselves).
    admitted: HashMap<(LedgerFamily, usize), BTreeSet<String>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// Restores one stored series (at start).
    pub fn restore(&mut self, key: SeriesKey, value: SeriesValue) {
        for (pos, _) in bounded_labels(key.0) {
            if let Some(v) = key.1.get(pos) {
                self.admitted
                    .entry((key.0, pos))
                    .or_default()
                    .insert(v.clone());
            }
        }
        self.series.insert(key, value);
    }

    pub fn get(&self, key: &SeriesKey) -> Option<&SeriesValue> {
        self.series.get(key)
    }

    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&SeriesKey, &SeriesValue)> {
        self.series.iter()
    }

    /// Applies updates and returns the keys of every series it created or changed (siblings
    /// included), which the caller persists.
    pub fn apply(&mut self, updates: &[Update]) -> BTreeSet<SeriesKey> {
        let mut touched = BTreeSet::new();
        for u in updates {
            if !u.value.is_finite() {
                continue;
            }
            let spec = u.family.spec();
            let mut labels = u.labels.clone();
            for (pos, cap) in bounded_labels(u.family) {
                if let Some(raw) = labels.get_mut(pos) {
                    let value = if Some(pos) == spec.free_text {
                        normalise_free_text(raw)
                    } else {
                        std::mem::take(raw)
                    };
                    *raw = self.admit(u.family, pos, cap, value);
                }
            }
            let key = (u.family, labels);
            if !self.series.contains_key(&key) {
                // Companions are created with a series' first increment, so an existing series
                // already has them: the common path does no sibling work.
                self.init_companions(&spec, &key, &mut touched);
            }
            let entry = self
                .series
                .entry(key.clone())
                .or_insert_with(|| empty_value(&spec));
            match entry {
                SeriesValue::Counter(c) => *c += u.value.max(0.0),
                SeriesValue::Histogram {
                    sum,
                    count,
                    buckets,
                } => {
                    let bounds = spec.buckets.unwrap_or(&[]);
                    let idx = bounds
                        .iter()
                        .position(|b| u.value <= *b)
                        .unwrap_or(bounds.len());
                    if let Some(b) = buckets.get_mut(idx) {
                        *b += 1;
                    }
                    *sum += u.value;
                    *count += 1;
                }
            }
            touched.insert(key);
        }
        touched
    }

    /// Creates, at 0, the series that ratios over `key` divide by or into: the sibling
    /// outcomes of its family, and for a fallback the rescue counter of the same flow.
    fn init_companions(
        &mut self,
        spec: &FamilySpec,
        key: &SeriesKey,
        touched: &mut BTreeSet<SeriesKey>,
    ) {
        let (family, labels) = key;
        let mut companions = Vec::new();
        if let Some((pos, values)) = spec.siblings {
            for v in values {
                let mut sib = labels.clone();
                sib[pos] = (*v).to_string();
                companions.push(((*family, sib), empty_value(spec)));
            }
        }
        if *family == LedgerFamily::Fallbacks {
            let rescue = vec![labels[0].clone(), labels[1].clone(), labels[3].clone()];
            companions.push((
                (LedgerFamily::FallbackRescues, rescue),
                SeriesValue::Counter(0.0),
            ));
        }
        for (k, v) in companions {
            if !self.series.contains_key(&k) {
                self.series.insert(k.clone(), v);
                touched.insert(k);
            }
        }
    }

    fn admit(&mut self, family: LedgerFamily, pos: usize, cap: usize, v: String) -> String {
        let admitted = self.admitted.entry((family, pos)).or_default();
        if admitted.contains(&v) {
            return v;
        }
        if admitted.len() < cap {
            admitted.insert(v.clone());
            return v;
        }
        "other".to_string()
    }
}

/// (position, cap) of every label of `family` whose values are bounded by admission.
fn bounded_labels(family: LedgerFamily) -> impl Iterator<Item = (usize, usize)> {
    let spec = family.spec();
    spec.labels
        .iter()
        .enumerate()
        .filter_map(move |(pos, name)| {
            if Some(pos) == spec.free_text {
                Some((pos, FREE_TEXT_CAP))
            } else {
                CAPPED_LABELS
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, cap)| (pos, *cap))
            }
        })
}

fn empty_value(spec: &FamilySpec) -> SeriesValue {
    match spec.buckets {
        None => SeriesValue::Counter(0.0),
        Some(b) => SeriesValue::Histogram {
            sum: 0.0,
            count: 0,
            buckets: vec![0; b.len() + 1],
        },
    }
}

/// Encodes the ledger at scrape time.
#[derive(Debug, Clone)]
pub struct LedgerCollector(pub Arc<RwLock<Ledger>>);

impl prometheus_client::collector::Collector for LedgerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ledger = self.0.read().unwrap_or_else(|e| e.into_inner());
        for family in LedgerFamily::ALL {
            let spec = family.spec();
            let kind = if spec.buckets.is_some() {
                MetricType::Histogram
            } else {
                MetricType::Counter
            };
            let mut metric = encoder.encode_descriptor(spec.name, spec.help, None, kind)?;
            let lo = (family, Vec::new());
            for ((f, labels), value) in ledger.series.range(lo..) {
                if *f != family {
                    break;
                }
                let label_set: Vec<(&str, &str)> = spec
                    .labels
                    .iter()
                    .copied()
                    .zip(labels.iter().map(String::as_str))
                    .collect();
                let mut m = metric.encode_family(&label_set)?;
                match value {
                    SeriesValue::Counter(c) => m
                        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(
                            c, None,
                        )?,
                    SeriesValue::Histogram {
                        sum,
                        count,
                        buckets,
                    } => {
                        let bounds = spec.buckets.unwrap_or(&[]);
                        let pairs: Vec<(f64, u64)> = bounds
                            .iter()
                            .copied()
                            .chain(std::iter::once(f64::INFINITY))
                            .zip(buckets.iter().copied())
                            .collect();
                        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                            *sum, *count, &pairs, None,
                        )?
                    }
                }
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointStatus {
    /// Not `endpoint`: prometheus-operator adds a target label of that name.
    pub api_endpoint: String,
    pub status: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    pub api_endpoint: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowInfoLabels {
    pub flow_id: String,
    pub flow_name: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowStepInfoLabels {
    pub flow_id: String,
    pub step: String,
    pub channel: String,
    pub trigger: String,
    pub channel_switch: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FlowStepLabels {
    pub flow_id: String,
    pub step: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BalanceLabels {
    pub kind: String,
    pub currency: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub revision: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

/// The agent's operational metrics.
#[derive(Debug)]
pub struct Operational {
    pub up: Gauge,
    pub api_requests: PFamily<EndpointStatus, Counter>,
    pub api_request_duration: PFamily<EndpointLabel, Histogram, fn() -> Histogram>,
    pub orders_received: PFamily<SourceLabel, Counter>,
    pub orders_rejected: PFamily<ReasonLabel, Counter>,
    pub orders_pending: Gauge,
    pub oldest_pending_age: F64Gauge,
    pub poll_lag: F64Gauge,
    pub polls: PFamily<ResultLabel, Counter>,
    pub attempt_freshness: Histogram,
    pub clock_skew: F64Gauge,
    pub flow_info: PFamily<FlowInfoLabels, Gauge>,
    pub flow_step_info: PFamily<FlowStepInfoLabels, Gauge>,
    pub flow_step_wait: PFamily<FlowStepLabels, Gauge>,
    pub balance: PFamily<BalanceLabels, F64Gauge>,
    pub build_info: PFamily<BuildLabels, Gauge>,
    /// The flow label sets published by the last catalog refresh, so the next one can remove
    /// only the stale ones (clearing first would let a scrape see no flows at all).
    pub published_flows: std::sync::Mutex<PublishedFlows>,
}

/// Label sets of the flow info families currently exported.
#[derive(Debug, Default)]
pub struct PublishedFlows {
    pub info: Vec<FlowInfoLabels>,
    pub steps: Vec<FlowStepInfoLabels>,
    pub waits: Vec<FlowStepLabels>,
}

fn api_histogram() -> Histogram {
    Histogram::new(API_DURATION_BUCKETS.iter().copied())
}

impl Default for Operational {
    fn default() -> Self {
        Operational {
            up: Gauge::default(),
            api_requests: PFamily::default(),
            api_request_duration: PFamily::new_with_constructor(api_histogram),
            orders_received: PFamily::default(),
            orders_rejected: PFamily::default(),
            orders_pending: Gauge::default(),
            oldest_pending_age: F64Gauge::default(),
            poll_lag: F64Gauge::default(),
            polls: PFamily::default(),
            attempt_freshness: Histogram::new(FRESHNESS_BUCKETS.iter().copied()),
            clock_skew: F64Gauge::default(),
            flow_info: PFamily::default(),
            flow_step_info: PFamily::default(),
            flow_step_wait: PFamily::default(),
            balance: PFamily::default(),
            build_info: PFamily::default(),
            published_flows: std::sync::Mutex::default(),
        }
    }
}

/// The registry: ledger + operational metrics, rendered as OpenMetrics text.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub ledger: Arc<RwLock<Ledger>>,
    pub op: Arc<Operational>,
}

impl Metrics {
    pub fn new(ledger: Ledger, version: &str, revision: &str) -> Self {
        let ledger = Arc::new(RwLock::new(ledger));
        let op = Arc::new(Operational::default());
        let mut registry = Registry::default();
        registry.register_collector(Box::new(LedgerCollector(ledger.clone())));
        registry.register(
            "itniotech_up",
            "1 when the last API call authenticated and answered",
            op.up.clone(),
        );
        registry.register(
            "itniotech_api_requests",
            "API requests by endpoint and vendor status or transport class, retries included",
            op.api_requests.clone(),
        );
        registry.register(
            "itniotech_api_request_duration_seconds",
            "API request latency per attempt",
            op.api_request_duration.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_received",
            "Orders received at intake, before de-duplication and sampling",
            op.orders_received.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_rejected",
            "Orders not tracked, by reason",
            op.orders_rejected.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_pending",
            "Orders tracked and not yet forgotten",
            op.orders_pending.clone(),
        );
        registry.register(
            "itniotech_exporter_oldest_pending_order_age_seconds",
            "Age of the oldest pending order",
            op.oldest_pending_age.clone(),
        );
        registry.register(
            "itniotech_exporter_poll_lag_seconds",
            "How late the most recent due poll ran after its scheduled time",
            op.poll_lag.clone(),
        );
        registry.register(
            "itniotech_exporter_polls",
            "Record polls by result",
            op.polls.clone(),
        );
        registry.register(
            "itniotech_exporter_attempt_freshness_seconds",
            "Delay from an attempt's end (doneTm, hangupTime) to the poll that counted it",
            op.attempt_freshness.clone(),
        );
        registry.register(
            "itniotech_exporter_clock_skew_seconds",
            "Local clock minus API server clock, from the HTTP Date header",
            op.clock_skew.clone(),
        );
        registry.register(
            "itniotech_otp_flow_info",
            "1 for each task flow from flow/list",
            op.flow_info.clone(),
        );
        registry.register(
            "itniotech_otp_flow_step_info",
            "1 for each step of each task flow",
            op.flow_step_info.clone(),
        );
        registry.register(
            "itniotech_otp_flow_step_wait_seconds",
            "waitingTime of each task flow step",
            op.flow_step_wait.clone(),
        );
        registry.register(
            "itniotech_account_balance",
            "Account funds from sms/getBalance",
            op.balance.clone(),
        );
        registry.register(
            "itniotech_exporter_build_info",
            "1, labelled with the build's version and git revision",
            op.build_info.clone(),
        );
        op.build_info
            .get_or_create(&BuildLabels {
                version: version.to_string(),
                revision: revision.to_string(),
            })
            .set(1);
        let _ = op
            .orders_received
            .get_or_create(&SourceLabel { source: s("http") });
        for r in REJECT_REASONS {
            let _ = op
                .orders_rejected
                .get_or_create(&ReasonLabel { reason: s(r) });
        }
        for r in POLL_RESULTS {
            let _ = op.polls.get_or_create(&ResultLabel { result: s(r) });
        }
        Metrics {
            registry,
            ledger,
            op,
        }
    }

    /// OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        // Writing into a String cannot fail; an encoder error would be a bug in a label.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }

    pub fn record_api_request(&self, endpoint: &str, status: &str, up: bool, secs: f64) {
        self.op
            .api_requests
            .get_or_create(&EndpointStatus {
                api_endpoint: s(endpoint),
                status: s(status),
            })
            .inc();
        self.op
            .api_request_duration
            .get_or_create(&EndpointLabel {
                api_endpoint: s(endpoint),
            })
            .observe(secs);
        self.op.up.set(i64::from(up));
    }

    pub fn received(&self, source: &str, n: u64) {
        self.op
            .orders_received
            .get_or_create(&SourceLabel { source: s(source) })
            .inc_by(n);
    }

    pub fn rejected(&self, reason: &str, n: u64) {
        self.op
            .orders_rejected
            .get_or_create(&ReasonLabel { reason: s(reason) })
            .inc_by(n);
    }

    pub fn poll_result(&self, result: &str) {
        self.op
            .polls
            .get_or_create(&ResultLabel { result: s(result) })
            .inc();
    }
}

impl crate::api::ApiObserver for Metrics {
    fn on_request(
        &self,
        endpoint: crate::api::Endpoint,
        status_label: &str,
        up: bool,
        elapsed: std::time::Duration,
    ) {
        self.record_api_request(endpoint.as_str(), status_label, up, elapsed.as_secs_f64());
    }

    fn on_clock_skew(&self, seconds: f64) {
        if seconds.is_finite() {
            self.op.clock_skew.set(seconds);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_text_is_normalised() {
        assert_eq!(normalise_free_text("UNDELIV"), "undeliv");
        assert_eq!(
            normalise_free_text("  Temporarily Unavailable!! "),
            "temporarily_unavailable"
        );
        assert_eq!(normalise_free_text("--"), "unknown");
        assert_eq!(
            normalise_free_text(&"x".repeat(500)).len(),
            FREE_TEXT_MAX_LEN
        );
        assert_eq!(normalise_free_text("Ünicode réason"), "nicode_r_ason");
    }

    #[test]
    fn free_text_cardinality_is_capped_under_10000_distinct_reasons() {
        let mut ledger = Ledger::new();
        let updates: Vec<Update> = (0..10_000)
            .map(|i| Update::sms_failure("app1", "ID", &format!("reason {i}")))
            .collect();
        ledger.apply(&updates);
        let reasons: BTreeSet<&str> = ledger
            .iter()
            .filter(|((f, _), _)| *f == LedgerFamily::SmsFailures)
            .map(|((_, l), _)| l[2].as_str())
            .collect();
        assert_eq!(reasons.len(), FREE_TEXT_CAP + 1);
        assert!(reasons.contains("other"));
        let other = ledger
            .get(&(
                LedgerFamily::SmsFailures,
                vec![s("app1"), s("ID"), s("other")],
            ))
            .unwrap();
        assert_eq!(
            *other,
            SeriesValue::Counter((10_000 - FREE_TEXT_CAP) as f64)
        );
    }

    #[test]
    fn app_ids_from_intake_are_capped() {
        let mut ledger = Ledger::new();
        let updates: Vec<Update> = (0..1_000)
            .map(|i| Update::order(&format!("app{i}"), "none", "unknown", "not_found"))
            .collect();
        ledger.apply(&updates);
        let apps: BTreeSet<&str> = ledger.iter().map(|((_, l), _)| l[0].as_str()).collect();
        assert_eq!(apps.len(), 201);
        assert!(apps.contains("other"));
    }

    #[test]
    fn siblings_are_initialised_at_zero() {
        let mut ledger = Ledger::new();
        let touched = ledger.apply(&[Update::order("app1", "2", "ID", "delivered")]);
        assert_eq!(touched.len(), ORDER_OUTCOMES.len());
        let failed = (
            LedgerFamily::Orders,
            vec![s("app1"), s("2"), s("ID"), s("failed")],
        );
        assert_eq!(ledger.get(&failed), Some(&SeriesValue::Counter(0.0)));
    }

    #[test]
    fn histogram_buckets_and_render() {
        let mut ledger = Ledger::new();
        ledger.apply(&[
            Update::sms_delivery_seconds("app1", "ID", "delivered", 4.0),
            Update::sms_delivery_seconds("app1", "ID", "delivered", 9999.0),
            Update::cost("app1", "sms", "ID", "USD", 0.031),
        ]);
        let metrics = Metrics::new(ledger, "0.1.0", "abc");
        let text = metrics.render();
        assert!(text.contains(
            "itniotech_otp_sms_delivery_seconds_bucket{le=\"5.0\",app_id=\"app1\",country=\"ID\",status=\"delivered\"} 1"
        ), "{text}");
        assert!(text.contains(
            "itniotech_otp_sms_delivery_seconds_bucket{le=\"+Inf\",app_id=\"app1\",country=\"ID\",status=\"delivered\"} 2"
        ));
        assert!(text.contains(
            "itniotech_otp_sms_delivery_seconds_count{app_id=\"app1\",country=\"ID\",status=\"failed\"} 0"
        ));
        assert!(text.contains(
            "itniotech_otp_cost_total{app_id=\"app1\",channel=\"sms\",country=\"ID\",currency=\"USD\"} 0.031"
        ));
        assert!(
            text.contains("itniotech_exporter_build_info{version=\"0.1.0\",revision=\"abc\"} 1")
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn non_finite_and_negative_values_never_corrupt_counters() {
        let mut ledger = Ledger::new();
        ledger.apply(&[
            Update::cost("a", "sms", "ID", "USD", f64::NAN),
            Update::cost("a", "sms", "ID", "USD", -5.0),
        ]);
        let key = (
            LedgerFamily::Cost,
            vec![s("a"), s("sms"), s("ID"), s("USD")],
        );
        assert_eq!(ledger.get(&key), Some(&SeriesValue::Counter(0.0)));
    }
}
