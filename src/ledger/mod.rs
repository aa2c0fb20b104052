//! The ledger: the OTP counters and histograms of the metric contract, as plain data.
//!
//! Accounting computes [`Update`]s; the tracker's writer applies them here and persists the
//! series they touched in the same transaction as the order state that caused them; at start
//! the store restores the ledger, so a restart neither loses nor repeats an increment and
//! Prometheus never sees a counter reset. The metrics module renders the ledger at scrape time.
//! Nothing here knows about Prometheus: the ledger is the source of truth, the exposition is a
//! view of it (prometheus-client's own histogram cannot be restored from stored buckets).
//!
//! The ledger also bounds cardinality: free-text labels are normalised and capped, and labels
//! whose values come from outside (`app_id`, `flow_id`) admit a bounded number of values per
//! family; later values become `other`.

pub mod family;

pub use family::{
    AppCountryLabels, AppFlowLabels, CallLabels, CostLabels, FallbackLabels, FamilySpec,
    LedgerFamily, OrderLabels, OrderOutcome, OrderVerificationLabels, RescueLabels,
    SendRequestLabels, SmsDeliveryLabels, SmsFailureLabels, SmsLabels, SmsStatus, Update,
    VerificationLabels, VerificationResult,
};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};

/// Distinct values kept per free-text label (`reason`, `termination_reason`); the rest → `other`.
pub const FREE_TEXT_CAP: usize = 50;
/// Longest normalised free-text label value.
pub const FREE_TEXT_MAX_LEN: usize = 40;
/// Labels whose values come from intake callers or the vendor rather than a fixed set, with the
/// distinct values kept per family; later values become `other`. A typo'd or hostile `appId`
/// at intake, or an unexpected vendor status, must not grow the series count without bound.
pub const CAPPED_LABELS: &[(&str, usize)] = &[("app_id", 200), ("flow_id", 200), ("status", 50)];

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

/// A series: its family and label values in the family's label order.
pub type SeriesKey = (LedgerFamily, Vec<String>);

/// The ledger shared by its one writer (the tracker) and its readers (scrapes).
pub type SharedLedger = Arc<RwLock<Ledger>>;

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

    /// Wraps the ledger for sharing between its writer and the scrapes.
    pub fn shared(self) -> SharedLedger {
        Arc::new(RwLock::new(self))
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

    /// The series of one family, in label order.
    pub fn family(
        &self,
        family: LedgerFamily,
    ) -> impl Iterator<Item = (&Vec<String>, &SeriesValue)> {
        self.series
            .range((family, Vec::new())..)
            .take_while(move |((f, _), _)| *f == family)
            .map(|((_, labels), value)| (labels, value))
    }

    /// Applies updates and returns the keys of every series it created or changed (siblings
    /// included), which the caller persists.
    pub fn apply(&mut self, updates: &[Update]) -> BTreeSet<SeriesKey> {
        let mut touched = BTreeSet::new();
        for u in updates {
            let (family, mut labels, value) = u.series();
            if !value.is_finite() {
                continue;
            }
            let spec = family.spec();
            debug_assert_eq!(labels.len(), spec.labels.len());
            let free_text = spec.free_text.and_then(|l| spec.position(l));
            for (pos, cap) in bounded_labels(family) {
                if let Some(raw) = labels.get_mut(pos) {
                    let value = if Some(pos) == free_text {
                        normalise_free_text(raw)
                    } else {
                        std::mem::take(raw)
                    };
                    *raw = self.admit(family, pos, cap, value);
                }
            }
            let key = (family, labels);
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
                SeriesValue::Counter(c) => *c += value.max(0.0),
                SeriesValue::Histogram {
                    sum,
                    count,
                    buckets,
                } => {
                    let bounds = spec.buckets.unwrap_or(&[]);
                    let idx = bounds
                        .iter()
                        .position(|b| value <= *b)
                        .unwrap_or(bounds.len());
                    if let Some(b) = buckets.get_mut(idx) {
                        *b += 1;
                    }
                    *sum += value;
                    *count += 1;
                }
            }
            touched.insert(key);
        }
        touched
    }

    /// Creates, at 0, the series that ratios over `key` divide by or into: the sibling
    /// outcomes of its family, and its companion in another family (a fallback's rescue).
    fn init_companions(
        &mut self,
        spec: &FamilySpec,
        key: &SeriesKey,
        touched: &mut BTreeSet<SeriesKey>,
    ) {
        let (family, labels) = key;
        let mut companions = Vec::new();
        if let Some((label, values)) = spec.siblings {
            if let Some(pos) = spec.position(label) {
                for v in values {
                    let mut sib = labels.clone();
                    sib[pos] = (*v).to_string();
                    companions.push(((*family, sib), empty_value(spec)));
                }
            }
        }
        if let Some((other, names)) = spec.companion {
            let values: Option<Vec<String>> = names
                .iter()
                .map(|n| spec.position(n).map(|p| labels[p].clone()))
                .collect();
            if let Some(values) = values {
                companions.push(((other, values), empty_value(&other.spec())));
            }
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
            if Some(*name) == spec.free_text {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;

    fn s(v: &str) -> String {
        v.to_string()
    }

    fn failure(app: &str, reason: String) -> Update {
        Update::SmsFailure(SmsFailureLabels {
            app_id: s(app),
            country: s("ID"),
            reason,
        })
    }

    fn order(app: String, outcome: OrderOutcome) -> Update {
        Update::Order(OrderLabels {
            app_id: app,
            flow_id: s("2"),
            country: s("ID"),
            outcome,
        })
    }

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
            .map(|i| failure("app1", format!("reason {i}")))
            .collect();
        ledger.apply(&updates);
        let reasons: BTreeSet<&str> = ledger
            .family(LedgerFamily::SmsFailures)
            .map(|(l, _)| l[2].as_str())
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
            .map(|i| order(format!("app{i}"), OrderOutcome::NotFound))
            .collect();
        ledger.apply(&updates);
        let apps: BTreeSet<&str> = ledger.iter().map(|((_, l), _)| l[0].as_str()).collect();
        assert_eq!(apps.len(), 201);
        assert!(apps.contains("other"));
    }

    #[test]
    fn siblings_are_initialised_at_zero() {
        let mut ledger = Ledger::new();
        let touched = ledger.apply(&[order(s("app1"), OrderOutcome::Delivered)]);
        assert_eq!(touched.len(), OrderOutcome::ALL.len());
        let failed = (
            LedgerFamily::Orders,
            vec![s("app1"), s("2"), s("ID"), s("failed")],
        );
        assert_eq!(ledger.get(&failed), Some(&SeriesValue::Counter(0.0)));
    }

    #[test]
    fn a_fallback_creates_its_rescue_counter() {
        let mut ledger = Ledger::new();
        let touched = ledger.apply(&[Update::Fallback(FallbackLabels {
            app_id: s("a"),
            flow_id: s("7"),
            from_channel: Channel::Sms,
            to_channel: Channel::Call,
        })]);
        let rescue = (
            LedgerFamily::FallbackRescues,
            vec![s("a"), s("7"), s("call")],
        );
        assert!(touched.contains(&rescue));
        assert_eq!(ledger.get(&rescue), Some(&SeriesValue::Counter(0.0)));
    }

    #[test]
    fn histograms_fill_one_bucket_per_observation() {
        let mut ledger = Ledger::new();
        let labels = SmsDeliveryLabels {
            app_id: s("a"),
            country: s("ID"),
            status: SmsStatus::Delivered,
        };
        ledger.apply(&[
            Update::SmsDeliverySeconds(labels.clone(), 4.0),
            Update::SmsDeliverySeconds(labels, 9999.0),
        ]);
        let key = (
            LedgerFamily::SmsDeliverySeconds,
            vec![s("a"), s("ID"), s("delivered")],
        );
        let Some(SeriesValue::Histogram {
            sum,
            count,
            buckets,
        }) = ledger.get(&key)
        else {
            panic!("histogram expected")
        };
        assert_eq!((*sum, *count), (10003.0, 2));
        assert_eq!(buckets[3], 1, "4 s lands in the 5 s bucket");
        assert_eq!(buckets[buckets.len() - 1], 1, "+Inf");
        assert_eq!(buckets.iter().sum::<u64>(), 2);
    }

    #[test]
    fn non_finite_and_negative_values_never_corrupt_counters() {
        let mut ledger = Ledger::new();
        let cost = |v| {
            Update::Cost(
                CostLabels {
                    app_id: s("a"),
                    channel: Channel::Sms,
                    country: s("ID"),
                    currency: s("USD"),
                },
                v,
            )
        };
        ledger.apply(&[cost(f64::NAN), cost(-5.0)]);
        let key = (
            LedgerFamily::Cost,
            vec![s("a"), s("sms"), s("ID"), s("USD")],
        );
        assert_eq!(ledger.get(&key), Some(&SeriesValue::Counter(0.0)));
    }
}
