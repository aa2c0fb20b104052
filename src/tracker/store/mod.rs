//! The SQLite store: pending orders with their counted state and next poll time, every name
//! (alias) of every order tracked or recently finished (so a late duplicate, under either key
//! form, is not tracked twice), the persisted ledger, and a quarantine for rows that cannot be
//! read.
//!
//! Synchronous and single-threaded by design: exactly one [`Store`] owns the connection (the
//! tracker's writer thread). WAL with `synchronous=FULL`, so a committed transaction survives
//! `kill -9` and power loss; callers batch many operations into one transaction. The file is
//! kept near its live size: finished orders shrink to their aliases, which are removed after the
//! duplicate horizon, and [`Store::reclaim`] hands free pages back (incremental auto-vacuum).
//! Schema and migrations: [`schema`]; the ledger's rows and damaged ones: [`series`].
//!
//! Size (about 600 lines, its tests in `tests.rs`): every SQL statement of the orders and aliases
//! tables is here, next to the transaction type that runs it, so the schema's invariants are
//! read in one place; the ledger's rows and the schema migration have their own files.

mod schema;
mod series;
#[cfg(test)]
mod tests;

pub use schema::SCHEMA_VERSION;
pub use series::DamagedSeries;

use crate::accounting::OrderState;
use crate::domain::{OrderAlias, OrderKey};
use crate::ledger::family::label_enum;
use crate::ledger::{SeriesKey, SeriesValue};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Transaction};
use std::path::{Path, PathBuf};

/// The database file's name inside `--storage.path`.
pub const DB_FILE: &str = "itniotech-exporter.db";
/// The write-ahead log is truncated to this size after a checkpoint, so a burst does not leave
/// a large file behind.
const WAL_SIZE_LIMIT: i64 = 8 << 20;
/// [`Store::reclaim`] frees pages once this share of the file is free...
const RECLAIM_FREE_SHARE: f64 = 0.25;
/// ...and at least this many pages are (1 MiB at the default page size).
const RECLAIM_MIN_PAGES: i64 = 256;

label_enum! {
    /// What kind of failure the store met: the `kind` label of
    /// `itniotech_exporter_store_errors_total`.
    StoreErrorKind {
        /// The disk (or the file system's quota) is full: SQLITE_FULL.
        DiskFull => "disk_full",
        /// Reading or writing the files failed: SQLITE_IOERR, CANTOPEN, READONLY, PERM.
        Io => "io",
        /// The file or a row in it is damaged: SQLITE_CORRUPT, NOTADB, an unreadable row.
        Corrupt => "corrupt",
        /// Another process holds a lock on the database: SQLITE_BUSY, LOCKED.
        Busy => "busy",
        /// Anything else (a bug, an unexpected SQLite error).
        Other => "other",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the storage directory {path}: {error}")]
    Dir { path: String, error: std::io::Error },
    #[error(
        "store schema version {found} is newer than this binary understands ({SCHEMA_VERSION})"
    )]
    TooNew { found: i64 },
    #[error("encoding a value for the store: {0}")]
    Encode(String),
    /// A counter row that cannot be skipped without resetting a counter Prometheus has seen;
    /// the message says how to recover.
    #[error("{0}")]
    DamagedSeries(String),
}

impl StoreError {
    /// The kind of failure, for the metric, the logs and the intake's `503` reason.
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Sqlite(e) => match e.sqlite_error_code() {
                Some(ErrorCode::DiskFull) => StoreErrorKind::DiskFull,
                Some(
                    ErrorCode::SystemIoFailure
                    | ErrorCode::CannotOpen
                    | ErrorCode::ReadOnly
                    | ErrorCode::PermissionDenied
                    | ErrorCode::FileLockingProtocolFailed,
                ) => StoreErrorKind::Io,
                Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => {
                    StoreErrorKind::Corrupt
                }
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreErrorKind::Busy,
                _ => StoreErrorKind::Other,
            },
            StoreError::Dir { .. } => StoreErrorKind::Io,
            StoreError::DamagedSeries(_) => StoreErrorKind::Corrupt,
            StoreError::TooNew { .. } | StoreError::Encode(_) => StoreErrorKind::Other,
        }
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Encode(e.to_string()))
}

/// A pending order as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    pub key: OrderKey,
    pub state: OrderState,
    /// Unix milliseconds.
    pub next_poll: i64,
}

/// Rows moved to the quarantine table, by the table they came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quarantined {
    pub orders: u64,
    pub series: u64,
}

/// The file's pages, for retention measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageStats {
    pub page_size: i64,
    pub pages: i64,
    pub free_pages: i64,
}

pub struct Store {
    conn: Connection,
    /// The database file; `None` in memory.
    path: Option<PathBuf>,
}

impl Store {
    /// Opens (creating if needed) the store at `dir/itniotech-exporter.db`. The directory is
    /// made 0700 and the database files 0600: they hold order ids and the counters.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::Dir {
            path: dir.display().to_string(),
            error,
        })?;
        let path = dir.join(DB_FILE);
        restrict(dir, 0o700);
        create_private(&path);
        let conn = Connection::open(&path)?;
        let store = Self::init(conn, Some(path.clone()))?;
        // SQLite gives the -wal and -shm files the database's mode; older stores may predate it.
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.clone().into_os_string();
            name.push(suffix);
            let file = PathBuf::from(name);
            if file.exists() {
                restrict(&file, 0o600);
            }
        }
        Ok(store)
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?, None)
    }

    fn init(conn: Connection, path: Option<PathBuf>) -> Result<Store, StoreError> {
        // Only takes effect on a new, empty file (before its first table); older files are
        // converted once by the migration to schema 2.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Store { conn, path };
        schema::migrate(&mut store.conn)?;
        Ok(store)
    }

    /// Where the database file is (for messages that tell an operator what to run).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn transaction(&mut self) -> Result<Tx<'_>, StoreError> {
        Ok(Tx {
            tx: self.conn.transaction()?,
        })
    }

    /// Orders due at or before `now_ms`, earliest first. A row that cannot be read is moved to
    /// the quarantine table (one bad row must not stop polling for every other order, nor count
    /// as pending forever), and is not returned.
    pub fn due(&mut self, now_ms: i64, limit: usize) -> Result<Vec<StoredOrder>, StoreError> {
        let mut out = Vec::new();
        let mut bad = Vec::new();
        {
            let mut stmt = self.conn.prepare_cached(
                "SELECT key, state, next_poll FROM orders WHERE next_poll <= ?1
                 ORDER BY next_poll LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (key_text, state, next_poll) = row?;
                match parse_order(&key_text, &state) {
                    Ok((key, state)) => out.push(StoredOrder {
                        key,
                        state,
                        next_poll,
                    }),
                    Err(reason) => bad.push((key_text, state, reason)),
                }
            }
        }
        if !bad.is_empty() {
            self.quarantine_orders(bad, now_ms)?;
        }
        Ok(out)
    }

    /// Moves every pending row that cannot be read to the quarantine table; returns how many.
    /// Run at start, so unreadable rows never count as pending.
    pub fn quarantine_unreadable(&mut self, now_ms: i64) -> Result<usize, StoreError> {
        let mut bad = Vec::new();
        {
            let mut stmt = self.conn.prepare("SELECT key, state FROM orders")?;
            let rows =
                stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
            for row in rows {
                let (key_text, state) = row?;
                if let Err(reason) = parse_order(&key_text, &state) {
                    bad.push((key_text, state, reason));
                }
            }
        }
        let n = bad.len();
        if n > 0 {
            self.quarantine_orders(bad, now_ms)?;
        }
        Ok(n)
    }

    fn quarantine_orders(
        &mut self,
        bad: Vec<(String, String, String)>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        for (key, state, reason) in bad {
            // The key and reason only: the row itself may hold anything, and logs must not.
            tracing::error!(
                reason = %reason,
                "moving an unreadable order row to the quarantine table (docs/runbook.md, \
                 \"Quarantined store rows\")"
            );
            tx.execute(
                "INSERT INTO quarantine (tbl, key, payload, reason, at)
                 VALUES ('orders', ?1, ?2, ?3, ?4)",
                params![key, state, reason, now_ms],
            )?;
            tx.execute("DELETE FROM orders WHERE key = ?1", [&key])?;
            // Its names stay remembered, as for a finished order: a replay is a duplicate.
            tx.execute(
                "UPDATE aliases SET key = NULL, forgotten_at = ?2 WHERE key = ?1",
                params![key, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Rows in the quarantine table, by origin.
    pub fn quarantined(&self) -> Result<Quarantined, StoreError> {
        let mut q = Quarantined::default();
        let mut stmt = self
            .conn
            .prepare_cached("SELECT tbl, COUNT(*) FROM quarantine GROUP BY tbl")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (tbl, n) = row?;
            match tbl.as_str() {
                "orders" => q.orders = n as u64,
                "series" => q.series = n as u64,
                _ => {}
            }
        }
        Ok(q)
    }

    /// Earliest next poll time of any pending order.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MIN(next_poll) FROM orders", [], |r| r.get(0))?)
    }

    /// (pending orders, oldest intake time in unix seconds).
    pub fn stats(&self) -> Result<(u64, Option<i64>), StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*), MIN(created) FROM orders", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<i64>>(1)?))
            })?)
    }

    /// A tiny commit that proves the store can commit (the writer's health probe while the
    /// store is failing, and its heartbeat while idle).
    pub fn probe(&mut self, now_ms: i64) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(
                "INSERT INTO meta (name, value) VALUES ('heartbeat', ?1)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            )?
            .execute([now_ms])?;
        Ok(())
    }

    /// Hands free pages back to the file system once a quarter of the file (and at least
    /// 1 MiB) is free: after the duplicate horizon removes a busy day's aliases, say. Free pages
    /// below that are left for new rows, which reuse them. Returns the pages freed.
    pub fn reclaim(&mut self) -> Result<i64, StoreError> {
        let p = self.page_stats()?;
        let keep = (p.pages as f64 * RECLAIM_FREE_SHARE / 2.0) as i64;
        if p.free_pages < RECLAIM_MIN_PAGES
            || (p.free_pages as f64) < p.pages as f64 * RECLAIM_FREE_SHARE
        {
            return Ok(0);
        }
        let n = p.free_pages - keep;
        // incremental_vacuum returns one row per page freed; step through them.
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA incremental_vacuum({n})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
        Ok(n)
    }

    pub fn page_stats(&self) -> Result<PageStats, StoreError> {
        let get = |name: &str| -> Result<i64, StoreError> {
            Ok(self.conn.pragma_query_value(None, name, |r| r.get(0))?)
        };
        Ok(PageStats {
            page_size: get("page_size")?,
            pages: get("page_count")?,
            free_pages: get("freelist_count")?,
        })
    }
}

/// The key and state of a stored order, or why they cannot be read.
fn parse_order(key_text: &str, state: &str) -> Result<(OrderKey, OrderState), String> {
    let key = OrderKey::from_key_string(key_text).ok_or("unreadable order key")?;
    let state = serde_json::from_str::<OrderState>(state)
        .map_err(|e| format!("unreadable order state: {e}"))?;
    Ok((key, state))
}

/// What the store knows about an alias an order's record revealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AliasLink {
    /// The name was unknown: it now names this order.
    New,
    /// It already names this order.
    Known,
    /// It names another pending order: the same vendor order, tracked twice.
    Pending(OrderKey),
    /// It names an order that was finished and forgotten: this one is its duplicate.
    Forgotten,
}

/// One batch of writes, committed atomically.
pub struct Tx<'a> {
    tx: Transaction<'a>,
}

impl Tx<'_> {
    /// Inserts a new order known by `aliases` (its key's own and any other). Returns false when
    /// the key is pending or any alias names an order pending or recently finished.
    pub fn insert_order(
        &self,
        key: &OrderKey,
        aliases: &[OrderAlias],
        state: &OrderState,
        next_poll_ms: i64,
    ) -> Result<bool, StoreError> {
        for a in aliases {
            let known: Option<i64> = self
                .tx
                .prepare_cached("SELECT 1 FROM aliases WHERE ident = ?1")?
                .query_row([a.to_ident()], |r| r.get(0))
                .optional()?;
            if known.is_some() {
                return Ok(false);
            }
        }
        let k = key.to_key_string();
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO orders (key, state, next_poll, created) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(key) DO NOTHING",
            )?
            .execute(params![
                k,
                encode(state)?,
                next_poll_ms,
                state.received_at()
            ])?;
        if n == 0 {
            return Ok(false);
        }
        for a in aliases {
            self.tx
                .prepare_cached(
                    "INSERT INTO aliases (ident, key, forgotten_at) VALUES (?1, ?2, NULL)
                     ON CONFLICT(ident) DO NOTHING",
                )?
                .execute(params![a.to_ident(), k])?;
        }
        Ok(true)
    }

    pub fn update_order(
        &self,
        key: &OrderKey,
        state: &OrderState,
        next_poll_ms: i64,
    ) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE orders SET state = ?2, next_poll = ?3 WHERE key = ?1")?
            .execute(params![key.to_key_string(), encode(state)?, next_poll_ms])?;
        Ok(())
    }

    /// Deletes a finished order and keeps only its names, with the time it was forgotten, until
    /// [`Tx::prune_forgotten`] drops them after the duplicate horizon.
    pub fn forget_order(&self, key: &OrderKey, now_ms: i64) -> Result<(), StoreError> {
        let k = key.to_key_string();
        self.tx
            .prepare_cached("DELETE FROM orders WHERE key = ?1")?
            .execute([&k])?;
        self.tx
            .prepare_cached("UPDATE aliases SET key = NULL, forgotten_at = ?2 WHERE key = ?1")?
            .execute(params![k, now_ms])?;
        // An order from a schema-1 store whose key had no alias row still leaves its name.
        self.tx
            .prepare_cached(
                "INSERT INTO aliases (ident, key, forgotten_at) VALUES (?1, NULL, ?2)
                 ON CONFLICT(ident) DO NOTHING",
            )?
            .execute(params![key.alias().to_ident(), now_ms])?;
        Ok(())
    }

    /// Records that `alias` names the pending order `key` (its record showed it), and says what
    /// the name meant before.
    pub fn link_alias(&self, key: &OrderKey, alias: &OrderAlias) -> Result<AliasLink, StoreError> {
        let ident = alias.to_ident();
        let k = key.to_key_string();
        let row: Option<Option<String>> = self
            .tx
            .prepare_cached("SELECT key FROM aliases WHERE ident = ?1")?
            .query_row([&ident], |r| r.get(0))
            .optional()?;
        let link = match row {
            Some(Some(other)) if other == k => return Ok(AliasLink::Known),
            Some(None) => return Ok(AliasLink::Forgotten),
            Some(Some(other)) => {
                let pending: Option<i64> = self
                    .tx
                    .prepare_cached("SELECT 1 FROM orders WHERE key = ?1")?
                    .query_row([&other], |r| r.get(0))
                    .optional()?;
                match OrderKey::from_key_string(&other).filter(|_| pending.is_some()) {
                    Some(other) => return Ok(AliasLink::Pending(other)),
                    // A name left pointing at a row that is gone: it is this order's now.
                    None => AliasLink::New,
                }
            }
            None => AliasLink::New,
        };
        self.tx
            .prepare_cached(
                "INSERT INTO aliases (ident, key, forgotten_at) VALUES (?1, ?2, NULL)
                 ON CONFLICT(ident) DO UPDATE SET key = excluded.key, forgotten_at = NULL",
            )?
            .execute(params![ident, k])?;
        Ok(link)
    }

    /// Merges the pending order `from` into the pending order `into` (the same vendor order,
    /// tracked under both key forms): `into` takes over what `from` had already counted, is
    /// polled at `now_ms`, and every name of `from` now names it. `from` is deleted.
    pub fn merge_order(
        &self,
        from: &OrderKey,
        into: &OrderKey,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let (f, i) = (from.to_key_string(), into.to_key_string());
        let state = |k: &str| -> Result<Option<OrderState>, StoreError> {
            let text: Option<String> = self
                .tx
                .prepare_cached("SELECT state FROM orders WHERE key = ?1")?
                .query_row([k], |r| r.get(0))
                .optional()?;
            Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
        };
        if let (Some(from_state), Some(mut into_state)) = (state(&f)?, state(&i)?) {
            into_state.absorb(&from_state);
            self.tx
                .prepare_cached(
                    "UPDATE orders SET state = ?2, next_poll = MIN(next_poll, ?3) WHERE key = ?1",
                )?
                .execute(params![i, encode(&into_state)?, now_ms])?;
        }
        self.tx
            .prepare_cached("DELETE FROM orders WHERE key = ?1")?
            .execute([&f])?;
        self.tx
            .prepare_cached("UPDATE aliases SET key = ?2 WHERE key = ?1")?
            .execute(params![f, i])?;
        Ok(())
    }

    /// Brings a pending order's next poll forward to `at_ms` (never later). `key` may be either
    /// of the order's names: an order tracked by orderId is found by its verificationId (a
    /// verify call names only that) once the two are linked. A name not tracked is ignored.
    pub fn poll_soon(&self, key: &OrderKey, at_ms: i64) -> Result<(), StoreError> {
        let tracked: Option<String> = self
            .tx
            .prepare_cached("SELECT key FROM aliases WHERE ident = ?1 AND key IS NOT NULL")?
            .query_row([key.alias().to_ident()], |r| r.get(0))
            .optional()?;
        let k = tracked.unwrap_or_else(|| key.to_key_string());
        self.tx
            .prepare_cached("UPDATE orders SET next_poll = MIN(next_poll, ?2) WHERE key = ?1")?
            .execute(params![k, at_ms])?;
        Ok(())
    }

    /// Drops the names of orders forgotten before `before_ms` (the duplicate horizon).
    pub fn prune_forgotten(&self, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM aliases WHERE forgotten_at < ?1")?
            .execute([before_ms])?)
    }

    pub fn put_series(&self, key: &SeriesKey, value: &SeriesValue) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO series (family, labels, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(family, labels) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key.0.key(), encode(&key.1)?, encode(value)?])?;
        Ok(())
    }

    /// Deletes a series the ledger removed (its budget made room for a new one).
    pub fn delete_series(&self, key: &SeriesKey) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("DELETE FROM series WHERE family = ?1 AND labels = ?2")?
            .execute(params![key.0.key(), encode(&key.1)?])?;
        Ok(())
    }

    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}

/// Sets `path`'s permissions to `mode` when they are wider. A directory the agent does not own
/// (a volume's mount point) cannot be changed: that is logged, not fatal.
fn restrict(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let current = meta.permissions().mode() & 0o777;
        if current & !mode == 0 {
            return;
        }
        if let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{current:o}"),
                %error,
                "cannot restrict the store's permissions; other users may read it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// Creates the database file 0600 before SQLite does (SQLite would use the umask).
fn create_private(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path);
    }
    #[cfg(not(unix))]
    let _ = path;
}
