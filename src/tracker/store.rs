//! The SQLite store: pending orders with their counted state and next poll time, keys of
//! forgotten orders (so a late duplicate is not tracked twice), and the persisted ledger.
//!
//! Synchronous and single-threaded by design: exactly one [`Store`] owns the connection (the
//! tracker's writer thread). WAL with `synchronous=FULL`, so a committed transaction survives
//! `kill -9` and power loss; callers batch many operations into one transaction.

use crate::accounting::OrderState;
use crate::domain::OrderKey;
use crate::ledger::{Ledger, LedgerFamily, SeriesKey, SeriesValue};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use std::path::Path;

/// Current schema version; [`Store::open`] migrates older stores up to it.
pub const SCHEMA_VERSION: i64 = 1;

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
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// A pending order as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOrder {
    pub key: OrderKey,
    pub state: OrderState,
    /// Unix milliseconds.
    pub next_poll: i64,
}

pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) the store at `dir/itniotech-exporter.db`.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|error| StoreError::Dir {
            path: dir.display().to_string(),
            error,
        })?;
        let conn = Connection::open(dir.join("itniotech-exporter.db"))?;
        Self::init(conn)
    }

    /// An in-memory store, for tests and benchmarks.
    pub fn in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut store = Store { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { found: version });
        }
        let tx = self.conn.transaction()?;
        if version < 1 {
            tx.execute_batch(
                "CREATE TABLE orders (
                    key TEXT PRIMARY KEY,
                    state TEXT NOT NULL,
                    next_poll INTEGER NOT NULL,
                    created INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX orders_next_poll ON orders(next_poll);
                 CREATE INDEX orders_created ON orders(created);
                 CREATE TABLE forgotten (
                    key TEXT PRIMARY KEY,
                    at INTEGER NOT NULL
                 ) WITHOUT ROWID;
                 CREATE INDEX forgotten_at ON forgotten(at);
                 CREATE TABLE series (
                    family TEXT NOT NULL,
                    labels TEXT NOT NULL,
                    value TEXT NOT NULL,
                    PRIMARY KEY (family, labels)
                 ) WITHOUT ROWID;",
            )?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.commit()?;
        Ok(())
    }

    /// Loads the persisted ledger.
    pub fn load_ledger(&self) -> Result<Ledger, StoreError> {
        let mut ledger = Ledger::new();
        let mut stmt = self
            .conn
            .prepare("SELECT family, labels, value FROM series")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        for row in rows {
            let (family, labels, value) = row?;
            let Some(family) = LedgerFamily::from_key(&family) else {
                // A family a newer version wrote, or one since renamed: keep it stored, skip it.
                tracing::warn!(family, "skipping stored series of an unknown metric family");
                continue;
            };
            let labels: Vec<String> = serde_json::from_str(&labels)
                .map_err(|e| StoreError::Corrupt(format!("series labels: {e}")))?;
            let value: SeriesValue = serde_json::from_str(&value)
                .map_err(|e| StoreError::Corrupt(format!("series value: {e}")))?;
            ledger.restore((family, labels), value);
        }
        Ok(ledger)
    }

    pub fn transaction(&mut self) -> Result<Tx<'_>, StoreError> {
        Ok(Tx {
            tx: self.conn.transaction()?,
        })
    }

    /// Orders due at or before `now_ms`, earliest first.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<StoredOrder>, StoreError> {
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
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for row in rows {
            let (key_text, state, next_poll) = row?;
            let parsed = OrderKey::from_key_string(&key_text)
                .zip(serde_json::from_str::<OrderState>(&state).ok());
            match parsed {
                Some((key, state)) => out.push(StoredOrder {
                    key,
                    state,
                    next_poll,
                }),
                None => bad.push(key_text),
            }
        }
        drop(stmt);
        for key in bad {
            // One unreadable row must not stop polling for every other order: park it where
            // `due` never reaches and an operator can inspect it with sqlite3.
            tracing::error!("parking an unreadable stored order (next_poll set to the far future)");
            self.conn.execute(
                "UPDATE orders SET next_poll = ?2 WHERE key = ?1",
                params![key, i64::MAX],
            )?;
        }
        Ok(out)
    }

    /// Earliest next poll time of any pending order.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT MIN(next_poll) FROM orders", [], |r| r.get(0))?)
    }

    /// (pending orders, oldest created unix seconds).
    pub fn stats(&self) -> Result<(u64, Option<i64>), StoreError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*), MIN(created) FROM orders", [], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Option<i64>>(1)?))
            })?)
    }
}

/// One batch of writes, committed atomically.
pub struct Tx<'a> {
    tx: Transaction<'a>,
}

impl Tx<'_> {
    /// Inserts a new order. Returns false when the key is pending or was recently forgotten.
    pub fn insert_order(
        &self,
        key: &OrderKey,
        state: &OrderState,
        next_poll_ms: i64,
    ) -> Result<bool, StoreError> {
        let k = key.to_key_string();
        let forgotten: Option<i64> = self
            .tx
            .prepare_cached("SELECT at FROM forgotten WHERE key = ?1")?
            .query_row([&k], |r| r.get(0))
            .optional()?;
        if forgotten.is_some() {
            return Ok(false);
        }
        let state_json =
            serde_json::to_string(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO orders (key, state, next_poll, created) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(key) DO NOTHING",
            )?
            .execute(params![k, state_json, next_poll_ms, state.created_at])?;
        Ok(n == 1)
    }

    pub fn update_order(
        &self,
        key: &OrderKey,
        state: &OrderState,
        next_poll_ms: i64,
    ) -> Result<(), StoreError> {
        let state_json =
            serde_json::to_string(state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.tx
            .prepare_cached("UPDATE orders SET state = ?2, next_poll = ?3 WHERE key = ?1")?
            .execute(params![key.to_key_string(), state_json, next_poll_ms])?;
        Ok(())
    }

    /// Deletes a finished order and remembers its key until `prune_forgotten` drops it.
    pub fn forget_order(&self, key: &OrderKey, now_ms: i64) -> Result<(), StoreError> {
        let k = key.to_key_string();
        self.tx
            .prepare_cached("DELETE FROM orders WHERE key = ?1")?
            .execute([&k])?;
        self.tx
            .prepare_cached(
                "INSERT INTO forgotten (key, at) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET at = excluded.at",
            )?
            .execute(params![k, now_ms])?;
        Ok(())
    }

    /// Brings a pending order's next poll forward to `at_ms` (never later); a key not tracked
    /// is ignored.
    pub fn poll_soon(&self, key: &OrderKey, at_ms: i64) -> Result<(), StoreError> {
        self.tx
            .prepare_cached("UPDATE orders SET next_poll = MIN(next_poll, ?2) WHERE key = ?1")?
            .execute(params![key.to_key_string(), at_ms])?;
        Ok(())
    }

    pub fn prune_forgotten(&self, before_ms: i64) -> Result<usize, StoreError> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM forgotten WHERE at < ?1")?
            .execute([before_ms])?)
    }

    pub fn put_series(&self, key: &SeriesKey, value: &SeriesValue) -> Result<(), StoreError> {
        let labels =
            serde_json::to_string(&key.1).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let value = serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.tx
            .prepare_cached(
                "INSERT INTO series (family, labels, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT(family, labels) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![key.0.key(), labels, value])?;
        Ok(())
    }

    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{CostLabels, SmsDeliveryLabels, SmsStatus, Update};
    use chrono::DateTime;

    fn key(o: &str) -> OrderKey {
        OrderKey::Order {
            app_id: "app1".into(),
            order_id: o.into(),
        }
    }

    #[test]
    fn orders_dedupe_schedule_and_forget() {
        let mut store = Store::in_memory().unwrap();
        let st = OrderState::new("app1", None, DateTime::from_timestamp(1000, 0).unwrap());
        let tx = store.transaction().unwrap();
        assert!(tx.insert_order(&key("1"), &st, 5_000).unwrap());
        assert!(!tx.insert_order(&key("1"), &st, 5_000).unwrap());
        assert!(tx.insert_order(&key("2"), &st, 9_000).unwrap());
        tx.commit().unwrap();
        assert_eq!(store.due(6_000, 10).unwrap().len(), 1);
        assert_eq!(store.next_due().unwrap(), Some(5_000));
        assert_eq!(store.stats().unwrap(), (2, Some(1000)));
        let tx = store.transaction().unwrap();
        tx.forget_order(&key("1"), 7_000).unwrap();
        tx.commit().unwrap();
        let tx = store.transaction().unwrap();
        assert!(
            !tx.insert_order(&key("1"), &st, 5_000).unwrap(),
            "forgotten keys stay deduplicated"
        );
        assert_eq!(tx.prune_forgotten(8_000).unwrap(), 1);
        assert!(tx.insert_order(&key("1"), &st, 5_000).unwrap());
        tx.commit().unwrap();
    }

    #[test]
    fn ledger_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::new();
        let touched = ledger.apply(&[
            Update::SmsDeliverySeconds(
                SmsDeliveryLabels {
                    app_id: "a".into(),
                    country: "ID".into(),
                    status: SmsStatus::Delivered,
                },
                3.5,
            ),
            Update::Cost(
                CostLabels {
                    app_id: "a".into(),
                    channel: crate::domain::Channel::Sms,
                    country: "ID".into(),
                    currency: "USD".into(),
                },
                0.25,
            ),
        ]);
        {
            let mut store = Store::open(dir.path()).unwrap();
            let tx = store.transaction().unwrap();
            for k in &touched {
                tx.put_series(k, ledger.get(k).unwrap()).unwrap();
            }
            tx.commit().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let restored = store.load_ledger().unwrap();
        assert_eq!(restored.len(), ledger.len());
        for (k, v) in ledger.iter() {
            assert_eq!(restored.get(k), Some(v));
        }
    }
}
