//! The order poller: fetches due records with bounded concurrency and commits each outcome.

use super::PollerError;
use crate::accounting::{self, Settings};
use crate::api::RecordSource;
use crate::clock::SharedClock;
use crate::domain::OrderKey;
use crate::metrics::{Operational, PollResult};
use crate::poller::catalog::FlowCatalogHandle;
use crate::tracker::{DueOrder, Tracker, TrackerError};
use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Due orders fetched from the store per round.
const ROUND: usize = 256;

/// Polls due orders and commits what accounting makes of each record.
#[derive(Clone)]
pub struct OrderPoller {
    tracker: Tracker,
    source: Arc<dyn RecordSource>,
    flows: FlowCatalogHandle,
    metrics: Arc<Operational>,
    settings: Settings,
    clock: SharedClock,
    /// Record requests in flight at most.
    concurrency: usize,
}

impl OrderPoller {
    /// Polls with at most `concurrency` record requests in flight, scheduling by `settings`
    /// and the flow catalog in `flows`.
    pub fn new(
        tracker: Tracker,
        source: Arc<dyn RecordSource>,
        flows: FlowCatalogHandle,
        metrics: Arc<Operational>,
        settings: Settings,
        clock: SharedClock,
        concurrency: usize,
    ) -> Result<OrderPoller, PollerError> {
        if concurrency == 0 {
            return Err(PollerError::Invalid(
                "concurrency must be at least 1".into(),
            ));
        }
        settings.validate().map_err(PollerError::Invalid)?;
        Ok(OrderPoller {
            tracker,
            source,
            flows,
            metrics,
            settings,
            clock,
            concurrency,
        })
    }

    /// The flow catalog this poller schedules by.
    pub fn flows(&self) -> &FlowCatalogHandle {
        &self.flows
    }

    /// Polls every order due now, round after round, until none is due. Returns the number of
    /// polls. Tests drive the agent with this and a manual clock.
    pub async fn run_due(&self) -> Result<usize, TrackerError> {
        let mut done: HashSet<OrderKey> = HashSet::new();
        while self.run_round(&mut done).await? > 0 {}
        self.refresh_backlog().await?;
        Ok(done.len())
    }

    /// Polls up to one round of due orders not in `done`; returns how many it polled.
    async fn run_round(&self, done: &mut HashSet<OrderKey>) -> Result<usize, TrackerError> {
        {
            let now = self.clock.now();
            let due: Vec<DueOrder> = self
                .tracker
                .due(now, ROUND)
                .await?
                .into_iter()
                .filter(|o| !done.contains(&o.key))
                .collect();
            if due.is_empty() {
                return Ok(0);
            }
            let n = due.len();
            let max_lag_ms = due
                .iter()
                .map(|o| now.timestamp_millis() - o.next_poll)
                .max()
                .unwrap_or(0)
                .max(0);
            self.metrics.poll_lag(max_lag_ms as f64 / 1000.0);
            done.extend(due.iter().map(|o| o.key.clone()));
            let results: Vec<Result<(), TrackerError>> = futures::stream::iter(due)
                .map(|o| self.poll_one(o))
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            for r in results {
                r?;
            }
            Ok(n)
        }
    }

    async fn poll_one(&self, order: DueOrder) -> Result<(), TrackerError> {
        let result = self.source.record(&order.key).await;
        // The clock is read after the call so latency-based schedules start from the reply.
        let now = self.clock.now();
        let outcome = match result {
            Ok(Some(record)) => {
                let flows = self.flows.snapshot();
                // Accounting is pure; a panic there (a bug meeting odd vendor data) must cost
                // one order a retry with backoff, not the whole poller.
                let accounted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    accounting::on_record(&order.state, &record, &flows, now, &self.settings)
                }));
                match accounted {
                    Ok(outcome) => {
                        self.metrics.poll_finished(PollResult::Ok);
                        outcome
                    }
                    Err(_) => {
                        self.metrics.poll_finished(PollResult::Error);
                        tracing::error!("accounting a record panicked; retrying the order later");
                        accounting::on_error(&order.state, now, &self.settings)
                    }
                }
            }
            Ok(None) => {
                self.metrics.poll_finished(PollResult::NotFound);
                accounting::on_not_found(&order.state, now, &self.settings)
            }
            Err(e) => {
                self.metrics.poll_finished(PollResult::Error);
                tracing::warn!(status = %e.status_label(), error = %e, "polling a record failed");
                accounting::on_error(&order.state, now, &self.settings)
            }
        };
        let freshness = outcome.freshness.clone();
        self.tracker.apply(order.key, outcome).await?;
        // Observed after the commit: the metric is only fresh once it is served.
        for f in freshness {
            self.metrics.attempt_counted(f);
        }
        Ok(())
    }

    /// Updates the backlog gauges from the store.
    pub async fn refresh_backlog(&self) -> Result<(), TrackerError> {
        let stats = self.tracker.stats().await?;
        let now = self.clock.now();
        let age = stats
            .oldest_created
            .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        self.metrics.backlog(stats.pending, age);
        Ok(())
    }

    /// Polls forever on the real clock until `shutdown` resolves. Shutdown is honoured between
    /// rounds; each committed poll stands on its own, so stopping mid-backlog loses nothing.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            // A round runs in its own task so that a bug (a panic) in one order's accounting
            // is logged and retried with backoff instead of silently ending all polling.
            let mut done = HashSet::new();
            let outcome = loop {
                let this = self.clone();
                let round = tokio::spawn(async move {
                    let n = this.run_round(&mut done).await;
                    (n, done)
                });
                tokio::select! {
                    _ = &mut shutdown => return,
                    r = round => match r {
                        Ok((Ok(0), _)) => break Ok(()),
                        Ok((Ok(_), d)) => done = d,
                        Ok((Err(e), _)) => break Err(e.to_string()),
                        Err(join) => break Err(format!("polling task failed: {join}")),
                    },
                }
            };
            if let Err(e) = self.refresh_backlog().await {
                tracing::error!(error = %e, "reading the backlog failed");
            }
            if let Err(e) = outcome {
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(500) * (1 << failures.min(6));
                tracing::error!(error = %e, retry_in = ?pause, "order polling round failed");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                continue;
            }
            failures = 0;
            // New orders are first due seconds after intake, so a short tick loses nothing;
            // sleeping until the next due poll keeps an idle agent idle.
            let wait = match self.tracker.stats().await {
                Ok(stats) => stats
                    .next_due
                    .map(|t| (t - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                    .unwrap_or(Duration::from_secs(1))
                    .clamp(Duration::from_millis(50), Duration::from_secs(1)),
                Err(_) => Duration::from_secs(1),
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
