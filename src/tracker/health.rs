//! Whether the store commits: written by the tracker's writer after every commit attempt, read
//! by the poller (which pauses while the store cannot commit, so no vendor call is made whose
//! result could not be saved), the intake (whose `503` names the reason) and `/-/ready`.

use super::store::StoreErrorKind;
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The agent's own metric of store failures (`itniotech_exporter_store_errors_total{kind}`),
/// implemented by the operational metrics; the tracker's writer is its only writer.
pub trait StoreObserver: Send + Sync + 'static {
    /// A store operation (a commit, a probe, a read) failed.
    fn store_error(&self, kind: StoreErrorKind);
}

/// A [`StoreObserver`] that drops everything (tests, benchmarks).
#[derive(Debug, Default)]
pub struct NoopStoreObserver;

impl StoreObserver for NoopStoreObserver {
    fn store_error(&self, _: StoreErrorKind) {}
}

/// Why the store cannot commit now.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreFailure {
    pub kind: StoreErrorKind,
    /// SQLite's message (no order data).
    pub message: String,
    /// When the current run of failures began.
    pub since: DateTime<Utc>,
}

impl StoreFailure {
    /// One line for a `503` body and `/-/ready`: the kind and since when, never SQLite's
    /// message (it may name paths).
    pub fn reason(&self) -> String {
        format!(
            "the store cannot commit since {} ({}: {})",
            self.since.format("%Y-%m-%dT%H:%M:%SZ"),
            self.kind,
            describe(self.kind),
        )
    }
}

/// What an operator should understand from a kind.
pub fn describe(kind: StoreErrorKind) -> &'static str {
    match kind {
        StoreErrorKind::DiskFull => "the disk is full",
        StoreErrorKind::Io => "reading or writing the store failed",
        StoreErrorKind::Corrupt => "the database file is damaged",
        StoreErrorKind::Busy => "another process holds a lock on the database",
        StoreErrorKind::Other => "unexpected store error",
    }
}

#[derive(Debug, Default)]
struct State {
    last_commit: Option<DateTime<Utc>>,
    failure: Option<StoreFailure>,
}

/// The store's health, shared by the writer (which sets it) and its readers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StoreHealth {
    can_commit: Arc<AtomicBool>,
    state: Arc<Mutex<State>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            // Until the first commit says otherwise: the store opened and migrated.
            can_commit: Arc::new(AtomicBool::new(true)),
            state: Arc::default(),
        }
    }
}

impl StoreHealth {
    /// Whether the last commit attempt succeeded.
    pub fn can_commit(&self) -> bool {
        self.can_commit.load(Ordering::Acquire)
    }

    /// The current failure, if the store cannot commit.
    pub fn failure(&self) -> Option<StoreFailure> {
        self.lock().failure.clone()
    }

    /// When the last commit succeeded.
    pub fn last_commit(&self) -> Option<DateTime<Utc>> {
        self.lock().last_commit
    }

    /// For `/-/ready`: `Ok(what is fine)` or `Err(why not)`.
    pub fn readiness(&self, now: DateTime<Utc>) -> Result<String, String> {
        let st = self.lock();
        match (&st.failure, st.last_commit) {
            (Some(f), _) => Err(f.reason()),
            (None, Some(at)) => Ok(format!(
                "the store commits (last commit {}s ago)",
                (now - at).num_seconds().max(0)
            )),
            (None, None) => Ok("the store is open".into()),
        }
    }

    pub(super) fn committed(&self, at: DateTime<Utc>) {
        let mut st = self.lock();
        st.last_commit = Some(at);
        if let Some(f) = st.failure.take() {
            tracing::info!(kind = %f.kind, since = %f.since, "the store commits again; polling resumes");
        }
        self.can_commit.store(true, Ordering::Release);
    }

    pub(super) fn failed(&self, kind: StoreErrorKind, message: String, at: DateTime<Utc>) {
        let mut st = self.lock();
        let since = st.failure.as_ref().map_or(at, |f| f.since);
        if st.failure.is_none() {
            tracing::error!(
                %kind,
                error = %message,
                "the store cannot commit: polling pauses and the intake answers 503 until it \
                 can (docs/runbook.md, \"Store cannot commit\")"
            );
        }
        st.failure = Some(StoreFailure {
            kind,
            message,
            since,
        });
        self.can_commit.store(false, Ordering::Release);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
