use super::*;
use crate::api::model::{Envelope, FlowNode, StepTrigger};
use crate::ledger::{Ledger, LedgerFamily, SeriesValue};

fn order(app: &str, flow: &str, country: &str, outcome: OrderOutcome) -> Update {
    Update::Order(OrderLabels {
        app_id: app.into(),
        flow_id: flow.into(),
        country: country.into(),
        outcome,
    })
}

fn verification(app: &str, country: &str, result: VerificationResult) -> Update {
    Update::Verification(VerificationLabels {
        app_id: app.into(),
        flow_id: "none".into(),
        country: country.into(),
        channel: Channel::Sms,
        result,
    })
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn record(json: serde_json::Value) -> OrderRecord {
    let env: Envelope<OrderRecord> =
        serde_json::from_value(serde_json::json!({"status":"0","reason":"ok","data":json}))
            .unwrap();
    env.data.unwrap()
}

fn catalog() -> FlowCatalog {
    let node = |w, st, ch: &str| FlowNode {
        waiting_time: Some(w),
        trigger: StepTrigger::from_code(Some(st)),
        channel: Channel::parse(ch),
        channel_cut: Some(0),
    };
    let mut c = FlowCatalog::new();
    c.insert(
        2,
        Flow {
            flow_id: 2,
            name: Some("sms_then_voice".into()),
            flow: vec![node(60, 1, "sms"), node(90, 1, "call")],
        },
    );
    c
}

fn counter(l: &Ledger, f: LedgerFamily, labels: &[&str]) -> f64 {
    match l.get(&(f, labels.iter().map(|s| s.to_string()).collect())) {
        Some(SeriesValue::Counter(v)) => *v,
        Some(SeriesValue::Histogram { count, .. }) => *count as f64,
        None => -1.0,
    }
}

fn sms(status: i64, done: Option<&str>) -> serde_json::Value {
    serde_json::json!({"submitTm":"2024-05-14T10:00:00+08:00","sendTm":"2024-05-14T10:00:01+08:00",
        "doneTm": done, "mcc":510,"mnc":10,"chargeCnt":1,"pay":"0.0310","status":status,
        "reason": if status == 1 {"UNDELIV"} else {"DELIVRD"}})
}

const T0: &str = "2024-05-14T02:00:00Z"; // = 10:00:00+08:00

#[test]
fn delivered_and_verified_sms_counts_everything_once() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(serde_json::json!({"flowId":null,
        "verifications":{"matched":0,"verifiedDate":"2024-05-14T10:00:20+08:00","oriReceiver":"6281234567890","channel":"sms"},
        "sms":[sms(0, Some("2024-05-14T10:00:04+08:00"))]}));
    let now = t("2024-05-14T02:00:30Z");
    let out = on_record(&st, &rec, &FlowCatalog::new(), now, &cfg);
    assert_eq!(out.next, Next::Forget);
    let mut ledger = Ledger::new();
    ledger.apply(&out.updates);
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Sms,
            &["app1", "ID", "10", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(&ledger, LedgerFamily::Sms, &["app1", "ID", "10", "failed"]),
        0.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Orders,
            &["app1", "none", "ID", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Verifications,
            &["app1", "none", "ID", "sms", "verified"]
        ),
        1.0
    );
    assert_eq!(
        counter(&ledger, LedgerFamily::Cost, &["app1", "sms", "ID", "USD"]),
        0.031
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::SmsDeliverySeconds,
            &["app1", "ID", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::OrderDeliverySeconds,
            &["app1", "none"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::OrderVerificationSeconds,
            &["app1", "none", "sms"]
        ),
        1.0
    );
    // Polling the same record again counts nothing.
    let again = on_record(&out.state, &rec, &FlowCatalog::new(), now, &cfg);
    assert!(again.updates.is_empty(), "{:?}", again.updates);
}

#[test]
fn failed_sms_then_call_fallback_rescues_the_order() {
    let cfg = Settings::default();
    let flows = catalog();
    let st = OrderState::new("app1", Some(2), t(T0));
    // Poll 1: SMS failed, no call yet: fallback step due at submit + 60 s + grace.
    let rec1 = record(serde_json::json!({"flowId":2,
        "verifications":{"matched":-1,"oriReceiver":"6281234567890","channel":"sms"},
        "sms":[sms(1, Some("2024-05-14T10:00:09+08:00"))], "call": []}));
    let out1 = on_record(&st, &rec1, &flows, t("2024-05-14T02:00:10Z"), &cfg);
    assert_eq!(out1.next, Next::PollAt(t("2024-05-14T02:01:05Z")));
    assert!(!out1.state.finalised);
    // Poll 2: the call was placed and answered; the user verified.
    let rec2 = record(serde_json::json!({"flowId":2,
        "verifications":{"matched":0,"verifiedDate":"2024-05-14T10:01:30+08:00","oriReceiver":"6281234567890","channel":"call"},
        "sms":[sms(1, Some("2024-05-14T10:00:09+08:00"))],
        "call":[{"terminationCode":0,"terminationReason":"success","submitTime":"2024-05-14T10:01:00+08:00",
            "answerTime":"2024-05-14T10:01:12+08:00","hangupTime":"2024-05-14T10:01:40+08:00",
            "callDuration":28,"chargedDuration":60,"billPeriodstring":"60+60","cost":"0.0120"}]}));
    let out2 = on_record(&out1.state, &rec2, &flows, t("2024-05-14T02:01:45Z"), &cfg);
    assert_eq!(out2.next, Next::Forget);
    let mut ledger = Ledger::new();
    ledger.apply(&out1.updates);
    ledger.apply(&out2.updates);
    assert_eq!(
        counter(&ledger, LedgerFamily::Sms, &["app1", "ID", "10", "failed"]),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::SmsFailures,
            &["app1", "ID", "undeliv"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Fallbacks,
            &["app1", "2", "sms", "call"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::FallbackRescues,
            &["app1", "2", "call"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Calls,
            &["app1", "ID", "0", "success"]
        ),
        1.0
    );
    assert_eq!(
        counter(&ledger, LedgerFamily::CallBilledSeconds, &["app1", "ID"]),
        60.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Orders,
            &["app1", "2", "ID", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Verifications,
            &["app1", "2", "ID", "call", "verified"]
        ),
        1.0
    );
}

#[test]
fn verified_before_the_delivery_report_keeps_polling_the_attempt() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let rec1 = record(serde_json::json!({
        "verifications":{"matched":0,"verifiedDate":"2024-05-14T10:00:08+08:00","oriReceiver":"6281234567890"},
        "sms":[sms(-1, None)]}));
    let out1 = on_record(
        &st,
        &rec1,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:10Z"),
        &cfg,
    );
    assert!(out1.state.finalised);
    assert!(matches!(out1.next, Next::PollAt(_)));
    let mut ledger = Ledger::new();
    ledger.apply(&out1.updates);
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Orders,
            &["app1", "none", "ID", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Sms,
            &["app1", "ID", "10", "delivered"]
        ),
        -1.0
    );
    let rec2 = record(serde_json::json!({
        "verifications":{"matched":0,"verifiedDate":"2024-05-14T10:00:08+08:00","oriReceiver":"6281234567890"},
        "sms":[sms(0, Some("2024-05-14T10:00:30+08:00"))]}));
    let out2 = on_record(
        &out1.state,
        &rec2,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:40Z"),
        &cfg,
    );
    assert_eq!(out2.next, Next::Forget);
    ledger.apply(&out2.updates);
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Sms,
            &["app1", "ID", "10", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Orders,
            &["app1", "none", "ID", "delivered"]
        ),
        1.0
    );
}

#[test]
fn unverified_delivered_order_finalises_when_the_window_closes() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(serde_json::json!({
        "verifications":{"matched":-1,"oriReceiver":"919876543210"},
        "sms":[sms(0, Some("2024-05-14T10:00:04+08:00"))]}));
    let out1 = on_record(
        &st,
        &rec,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:10Z"),
        &cfg,
    );
    assert!(!out1.state.finalised);
    let mut ledger = Ledger::new();
    ledger.apply(&out1.updates);
    // Re-polled at growing intervals for an early verification, then at the window's end.
    let (mut state, mut next) = (out1.state, out1.next);
    let mut times = Vec::new();
    while let Next::PollAt(at) = next {
        times.push(at);
        assert!(times.len() < 10, "too many polls: {times:?}");
        let out = on_record(&state, &rec, &FlowCatalog::new(), at, &cfg);
        ledger.apply(&out.updates);
        state = out.state;
        next = out.next;
    }
    assert_eq!(
        times,
        vec![
            t("2024-05-14T02:00:25Z"),
            t("2024-05-14T02:00:50Z"),
            t("2024-05-14T02:01:40Z"),
            t("2024-05-14T02:03:20Z"),
            t("2024-05-14T02:05:05Z"),
        ]
    );
    // SMS country from MCC (510 = ID), order country from the receiver (+91 = IN).
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Sms,
            &["app1", "ID", "10", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Orders,
            &["app1", "none", "IN", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Verifications,
            &["app1", "none", "IN", "sms", "not_verified"]
        ),
        1.0
    );
}

#[test]
fn not_found_is_retried_then_counted_once() {
    let cfg = Settings::default();
    let mut st = OrderState::new("app1", Some(3), t(T0));
    let mut now = t(T0);
    for i in 0..cfg.not_found_retries {
        let out = on_not_found(&st, now, &cfg);
        assert!(out.updates.is_empty(), "retry {i}");
        match out.next {
            Next::PollAt(at) => now = at,
            Next::Forget => panic!("forgot too early"),
        }
        st = out.state;
    }
    let out = on_not_found(&st, now, &cfg);
    assert_eq!(out.next, Next::Forget);
    assert_eq!(
        out.updates,
        vec![order("app1", "3", "unknown", OrderOutcome::NotFound)]
    );
}

#[test]
fn max_age_finalises_unresolved() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(serde_json::json!({"verifications":{"matched":-1},"sms":[sms(-1, None)]}));
    let out = on_record(&st, &rec, &FlowCatalog::new(), t(T0) + cfg.max_age, &cfg);
    assert_eq!(out.next, Next::Forget);
    assert!(out
        .updates
        .contains(&order("app1", "none", "ID", OrderOutcome::Unresolved)));
    let err = on_error(&st, t(T0) + cfg.max_age, &cfg);
    assert!(err
        .updates
        .contains(&order("app1", "none", "unknown", OrderOutcome::Unresolved)));
}

#[test]
fn in_progress_attempts_are_polled_soon_and_then_less_often() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(serde_json::json!({"verifications":{"matched":-1},"sms":[sms(-1, None)]}));
    let young = on_record(
        &st,
        &rec,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:02Z"),
        &cfg,
    );
    assert_eq!(young.next, Next::PollAt(t("2024-05-14T02:00:07Z")));
    let old = on_record(
        &st,
        &rec,
        &FlowCatalog::new(),
        t("2024-05-14T02:02:00Z"),
        &cfg,
    );
    assert_eq!(old.next, Next::PollAt(t("2024-05-14T02:02:15Z")));
}

#[test]
fn a_wrong_code_is_not_final_while_the_user_can_still_retype() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let wrong = record(serde_json::json!({
        "verifications":{"matched":2,"verifiedDate":"2024-05-14T10:00:20+08:00","oriReceiver":"6281234567890"},
        "sms":[sms(0, Some("2024-05-14T10:00:04+08:00"))]}));
    let out1 = on_record(
        &st,
        &wrong,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:25Z"),
        &cfg,
    );
    assert!(!out1.state.finalised);
    let right = record(serde_json::json!({
        "verifications":{"matched":0,"verifiedDate":"2024-05-14T10:00:40+08:00","oriReceiver":"6281234567890"},
        "sms":[sms(0, Some("2024-05-14T10:00:04+08:00"))]}));
    let out2 = on_record(
        &out1.state,
        &right,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:50Z"),
        &cfg,
    );
    assert_eq!(out2.next, Next::Forget);
    assert!(out2
        .updates
        .contains(&verification("app1", "ID", VerificationResult::Verified)));
    // Still wrong when the window closes: final, result failed.
    let out3 = on_record(
        &out1.state,
        &wrong,
        &FlowCatalog::new(),
        t("2024-05-14T02:05:05Z"),
        &cfg,
    );
    assert!(out3
        .updates
        .contains(&verification("app1", "ID", VerificationResult::Failed)));
}

#[test]
fn records_without_attempts_are_not_polled_forever() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    // Verified with no sms/call (e.g. an sna order): final at once, then forgotten.
    let verified =
        record(serde_json::json!({"verifications":{"matched":0,"channel":"sna"},"sna":[{}]}));
    let out = on_record(
        &st,
        &verified,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:30Z"),
        &cfg,
    );
    assert_eq!(out.next, Next::Forget);
    // Unknown verificationId: settled as unresolved, forgotten.
    let unknown = record(serde_json::json!({"verifications":{"matched":3}}));
    let out = on_record(
        &st,
        &unknown,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:30Z"),
        &cfg,
    );
    assert_eq!(out.next, Next::Forget);
    assert!(out
        .updates
        .contains(&order("app1", "none", "unknown", OrderOutcome::Unresolved)));
    // Nothing yet and not verified: wait, but only until the window closes.
    let empty = record(serde_json::json!({"verifications":{"matched":-1}}));
    let out = on_record(
        &st,
        &empty,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:30Z"),
        &cfg,
    );
    assert!(matches!(out.next, Next::PollAt(_)));
    let late = on_record(
        &out.state,
        &empty,
        &FlowCatalog::new(),
        t("2024-05-14T02:06:00Z"),
        &cfg,
    );
    assert!(matches!(late.next, Next::PollAt(at) if at >= t("2024-05-14T02:07:00Z")));
}

#[test]
fn a_replaced_single_sms_object_is_a_new_attempt_and_a_fallback() {
    // The verificationId record shows only the current attempt.
    let cfg = Settings::default();
    let st = OrderState::new("unknown", None, t(T0));
    let first = record(
        serde_json::json!({"verifications":{"matched":-1,"oriReceiver":"6281234567890"},
        "sms": sms(1, Some("2024-05-14T10:00:09+08:00"))}),
    );
    let out1 = on_record(
        &st,
        &first,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:20Z"),
        &cfg,
    );
    let second = record(
        serde_json::json!({"verifications":{"matched":-1,"oriReceiver":"6281234567890"},
        "sms": {"submitTm":"2024-05-14T10:00:40+08:00","doneTm":"2024-05-14T10:00:45+08:00","mcc":510,"mnc":10,"status":0,"pay":"0.0310"}}),
    );
    let out2 = on_record(
        &out1.state,
        &second,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:50Z"),
        &cfg,
    );
    let mut ledger = Ledger::new();
    ledger.apply(&out1.updates);
    ledger.apply(&out2.updates);
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Sms,
            &["unknown", "ID", "10", "failed"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Sms,
            &["unknown", "ID", "10", "delivered"]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Fallbacks,
            &["unknown", "none", "sms", "sms"]
        ),
        1.0
    );
}

#[test]
fn hostile_times_and_settings_do_not_panic() {
    let cfg = Settings {
        first_delay: Duration::seconds(30),
        interval: Duration::seconds(5),
        ..Settings::default()
    };
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(serde_json::json!({"verifications":{"matched":-1},
        "sms":[{"submitTm":"8210266876700000","status":-1},{"submitTm":"-8210266876700000","status":-1}]}));
    let out = on_record(
        &st,
        &rec,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:30Z"),
        &cfg,
    );
    assert!(matches!(out.next, Next::PollAt(_)));
}

#[test]
fn not_found_after_a_record_was_seen_is_an_error_not_a_lost_order() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(serde_json::json!({"verifications":{"matched":-1},"sms":[sms(-1, None)]}));
    let seen = on_record(
        &st,
        &rec,
        &FlowCatalog::new(),
        t("2024-05-14T02:00:05Z"),
        &cfg,
    )
    .state;
    let mut state = seen;
    for _ in 0..10 {
        let out = on_not_found(&state, t("2024-05-14T02:01:00Z"), &cfg);
        assert!(out.updates.is_empty());
        assert!(matches!(out.next, Next::PollAt(_)));
        state = out.state;
    }
    // Errors back off: the 10th consecutive error waits the 10-minute maximum.
    let out = on_error(&state, t("2024-05-14T02:01:00Z"), &cfg);
    assert_eq!(out.next, Next::PollAt(t("2024-05-14T02:11:00Z")));
}
