//! The writer thread: the only owner of the store and the ledger's write side.
//!
//! It drains the queued commands into one transaction (group commit) and answers none before
//! the commit. After each commit attempt it updates [`StoreHealth`]; while the store cannot
//! commit, it probes it with a tiny commit (1 s, doubling to 16 s) so polling resumes by itself
//! once space is back; while idle, a heartbeat commit every 15 s keeps `/-/ready` truthful.

use super::health::{StoreHealth, StoreObserver};
use super::store::{AliasLink, Store, StoreError};
use super::{sampled_in, Applied, Cmd, Stats, TrackerConfig, TrackerError, MAX_BATCH};
use crate::accounting::{Next, OrderState};
use crate::clock::SharedClock;
use crate::domain::EnqueueReport;
use crate::ledger::{SeriesKey, SharedLedger};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Idle time after which the writer proves the store still commits.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Probe intervals while the store cannot commit.
const PROBE_MIN: Duration = Duration::from_secs(1);
const PROBE_MAX: Duration = Duration::from_secs(16);
/// How often the names of finished orders past the duplicate horizon are removed.
const PRUNE_EVERY_MS: i64 = 60_000;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(super) struct Writer {
    pub store: Store,
    pub ledger: SharedLedger,
    pub cfg: TrackerConfig,
    pub clock: SharedClock,
    pub health: StoreHealth,
    pub observer: Arc<dyn StoreObserver>,
}

enum Reply {
    Enqueue(
        oneshot::Sender<Result<EnqueueReport, TrackerError>>,
        EnqueueReport,
    ),
    Apply(oneshot::Sender<Result<Applied, TrackerError>>, Applied),
    Done(oneshot::Sender<Result<(), TrackerError>>),
}

impl Writer {
    pub fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        // A timer for the probes and heartbeats; the commands arrive on a tokio channel.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime for the tracker writer");
        let mut last_prune: Option<i64> = None;
        let mut probe_every = PROBE_MIN;
        loop {
            let wait = if self.health.can_commit() {
                HEARTBEAT
            } else {
                probe_every
            };
            let first = match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => return,
                Err(_idle) => {
                    if !self.probe() {
                        probe_every = (probe_every * 2).min(PROBE_MAX);
                    }
                    continue;
                }
            };
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
                let prune = last_prune.is_none_or(|at| now.saturating_sub(at) > PRUNE_EVERY_MS);
                let prune_before = prune.then(|| now - self.cfg.dedupe_window.num_milliseconds());
                if self.write_batch(writes, prune_before) {
                    probe_every = PROBE_MIN;
                    if prune {
                        last_prune = Some(now);
                        self.reclaim();
                    }
                } else {
                    probe_every = (probe_every * 2).min(PROBE_MAX);
                }
            }
            for cmd in reads {
                self.read(cmd);
            }
        }
    }

    fn failed(&self, e: &StoreError, commit: bool) -> TrackerError {
        let now = self.clock.now();
        self.observer.store_error(e.kind());
        if commit {
            self.health.failed(e.kind(), e.to_string(), now);
        }
        match self.health.failure() {
            Some(failure) if commit => TrackerError::Store { failure },
            _ => TrackerError::store(e, now),
        }
    }

    /// A heartbeat commit; returns whether it succeeded.
    fn probe(&mut self) -> bool {
        let now = self.clock.now();
        match self.store.probe(ms(now)) {
            Ok(()) => {
                self.health.committed(now);
                true
            }
            Err(e) => {
                self.failed(&e, true);
                false
            }
        }
    }

    fn reclaim(&mut self) {
        match self.store.reclaim() {
            Ok(0) => {}
            Ok(pages) => tracing::debug!(pages, "returned free store pages to the file system"),
            Err(e) => {
                tracing::warn!(error = %e, "returning free store pages failed");
                self.failed(&e, false);
            }
        }
    }

    fn read(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Due { now, limit, reply } => {
                let due = self.store.due(ms(now), limit);
                let _ = reply.send(due.map_err(|e| self.failed(&e, false)));
            }
            Cmd::Stats { reply } => {
                let store = &self.store;
                let stats = store.stats().and_then(|(pending, oldest)| {
                    Ok(Stats {
                        pending,
                        oldest_created: oldest.and_then(|s| DateTime::from_timestamp(s, 0)),
                        next_due: store.next_due()?.and_then(DateTime::from_timestamp_millis),
                        quarantined: store.quarantined()?,
                    })
                });
                let _ = reply.send(stats.map_err(|e| self.failed(&e, false)));
            }
            #[cfg(test)]
            Cmd::Panic => panic!("the tracker writer was told to panic"),
            Cmd::Enqueue { .. } | Cmd::Apply { .. } | Cmd::PollSoon { .. } => {
                unreachable!("partitioned into writes")
            }
        }
    }

    /// Commits the writes in one transaction and answers them; returns whether it committed.
    fn write_batch(&mut self, writes: Vec<Cmd>, prune_before: Option<i64>) -> bool {
        let mut replies = Vec::with_capacity(writes.len());
        let mut touched: BTreeSet<SeriesKey> = BTreeSet::new();
        let cfg = &self.cfg;
        // Held until the commit (or the reload after a failed one), so a scrape never serves an
        // increment that is not on disk: a served value that later vanished would look like a
        // counter reset to Prometheus. Scrapes wait at most one commit.
        let mut l = self.ledger.write().unwrap_or_else(|e| e.into_inner());
        let result = (|| -> Result<(), StoreError> {
            let tx = self.store.transaction()?;
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
                            // A client's submit time never makes an order older than the
                            // horizon nor younger than its intake; expiry counts from intake.
                            let submitted = o
                                .submitted_at
                                .unwrap_or(now)
                                .clamp(now - cfg.dedupe_window, now);
                            let state = OrderState::received_at_time(
                                o.key.app_id(),
                                o.flow_id,
                                submitted,
                                now,
                            );
                            let first = (submitted + cfg.first_delay).max(now);
                            if tx.insert_order(&o.key, &o.aliases(), &state, ms(first))? {
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
                        let mut applied = Applied::default();
                        if let Some(alias) = &outcome.alias {
                            match tx.link_alias(&key, alias)? {
                                AliasLink::New | AliasLink::Known => {}
                                AliasLink::Pending(other) => {
                                    tracing::info!(
                                        "an order tracked under both key forms was merged into \
                                         one (its record named the other key)"
                                    );
                                    tx.merge_order(&key, &other, ms(now))?;
                                    applied.merged = true;
                                }
                                AliasLink::Forgotten => {
                                    tracing::info!(
                                        "an order was already counted under its other key; \
                                         dropping the duplicate"
                                    );
                                    tx.forget_order(&key, ms(now))?;
                                    applied.merged = true;
                                }
                            }
                        }
                        if !applied.merged {
                            match outcome.next {
                                Next::PollAt(at) => {
                                    tx.update_order(&key, &outcome.state, ms(at))?
                                }
                                Next::Forget => tx.forget_order(&key, ms(now))?,
                            }
                            if !outcome.updates.is_empty() {
                                touched.extend(l.apply(&outcome.updates));
                            }
                        }
                        replies.push(Reply::Apply(reply, applied));
                    }
                    Cmd::PollSoon { key, at, reply } => {
                        tx.poll_soon(&key, ms(at))?;
                        replies.push(Reply::Done(reply));
                    }
                    _ => {}
                }
            }
            for k in &touched {
                // A touched key the ledger no longer has was removed by its series budget.
                match l.get(k) {
                    Some(v) => tx.put_series(k, v)?,
                    None => tx.delete_series(k)?,
                }
            }
            if let Some(before) = prune_before {
                tx.prune_forgotten(before)?;
            }
            tx.commit()
        })();
        if result.is_err() && !touched.is_empty() {
            // Memory is ahead of disk now: the disk is the truth, reload it before anyone reads.
            match self.store.load_ledger() {
                Ok(fresh) => *l = fresh,
                Err(e) => tracing::error!(error = %e, "reloading the ledger failed"),
            }
        }
        drop(l);
        match result {
            Ok(()) => {
                self.health.committed(self.clock.now());
                for r in replies {
                    match r {
                        Reply::Enqueue(tx, report) => {
                            let _ = tx.send(Ok(report));
                        }
                        Reply::Apply(tx, applied) => {
                            let _ = tx.send(Ok(applied));
                        }
                        Reply::Done(tx) => {
                            let _ = tx.send(Ok(()));
                        }
                    }
                }
                true
            }
            Err(e) => {
                let err = self.failed(&e, true);
                tracing::warn!(error = %e, "store transaction failed; nothing in it was acknowledged");
                for r in replies {
                    match r {
                        Reply::Enqueue(tx, _) => {
                            let _ = tx.send(Err(err.clone()));
                        }
                        Reply::Apply(tx, _) => {
                            let _ = tx.send(Err(err.clone()));
                        }
                        Reply::Done(tx) => {
                            let _ = tx.send(Err(err.clone()));
                        }
                    }
                }
                false
            }
        }
    }
}
