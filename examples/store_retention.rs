//! The store's size under steady traffic on a simulated clock: how many bytes a pending order
//! takes, and where the file settles once retention (finished orders compacted to their names,
//! names dropped after the duplicate horizon, free pages handed back) runs as the tracker's
//! writer runs it. Figures in docs/reliability.md.
//!
//! `cargo run --release --example store_retention -- [DAYS] [ORDERS_PER_SECOND] [--no-retention]`
//! (defaults: 7 days at 5 orders/s). `--no-retention` never prunes or reclaims: the store as it
//! grew before issue 8, for the before/after ratio.
//!
//! Each simulated minute is one transaction, as the writer's group commit makes it: the
//! minute's new orders are inserted under both their names (orderId and verificationId, as
//! the capture proxy or an intake item with both sends them), the previous minute's are
//! updated with a state that has seen and counted an attempt (what a pending order looks like
//! after its first polls), and those past the verify window plus grace (5 min 5 s, the
//! defaults) are forgotten. Every minute the names forgotten before the duplicate horizon
//! (24 h) are pruned and free pages reclaimed, as `tracker::writer` does.

use chrono::{DateTime, Duration, Utc};
use itniotech_exporter::accounting::OrderState;
use itniotech_exporter::domain::{OrderAlias, OrderKey};
use itniotech_exporter::tracker::store::Store;
use std::collections::VecDeque;

const HORIZON: Duration = Duration::hours(24);
const LIFE: Duration = Duration::seconds(305);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let retention = !args.iter().any(|a| a == "--no-retention");
    let nums: Vec<f64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let days = nums.first().copied().unwrap_or(7.0);
    let rate = nums.get(1).copied().unwrap_or(5.0);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut store = Store::open(dir.path()).expect("the store opens");
    let db = store.path().expect("a file store").to_path_buf();
    let t0: DateTime<Utc> = "2026-01-05T00:00:00Z".parse().unwrap();
    let per_minute = (rate * 60.0).round() as usize;
    let minutes = (days * 1440.0).round() as i64;
    println!(
        "store retention: {days} days at {rate} orders/s ({per_minute}/min), retention {}",
        if retention { "on" } else { "off" }
    );
    println!("day\torders\tpending\tfile_bytes\tfree_pages\tbytes_per_order_sent\trss_kib");
    // Orders inserted, oldest first: (key, received).
    let mut pending: VecDeque<(OrderKey, DateTime<Utc>)> = VecDeque::new();
    let mut fresh: Vec<(OrderKey, DateTime<Utc>)> = Vec::new();
    let mut sent = 0u64;
    let mut pending_bytes_sample = None;
    for m in 0..minutes {
        let now = t0 + Duration::minutes(m);
        let now_ms = now.timestamp_millis();
        let tx = store.transaction().expect("a transaction");
        // Last minute's orders: polled once, their first attempt seen and counted.
        for (key, received) in fresh.drain(..) {
            let mut st = OrderState::new("app1", Some(2), received);
            st.record_seen = true;
            st.country = Some("ID".into());
            let attempt = format!("sms:{}", received.timestamp_millis());
            st.first_seen
                .insert(attempt.clone(), received.timestamp_millis() + 2_000);
            st.counted.insert(attempt);
            tx.update_order(&key, &st, now_ms + 30_000).unwrap();
            pending.push_back((key, received));
        }
        for i in 0..per_minute {
            let received = now + Duration::milliseconds((i as i64 * 60_000) / per_minute as i64);
            let n = sent + i as u64;
            let key = OrderKey::Order {
                app_id: "app1".into(),
                order_id: format!("ord-{n:012}"),
            };
            // The vendor's verificationId: 32 hex characters.
            let vid = OrderAlias::VerificationId(format!(
                "{:032x}",
                n.wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ));
            let st = OrderState::new("app1", Some(2), received);
            assert!(tx
                .insert_order(&key, &[key.alias(), vid], &st, now_ms + 5_000)
                .unwrap());
            fresh.push((key, received));
        }
        sent += per_minute as u64;
        while let Some((key, received)) = pending.front() {
            if now - *received < LIFE {
                break;
            }
            tx.forget_order(key, now_ms).unwrap();
            pending.pop_front();
        }
        if retention {
            tx.prune_forgotten((now - HORIZON).timestamp_millis())
                .unwrap();
        }
        tx.commit().expect("commit");
        if retention {
            store.reclaim().expect("reclaim");
        }
        // Bytes per pending order: measured once, an hour in, from a store holding only
        // pending orders and their names (the size with none of them, subtracted).
        if m == 60 && pending_bytes_sample.is_none() {
            pending_bytes_sample = Some(pending_order_bytes(rate));
        }
        if (m + 1) % 1440 == 0 {
            let p = store.page_stats().unwrap();
            let bytes = file_bytes(&db);
            println!(
                "{}\t{sent}\t{}\t{bytes}\t{}\t{:.1}\t{}",
                (m + 1) / 1440,
                pending.len() + fresh.len(),
                p.free_pages,
                bytes as f64 / sent as f64,
                rss_kib()
            );
        }
    }
    if let Some((n, bytes)) = pending_bytes_sample {
        println!(
            "pending order: {:.0} bytes each ({n} pending orders with both names and one counted attempt: {bytes} bytes)",
            bytes as f64 / n as f64
        );
    }
}

/// A separate store holding `rate × LIFE` pending orders: (orders, bytes they add to the file).
fn pending_order_bytes(rate: f64) -> (u64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let db = store.path().unwrap().to_path_buf();
    store.probe(0).unwrap();
    checkpoint(&db);
    let empty = file_bytes(&db);
    let n = (rate * LIFE.num_seconds() as f64 * 20.0) as u64;
    let t0: DateTime<Utc> = "2026-01-05T00:00:00Z".parse().unwrap();
    let tx = store.transaction().unwrap();
    for i in 0..n {
        let key = OrderKey::Order {
            app_id: "app1".into(),
            order_id: format!("ord-{i:012}"),
        };
        let vid =
            OrderAlias::VerificationId(format!("{:032x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
        let mut st = OrderState::new("app1", Some(2), t0);
        st.record_seen = true;
        st.country = Some("ID".into());
        st.first_seen.insert(format!("sms:{i}"), 1_767_571_200_000);
        st.counted.insert(format!("sms:{i}"));
        tx.insert_order(&key, &[key.alias(), vid], &st, 0).unwrap();
    }
    tx.commit().unwrap();
    drop(store);
    checkpoint(&db);
    (n, file_bytes(&db) - empty)
}

/// Folds the WAL into the database file so the file's size is the data's.
fn checkpoint(db: &std::path::Path) {
    let c = rusqlite::Connection::open(db).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

/// The database file plus its WAL (what the disk holds).
fn file_bytes(db: &std::path::Path) -> u64 {
    let wal = db.with_extension("db-wal");
    [db.to_path_buf(), wal]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|v| v.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}
