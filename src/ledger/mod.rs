//! The ledger: the OTP counters and histograms of the metric contract, as plain data.
//!
//! Accounting computes [`Update`]s; the tracker's writer applies them here and persists the
//! series they touched in the same transaction as the order state that caused them; at start
//! the store restores the ledger, so a restart neither loses nor repeats an increment and
//! Prometheus never sees a counter reset. The metrics module renders the ledger at scrape time.
//! Nothing here knows about Prometheus: the ledger is the source of truth, the exposition is a
//! view of it (prometheus-client's own histogram cannot be restored from stored buckets).
//!
//! # Series budgets
//!
//! Label values that come from outside (an intake caller's `appId` and `flowId`, the vendor's
//! `mnc`, termination codes and reasons: [`family::BUDGETED_LABELS`]) must not grow the series
//! count without bound, and a burst of junk must not lock real values out for good. So each
//! family has a **series budget** ([`Budget::max_series`]). A new series that does not fit
//! first makes room by removing the family's series groups (a series and its sibling outcomes)
//! that nothing incremented for [`Budget::idle`]; if it still does not fit, its budgeted labels
//! are exported as `other` (that series may exceed the budget: the remaining labels are closed
//! sets and countries, so it is bounded), and each folded label counts once in
//! `itniotech_exporter_label_overflow_total{metric,label}` ([`LabelOverflowObserver`]).
//! Every series carries the time it last changed, persisted with its value, so idleness
//! survives restarts; a removed series is deleted from the store with the same commit.

pub mod family;

pub use family::{
    AppCountryLabels, AppFlowLabels, CallLabels, CostLabels, FallbackLabels, FamilySpec,
    LedgerFamily, OrderLabels, OrderOutcome, OrderVerificationLabels, RescueLabels,
    SendRequestLabels, SmsDeliveryLabels, SmsFailureLabels, SmsLabels, SmsStatus, Update,
    VerificationLabels, VerificationResult,
};

use crate::clock::SharedClock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Longest normalised free-text label value.
pub const FREE_TEXT_MAX_LEN: usize = 40;

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
pub enum Sample {
    Counter(f64),
    /// Per-bucket (non-cumulative) counts, one per bound plus the `+Inf` bucket.
    Histogram {
        sum: f64,
        count: u64,
        buckets: Vec<u64>,
    },
}

/// A series' value and when it last changed (Unix seconds), as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesValue {
    pub sample: Sample,
    pub updated: i64,
}

impl SeriesValue {
    pub fn counter(v: f64, updated: i64) -> SeriesValue {
        SeriesValue {
            sample: Sample::Counter(v),
            updated,
        }
    }
}

/// The stored form: `{"v": <sample>, "at": <unix seconds>}`; rows written before budgets
/// existed hold the bare sample and read as "changed at load".
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredValue {
    Timed { v: Sample, at: i64 },
    Bare(Sample),
}

impl Serialize for SeriesValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        StoredValue::Timed {
            v: self.sample.clone(),
            at: self.updated,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for SeriesValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match StoredValue::deserialize(d)? {
            StoredValue::Timed { v, at } => SeriesValue {
                sample: v,
                updated: at,
            },
            // 0: restored as "changed at load" (see `Ledger::restore`).
            StoredValue::Bare(v) => SeriesValue {
                sample: v,
                updated: 0,
            },
        })
    }
}

/// A series: its family and label values in the family's label order.
pub type SeriesKey = (LedgerFamily, Vec<String>);

/// The ledger shared by its one writer (the tracker) and its readers (scrapes).
pub type SharedLedger = Arc<RwLock<Ledger>>;

/// Told each time a label value is exported as `other` because its family's budget was full.
pub trait LabelOverflowObserver: Send + Sync + std::fmt::Debug + 'static {
    fn overflowed(&self, family: LedgerFamily, label: &str);
}

/// The series budget of every family (`--metrics.series-budget`, `--metrics.series-idle`).
#[derive(Clone, Debug)]
pub struct Budget {
    /// Series per family before new budgeted label values become `other`.
    pub max_series: usize,
    /// Series groups unchanged for this long leave a full budget.
    pub idle: Duration,
    /// The clock that stamps changes.
    pub clock: SharedClock,
}

impl Budget {
    pub fn from_config(c: &crate::config::MetricsConfig, clock: SharedClock) -> Budget {
        Budget {
            max_series: c.series_budget,
            idle: c.series_idle.get(),
            clock,
        }
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::from_config(
            &crate::config::MetricsConfig::default(),
            crate::clock::system(),
        )
    }
}

/// The persisted OTP metrics: one owner (the tracker's writer) mutates it, scrapes read it.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    series: BTreeMap<SeriesKey, SeriesValue>,
    /// Series per family.
    counts: HashMap<LedgerFamily, usize>,
    /// Per family, the earliest time a sweep could free anything (skips useless scans while a
    /// flood meets a full budget of fresh series).
    next_sweep: HashMap<LedgerFamily, i64>,
    budget: Budget,
    overflow: Option<Arc<dyn LabelOverflowObserver>>,
}

impl Ledger {
    pub fn new() -> Self {
        Self::default()
    }

    /// A ledger with `budget`.
    pub fn with_budget(budget: Budget) -> Self {
        Ledger {
            budget,
            ..Ledger::default()
        }
    }

    /// Sets the budget (before the first update).
    pub fn set_budget(&mut self, budget: Budget) {
        self.budget = budget;
        self.next_sweep.clear();
    }

    /// Who hears about values folded into `other`.
    pub fn set_overflow_observer(&mut self, observer: Arc<dyn LabelOverflowObserver>) {
        self.overflow = Some(observer);
    }

    /// Wraps the ledger for sharing between its writer and the scrapes.
    pub fn shared(self) -> SharedLedger {
        Arc::new(RwLock::new(self))
    }

    /// Restores one stored series (at start). A series stored without a change time counts as
    /// changed now.
    pub fn restore(&mut self, key: SeriesKey, mut value: SeriesValue) {
        if value.updated == 0 {
            value.updated = self.now();
        }
        self.insert(key, value);
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

    /// Series of `family`.
    pub fn family_len(&self, family: LedgerFamily) -> usize {
        self.counts.get(&family).copied().unwrap_or(0)
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

    fn now(&self) -> i64 {
        self.budget.clock.now().timestamp()
    }

    fn insert(&mut self, key: SeriesKey, value: SeriesValue) {
        let family = key.0;
        if self.series.insert(key, value).is_none() {
            *self.counts.entry(family).or_default() += 1;
        }
    }

    fn remove(&mut self, key: &SeriesKey) {
        if self.series.remove(key).is_some() {
            if let Some(c) = self.counts.get_mut(&key.0) {
                *c = c.saturating_sub(1);
            }
        }
    }

    /// Applies updates and returns the keys of every series it created, changed or removed
    /// (siblings included), which the caller persists: a key [`Ledger::get`] no longer finds
    /// is to be deleted.
    pub fn apply(&mut self, updates: &[Update]) -> BTreeSet<SeriesKey> {
        let mut touched = BTreeSet::new();
        let now = self.now();
        for u in updates {
            let (family, mut labels, value) = u.series();
            if !value.is_finite() {
                continue;
            }
            let spec = family.spec();
            debug_assert_eq!(labels.len(), spec.labels.len());
            if let Some(pos) = spec.free_text.and_then(|l| spec.position(l)) {
                labels[pos] = normalise_free_text(&labels[pos]);
            }
            let mut key = (family, labels);
            if !self.series.contains_key(&key) {
                key = self.admit(&spec, key, now, &mut touched);
                if !self.series.contains_key(&key) {
                    // Companions are created with a series' first increment, so an existing
                    // series already has them: the common path does no sibling work.
                    self.init_companions(&spec, &key, now, &mut touched);
                }
            }
            if !self.series.contains_key(&key) {
                let sample = empty_sample(&spec);
                self.insert(
                    key.clone(),
                    SeriesValue {
                        sample,
                        updated: now,
                    },
                );
            }
            let Some(series) = self.series.get_mut(&key) else {
                continue;
            };
            series.updated = now;
            match &mut series.sample {
                Sample::Counter(c) => *c += value.max(0.0),
                Sample::Histogram {
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

    /// The key a new series is counted under: itself when its group fits the budget (after
    /// sweeping idle groups if needed), else with its budgeted labels folded into `other`.
    fn admit(
        &mut self,
        spec: &FamilySpec,
        key: SeriesKey,
        now: i64,
        touched: &mut BTreeSet<SeriesKey>,
    ) -> SeriesKey {
        let family = key.0;
        let needed = group_of(spec, &key)
            .iter()
            .filter(|k| !self.series.contains_key(k))
            .count();
        if self.family_len(family) + needed <= self.budget.max_series {
            return key;
        }
        self.sweep(spec, family, now, touched);
        if self.family_len(family) + needed <= self.budget.max_series {
            return key;
        }
        let (family, mut labels) = key;
        for label in spec.budgeted_labels() {
            if let Some(pos) = spec.position(label) {
                if labels[pos] != "other" {
                    labels[pos] = "other".to_owned();
                    if let Some(o) = &self.overflow {
                        o.overflowed(family, label);
                    }
                }
            }
        }
        (family, labels)
    }

    /// Removes the family's series groups unchanged for the idle period.
    fn sweep(
        &mut self,
        spec: &FamilySpec,
        family: LedgerFamily,
        now: i64,
        touched: &mut BTreeSet<SeriesKey>,
    ) {
        if self.next_sweep.get(&family).is_some_and(|at| now < *at) {
            return;
        }
        let idle = i64::try_from(self.budget.idle.as_secs()).unwrap_or(i64::MAX);
        let sibling = spec.siblings.and_then(|(label, _)| spec.position(label));
        // Group key → (latest change, members).
        let mut groups: BTreeMap<Vec<String>, (i64, Vec<Vec<String>>)> = BTreeMap::new();
        for (labels, value) in self.family(family) {
            let mut g = labels.clone();
            if let Some(pos) = sibling {
                g[pos].clear();
            }
            let e = groups.entry(g).or_insert((i64::MIN, Vec::new()));
            e.0 = e.0.max(value.updated);
            e.1.push(labels.clone());
        }
        let mut next = i64::MAX;
        let mut removed = 0usize;
        for (_, (updated, members)) in groups {
            if now.saturating_sub(updated) >= idle {
                for labels in members {
                    let key = (family, labels);
                    self.remove(&key);
                    touched.insert(key);
                    removed += 1;
                }
            } else {
                next = next.min(updated.saturating_add(idle));
            }
        }
        self.next_sweep.insert(family, next);
        if removed > 0 {
            tracing::info!(
                metric = %family.exposed_name(),
                removed,
                "series budget full: removed series unchanged for the idle period"
            );
        }
    }

    /// Creates, at 0, the series that ratios over `key` divide by or into: the sibling
    /// outcomes of its family, and its companion in another family (a fallback's rescue) when
    /// that family has room.
    fn init_companions(
        &mut self,
        spec: &FamilySpec,
        key: &SeriesKey,
        now: i64,
        touched: &mut BTreeSet<SeriesKey>,
    ) {
        let mut companions: Vec<(SeriesKey, FamilySpec)> = group_of(spec, key)
            .into_iter()
            .map(|k| (k, key.0.spec()))
            .collect();
        if let Some((other, names)) = spec.companion {
            let values: Option<Vec<String>> = names
                .iter()
                .map(|n| spec.position(n).map(|p| key.1[p].clone()))
                .collect();
            if let Some(values) = values {
                if self.family_len(other) < self.budget.max_series {
                    companions.push(((other, values), other.spec()));
                }
            }
        }
        for (k, spec) in companions {
            if !self.series.contains_key(&k) {
                self.insert(
                    k.clone(),
                    SeriesValue {
                        sample: empty_sample(&spec),
                        updated: now,
                    },
                );
                touched.insert(k);
            }
        }
    }
}

/// `key` and its sibling outcomes (just `key` for families without siblings).
fn group_of(spec: &FamilySpec, key: &SeriesKey) -> Vec<SeriesKey> {
    let Some((label, values)) = spec.siblings else {
        return vec![key.clone()];
    };
    let Some(pos) = spec.position(label) else {
        return vec![key.clone()];
    };
    values
        .iter()
        .map(|v| {
            let mut labels = key.1.clone();
            labels[pos] = (*v).to_string();
            (key.0, labels)
        })
        .collect()
}

fn empty_sample(spec: &FamilySpec) -> Sample {
    match spec.buckets {
        None => Sample::Counter(0.0),
        Some(b) => Sample::Histogram {
            sum: 0.0,
            count: 0,
            buckets: vec![0; b.len() + 1],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::domain::Channel;
    use chrono::DateTime;

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

    #[derive(Debug, Default)]
    struct Overflows(std::sync::Mutex<Vec<(LedgerFamily, String)>>);
    impl LabelOverflowObserver for Overflows {
        fn overflowed(&self, family: LedgerFamily, label: &str) {
            self.0.lock().unwrap().push((family, label.to_owned()));
        }
    }

    fn budgeted(max_series: usize, idle_secs: u64) -> (Ledger, ManualClock, Arc<Overflows>) {
        let clock = ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let mut ledger = Ledger::with_budget(Budget {
            max_series,
            idle: Duration::from_secs(idle_secs),
            clock: Arc::new(clock.clone()),
        });
        let overflows = Arc::new(Overflows::default());
        ledger.set_overflow_observer(overflows.clone());
        (ledger, clock, overflows)
    }

    fn counter(ledger: &Ledger, key: &SeriesKey) -> Option<f64> {
        match ledger.get(key).map(|v| &v.sample) {
            Some(Sample::Counter(c)) => Some(*c),
            _ => None,
        }
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
    fn free_text_series_stay_within_the_budget_under_10000_distinct_reasons() {
        let (mut ledger, _, overflows) = budgeted(50, 3600);
        let updates: Vec<Update> = (0..10_000)
            .map(|i| failure("app1", format!("reason {i}")))
            .collect();
        ledger.apply(&updates);
        // 50 reasons, then one `other` series (app_id and reason folded).
        assert_eq!(ledger.family_len(LedgerFamily::SmsFailures), 51);
        let other = (
            LedgerFamily::SmsFailures,
            vec![s("other"), s("ID"), s("other")],
        );
        assert_eq!(counter(&ledger, &other), Some((10_000 - 50) as f64));
        let folded = overflows.0.lock().unwrap();
        let app = folded.iter().filter(|(_, l)| l == "app_id").count();
        let reason = folded.iter().filter(|(_, l)| l == "reason").count();
        assert_eq!((app, reason), (10_000 - 50, 10_000 - 50));
    }

    #[test]
    fn a_full_budget_folds_new_app_ids_and_counts_each_fold() {
        // 4 outcomes per (app, flow, country): a budget of 40 holds 10 apps.
        let (mut ledger, _, overflows) = budgeted(40, 3600);
        let updates: Vec<Update> = (0..1_000)
            .map(|i| order(format!("app{i}"), OrderOutcome::NotFound))
            .collect();
        ledger.apply(&updates);
        let apps: BTreeSet<&str> = ledger.iter().map(|((_, l), _)| l[0].as_str()).collect();
        assert_eq!(apps.len(), 11, "{apps:?}");
        assert!(apps.contains("other"));
        let other = (
            LedgerFamily::Orders,
            vec![s("other"), s("other"), s("ID"), s("not_found")],
        );
        assert_eq!(counter(&ledger, &other), Some(990.0));
        // Siblings of the folded series exist too: ratios never divide by a missing series.
        let other_failed = (
            LedgerFamily::Orders,
            vec![s("other"), s("other"), s("ID"), s("failed")],
        );
        assert_eq!(counter(&ledger, &other_failed), Some(0.0));
        assert_eq!(
            overflows.0.lock().unwrap().len(),
            990 * 2,
            "app_id and flow_id"
        );
    }

    #[test]
    fn idle_junk_leaves_a_full_budget_for_a_real_app_even_after_a_restore() {
        let (mut ledger, clock, _) = budgeted(40, 3600);
        let junk: Vec<Update> = (0..10_000)
            .map(|i| order(format!("junk{i}"), OrderOutcome::NotFound))
            .collect();
        ledger.apply(&junk);
        // A real app right after the burst: the budget is full of fresh junk.
        ledger.apply(&[order(s("realapp"), OrderOutcome::Delivered)]);
        let real = (
            LedgerFamily::Orders,
            vec![s("realapp"), s("2"), s("ID"), s("delivered")],
        );
        assert_eq!(counter(&ledger, &real), None);
        // Persist and restore (a restart), then let the junk go idle.
        let stored: Vec<(SeriesKey, String)> = ledger
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap()))
            .collect();
        let (mut restored, _, _) = budgeted(40, 3600);
        restored.set_budget(Budget {
            clock: Arc::new(clock.clone()),
            ..restored.budget.clone()
        });
        for (k, v) in stored {
            restored.restore(k, serde_json::from_str(&v).unwrap());
        }
        clock.advance(Duration::from_secs(3600));
        let touched = restored.apply(&[order(s("realapp"), OrderOutcome::Delivered)]);
        assert_eq!(counter(&restored, &real), Some(1.0));
        // Every junk series was removed (and is in `touched`, so the store deletes it).
        assert!(restored.iter().all(|((_, l), _)| !l[0].starts_with("junk")));
        assert!(touched.iter().any(|(_, l)| l[0] == "junk0"));
        assert!(restored
            .get(&(
                LedgerFamily::Orders,
                vec![s("junk0"), s("2"), s("ID"), s("failed")]
            ))
            .is_none());
        assert!(restored.family_len(LedgerFamily::Orders) <= 40);
    }

    #[test]
    fn a_group_with_one_recent_member_stays() {
        let (mut ledger, clock, _) = budgeted(8, 100);
        ledger.apply(&[order(s("appA"), OrderOutcome::Delivered)]);
        clock.advance(Duration::from_secs(60));
        ledger.apply(&[order(s("appB"), OrderOutcome::Delivered)]);
        clock.advance(Duration::from_secs(60));
        // appA is idle (120 s), appB is not (60 s): a third app replaces appA only.
        ledger.apply(&[order(s("appC"), OrderOutcome::Failed)]);
        let apps: BTreeSet<&str> = ledger.iter().map(|((_, l), _)| l[0].as_str()).collect();
        assert_eq!(apps, BTreeSet::from(["appB", "appC"]));
    }

    #[test]
    fn stored_values_round_trip_and_old_rows_read_as_fresh() {
        let v = SeriesValue::counter(3.5, 1_700_000_000);
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(text, r#"{"v":{"Counter":3.5},"at":1700000000}"#);
        assert_eq!(serde_json::from_str::<SeriesValue>(&text).unwrap(), v);
        let old: SeriesValue = serde_json::from_str(r#"{"Counter":2.0}"#).unwrap();
        assert_eq!(old, SeriesValue::counter(2.0, 0));
        let (mut ledger, clock, _) = budgeted(10, 10);
        ledger.restore((LedgerFamily::Sms, vec![]), old);
        assert_eq!(
            ledger.get(&(LedgerFamily::Sms, vec![])).unwrap().updated,
            clock.now().timestamp()
        );
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
        assert_eq!(counter(&ledger, &failed), Some(0.0));
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
        assert_eq!(counter(&ledger, &rescue), Some(0.0));
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
        let Some(Sample::Histogram {
            sum,
            count,
            buckets,
        }) = ledger.get(&key).map(|v| &v.sample)
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
        assert_eq!(counter(&ledger, &key), Some(0.0));
    }
}
