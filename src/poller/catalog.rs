//! Flow catalog and balance refreshers.
//!
//! The flow catalog feeds both the `itniotech_otp_flow_*` info gauges and the order poller's
//! schedule (a step's `waitingTime` says when a fallback can start). A failed refresh keeps the
//! previous catalog: stale flows are better than none for scheduling.

use crate::accounting::FlowCatalog;
use crate::api::Client;
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

#[derive(Clone)]
pub struct CatalogPoller {
    pub client: Client,
    pub metrics: Arc<Operational>,
    pub flows: FlowCatalogHandle,
    pub currency: String,
}

impl CatalogPoller {
    /// Fetches flow/list once and publishes it.
    pub async fn refresh_flows(&self) {
        let result = self.client.flow_list().await;
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
        match self.client.balance().await {
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

    /// Refreshes flows every `flows_every` and the balance every `balance_every` until shutdown.
    pub async fn run(
        self,
        flows_every: Duration,
        balance_every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut flows_tick = tokio::time::interval(flows_every.max(Duration::from_secs(1)));
        let mut balance_tick = tokio::time::interval(balance_every.max(Duration::from_secs(1)));
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
