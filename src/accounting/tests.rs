use super::*;
use crate::api::model::{Envelope, FlowNode, StepTrigger};
use crate::ledger::{Ledger, LedgerFamily, Sample};

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

/// The schedule of `--poll.freshness-target 0`, whose poll times these tests pin (the
/// freshness scheduler's are pinned in freshness.rs).
fn fixed_intervals() -> Settings {
    Settings {
        freshness_target: None,
        ..Settings::default()
    }
}

fn counter(l: &Ledger, f: LedgerFamily, labels: &[&str]) -> f64 {
    match l
        .get(&(f, labels.iter().map(|s| s.to_string()).collect()))
        .map(|v| &v.sample)
    {
        Some(Sample::Counter(v)) => *v,
        Some(Sample::Histogram { count, .. }) => *count as f64,
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
    let cfg = fixed_intervals();
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
    let cfg = fixed_intervals();
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
fn max_age_finalises_unresolved_and_follows_a_running_attempt_to_its_end() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    // Max age (from intake) is reached while the SMS still runs: the order counts as
    // unresolved now, and the attempt is still polled until it ends (here: soon).
    let running = record(serde_json::json!({"verifications":{"matched":-1},"sms":[sms(-1, None)]}));
    let at_max = t(T0) + cfg.max_age;
    let out = on_record(&st, &running, &FlowCatalog::new(), at_max, &cfg);
    assert!(out
        .updates
        .contains(&order("app1", "none", "ID", OrderOutcome::Unresolved)));
    assert!(out.state.finalised);
    let Next::PollAt(next) = out.next else {
        panic!("a running attempt is still polled")
    };
    // A genuinely old straggler (its submit time is plausible): checked every 5 minutes.
    assert_eq!(next, at_max + Duration::minutes(5));
    let done = record(serde_json::json!({"verifications":{"matched":-1},
        "sms":[sms(0, Some("2024-05-14T12:00:10+08:00"))]}));
    let out2 = on_record(&out.state, &done, &FlowCatalog::new(), next, &cfg);
    assert_eq!(out2.next, Next::Forget);
    let mut ledger = Ledger::new();
    ledger.apply(&out2.updates);
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::Sms,
            &["app1", "ID", "10", "delivered"]
        ),
        1.0,
        "the late delivery is counted, not lost"
    );
    assert!(
        !out2.updates.iter().any(|u| matches!(u, Update::Order(_))),
        "the order itself counts once"
    );
    // Never seen running: an error at max age gives up.
    let err = on_error(&st, at_max, &cfg);
    assert_eq!(err.next, Next::Forget);
    assert!(err
        .updates
        .contains(&order("app1", "none", "unknown", OrderOutcome::Unresolved)));
    // Seen running: errors keep it polled until max age after our first sight of it.
    let err = on_error(&out.state, at_max, &cfg);
    assert!(matches!(err.next, Next::PollAt(_)));
    let err = on_error(&out.state, at_max + cfg.max_age, &cfg);
    assert_eq!(err.next, Next::Forget);
}

#[test]
fn a_vendor_clock_hours_off_does_not_slow_polling_or_lose_the_delivery() {
    // Exact poll times of the fixed-interval schedule; the freshness schedule is checked below.
    let cfg = fixed_intervals();
    let st = OrderState::new("app1", None, t(T0));
    // The vendor's times are 3 hours behind ours (a time zone misread): by its submitTm the SMS
    // looks 3 hours old. Scheduling uses our first sight instead, once reported.
    let old = |status: i64, done: Option<&str>| {
        serde_json::json!({"submitTm":"2024-05-14T07:00:00+08:00","sendTm":"2024-05-14T07:00:01+08:00",
            "doneTm": done, "mcc":510,"mnc":10,"chargeCnt":1,"pay":"0.0310","status":status,
            "reason":"DELIVRD"})
    };
    let rec = record(serde_json::json!({"verifications":{"matched":-1},"sms":[old(-1, None)]}));
    let now = t("2024-05-14T02:00:05Z");
    let out = on_record(&st, &rec, &FlowCatalog::new(), now, &cfg);
    assert_eq!(
        out.anomalies,
        vec![Anomaly::VendorTime(VendorTimeAnomaly::SubmitBeforeIntake)]
    );
    assert_eq!(out.next, Next::PollAt(now + cfg.first_delay), "polled soon");
    assert!(!out.state.finalised);
    // The default freshness schedule also polls it within its target, not minutes later.
    let fresh = Settings::default();
    let target = fresh.freshness_target.expect("on by default");
    match on_record(&st, &rec, &FlowCatalog::new(), now, &fresh).next {
        Next::PollAt(at) => assert!(at <= now + target * 2, "{at} vs {now}"),
        Next::Forget => panic!("a running attempt is forgotten"),
    }
    let again = on_record(
        &out.state,
        &rec,
        &FlowCatalog::new(),
        now + cfg.first_delay,
        &cfg,
    );
    assert!(again.anomalies.is_empty(), "reported once per attempt");
    let done = record(serde_json::json!({"verifications":{"matched":-1},
        "sms":[old(0, Some("2024-05-14T07:00:09+08:00"))]}));
    let out = on_record(
        &again.state,
        &done,
        &FlowCatalog::new(),
        now + Duration::seconds(15),
        &cfg,
    );
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
    // The verify window counts from our first sight, so the order waits for the user.
    assert!(!out.state.finalised);
    // The latency is a difference of vendor times, unaffected by their offset.
    assert_eq!(
        counter(
            &ledger,
            LedgerFamily::SmsDeliverySeconds,
            &["app1", "ID", "delivered"]
        ),
        1.0
    );
}

#[test]
fn a_submit_time_in_the_future_is_reported_and_not_trusted() {
    let cfg = fixed_intervals();
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(serde_json::json!({"verifications":{"matched":-1},"sms":[
        {"submitTm":"2024-05-14T11:00:00+08:00","mcc":510,"mnc":10,"status":-1}]}));
    let now = t("2024-05-14T02:00:05Z");
    let out = on_record(&st, &rec, &FlowCatalog::new(), now, &cfg);
    assert_eq!(
        out.anomalies,
        vec![Anomaly::VendorTime(VendorTimeAnomaly::SubmitInFuture)]
    );
    assert_eq!(out.next, Next::PollAt(now + cfg.first_delay));
}

#[test]
fn an_order_submitted_hours_before_intake_is_not_expired_at_once() {
    let cfg = Settings::default();
    let received = t(T0);
    let st = OrderState::received_at_time("app1", None, received - Duration::hours(3), received);
    let rec = record(serde_json::json!({"verifications":{"matched":-1},
        "sms":[{"submitTm":"2024-05-14T07:00:00+08:00","sendTm":"2024-05-14T07:00:01+08:00",
            "doneTm":"2024-05-14T07:00:09+08:00","mcc":510,"mnc":10,"chargeCnt":1,"pay":"0.0310",
            "status":0,"reason":"DELIVRD"}]}));
    let out = on_record(
        &st,
        &rec,
        &FlowCatalog::new(),
        received + Duration::seconds(5),
        &cfg,
    );
    assert!(
        out.anomalies.is_empty(),
        "the client's submit time vouches for the vendor's"
    );
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
    // Delivered 3 hours ago, window long closed: final as delivered, not unresolved.
    assert!(out
        .updates
        .contains(&order("app1", "none", "ID", OrderOutcome::Delivered)));
}

#[test]
fn implausible_vendor_numbers_are_left_out_and_reported() {
    let cfg = Settings::default();
    let st = OrderState::new("app1", None, t(T0));
    let rec = record(
        serde_json::json!({"verifications":{"matched":-1,"oriReceiver":"6281234567890"},
        "sms":[{"submitTm":"2024-05-14T10:00:00+08:00","doneTm":"2024-05-14T09:59:00+08:00",
            "mcc":510,"mnc":10,"chargeCnt":1000000000,"pay":"-1.5","status":0}],
        "call":[{"terminationCode":123456789012i64,"terminationReason":"weird",
            "submitTime":"2024-05-14T10:00:30+08:00","hangupTime":"2024-05-14T10:01:00+08:00",
            "callDuration":99999,"chargedDuration":-60,"cost":"1000000.0000"}]}),
    );
    let out = on_record(
        &st,
        &rec,
        &FlowCatalog::new(),
        t("2024-05-14T02:01:05Z"),
        &cfg,
    );
    let mut fields: Vec<&str> = out
        .anomalies
        .iter()
        .map(|a| match a {
            Anomaly::Record(f) => f.as_str(),
            Anomaly::VendorTime(k) => k.as_str(),
        })
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "call_billed_seconds",
            "call_cost",
            "call_duration",
            "end_before_submit",
            "sms_cost",
            "sms_segments",
            "termination_code"
        ]
    );
    let mut ledger = Ledger::new();
    ledger.apply(&out.updates);
    // The attempts themselves count; their absurd numbers do not.
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
            LedgerFamily::Calls,
            &["app1", "ID", "other", "weird"]
        ),
        1.0
    );
    for f in [
        LedgerFamily::SmsSegments,
        LedgerFamily::Cost,
        LedgerFamily::CallBilledSeconds,
        LedgerFamily::CallDurationSeconds,
    ] {
        assert_eq!(ledger.family(f).count(), 0, "{f:?}");
    }
}

#[test]
fn the_record_names_the_orders_other_key() {
    let by_vid = OrderKey::Verification {
        verification_id: "2405".into(),
    };
    let rec = record(serde_json::json!({"verificationId":"2405",
        "verifications":{"matched":-1,"orderId":"ord-1"}}));
    assert_eq!(
        record_alias(&by_vid, &rec),
        Some(OrderAlias::OrderId("ord-1".into()))
    );
    let by_order = OrderKey::Order {
        app_id: "app1".into(),
        order_id: "ord-1".into(),
    };
    assert_eq!(
        record_alias(&by_order, &rec),
        Some(OrderAlias::VerificationId("2405".into()))
    );
    let plain = record(serde_json::json!({"orderId":"ord-1","verifications":{"matched":-1}}));
    assert_eq!(record_alias(&by_order, &plain), None);
}

#[test]
fn in_progress_attempts_are_polled_soon_and_then_less_often() {
    let cfg = fixed_intervals();
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
