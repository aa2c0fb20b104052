//! The tracker: the durable queue of pending orders and their poll schedule.
//!
//! One writer thread owns the SQLite [`Store`] and the ledger's write side; the rest of the
//! agent talks to it through [`Tracker`], a cheap handle that sends commands over a bounded
//! channel. The writer drains whatever commands are queued and commits them in one transaction
//! before answering any of them, so an intake request is acknowledged only once its orders are
//! on disk, and a poll result's state and metric increments land together or not at all.
//!
//! The writer also keeps [`StoreHealth`] (whether the store commits; the poller pauses and the
//! intake answers `503` while it does not), probes a failing store until it commits again,
//! removes the names of finished orders after the duplicate horizon, and links an order's two
//! names (docs/design.md §3, §5). If the writer thread ever dies, [`Tracker::stopped`] resolves
//! and the agent exits so its supervisor restarts it.

mod health;
pub mod store;
mod writer;

pub use health::{describe, NoopStoreObserver, StoreFailure, StoreHealth, StoreObserver};

use crate::accounting::Outcome;
use crate::domain::{EnqueueReport, NewOrder, OrderKey};
use crate::intake::{IntakeError, OrderSink, SinkError};
use crate::ledger::{SharedLedger, Update};
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use std::sync::Arc;
use store::{Quarantined, Store, StoreError, StoreErrorKind, StoredOrder};
use tokio::sync::{mpsc, oneshot, watch};

/// Commands batched into one transaction at most.
const MAX_BATCH: usize = 512;

#[derive(Debug, Clone, thiserror::Error)]
pub enum TrackerError {
    /// The store failed (for a batch: the commit, so nothing in it was acknowledged).
    #[error("{}", .failure.reason())]
    Store { failure: StoreFailure },
    #[error("the tracker has stopped")]
    Stopped,
}

impl TrackerError {
    fn store(e: &StoreError, at: DateTime<Utc>) -> TrackerError {
        TrackerError::Store {
            failure: StoreFailure {
                kind: e.kind(),
                message: e.to_string(),
                since: at,
            },
        }
    }

    /// The store's failure kind, when the store failed.
    pub fn kind(&self) -> Option<StoreErrorKind> {
        match self {
            TrackerError::Store { failure } => Some(failure.kind),
            TrackerError::Stopped => None,
        }
    }
}

/// Tracker settings.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Share of orders tracked, 0 < ratio ≤ 1, decided by a hash of the order key.
    pub sampling_ratio: f64,
    /// First poll after submit.
    pub first_delay: Duration,
    /// How long the names of finished orders are remembered to reject late duplicates; a
    /// `submittedAt` older than this is refused at intake (such a replay could be counted
    /// twice).
    pub dedupe_window: Duration,
}

impl From<&crate::config::Config> for TrackerConfig {
    fn from(cfg: &crate::config::Config) -> Self {
        let d =
            |h: crate::config::HumanDuration| Duration::from_std(h.get()).unwrap_or(Duration::MAX);
        let max_age = d(cfg.tracking.max_age);
        TrackerConfig {
            sampling_ratio: cfg.sampling.ratio.get(),
            first_delay: crate::accounting::Settings::from(cfg).first_poll_delay(),
            // A duplicate can arrive as long as its order could still be tracked (an attempt
            // running at max age is followed for up to max age more); a day at least covers
            // clients that retry the next morning.
            dedupe_window: (max_age * 2).max(Duration::hours(24)),
        }
    }
}

/// The settings of the default configuration.
impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig::from(&crate::config::Config::default())
    }
}

/// Pending-order statistics for the backlog gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stats {
    pub pending: u64,
    /// Intake time of the oldest pending order.
    pub oldest_created: Option<DateTime<Utc>>,
    pub next_due: Option<DateTime<Utc>>,
    /// Rows moved to the quarantine table.
    pub quarantined: Quarantined,
}

/// A due order handed to the poller.
pub type DueOrder = StoredOrder;

/// What committing one poll's outcome did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The record linked this order to another one tracked under its other key: this one was
    /// merged into it (its increments of this poll were dropped; the other counts the order).
    pub merged: bool,
}

enum Cmd {
    Enqueue {
        orders: Vec<NewOrder>,
        /// Ledger increments committed with the orders (the proxy's send counts).
        counts: Vec<Update>,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Result<EnqueueReport, TrackerError>>,
    },
    Apply {
        key: OrderKey,
        outcome: Box<Outcome>,
        now: DateTime<Utc>,
        reply: oneshot::Sender<Result<Applied, TrackerError>>,
    },
    PollSoon {
        key: OrderKey,
        at: DateTime<Utc>,
        reply: oneshot::Sender<Result<(), TrackerError>>,
    },
    Due {
        now: DateTime<Utc>,
        limit: usize,
        reply: oneshot::Sender<Result<Vec<DueOrder>, TrackerError>>,
    },
    Stats {
        reply: oneshot::Sender<Result<Stats, TrackerError>>,
    },
    /// Makes the writer panic: the supervision tests' stand-in for a bug.
    #[cfg(test)]
    Panic,
}

/// Handle to the tracker's writer thread.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Cmd>,
    clock: crate::clock::SharedClock,
    health: StoreHealth,
    /// Set once, to why the writer thread ended.
    exit: watch::Receiver<Option<String>>,
    dedupe_window: Duration,
}

/// Whether an order key falls inside the sample. Deterministic across restarts and replicas.
pub fn sampled_in(key: &OrderKey, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let h = xxhash_rust::xxh3::xxh3_64(key.to_key_string().as_bytes());
    (h as f64 / u64::MAX as f64) < ratio
}

impl Tracker {
    /// Starts the writer thread over an opened store and the ledger loaded from it; the
    /// writer becomes the ledger's only writer. Store failures are not reported anywhere but
    /// [`Tracker::health`] (tests, benchmarks).
    pub fn start(
        store: Store,
        ledger: SharedLedger,
        cfg: TrackerConfig,
        clock: crate::clock::SharedClock,
    ) -> Tracker {
        Self::start_observed(store, ledger, cfg, clock, Arc::new(NoopStoreObserver))
    }

    /// [`Tracker::start`], reporting each store failure to `observer`.
    pub fn start_observed(
        store: Store,
        ledger: SharedLedger,
        cfg: TrackerConfig,
        clock: crate::clock::SharedClock,
        observer: Arc<dyn StoreObserver>,
    ) -> Tracker {
        let (tx, rx) = mpsc::channel(4096);
        let (exit_tx, exit) = watch::channel(None);
        let health = StoreHealth::default();
        let dedupe_window = cfg.dedupe_window;
        let writer = writer::Writer {
            store,
            ledger,
            cfg,
            clock: clock.clone(),
            health: health.clone(),
            observer,
        };
        std::thread::Builder::new()
            .name("tracker-writer".into())
            .spawn(move || {
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    writer.run(rx);
                }));
                let reason = match run {
                    Ok(()) => "its command channel closed".to_owned(),
                    Err(panic) => {
                        let msg = panic
                            .downcast_ref::<&str>()
                            .map(|s| (*s).to_owned())
                            .or_else(|| panic.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "unknown panic".into());
                        format!("it panicked: {msg}")
                    }
                };
                let _ = exit_tx.send(Some(reason));
            })
            .expect("spawning the tracker thread");
        Tracker {
            tx,
            clock,
            health,
            exit,
            dedupe_window,
        }
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, TrackerError>>) -> Cmd,
    ) -> Result<T, TrackerError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| TrackerError::Stopped)?;
        rx.await.map_err(|_| TrackerError::Stopped)?
    }

    /// Stores new orders durably; returns once they are committed.
    pub async fn enqueue(&self, orders: Vec<NewOrder>) -> Result<EnqueueReport, TrackerError> {
        self.enqueue_counted(orders, Vec::new()).await
    }

    /// Stores new orders and ledger increments in one transaction; returns once committed.
    pub async fn enqueue_counted(
        &self,
        orders: Vec<NewOrder>,
        counts: Vec<Update>,
    ) -> Result<EnqueueReport, TrackerError> {
        let now = self.clock.now();
        self.call(|reply| Cmd::Enqueue {
            orders,
            counts,
            now,
            reply,
        })
        .await
    }

    /// Moves the order's next poll to now (when it is tracked and due later). Something just
    /// happened to it that its record will show.
    pub async fn poll_soon(&self, key: OrderKey) -> Result<(), TrackerError> {
        let at = self.clock.now();
        self.call(|reply| Cmd::PollSoon { key, at, reply }).await
    }

    /// Commits one poll's outcome: new state (or forgetting) and its metric updates together;
    /// when the outcome names an alias of another pending order, merges the two instead.
    pub async fn apply(&self, key: OrderKey, outcome: Outcome) -> Result<Applied, TrackerError> {
        let now = self.clock.now();
        self.call(|reply| Cmd::Apply {
            key,
            outcome: Box::new(outcome),
            now,
            reply,
        })
        .await
    }

    /// Orders whose poll is due at `now`, earliest first.
    pub async fn due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DueOrder>, TrackerError> {
        self.call(|reply| Cmd::Due { now, limit, reply }).await
    }

    pub async fn stats(&self) -> Result<Stats, TrackerError> {
        self.call(|reply| Cmd::Stats { reply }).await
    }

    /// Whether the store commits.
    pub fn health(&self) -> &StoreHealth {
        &self.health
    }

    /// Resolves when the writer thread has ended, with why. The agent cannot work without it:
    /// it exits non-zero so that its supervisor (systemd, Kubernetes) restarts it.
    pub async fn stopped(&self) -> String {
        self.on_exit().await
    }

    /// [`Tracker::stopped`] without holding the tracker: the writer also ends, normally, once
    /// every handle is dropped, and this says when it has (and the store is closed).
    pub fn on_exit(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            let reason = match exit.wait_for(Option::is_some).await {
                Ok(reason) => reason.clone().unwrap_or_default(),
                Err(_) => "its exit was not reported".into(),
            };
            reason
        }
    }

    #[cfg(test)]
    pub(crate) async fn crash_for_test(&self) {
        let _ = self.tx.send(Cmd::Panic).await;
    }
}

impl OrderSink for Tracker {
    fn check(&self, orders: &[NewOrder]) -> Result<(), IntakeError> {
        crate::intake::refuse_replays(orders, self.clock.now(), self.dedupe_window)
    }

    fn enqueue(
        &self,
        orders: Vec<NewOrder>,
    ) -> BoxFuture<'static, Result<EnqueueReport, SinkError>> {
        let this = self.clone();
        Box::pin(async move { Tracker::enqueue(&this, orders).await.map_err(sink_error) })
    }
}

impl crate::proxy::CaptureSink for Tracker {
    fn capture_send(
        &self,
        orders: Vec<crate::proxy::CapturedOrder>,
        counts: Vec<Update>,
    ) -> BoxFuture<'static, Result<EnqueueReport, SinkError>> {
        let this = self.clone();
        Box::pin(async move {
            // Both names are known from the start (the send request's orderId, the reply's
            // verificationId): a later intake or verify under either names this one order.
            let orders = orders
                .into_iter()
                .map(|c| NewOrder {
                    alias: c.alias.map(|k| k.alias()).or(c.order.alias),
                    ..c.order
                })
                .collect();
            this.enqueue_counted(orders, counts)
                .await
                .map_err(sink_error)
        })
    }

    fn poll_soon(&self, key: OrderKey) -> BoxFuture<'static, Result<(), SinkError>> {
        let this = self.clone();
        Box::pin(async move { Tracker::poll_soon(&this, key).await.map_err(sink_error) })
    }
}

fn sink_error(e: TrackerError) -> SinkError {
    match e {
        TrackerError::Stopped => SinkError::ShuttingDown,
        other => SinkError::Unavailable(other.to_string()),
    }
}

#[cfg(test)]
mod tests;
