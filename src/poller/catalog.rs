//! Flow catalog and balance refreshers.
//!
//! The flow catalog feeds both the `itniotech_otp_flow_*` info gauges and the order poller's
//! schedule (a step's `waitingTime` says when a fallback can start). A failed refresh keeps the
//! previous catalog: stale flows are better than none for scheduling.

use super::PollerError;
use crate::accounting::FlowCatalog;
use crate::api::RecordSource;
use crate::metrics::{BalanceKind, Operational};
use rust_decimal::prelude::ToPrimitive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Shared, cheaply cloned read access to the latest flow catalog.
#[derive(Clone, Default)]
pub struct FlowCatalogHandle {
    inner: Arc<RwLock<Arc<FlowCatalog>>>,
    attempted: Arc<AtomicBool>,
}

impl FlowCatalogHandle {
    pub fn snapshot(&self) -> Arc<FlowCatalog> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn replace(&self, flows: FlowCatalog) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(flows);
    }

    /// True once a flow/list call has been attempted (readiness).
    pub fn attempted(&self) -> bool {
        self.attempted.load(Ordering::Acquire)
    }
}

/// Refreshes the flow catalog and the balance.
#[derive(Clone)]
pub struct CatalogPoller {
    source: Arc<dyn RecordSource>,
    metrics: Arc<Operational>,
    flows: FlowCatalogHandle,
    currency: String,
    flows_every: Duration,
    balance_every: Duration,
}

impl CatalogPoller {
    /// Publishes flows into `flows` and both into `metrics`, refreshing the flows every
    /// `flows_every` and the balance (labelled with `currency`) every `balance_every`.
    pub fn new(
        source: Arc<dyn RecordSource>,
        metrics: Arc<Operational>,
        flows: FlowCatalogHandle,
        currency: String,
        flows_every: Duration,
        balance_every: Duration,
    ) -> Result<CatalogPoller, PollerError> {
        if flows_every.is_zero() || balance_every.is_zero() {
            return Err(PollerError::Invalid(
                "refresh intervals must be above 0".into(),
            ));
        }
        Ok(CatalogPoller {
            source,
            metrics,
            flows,
            currency,
            flows_every,
            balance_every,
        })
    }

    /// Fetches flow/list once and publishes it.
    pub async fn refresh_flows(&self) {
        let result = self.source.flows().await;
        self.flows.attempted.store(true, Ordering::Release);
        match result {
            Ok(list) => {
                self.metrics.publish_flows(&list);
                self.flows
                    .replace(list.into_iter().map(|f| (f.flow_id, f)).collect());
            }
            Err(e) => {
                tracing::warn!(status = %e.status_label(), error = %e, "flow/list failed; keeping the previous catalog")
            }
        }
    }

    /// Fetches the balance once and publishes it.
    pub async fn refresh_balance(&self) {
        match self.source.balance().await {
            Ok(b) => {
                for (kind, value) in [
                    (BalanceKind::Balance, b.balance),
                    (BalanceKind::Gift, b.gift),
                    (BalanceKind::Credit, b.credit),
                ] {
                    if let Some(v) = value.and_then(|d| d.to_f64()) {
                        self.metrics.balance(kind, &self.currency, v);
                    }
                }
            }
            Err(e) => tracing::warn!(status = %e.status_label(), error = %e, "getBalance failed"),
        }
    }

    /// Refreshes both periodically until shutdown.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut flows_tick = tokio::time::interval(self.flows_every);
        let mut balance_tick = tokio::time::interval(self.balance_every);
        flows_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        balance_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = flows_tick.tick() => self.refresh_flows().await,
                _ = balance_tick.tick() => self.refresh_balance().await,
            }
        }
    }
}
