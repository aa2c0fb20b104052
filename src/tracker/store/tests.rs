use super::*;
use crate::ledger::{CostLabels, Ledger, SmsDeliveryLabels, SmsStatus, Update};
use chrono::DateTime;

fn key(o: &str) -> OrderKey {
    OrderKey::Order {
        app_id: "app1".into(),
        order_id: o.into(),
    }
}

fn vid(v: &str) -> OrderKey {
    OrderKey::Verification {
        verification_id: v.into(),
    }
}

fn state() -> OrderState {
    OrderState::new("app1", None, DateTime::from_timestamp(1000, 0).unwrap())
}

fn insert(store: &mut Store, k: &OrderKey, next_poll: i64) -> bool {
    let tx = store.transaction().unwrap();
    let ok = tx
        .insert_order(k, &[k.alias()], &state(), next_poll)
        .unwrap();
    tx.commit().unwrap();
    ok
}

#[test]
fn orders_dedupe_schedule_and_forget() {
    let mut store = Store::in_memory().unwrap();
    let st = state();
    let tx = store.transaction().unwrap();
    assert!(tx
        .insert_order(&key("1"), &[key("1").alias()], &st, 5_000)
        .unwrap());
    assert!(!tx
        .insert_order(&key("1"), &[key("1").alias()], &st, 5_000)
        .unwrap());
    assert!(tx
        .insert_order(&key("2"), &[key("2").alias()], &st, 9_000)
        .unwrap());
    tx.commit().unwrap();
    assert_eq!(store.due(6_000, 10).unwrap().len(), 1);
    assert_eq!(store.next_due().unwrap(), Some(5_000));
    assert_eq!(store.stats().unwrap(), (2, Some(1000)));
    let tx = store.transaction().unwrap();
    tx.forget_order(&key("1"), 7_000).unwrap();
    tx.commit().unwrap();
    let tx = store.transaction().unwrap();
    assert!(
        !tx.insert_order(&key("1"), &[key("1").alias()], &st, 5_000)
            .unwrap(),
        "forgotten keys stay deduplicated"
    );
    assert_eq!(tx.prune_forgotten(8_000).unwrap(), 1);
    assert!(tx
        .insert_order(&key("1"), &[key("1").alias()], &st, 5_000)
        .unwrap());
    tx.commit().unwrap();
}

#[test]
fn a_finished_order_is_compacted_to_its_names() {
    let mut store = Store::in_memory().unwrap();
    let tx = store.transaction().unwrap();
    let aliases = [key("7").alias(), OrderAlias::VerificationId("2405".into())];
    assert!(tx.insert_order(&key("7"), &aliases, &state(), 1).unwrap());
    tx.forget_order(&key("7"), 5_000).unwrap();
    tx.commit().unwrap();
    let rows: Vec<(String, Option<String>, Option<i64>)> = store
        .conn
        .prepare("SELECT ident, key, forgotten_at FROM aliases ORDER BY ident")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        rows,
        [
            ("oid:7".to_owned(), None, Some(5_000)),
            ("vid:2405".to_owned(), None, Some(5_000))
        ]
    );
    assert_eq!(store.stats().unwrap().0, 0);
}

#[test]
fn links_between_the_two_names_of_an_order() {
    let mut store = Store::in_memory().unwrap();
    assert!(insert(&mut store, &key("1"), 1));
    assert!(insert(&mut store, &vid("99"), 1));
    let tx = store.transaction().unwrap();
    // The verificationId record of 99 names orderId 1: the same order, pending twice.
    assert_eq!(
        tx.link_alias(&vid("99"), &OrderAlias::OrderId("1".into()))
            .unwrap(),
        AliasLink::Pending(key("1"))
    );
    // The orderId record of 1 naming 55 (unknown): a new name of order 1.
    assert_eq!(
        tx.link_alias(&key("1"), &OrderAlias::VerificationId("55".into()))
            .unwrap(),
        AliasLink::New
    );
    assert_eq!(
        tx.link_alias(&key("1"), &OrderAlias::VerificationId("55".into()))
            .unwrap(),
        AliasLink::Known
    );
    let mut counted = state();
    counted.counted.insert("sms@1".into());
    tx.update_order(&vid("99"), &counted, 1).unwrap();
    tx.merge_order(&vid("99"), &key("1"), 50).unwrap();
    tx.forget_order(&key("1"), 60).unwrap();
    assert_eq!(
        tx.link_alias(&vid("3"), &OrderAlias::VerificationId("99".into()))
            .unwrap(),
        AliasLink::Forgotten,
        "the merged order's names went with it"
    );
    tx.commit().unwrap();
    assert_eq!(store.stats().unwrap().0, 0);
}

#[test]
fn merging_keeps_what_either_counted() {
    let mut store = Store::in_memory().unwrap();
    insert(&mut store, &key("1"), 9_000);
    insert(&mut store, &vid("99"), 9_000);
    let tx = store.transaction().unwrap();
    let mut a = state();
    a.counted.insert("sms@1".into());
    a.first_seen.insert("sms@1".into(), 10);
    tx.update_order(&vid("99"), &a, 9_000).unwrap();
    tx.merge_order(&vid("99"), &key("1"), 50).unwrap();
    tx.commit().unwrap();
    let due = store.due(50, 10).unwrap();
    assert_eq!(due.len(), 1, "polled at once");
    assert_eq!(due[0].key, key("1"));
    assert!(due[0].state.counted.contains("sms@1"));
    assert!(due[0].state.has_seen("sms@1"));
}

#[test]
fn unreadable_order_rows_are_quarantined_not_pending() {
    let mut store = Store::in_memory().unwrap();
    insert(&mut store, &key("good"), 1);
    insert(&mut store, &key("bad"), 1);
    insert(&mut store, &key("later"), 1_000_000);
    store
        .conn
        .execute(
            "UPDATE orders SET state = '{not json' WHERE key IN ('o:app1:bad', 'o:app1:later')",
            [],
        )
        .unwrap();
    let due = store.due(10, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, key("good"));
    assert_eq!(
        store.quarantined().unwrap(),
        Quarantined {
            orders: 1,
            series: 0
        }
    );
    // The one not due yet is found by the scan at start.
    assert_eq!(store.quarantine_unreadable(20).unwrap(), 1);
    assert_eq!(
        store.stats().unwrap().0,
        1,
        "quarantined rows are not pending"
    );
    assert_eq!(store.quarantined().unwrap().orders, 2);
    // Their names stay remembered: a replay is a duplicate.
    assert!(!insert(&mut store, &key("bad"), 1));
}

fn put(store: &mut Store, family: &str, labels: &str, value: &str) {
    store
        .conn
        .execute(
            "INSERT INTO series (family, labels, value) VALUES (?1, ?2, ?3)",
            params![family, labels, value],
        )
        .unwrap();
}

#[test]
fn a_damaged_zero_series_is_skipped_and_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    put(
        &mut store,
        "itniotech_otp_sms",
        r#"["a","ID","10","delivered"]"#,
        r#"{"Counter":3.0}"#,
    );
    put(
        &mut store,
        "itniotech_otp_sms",
        r#"["a","ID""#,
        r#"{"Counter":0.0}"#,
    );
    let ledger = store.open_ledger(1).unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(store.quarantined().unwrap().series, 1);
    drop(store);
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.open_ledger(2).unwrap().len(), 1, "moved out for good");
}

#[test]
fn a_damaged_counter_prometheus_has_seen_refuses_the_start_with_a_recovery_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    put(
        &mut store,
        "itniotech_otp_sms",
        r#"["a","ID","10","failed"]"#,
        r#"{"Counter":2.0}"#,
    );
    put(
        &mut store,
        "itniotech_otp_sms",
        r#"["a","ID","10","delivered"]"#,
        r#"{"Counter":"#,
    );
    let err = store.open_ledger(1).unwrap_err();
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    let msg = err.to_string();
    assert!(msg.contains("would reset a counter"), "{msg}");
    // The message's command, run as an operator would, lets the agent start.
    let sql = msg
        .split("\"INSERT")
        .nth(1)
        .and_then(|rest| rest.split("\" (docs").next())
        .map(|s| format!("INSERT{s}"))
        .expect("a quoted sqlite3 command");
    drop(store);
    let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
    conn.execute_batch(&sql).unwrap();
    drop(conn);
    let mut store = Store::open(dir.path()).unwrap();
    let ledger = store.open_ledger(2).unwrap();
    assert_eq!(ledger.len(), 1);
    assert_eq!(store.quarantined().unwrap().series, 1);
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

#[test]
fn a_schema_1_store_migrates_with_its_orders_and_remembered_keys() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
        schema::create_v1(&conn).unwrap();
        let st = serde_json::json!({"app_id":"app1","created_at":1000,"counted":["sms@5"],
            "seen":["sms@5"],"record_seen":true});
        conn.execute(
            "INSERT INTO orders (key, state, next_poll, created) VALUES ('o:app1:p', ?1, 5, 1000)",
            [st.to_string()],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO forgotten (key, at) VALUES ('v:123', 7000), ('o:app1:f', 7000)",
            [],
        )
        .unwrap();
    }
    let mut store = Store::open(dir.path()).unwrap();
    let v: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let av: i64 = store
        .conn
        .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
        .unwrap();
    assert_eq!(av, 2, "converted to incremental auto-vacuum");
    let due = store.due(10, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert!(
        due[0].state.has_seen("sms@5"),
        "a schema-1 state still loads"
    );
    assert_eq!(due[0].state.received_at(), 1000);
    for (k, dup) in [
        (key("p"), true),
        (vid("123"), true),
        (key("f"), true),
        (key("n"), false),
    ] {
        assert_eq!(!insert(&mut store, &k, 1), dup, "{k:?}");
    }
}

#[test]
fn a_full_disk_is_a_typed_error_and_the_store_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let pages = store.page_stats().unwrap().pages;
    // A size-limited file: SQLite's stand-in for a full disk.
    store
        .conn
        .pragma_update(None, "max_page_count", pages)
        .unwrap();
    let big = OrderState {
        app_id: "x".repeat(4000),
        ..state()
    };
    let tx = store.transaction().unwrap();
    let err = (0..100)
        .map(|i| {
            tx.insert_order(
                &key(&i.to_string()),
                &[key(&i.to_string()).alias()],
                &big,
                1,
            )
        })
        .find_map(Result::err)
        .expect("the file cannot grow");
    assert_eq!(err.kind(), StoreErrorKind::DiskFull);
    drop(tx);
    assert!(store.probe(1).is_ok(), "a tiny commit still fits");
    store
        .conn
        .pragma_update(None, "max_page_count", 1_000_000)
        .unwrap();
    assert!(insert(&mut store, &key("after"), 1));
}

#[test]
fn reclaim_returns_the_space_of_pruned_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let tx = store.transaction().unwrap();
    for i in 0..20_000 {
        let k = key(&format!("order-with-a-long-id-{i:08}"));
        tx.insert_order(&k, &[k.alias()], &state(), 1).unwrap();
        tx.forget_order(&k, 1).unwrap();
    }
    tx.commit().unwrap();
    let full = store.page_stats().unwrap();
    let tx = store.transaction().unwrap();
    assert_eq!(tx.prune_forgotten(2).unwrap(), 20_000);
    tx.commit().unwrap();
    assert!(store.page_stats().unwrap().free_pages > full.pages / 2);
    assert!(store.reclaim().unwrap() > 0);
    let after = store.page_stats().unwrap();
    assert!(after.pages < full.pages / 2, "{after:?} vs {full:?}");
    assert_eq!(store.reclaim().unwrap(), 0, "nothing more to hand back");
}

#[cfg(unix)]
#[test]
fn store_directory_and_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("store");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut store = Store::open(&dir).unwrap();
    let tx = store.transaction().unwrap();
    tx.commit().unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}
