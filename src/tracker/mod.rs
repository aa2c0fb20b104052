//! The tracker: the durable queue of pending orders and their poll schedule.
//!
//! One writer thread owns the SQLite [`Store`] and the ledger's write side; the rest of the
//! agent talks to it through [`Tracker`], a cheap handle that sends commands over a bounded
//! channel. The writer drains whatever commands are queued and commits them in one transaction
//! before answering any of them, so an intake request is acknowledged only once its orders are
//! on disk, and a poll result's state and metric increments land together or not at all.

pub mod store;

use crate::accounting::{Next, OrderState, Outcome};
use crate::domain::{EnqueueReport, NewOrder, OrderKey};
use crate::intake::{OrderSink, SinkError};
use crate::ledger::{SeriesKey, SharedLedger, Update};
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use std::collections::BTreeSet;
use store::{Store, StoreError, StoredOrder};
use tokio::sync::{mpsc, oneshot};

/// Commands batched into one transaction at most.
const MAX_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the tracker has stopped")]
    Stopped,
}

/// Tracker settings.
#[derive(Clone, Debug)]
pub struct TrackerConfig {
    /// Share of orders tracked, 0 < ratio ≤ 1, decided by a hash of the order key.
    pub sampling_ratio: f64,
    /// First poll after submit.
    pub first_delay: Duration,
    /// How long keys of finished orders are remembered to reject late duplicates.
    pub dedupe_window: Duration,
}

impl From<&crate::config::Config> for TrackerConfig {
    fn from(cfg: &crate::config::Config) -> Self {
        let d =
            |h: crate::config::HumanDuration| Duration::from_std(h.get()).unwrap_or(Duration::MAX);
        let max_age = d(cfg.tracking.max_age);
        TrackerConfig {
            sampling_ratio: cfg.sampling.ratio.get(),
            first_delay: d(cfg.poll.first_delay),
            // A duplicate can arrive as long as its order could still be tracked; a day at
            // least covers clients that retry the next morning.
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
    pub oldest_created: Option<DateTime<Utc>>,
    pub next_due: Option<DateTime<Utc>>,
}

/// A due order handed to the poller.
pub type DueOrder = StoredOrder;

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
        reply: oneshot::Sender<Result<(), TrackerError>>,
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
}

/// Handle to the tracker's writer thread.
#[derive(Clone)]
pub struct Tracker {
    tx: mpsc::Sender<Cmd>,
    clock: crate::clock::SharedClock,
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
    /// writer becomes the ledger's only writer.
    pub fn start(
        store: Store,
        ledger: SharedLedger,
        cfg: TrackerConfig,
        clock: crate::clock::SharedClock,
    ) -> Tracker {
        let (tx, rx) = mpsc::channel(4096);
        std::thread::Builder::new()
            .name("tracker-writer".into())
            .spawn(move || writer(store, ledger, cfg, rx))
            .expect("spawning the tracker thread");
        Tracker { tx, clock }
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

    /// Commits one poll's outcome: new state (or forgetting) and its metric updates together.
    pub async fn apply(&self, key: OrderKey, outcome: Outcome) -> Result<(), TrackerError> {
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
}

impl OrderSink for Tracker {
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
            let orders = orders.into_iter().map(|c| c.order).collect();
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

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn writer(mut store: Store, ledger: SharedLedger, cfg: TrackerConfig, mut rx: mpsc::Receiver<Cmd>) {
    let mut last_prune: Option<i64> = None;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let (writes, reads): (Vec<Cmd>, Vec<Cmd>) = batch.into_iter().partition(|c| {
            matches!(
                c,
                Cmd::Enqueue { .. } | Cmd::Apply { .. } | Cmd::PollSoon { .. }
            )
        });
        if !writes.is_empty() {
            let now = writes
                .iter()
                .map(|c| match c {
                    Cmd::Enqueue { now, .. }
                    | Cmd::Apply { now, .. }
                    | Cmd::PollSoon { at: now, .. } => ms(*now),
                    _ => i64::MIN,
                })
                .max()
                .unwrap_or(0);
            let prune = (last_prune.is_none_or(|at| now.saturating_sub(at) > 60_000)).then(|| {
                last_prune = Some(now);
                now - cfg.dedupe_window.num_milliseconds()
            });
            write_batch(&mut store, &ledger, &cfg, writes, prune);
        }
        for cmd in reads {
            match cmd {
                Cmd::Due { now, limit, reply } => {
                    let _ = reply.send(store.due(ms(now), limit).map_err(Into::into));
                }
                Cmd::Stats { reply } => {
                    let stats = store.stats().and_then(|(pending, oldest)| {
                        Ok(Stats {
                            pending,
                            oldest_created: oldest.and_then(|s| DateTime::from_timestamp(s, 0)),
                            next_due: store.next_due()?.and_then(DateTime::from_timestamp_millis),
                        })
                    });
                    let _ = reply.send(stats.map_err(Into::into));
                }
                _ => unreachable!("partitioned above"),
            }
        }
    }
}

enum Reply {
    Enqueue(
        oneshot::Sender<Result<EnqueueReport, TrackerError>>,
        EnqueueReport,
    ),
    Done(oneshot::Sender<Result<(), TrackerError>>),
}

fn write_batch(
    store: &mut Store,
    ledger: &SharedLedger,
    cfg: &TrackerConfig,
    writes: Vec<Cmd>,
    prune_before: Option<i64>,
) {
    let mut replies = Vec::with_capacity(writes.len());
    let mut touched: BTreeSet<SeriesKey> = BTreeSet::new();
    // Held until the commit (or the reload after a failed one), so a scrape never serves an
    // increment that is not on disk: a served value that later vanished would look like a
    // counter reset to Prometheus. Scrapes wait at most one commit.
    let mut l = ledger.write().unwrap_or_else(|e| e.into_inner());
    let result = (|| -> Result<(), StoreError> {
        let tx = store.transaction()?;
        for cmd in writes {
            match cmd {
                Cmd::Enqueue {
                    orders,
                    counts,
                    now,
                    reply,
                } => {
                    if !counts.is_empty() {
                        touched.extend(l.apply(&counts));
                    }
                    let mut report = EnqueueReport::default();
                    for o in orders {
                        if !sampled_in(&o.key, cfg.sampling_ratio) {
                            report.sampled_out += 1;
                            continue;
                        }
                        let created = o.submitted_at.unwrap_or(now).min(now);
                        let state = OrderState::new(o.key.app_id(), o.flow_id, created);
                        let first = (created + cfg.first_delay).max(now);
                        if tx.insert_order(&o.key, &state, ms(first))? {
                            report.accepted += 1;
                        } else {
                            report.duplicates += 1;
                        }
                    }
                    replies.push(Reply::Enqueue(reply, report));
                }
                Cmd::Apply {
                    key,
                    outcome,
                    now,
                    reply,
                } => {
                    match outcome.next {
                        Next::PollAt(at) => tx.update_order(&key, &outcome.state, ms(at))?,
                        Next::Forget => tx.forget_order(&key, ms(now))?,
                    }
                    if !outcome.updates.is_empty() {
                        touched.extend(l.apply(&outcome.updates));
                    }
                    replies.push(Reply::Done(reply));
                }
                Cmd::PollSoon { key, at, reply } => {
                    tx.poll_soon(&key, ms(at))?;
                    replies.push(Reply::Done(reply));
                }
                _ => {}
            }
        }
        for k in &touched {
            if let Some(v) = l.get(k) {
                tx.put_series(k, v)?;
            }
        }
        if let Some(before) = prune_before {
            tx.prune_forgotten(before)?;
        }
        tx.commit()
    })();
    if result.is_err() && !touched.is_empty() {
        // Memory is ahead of disk now: the disk is the truth, reload it before anyone reads.
        match store.load_ledger() {
            Ok(fresh) => *l = fresh,
            Err(e) => tracing::error!(error = %e, "reloading the ledger failed"),
        }
    }
    drop(l);
    match result {
        Ok(()) => {
            for r in replies {
                match r {
                    Reply::Enqueue(tx, report) => {
                        let _ = tx.send(Ok(report));
                    }
                    Reply::Done(tx) => {
                        let _ = tx.send(Ok(()));
                    }
                }
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "store transaction failed; nothing in it was acknowledged");
            let msg = e.to_string();
            for r in replies {
                let err = || TrackerError::Store(StoreError::Corrupt(msg.clone()));
                match r {
                    Reply::Enqueue(tx, _) => {
                        let _ = tx.send(Err(err()));
                    }
                    Reply::Done(tx) => {
                        let _ = tx.send(Err(err()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::ledger::{Ledger, OrderLabels, OrderOutcome, Update};
    use std::sync::Arc;

    fn order(i: usize) -> NewOrder {
        NewOrder {
            key: OrderKey::Order {
                app_id: "app1".into(),
                order_id: format!("o{i}"),
            },
            flow_id: None,
            submitted_at: None,
        }
    }

    #[tokio::test]
    async fn enqueue_dedupes_and_due_follows_first_delay() {
        let clock = ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let tracker = Tracker::start(
            Store::in_memory().unwrap(),
            Ledger::new().shared(),
            TrackerConfig::default(),
            Arc::new(clock.clone()),
        );
        let r = tracker
            .enqueue(vec![order(1), order(2), order(1)])
            .await
            .unwrap();
        assert_eq!((r.accepted, r.duplicates), (2, 1));
        assert!(tracker.due(clock.now(), 10).await.unwrap().is_empty());
        let due = tracker
            .due(clock.now() + Duration::seconds(5), 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 2);
        let outcome = Outcome {
            state: due[0].state.clone(),
            updates: vec![Update::Order(OrderLabels {
                app_id: "app1".into(),
                flow_id: "none".into(),
                country: "ID".into(),
                outcome: OrderOutcome::Delivered,
            })],
            next: Next::Forget,
            freshness: Vec::new(),
        };
        tracker.apply(due[0].key.clone(), outcome).await.unwrap();
        let stats = tracker.stats().await.unwrap();
        assert_eq!(stats.pending, 1);
        let r = tracker
            .enqueue(
                vec![due[0].key.clone()]
                    .into_iter()
                    .map(|key| NewOrder {
                        key,
                        flow_id: None,
                        submitted_at: None,
                    })
                    .collect(),
            )
            .await
            .unwrap();
        assert_eq!(
            r.duplicates, 1,
            "a finished order resubmitted is still a duplicate"
        );
    }

    #[test]
    fn sampling_is_deterministic_and_close_to_ratio() {
        let n = (0..20_000)
            .filter(|i| sampled_in(&order(*i).key, 0.25))
            .count();
        assert!((4_500..5_500).contains(&n), "{n}");
        assert_eq!(
            sampled_in(&order(7).key, 0.25),
            sampled_in(&order(7).key, 0.25)
        );
        assert!(sampled_in(&order(7).key, 1.0));
    }
}
