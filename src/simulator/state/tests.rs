use super::*;
use crate::simulator::presets::{random_receiver, CountryPreset, COUNTRIES};
use chrono::Duration;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn state(seed: u64, scenario: Scenario, chaos: Chaos, virtual_users: bool) -> State {
    State::new(seed, scenario, chaos, Decimal::from(5000), virtual_users)
}

fn req(to: &str, flow_id: Option<i64>, order_id: &str) -> SimSendRequest {
    SimSendRequest {
        app_id: "app1".into(),
        to: to.into(),
        channel: SimChannel::Sms,
        flow_id,
        order_id: Some(order_id.into()),
        code: Some("123456".into()),
    }
}

fn country(iso2: &str) -> &'static CountryPreset {
    COUNTRIES.iter().find(|c| c.iso2 == iso2).unwrap()
}

/// Send `n` orders to `iso2` one second apart, run an hour, return the orderId records.
fn run(st: &mut State, iso2: &str, flow: Option<i64>, n: usize) -> Vec<Value> {
    let mut rng = ChaCha8Rng::seed_from_u64(77);
    for i in 0..n {
        let to = random_receiver(country(iso2), &mut rng);
        let now = t0() + Duration::seconds(i as i64);
        st.send(now, req(&to, flow, &format!("o{i}"))).unwrap();
    }
    let end = t0() + Duration::hours(1);
    (0..n)
        .map(|i| {
            st.record_by_order_id(end, "app1", &format!("o{i}"))
                .unwrap()
        })
        .collect()
}

fn sms_failure_ratio(records: &[Value]) -> f64 {
    let sms: Vec<&Value> = records
        .iter()
        .flat_map(|r| r["sms"].as_array().unwrap())
        .collect();
    sms.iter().filter(|s| s["status"] == 1).count() as f64 / sms.len() as f64
}

#[test]
fn same_seed_same_records_other_seed_differs() {
    let a = run(
        &mut state(5, Scenario::Normal, Chaos::default(), true),
        "IN",
        Some(3),
        40,
    );
    let b = run(
        &mut state(5, Scenario::Normal, Chaos::default(), true),
        "IN",
        Some(3),
        40,
    );
    let c = run(
        &mut state(6, Scenario::Normal, Chaos::default(), true),
        "IN",
        Some(3),
        40,
    );
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn record_shows_only_past_events() {
    let mut st = state(1, Scenario::Normal, Chaos::default(), true);
    st.send(t0(), req("6281234567890", None, "x")).unwrap();
    let r = st.record_by_order_id(t0(), "app1", "x").unwrap();
    let sms = &r["sms"][0];
    assert_eq!(sms["status"], -1);
    assert_eq!(sms["doneTm"], Value::Null);
    assert_eq!(r["verifications"]["matched"], -1);
    let r = st
        .record_by_order_id(t0() + Duration::hours(1), "app1", "x")
        .unwrap();
    assert_ne!(r["sms"][0]["status"], -1);
    assert!(r["sms"][0]["doneTm"].is_string());
}

#[test]
fn flow_walks_from_failed_sms_to_call() {
    let chaos = Chaos {
        outage_country: Some("ID".into()),
        ..Chaos::default()
    };
    let mut st = state(1, Scenario::Normal, chaos, true);
    st.send(t0(), req("6281234567890", Some(2), "x")).unwrap();
    let r = st
        .record_by_order_id(t0() + Duration::seconds(59), "app1", "x")
        .unwrap();
    assert_eq!(r["sms"][0]["status"], 1);
    assert_eq!(r["call"].as_array().unwrap().len(), 0, "still waiting");
    let r = st
        .record_by_order_id(t0() + Duration::seconds(60), "app1", "x")
        .unwrap();
    assert_eq!(r["call"].as_array().unwrap().len(), 1);
    assert_eq!(r["call"][0]["hangupTime"], Value::Null, "in progress");
    assert_eq!(r["verifications"]["channel"], "call");
}

#[test]
fn flow_four_retries_sms_then_calls_when_unverified() {
    let chaos = Chaos {
        outage_operator: Some((510, 10)),
        outage_country: Some("ID".into()),
        ..Chaos::default()
    };
    let mut st = state(1, Scenario::Normal, chaos, false);
    st.send(t0(), req("6281234567890", Some(4), "x")).unwrap();
    let r = st
        .record_by_order_id(t0() + Duration::seconds(30 + 45 + 1), "app1", "x")
        .unwrap();
    assert_eq!(r["sms"].as_array().unwrap().len(), 2);
    assert_eq!(r["call"].as_array().unwrap().len(), 1);
}

#[test]
fn delivered_sms_stops_a_send_failure_flow() {
    let mut st = state(3, Scenario::Normal, Chaos::default(), true);
    let recs = run(&mut st, "DE", Some(2), 50);
    for r in &recs {
        let sms = &r["sms"][0];
        let failed_early = sms["status"] == 1
            && (chrono::DateTime::parse_from_rfc3339(sms["doneTm"].as_str().unwrap()).unwrap()
                - chrono::DateTime::parse_from_rfc3339(sms["submitTm"].as_str().unwrap()).unwrap())
            .num_seconds()
                <= 60;
        assert_eq!(
            r["call"].as_array().unwrap().len(),
            usize::from(failed_early)
        );
    }
}

#[test]
fn virtual_users_verify_most_delivered_codes() {
    let mut st = state(4, Scenario::Normal, Chaos::default(), true);
    let recs = run(&mut st, "US", None, 300);
    let verified = recs
        .iter()
        .filter(|r| r["verifications"]["matched"] == 0)
        .count();
    assert!((220..=285).contains(&verified), "{verified}");
    for r in recs.iter().filter(|r| r["verifications"]["matched"] != -1) {
        assert!(r["verifications"]["verifiedDate"].is_string());
    }
}

#[test]
fn without_virtual_users_actions_are_handed_out_when_due() {
    let mut st = state(4, Scenario::Normal, Chaos::default(), false);
    let v = st.send(t0(), req("12015550123", None, "x")).unwrap();
    assert!(st.take_user_actions(t0()).is_empty());
    let mut actions = Vec::new();
    for s in 0..600 {
        actions.extend(st.take_user_actions(t0() + Duration::seconds(s)));
    }
    let r = st
        .record_by_order_id(t0() + Duration::hours(1), "app1", "x")
        .unwrap();
    assert_eq!(
        r["verifications"]["matched"], -1,
        "nothing applied by itself"
    );
    for a in &actions {
        assert_eq!(a.verification_id, v["verificationId"]);
    }
    if let Some(last) = actions.last() {
        assert_eq!(last.code, "123456");
        let m = st.verify(t0() + Duration::hours(1), &last.verification_id, &last.code);
        assert_eq!(m.unwrap()["matched"], 0);
    }
}

#[test]
fn carrier_outage_hits_telkomsel_only() {
    let mut normal = state(8, Scenario::Normal, Chaos::default(), true);
    let mut outage = state(8, Scenario::CarrierOutage, Chaos::default(), true);
    let n = sms_failure_ratio(&run(&mut normal, "ID", None, 400));
    let o = sms_failure_ratio(&run(&mut outage, "ID", None, 400));
    assert!(n < 0.12, "normal {n}");
    assert!(o > 0.4, "outage {o}");
    let mut outage = state(8, Scenario::CarrierOutage, Chaos::default(), true);
    let in_ratio = sms_failure_ratio(&run(&mut outage, "IN", None, 200));
    assert!(in_ratio < 0.15, "{in_ratio}");
}

#[test]
fn sms_pumping_numbers_deliver_but_do_not_verify() {
    let mut st = state(9, Scenario::SmsPumping, Chaos::default(), true);
    let recs = run(&mut st, "UZ", None, 200);
    assert!(sms_failure_ratio(&recs) < 0.15);
    let verified = recs
        .iter()
        .filter(|r| r["verifications"]["matched"] == 0)
        .count();
    assert!(verified < 15, "{verified}");
}

#[test]
fn balance_falls_by_every_charge_and_blocks_sends_at_zero() {
    let start = Decimal::new(10, 2);
    let mut st = State::new(2, Scenario::Normal, Chaos::default(), start, true);
    let pay = |st: &State, i: usize| match &st.orders[i].attempts[0].kind {
        AttemptKind::Sms(s) => s.pay,
        AttemptKind::Call(_) => unreachable!(),
    };
    st.send(t0(), req("6281234567890", None, "a")).unwrap();
    assert_eq!(st.balance_at(t0()), start - pay(&st, 0));
    let mut refused = None;
    for i in 1..10 {
        match st.send(
            t0(),
            req(&format!("628123456789{i}"), None, &format!("o{i}")),
        ) {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    assert_eq!(refused.unwrap().status, "-10");
    let spent: Decimal = (0..st.orders.len()).map(|i| pay(&st, i)).sum();
    assert_eq!(st.balance_at(t0()), start - spent);
    assert!(st.balance <= Decimal::ZERO);
}

#[test]
fn flows_add_update_and_reject_duplicates() {
    let mut st = state(1, Scenario::Normal, Chaos::default(), true);
    let nodes = vec![SimFlowNode {
        waiting_time: 30,
        trigger: StepTrigger::SendFailure,
        channel: SimChannel::Call,
        channel_cut: 0,
    }];
    let f = st.flow_add("voice_only".into(), nodes.clone()).unwrap();
    assert_eq!(f["flowId"], 5);
    assert_eq!(
        st.flow_add("sms_only".into(), nodes.clone())
            .unwrap_err()
            .status,
        "-20"
    );
    assert_eq!(
        st.flow_update(5, "sms_only".into(), nodes.clone())
            .unwrap_err()
            .status,
        "-20"
    );
    assert!(st
        .flow_update(5, "voice_first".into(), nodes.clone())
        .is_ok());
    assert_eq!(st.flow_details(5).unwrap()["name"], "voice_first");
    assert_eq!(st.flow_details(99).unwrap_err().status, "-24");
    assert_eq!(st.flow_list().unwrap().as_array().unwrap().len(), 5);
}
