use super::*;
use crate::accounting::{Next, OrderState};
use crate::clock::{Clock, ManualClock};
use crate::domain::OrderAlias;
use crate::ledger::{Ledger, OrderLabels, OrderOutcome, Update};
use std::sync::Arc;

fn order(i: usize) -> NewOrder {
    NewOrder::new(OrderKey::Order {
        app_id: "app1".into(),
        order_id: format!("o{i}"),
    })
}

/// When a new order is first due (the schedule's first poll).
fn first_delay() -> std::time::Duration {
    TrackerConfig::default()
        .first_delay
        .to_std()
        .expect("a positive delay")
}

fn start(clock: &ManualClock) -> Tracker {
    Tracker::start(
        Store::in_memory().unwrap(),
        Ledger::new().shared(),
        TrackerConfig::default(),
        Arc::new(clock.clone()),
    )
}

fn clock() -> ManualClock {
    ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap())
}

fn delivered() -> Update {
    Update::Order(OrderLabels {
        app_id: "app1".into(),
        flow_id: "none".into(),
        country: "ID".into(),
        outcome: OrderOutcome::Delivered,
    })
}

fn outcome(state: OrderState, updates: Vec<Update>, next: Next) -> Outcome {
    Outcome {
        state,
        updates,
        next,
        freshness: Vec::new(),
        anomalies: Vec::new(),
        alias: None,
    }
}

#[tokio::test]
async fn enqueue_dedupes_and_due_follows_first_delay() {
    let clock = clock();
    let tracker = start(&clock);
    let r = tracker
        .enqueue(vec![order(1), order(2), order(1)])
        .await
        .unwrap();
    assert_eq!((r.accepted, r.duplicates), (2, 1));
    assert!(tracker.due(clock.now(), 10).await.unwrap().is_empty());
    let due = tracker
        .due(clock.now() + TrackerConfig::default().first_delay, 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2);
    let done = outcome(due[0].state.clone(), vec![delivered()], Next::Forget);
    tracker.apply(due[0].key.clone(), done).await.unwrap();
    let stats = tracker.stats().await.unwrap();
    assert_eq!(stats.pending, 1);
    let r = tracker
        .enqueue(vec![NewOrder::new(due[0].key.clone())])
        .await
        .unwrap();
    assert_eq!(
        r.duplicates, 1,
        "a finished order resubmitted is still a duplicate"
    );
}

#[tokio::test]
async fn an_order_posted_under_both_key_forms_is_tracked_once() {
    let clock = clock();
    let tracker = start(&clock);
    let by_order = NewOrder {
        alias: Some(OrderAlias::VerificationId("2405".into())),
        ..order(1)
    };
    let by_vid = NewOrder::new(OrderKey::Verification {
        verification_id: "2405".into(),
    });
    // The same orderId under another appId is the same vendor order (orderIds are unique in
    // the account).
    let other_app = NewOrder::new(OrderKey::Order {
        app_id: "app2".into(),
        order_id: "o1".into(),
    });
    let r = tracker
        .enqueue(vec![by_order, by_vid, other_app])
        .await
        .unwrap();
    assert_eq!((r.accepted, r.duplicates), (1, 2));
    assert_eq!(tracker.stats().await.unwrap().pending, 1);
}

#[tokio::test]
async fn two_pending_orders_linked_by_a_record_are_merged_and_counted_once() {
    let clock = clock();
    let tracker = start(&clock);
    let vid = OrderKey::Verification {
        verification_id: "2405".into(),
    };
    let r = tracker
        .enqueue(vec![order(1), NewOrder::new(vid.clone())])
        .await
        .unwrap();
    assert_eq!(r.accepted, 2, "nothing links them yet");
    clock.advance(first_delay());
    let due = tracker.due(clock.now(), 10).await.unwrap();
    let by_order = due.iter().find(|o| o.key != vid).unwrap().clone();
    let by_vid = due.iter().find(|o| o.key == vid).unwrap().clone();
    // The orderId form counted an attempt first.
    let mut state = by_order.state.clone();
    state.counted.insert("sms@1".into());
    let applied = tracker
        .apply(
            by_order.key.clone(),
            outcome(
                state,
                vec![],
                Next::PollAt(clock.now() + Duration::seconds(30)),
            ),
        )
        .await
        .unwrap();
    assert!(!applied.merged);
    // The verificationId record names the orderId: the two are one order. This poll's
    // increments are dropped; the orderId form goes on, polled at once.
    let mut linked = outcome(
        by_vid.state.clone(),
        vec![delivered()],
        Next::PollAt(clock.now() + Duration::seconds(30)),
    );
    linked.alias = Some(OrderAlias::OrderId("o1".into()));
    let applied = tracker.apply(vid.clone(), linked).await.unwrap();
    assert!(applied.merged);
    let stats = tracker.stats().await.unwrap();
    assert_eq!(stats.pending, 1);
    let due = tracker.due(clock.now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, by_order.key);
    assert!(due[0].state.counted.contains("sms@1"));
    // Posting the verificationId again is a duplicate.
    let r = tracker.enqueue(vec![NewOrder::new(vid)]).await.unwrap();
    assert_eq!(r.duplicates, 1);
}

#[tokio::test]
async fn a_record_naming_a_finished_order_drops_the_duplicate() {
    let clock = clock();
    let tracker = start(&clock);
    let vid = OrderKey::Verification {
        verification_id: "77".into(),
    };
    tracker.enqueue(vec![order(9)]).await.unwrap();
    clock.advance(first_delay());
    let due = tracker.due(clock.now(), 10).await.unwrap();
    let done = outcome(due[0].state.clone(), vec![delivered()], Next::Forget);
    tracker.apply(due[0].key.clone(), done).await.unwrap();
    // Later the same order arrives under its verificationId only; its record names orderId o9.
    assert_eq!(
        tracker
            .enqueue(vec![NewOrder::new(vid.clone())])
            .await
            .unwrap()
            .accepted,
        1
    );
    clock.advance(first_delay());
    let due = tracker.due(clock.now(), 10).await.unwrap();
    let mut linked = outcome(due[0].state.clone(), vec![delivered()], Next::Forget);
    linked.alias = Some(OrderAlias::OrderId("o9".into()));
    assert!(tracker.apply(vid, linked).await.unwrap().merged);
    assert_eq!(tracker.stats().await.unwrap().pending, 0);
}

#[tokio::test]
async fn submitted_at_is_clamped_to_intake_and_expiry_counts_from_intake() {
    let clock = clock();
    let tracker = start(&clock);
    let now = clock.now();
    let old = NewOrder {
        submitted_at: Some(now - Duration::hours(3)),
        ..order(1)
    };
    let future = NewOrder {
        submitted_at: Some(now + Duration::hours(3)),
        ..order(2)
    };
    tracker.enqueue(vec![old, future]).await.unwrap();
    let due = tracker.due(now, 10).await.unwrap();
    assert_eq!(
        due.len(),
        1,
        "an old submit time makes the first poll due at once"
    );
    assert_eq!(
        due[0].state.created_at,
        (now - Duration::hours(3)).timestamp()
    );
    assert_eq!(due[0].state.received_at(), now.timestamp());
    let later = tracker
        .due(now + TrackerConfig::default().first_delay, 10)
        .await
        .unwrap();
    let future = later.iter().find(|o| o.key == order(2).key).unwrap();
    assert_eq!(
        future.state.created_at,
        now.timestamp(),
        "clamped to intake"
    );
}

#[tokio::test]
async fn a_replay_older_than_the_duplicate_horizon_is_refused_naming_the_item() {
    let clock = clock();
    let tracker = start(&clock);
    let horizon = TrackerConfig::default().dedupe_window;
    let items = vec![
        order(1),
        NewOrder {
            submitted_at: Some(clock.now() - horizon - Duration::seconds(1)),
            ..order(2)
        },
    ];
    let err = OrderSink::check(&tracker, &items).unwrap_err();
    assert_eq!(err.index(), Some(1));
    assert_eq!(err.field(), Some("submittedAt"));
    assert!(OrderSink::check(&tracker, &items[..1]).is_ok());
}

#[tokio::test]
async fn the_writers_death_is_reported() {
    let clock = clock();
    let tracker = start(&clock);
    tracker.crash_for_test().await;
    let reason = tokio::time::timeout(std::time::Duration::from_secs(10), tracker.stopped())
        .await
        .expect("the writer's exit is reported");
    assert!(reason.contains("panicked"), "{reason}");
    assert!(matches!(tracker.stats().await, Err(TrackerError::Stopped)));
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

#[tokio::test]
async fn a_captured_order_keeps_its_alias_and_poll_soon_finds_it_by_either_name() {
    use crate::proxy::{CaptureSink, CapturedOrder};
    let clock = clock();
    let ledger = Ledger::new().shared();
    let tracker = Tracker::start(
        Store::in_memory().unwrap(),
        ledger.clone(),
        TrackerConfig::default(),
        Arc::new(clock.clone()),
    );
    let by_order = order(7);
    let by_vid = OrderKey::Verification {
        verification_id: "vid-7".into(),
    };
    let captured = CapturedOrder {
        order: by_order.clone(),
        alias: Some(by_vid.clone()),
    };
    let r = tracker
        .capture_send(vec![captured], vec![delivered()])
        .await
        .unwrap();
    assert_eq!(r.accepted, 1);
    // The send's counts commit with the order.
    let mut expected = Ledger::new();
    expected.apply(&[delivered()]);
    assert_eq!(ledger.read().unwrap().len(), expected.len());
    // The other name is a duplicate from the start, not a second order.
    let r = tracker
        .enqueue(vec![NewOrder::new(by_vid.clone())])
        .await
        .unwrap();
    assert_eq!((r.accepted, r.duplicates), (0, 1));
    // Not due before the first delay; a verify naming only the verificationId makes it due.
    assert!(tracker.due(clock.now(), 10).await.unwrap().is_empty());
    CaptureSink::poll_soon(&tracker, by_vid).await.unwrap();
    let due = tracker.due(clock.now(), 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key, by_order.key);
    // And by its own name; an unknown name changes nothing.
    clock.advance(std::time::Duration::from_secs(1));
    tracker
        .apply(
            by_order.key.clone(),
            outcome(
                due[0].state.clone(),
                vec![],
                Next::PollAt(clock.now() + Duration::hours(1)),
            ),
        )
        .await
        .unwrap();
    assert!(tracker.due(clock.now(), 10).await.unwrap().is_empty());
    CaptureSink::poll_soon(
        &tracker,
        OrderKey::Verification {
            verification_id: "unknown".into(),
        },
    )
    .await
    .unwrap();
    assert!(tracker.due(clock.now(), 10).await.unwrap().is_empty());
    CaptureSink::poll_soon(&tracker, by_order.key.clone())
        .await
        .unwrap();
    assert_eq!(tracker.due(clock.now(), 10).await.unwrap().len(), 1);
}
