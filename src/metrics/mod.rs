//! The exposition: every metric the exporter serves, registered in one registry.
//!
//! - [`collector`]: renders the [`Ledger`](crate::ledger::Ledger) (the persisted OTP metrics of
//!   the contract) at scrape time.
//! - [`operational`]: the agent's own metrics, each written by one stage through an
//!   intent-named method.
//!
//! Metric names, types and labels are the contract in docs/metrics.md; a test keeps that file
//! equal to what `/metrics` serves.

pub mod collector;
pub mod operational;

pub use collector::LedgerCollector;
pub use operational::{BalanceKind, Operational, PollResult};

use crate::ledger::{Ledger, SharedLedger};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The registry: ledger + operational metrics, rendered as OpenMetrics text.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// The OTP metrics; written only by the tracker.
    pub ledger: SharedLedger,
    /// The agent's own metrics.
    pub op: Arc<Operational>,
}

impl Metrics {
    pub fn new(ledger: Ledger, version: &str, revision: &str) -> Self {
        let ledger = ledger.shared();
        let mut registry = Registry::default();
        registry.register_collector(Box::new(LedgerCollector(ledger.clone())));
        let op = Arc::new(Operational::register(&mut registry, version, revision));
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Channel;
    use crate::ledger::{CostLabels, SmsDeliveryLabels, SmsStatus, Update};

    #[test]
    fn the_ledger_renders_as_openmetrics() {
        let mut ledger = Ledger::new();
        let delivery = SmsDeliveryLabels {
            app_id: "app1".into(),
            country: "ID".into(),
            status: SmsStatus::Delivered,
        };
        ledger.apply(&[
            Update::SmsDeliverySeconds(delivery.clone(), 4.0),
            Update::SmsDeliverySeconds(delivery, 9999.0),
            Update::Cost(
                CostLabels {
                    app_id: "app1".into(),
                    channel: Channel::Sms,
                    country: "ID".into(),
                    currency: "USD".into(),
                },
                0.031,
            ),
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
}
