//! Flow catalog and balance refreshers.
//!
//! The flow catalog feeds both the `itniotech_otp_flow_*` info gauges and the order poller's
//! schedule (a step's `waitingTime` says when a fallback can start). A failed refresh keeps the
//! previous catalog: stale flows are better than none for scheduling.

use crate::accounting::FlowCatalog;
use crate::api::model::Flow;
use crate::api::Client;
use crate::metrics::{
    BalanceLabels, FlowInfoLabels, FlowStepInfoLabels, FlowStepLabels, Metrics, PublishedFlows,
};
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
    pub metrics: Arc<Metrics>,
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
                publish_flow_metrics(&self.metrics, &list);
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
                    ("balance", b.balance),
                    ("gift", b.gift),
                    ("credit", b.credit),
                ] {
                    if let Some(v) = value.and_then(|d| d.to_f64()) {
                        self.metrics
                            .op
                            .balance
                            .get_or_create(&BalanceLabels {
                                kind: kind.into(),
                                currency: self.currency.clone(),
                            })
                            .set(v);
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

fn publish_flow_metrics(metrics: &Metrics, flows: &[Flow]) {
    let op = &metrics.op;
    let mut next = PublishedFlows::default();
    for f in flows {
        let id = f.flow_id.to_string();
        let name: String = f
            .name
            .as_deref()
            .unwrap_or("")
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        next.info.push(FlowInfoLabels {
            flow_id: id.clone(),
            flow_name: name,
        });
        for (i, node) in f.flow.iter().enumerate() {
            let step = (i + 1).to_string();
            let trigger = match node.status {
                Some(1) => "send_failure",
                Some(2) => "unverified",
                _ => "unknown",
            };
            let channel = match node.channel.as_deref() {
                Some("sms") => "sms",
                Some("call") => "call",
                Some("sna") => "sna",
                _ => "unknown",
            };
            next.steps.push(FlowStepInfoLabels {
                flow_id: id.clone(),
                step: step.clone(),
                channel: channel.into(),
                trigger: trigger.into(),
                channel_switch: (node.channel_cut.unwrap_or(0) == 0).to_string(),
            });
            let wait = FlowStepLabels {
                flow_id: id.clone(),
                step,
            };
            op.flow_step_wait
                .get_or_create(&wait)
                .set(node.waiting_time.unwrap_or(0));
            next.waits.push(wait);
        }
    }
    for l in &next.info {
        op.flow_info.get_or_create(l).set(1);
    }
    for l in &next.steps {
        op.flow_step_info.get_or_create(l).set(1);
    }
    // Deleted or renamed flows disappear; the current ones never blink out during a refresh.
    let mut published = op.published_flows.lock().unwrap_or_else(|e| e.into_inner());
    for l in published.info.iter().filter(|l| !next.info.contains(l)) {
        op.flow_info.remove(l);
    }
    for l in published.steps.iter().filter(|l| !next.steps.contains(l)) {
        op.flow_step_info.remove(l);
    }
    for l in published.waits.iter().filter(|l| !next.waits.contains(l)) {
        op.flow_step_wait.remove(l);
    }
    *published = next;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::model::FlowNode;
    use crate::metrics::Ledger;

    fn flow(id: i64, name: &str, steps: usize) -> Flow {
        Flow {
            flow_id: id,
            name: Some(name.into()),
            flow: (0..steps)
                .map(|_| FlowNode {
                    waiting_time: Some(60),
                    status: Some(1),
                    channel: Some("sms".into()),
                    channel_cut: Some(0),
                })
                .collect(),
        }
    }

    #[test]
    fn refresh_removes_only_stale_flow_series() {
        let metrics = Metrics::new(Ledger::new(), "t", "t");
        publish_flow_metrics(&metrics, &[flow(1, "a_flow", 2), flow(2, "b_flow", 1)]);
        let text = metrics.render();
        assert!(text.contains(r#"itniotech_otp_flow_info{flow_id="2",flow_name="b_flow"} 1"#));
        assert!(text.contains(r#"itniotech_otp_flow_step_wait_seconds{flow_id="1",step="2"} 60"#));
        // Flow 2 deleted, flow 1 renamed and shortened.
        publish_flow_metrics(&metrics, &[flow(1, "a_renamed", 1)]);
        let text = metrics.render();
        assert!(text.contains(r#"itniotech_otp_flow_info{flow_id="1",flow_name="a_renamed"} 1"#));
        assert!(!text.contains(r#"flow_name="a_flow""#));
        assert!(!text.contains(r#"flow_id="2""#));
        assert!(!text.contains(r#"itniotech_otp_flow_step_wait_seconds{flow_id="1",step="2"}"#));
    }
}
