//! The store's schema and its migrations (docs/deploy.md, "Upgrades and the store schema").
//!
//! | version | tables |
//! |---|---|
//! | 1 | `orders` (pending), `forgotten` (keys of finished orders), `series` (the counters) |
//! | 2 | `orders`, `aliases` (every name of every order pending or finished within the duplicate horizon; replaces `forgotten`), `series`, `quarantine` (unreadable rows), `meta` (the health probe); incremental auto-vacuum |

use super::StoreError;
use crate::domain::OrderKey;
use rusqlite::{params, Connection};

/// Current schema version, in SQLite's `user_version`.
pub const SCHEMA_VERSION: i64 = 2;

const V1: &str = "
    CREATE TABLE orders (
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
    ) WITHOUT ROWID;";

/// `aliases.key` is the pending order's key, NULL once it is forgotten (then `forgotten_at` is
/// set): the partial indexes hold only the rows their queries need, so a finished order costs
/// its name and a time, nothing more.
const V2: &str = "
    CREATE TABLE aliases (
        ident TEXT PRIMARY KEY,
        key TEXT,
        forgotten_at INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX aliases_key ON aliases(key) WHERE key IS NOT NULL;
    CREATE INDEX aliases_forgotten_at ON aliases(forgotten_at) WHERE forgotten_at IS NOT NULL;
    CREATE TABLE quarantine (
        id INTEGER PRIMARY KEY,
        tbl TEXT NOT NULL,
        key TEXT NOT NULL,
        payload TEXT NOT NULL,
        reason TEXT NOT NULL,
        at INTEGER NOT NULL
    );
    CREATE TABLE meta (
        name TEXT PRIMARY KEY,
        value
    ) WITHOUT ROWID;";

/// Migrates the store forward to [`SCHEMA_VERSION`] in one transaction. An up-to-date store is
/// not written to, so the agent starts (not ready) on a full disk.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::TooNew { found: version });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction()?;
    if version < 1 {
        tx.execute_batch(V1)?;
    }
    if version < 2 {
        tx.execute_batch(V2)?;
        aliases_from_v1(&tx)?;
        tx.execute_batch("DROP TABLE forgotten;")?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    let auto_vacuum: i64 = conn.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?;
    if auto_vacuum != 2 {
        // A store created before schema 2 has no incremental auto-vacuum; switching needs one
        // full VACUUM (it rewrites the file: time and space of about its size, once).
        tracing::info!("converting the store to incremental auto-vacuum (one-time VACUUM)");
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        conn.execute_batch("VACUUM")?;
    }
    Ok(())
}

/// Schema 1 knew an order by its key only: give each pending and forgotten order its name.
fn aliases_from_v1(tx: &rusqlite::Transaction<'_>) -> Result<(), StoreError> {
    let mut insert = tx.prepare(
        "INSERT INTO aliases (ident, key, forgotten_at) VALUES (?1, ?2, ?3)
         ON CONFLICT(ident) DO NOTHING",
    )?;
    let mut pending = tx.prepare("SELECT key FROM orders")?;
    let keys = pending.query_map([], |r| r.get::<_, String>(0))?;
    for key in keys {
        let key = key?;
        if let Some(k) = OrderKey::from_key_string(&key) {
            insert.execute(params![k.alias().to_ident(), key, None::<i64>])?;
        }
    }
    let mut forgotten = tx.prepare("SELECT key, at FROM forgotten")?;
    let rows = forgotten.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (key, at) = row?;
        if let Some(k) = OrderKey::from_key_string(&key) {
            insert.execute(params![k.alias().to_ident(), None::<String>, at])?;
        }
    }
    Ok(())
}

/// The schema-1 tables, for migration tests.
#[cfg(test)]
pub(super) fn create_v1(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(V1)?;
    conn.pragma_update(None, "user_version", 1)?;
    Ok(())
}
