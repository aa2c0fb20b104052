//! Renders the [`Ledger`](crate::ledger::Ledger) at scrape time through prometheus-client's
//! collector interface.

use crate::ledger::{LedgerFamily, SeriesValue, SharedLedger};
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Encodes the ledger at scrape time.
#[derive(Debug, Clone)]
pub struct LedgerCollector(pub SharedLedger);

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
            for (labels, value) in ledger.family(family) {
                let label_set: Vec<(&str, &str)> = spec
                    .labels
                    .iter()
                    .copied()
                    .zip(labels.iter().map(String::as_str))
                    .collect();
                let mut m = metric.encode_family(&label_set)?;
                match value {
                    SeriesValue::Counter(c) => m.encode_counter::<NoLabelSet, _, f64>(c, None)?,
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
                        m.encode_histogram::<NoLabelSet>(*sum, *count, &pairs, None)?
                    }
                }
            }
        }
        Ok(())
    }
}
