//! Our signed API client against the real simulator, end to end over HTTP.
//!
//! The simulator is served on an ephemeral `127.0.0.1` port. Client and simulator share one
//! `ManualClock`, so simulated time only moves when a test advances it (no sleeping): orders
//! walk their task flows, and clock skew is produced with an `OffsetClock` on the client or the
//! simulator's `clock_offset_secs` chaos knob.

mod common;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use common::{Recorder, TestApi};
use itniotech_exporter::api::model::{Channel, Flow, FlowNode, Matched, OrderRecord, StepTrigger};
use itniotech_exporter::api::{
    ApiError, Client, ClientConfig, Credentials, Endpoint, RetryPolicy, SendRequest, VendorCode,
};
use itniotech_exporter::clock::{ManualClock, OffsetClock, SharedClock};
use itniotech_exporter::simulator::{
    preset_flows, Chaos, SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

const APP_ID: &str = "appDemo1";
/// An Indonesian mobile number (calling code 62, 11-digit national number).
const TO_ID: &str = "6281234567890";
const MAX_ATTEMPTS: u32 = 4;

/// 2024-05-14T00:53:20Z = 2024-05-14 08:53:20 at the vendor's +08:00.
fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_715_648_000, 0).unwrap()
}

struct Harness {
    base: String,
    clock: ManualClock,
    sim: Simulator,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A simulator with virtual users off (nobody verifies unless the test does), on 127.0.0.1:0.
async fn start(chaos: Chaos) -> Harness {
    start_seeded(7, chaos).await
}

async fn start_seeded(seed: u64, chaos: Chaos) -> Harness {
    let clock = ManualClock::new(t0());
    let cfg = SimConfig {
        seed,
        virtual_users: false,
        chaos,
        ..SimConfig::default()
    };
    let sim = Simulator::new(cfg, Arc::new(clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let server = tokio::spawn(sim.clone().serve(listener));
    Harness {
        base: format!("http://{addr}"),
        clock,
        sim,
        server,
    }
}

impl Harness {
    fn config(&self) -> ClientConfig {
        ClientConfig {
            base_url: self.base.clone(),
            timeout: Duration::from_secs(10),
            max_rps: None,
            retry: RetryPolicy {
                max_attempts: MAX_ATTEMPTS,
                backoff_min: Duration::from_millis(1),
                backoff_max: Duration::from_millis(5),
            },
        }
    }

    /// A client on the shared clock with the demo credentials.
    fn client(&self) -> (TestApi, Arc<Recorder>) {
        self.client_with(DEMO_API_SECRET, Arc::new(self.clock.clone()))
    }

    fn client_with(&self, secret: &str, clock: SharedClock) -> (TestApi, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        let client = Client::new(
            self.config(),
            Credentials::new(DEMO_API_KEY, secret),
            clock,
            rec.clone(),
        )
        .unwrap();
        (TestApi::new(client), rec)
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn send_rule_request(flow_id: i64, order_id: &str, code: &str) -> SendRequest {
    SendRequest {
        app_id: APP_ID.into(),
        flow_id: Some(flow_id),
        to: TO_ID.into(),
        order_id: Some(order_id.into()),
        code: Some(code.into()),
        ..Default::default()
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// The simulator's preset flows as the client's model should read them.
fn expected_flows() -> Vec<Flow> {
    preset_flows()
        .into_iter()
        .map(|f| Flow {
            flow_id: f.id,
            name: Some(f.name),
            flow: f
                .nodes
                .into_iter()
                .map(|n| FlowNode {
                    waiting_time: Some(i64::from(n.waiting_time)),
                    trigger: n.trigger,
                    channel: Some(n.channel.into()),
                    channel_cut: Some(i64::from(n.channel_cut)),
                })
                .collect(),
        })
        .collect()
}

#[tokio::test]
async fn every_endpoint_round_trips_against_the_simulator() {
    let h = start(Chaos::default()).await;
    let (client, rec) = h.client();

    // flow_list: the four presets with their nodes.
    let flows = client.flow_list().await.unwrap();
    assert_eq!(flows, expected_flows());
    let names: Vec<_> = flows.iter().map(|f| f.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "sms_only",
            "sms_then_voice",
            "sms_verify_then_voice",
            "sms_retry_then_voice"
        ]
    );
    assert_eq!(
        flows[1].flow,
        vec![
            FlowNode {
                waiting_time: Some(60),
                trigger: StepTrigger::SendFailure,
                channel: Some(Channel::Sms),
                channel_cut: Some(0),
            },
            FlowNode {
                waiting_time: Some(90),
                trigger: StepTrigger::SendFailure,
                channel: Some(Channel::Call),
                channel_cut: Some(0),
            },
        ]
    );

    // balance at start.
    let start = client.balance().await.unwrap();
    assert_eq!(start.balance, Some(Decimal::from(5000)));
    assert_eq!(start.gift, Some(Decimal::ZERO));
    assert_eq!(start.credit, Some(Decimal::ZERO));

    // send_rule with an orderId and a flowId.
    let sent = client
        .send_rule(&send_rule_request(1, "ord-rt-1", "482913"))
        .await
        .unwrap();
    let vid = sent.verification_id.clone();
    assert_eq!(vid.len(), 20, "{vid}");
    assert!(vid.bytes().all(|b| b.is_ascii_digit()), "{vid}");
    assert!(
        vid.starts_with("240514085320"),
        "yyMMddHHmmss at +08:00: {vid}"
    );
    assert_eq!(sent.to.as_deref(), Some(TO_ID));
    assert_eq!(sent.channel, Some(Channel::Sms));

    // record_by_order_id: arrays, normalised.
    let by_order = client
        .record_by_order_id(APP_ID, "ord-rt-1")
        .await
        .unwrap()
        .expect("record exists");
    assert_eq!(by_order.order_id.as_deref(), Some("ord-rt-1"));
    assert_eq!(by_order.flow_id, Some(1));
    assert_eq!(by_order.verifications.matched, Matched::NotChecked);
    assert_eq!(by_order.verifications.ori_receiver.as_deref(), Some(TO_ID));
    assert_eq!(by_order.verifications.channel, Some(Channel::Sms));
    assert_eq!(by_order.verifications.order_id.as_deref(), Some("ord-rt-1"));
    assert_eq!(by_order.sms.len(), 1);
    assert!(by_order.call.is_empty() && by_order.sna.is_empty());
    let sms = &by_order.sms[0];
    assert_eq!(sms.status, Some(-1), "still sending at submit time");
    assert_eq!(sms.mcc, Some(510));
    assert_eq!(sms.sender.as_deref(), Some("VERIFY"));
    let charge_cnt = sms.charge_cnt.expect("chargeCnt");
    assert!(matches!(charge_cnt, 1 | 2));
    let pay = sms.pay.expect("pay");
    assert_eq!(pay, dec("0.0310") * Decimal::from(charge_cnt));
    assert_eq!(sms.submit_tm.unwrap().timestamp(), t0().timestamp());
    assert_eq!(sms.submit_tm.unwrap().offset().local_minus_utc(), 8 * 3600);

    // An SMS is charged at submit.
    assert_eq!(
        client.balance().await.unwrap().balance,
        Some(Decimal::from(5000) - pay)
    );

    // record_by_verification_id: the sms object becomes a one-element list, same content.
    let by_vid = client
        .record_by_verification_id(&vid)
        .await
        .unwrap()
        .expect("record exists");
    assert_eq!(by_vid.verification_id.as_deref(), Some(vid.as_str()));
    assert_eq!(by_vid.sms, by_order.sms);
    assert!(by_vid.call.is_empty());
    assert_eq!(by_vid.verifications, by_order.verifications);

    // verify: a wrong code first, then the right one.
    let wrong = client.verify(&vid, "000000").await.unwrap();
    assert_eq!(wrong.matched, Some(Matched::Failed));
    assert_eq!(wrong.verification_id.as_deref(), Some(vid.as_str()));
    let right = client.verify(&vid, "482913").await.unwrap();
    assert_eq!(right.matched, Some(Matched::Verified));
    let after = client
        .record_by_verification_id(&vid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.verifications.matched, Matched::Verified);
    assert_eq!(
        after.verifications.verified_date.unwrap().timestamp(),
        t0().timestamp()
    );

    // Every attempt succeeded first time and was reported once.
    let calls = rec.calls();
    assert_eq!(
        calls.iter().map(|c| c.0).collect::<Vec<_>>(),
        [
            Endpoint::FlowList,
            Endpoint::Balance,
            Endpoint::SendRule,
            Endpoint::RecordByOrderId,
            Endpoint::Balance,
            Endpoint::RecordByVerificationId,
            Endpoint::Verify,
            Endpoint::Verify,
            Endpoint::RecordByVerificationId,
        ]
    );
    assert!(calls.iter().all(|c| c.1 == "0" && c.2), "{calls:?}");
    // Same clock on both sides: the Date header has whole seconds, read as mid-second.
    assert_eq!(rec.last_skew(), Some(-0.5));
}

#[tokio::test]
async fn wrong_secret_is_an_auth_failure_after_one_request() {
    let h = start(Chaos::default()).await;
    let (client, rec) = h.client_with("notTheSecret", Arc::new(h.clock.clone()));

    let err = client.record_by_order_id(APP_ID, "x").await.unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Vendor {
                code: VendorCode::AuthFailed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_auth_failure());
    assert_eq!(
        rec.calls(),
        [(Endpoint::RecordByOrderId, "-1".to_string(), false)]
    );
    // Not a vendor "not found": auth failures must never read as Ok(None).
    let err = client.balance().await.unwrap_err();
    assert!(err.is_auth_failure(), "{err:?}");
    assert_eq!(rec.calls().len(), 2);
}

/// The client's clock is 1000 s behind the simulator's (both ways of producing it): the first
/// call gets -16, the client learns the skew from the `Date` header and the immediate retry
/// succeeds; later calls are right first time.
#[tokio::test]
async fn clock_skew_is_corrected_after_one_timestamp_expired() {
    // (a) OffsetClock on the client; (b) the simulator's clock runs ahead.
    for via_chaos in [false, true] {
        let chaos = Chaos {
            clock_offset_secs: if via_chaos { 1000 } else { 0 },
            ..Chaos::default()
        };
        let h = start(chaos).await;
        let client_clock: SharedClock = if via_chaos {
            Arc::new(h.clock.clone())
        } else {
            Arc::new(OffsetClock {
                inner: Arc::new(h.clock.clone()),
                offset: ChronoDuration::seconds(-1000),
            })
        };
        let (client, rec) = h.client_with(DEMO_API_SECRET, client_clock);

        let flows = client.flow_list().await.unwrap();
        assert_eq!(flows.len(), 4, "via_chaos={via_chaos}");
        assert_eq!(
            rec.calls(),
            [
                (Endpoint::FlowList, "-16".to_string(), false),
                (Endpoint::FlowList, "0".to_string(), true),
            ],
            "via_chaos={via_chaos}"
        );
        // Local minus server: the client is behind, so negative. The Date header has whole
        // seconds, read as mid-second: exactly -1000.5 on a whole-second clock.
        let skew = rec.last_skew().unwrap();
        assert_eq!(skew, -1000.5, "via_chaos={via_chaos}");
        assert!((skew + 1000.0).abs() <= 1.0);
        assert_eq!(
            rec.skews.lock().unwrap().as_slice(),
            [-1000.5, -1000.5],
            "one measurement per reply"
        );

        // The correction sticks: the next calls need one request each, also as time passes.
        rec.clear();
        h.advance(120);
        assert_eq!(
            client.balance().await.unwrap().balance,
            Some(Decimal::from(5000))
        );
        assert!(client
            .record_by_order_id(APP_ID, "nope")
            .await
            .unwrap()
            .is_none());
        assert_eq!(rec.labels(), ["0", "-24"], "via_chaos={via_chaos}");
    }
}

#[tokio::test]
async fn transient_faults_are_retried_a_bounded_number_of_times() {
    let h = start(Chaos::default()).await;
    let (client, rec) = h.client();

    // HTTP 503 on every request: an idempotent record call gives up after max_attempts.
    h.sim.set_chaos(Chaos {
        http_503_rate: 1.0,
        ..Chaos::default()
    });
    let err = client.record_by_order_id(APP_ID, "o1").await.unwrap_err();
    assert_eq!(err, ApiError::HttpStatus(503));
    assert_eq!(rec.labels(), vec!["http_5xx"; MAX_ATTEMPTS as usize]);
    assert!(rec.calls().iter().all(|c| !c.2), "503 is not up");

    // A 503 surely was not processed, so even a send is resent.
    rec.clear();
    let err = client
        .send_rule(&send_rule_request(1, "o-503", "1234"))
        .await
        .unwrap_err();
    assert_eq!(err, ApiError::HttpStatus(503));
    assert_eq!(rec.labels(), vec!["http_5xx"; MAX_ATTEMPTS as usize]);

    // Vendor -18 on every request: same bound for a record call.
    rec.clear();
    h.sim.set_chaos(Chaos {
        vendor_error_rate: 1.0,
        ..Chaos::default()
    });
    let err = client
        .record_by_verification_id("12345678901234567890")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ApiError::Vendor {
                code: VendorCode::ServerError,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(rec.labels(), vec!["-18"; MAX_ATTEMPTS as usize]);
    assert!(rec.calls().iter().all(|c| !c.2), "-18 is not up");

    // -18 is ambiguous for a send (the OTP may have gone out): exactly one request.
    rec.clear();
    let err = client
        .send_rule(&send_rule_request(1, "o-18", "1234"))
        .await
        .unwrap_err();
    assert_eq!(err.status_label(), "-18");
    assert_eq!(rec.labels(), ["-18"]);

    // Chaos off again: the faults left nothing behind (no order was created, balance intact).
    rec.clear();
    h.sim.set_chaos(Chaos::default());
    assert!(client
        .record_by_order_id(APP_ID, "o-503")
        .await
        .unwrap()
        .is_none());
    assert!(client
        .record_by_order_id(APP_ID, "o-18")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        client.balance().await.unwrap().balance,
        Some(Decimal::from(5000))
    );
    assert_eq!(rec.labels(), ["-24", "-24", "0"]);
}

#[tokio::test]
async fn malformed_json_is_a_decode_error_not_a_panic() {
    let h = start(Chaos {
        malformed_rate: 1.0,
        ..Chaos::default()
    })
    .await;
    let (client, rec) = h.client();

    let err = client.record_by_order_id(APP_ID, "o1").await.unwrap_err();
    assert!(matches!(err, ApiError::Decode(_)), "{err:?}");
    assert!(!err.is_retryable());
    let err = client.flow_list().await.unwrap_err();
    assert!(matches!(err, ApiError::Decode(_)), "{err:?}");
    let err = client.balance().await.unwrap_err();
    assert!(matches!(err, ApiError::Decode(_)), "{err:?}");
    // Decode errors are not retried: one request each.
    assert_eq!(rec.labels(), ["decode", "decode", "decode"]);
    assert!(rec.calls().iter().all(|c| !c.2));
}

/// Sum of the `pay` of every SMS and the `cost` of every call a record shows.
fn charges(rec: &OrderRecord) -> Decimal {
    let pay: Decimal = rec.sms.iter().map(|s| s.pay.expect("sms pay")).sum();
    let cost: Decimal = rec.call.iter().map(|c| c.cost.expect("call cost")).sum();
    pay + cost
}

#[tokio::test]
async fn an_order_walks_its_flow_and_the_balance_falls_by_its_charges() {
    // Seed 1: this order's fallback call is answered, so its cost is not zero.
    let h = start_seeded(
        1,
        Chaos {
            outage_country: Some("ID".into()),
            ..Chaos::default()
        },
    )
    .await;
    let (client, rec) = h.client();
    let start = client.balance().await.unwrap().balance.unwrap();
    assert_eq!(start, Decimal::from(5000));

    client
        .send_rule(&send_rule_request(2, "ord-flow-2", "246810"))
        .await
        .unwrap();

    // The outage fails the SMS well within the 60 s wait; then the flow falls back to a call.
    h.advance(65);
    let r = client
        .record_by_order_id(APP_ID, "ord-flow-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.flow_id, Some(2));
    assert_eq!(r.sms.len(), 1);
    assert_eq!(r.sms[0].status, Some(1));
    assert_eq!(r.sms[0].reason.as_deref(), Some("UNDELIV"));
    assert!(r.sms[0].is_terminal() && !r.sms[0].is_delivered());
    assert_eq!(r.call.len(), 1, "{r:?}");
    let call = &r.call[0];
    assert_eq!(
        call.submit_time.unwrap().timestamp(),
        t0().timestamp() + 60,
        "the call starts when the SMS node's 60 s wait ends"
    );
    assert_eq!(call.rate, Some(dec("0.0850")));
    assert_eq!(r.verifications.channel, Some(Channel::Call));
    assert_eq!(
        client.balance().await.unwrap().balance,
        Some(start - charges(&r))
    );

    // Advance until the call is over; at every step the balance fell by exactly what the
    // record shows (an SMS is charged at submit, a call at hang-up).
    let mut r = r;
    let mut steps = 0;
    while !r.call[0].is_terminal() {
        steps += 1;
        assert!(steps <= 30, "call never ended: {r:?}");
        h.advance(5);
        r = client
            .record_by_order_id(APP_ID, "ord-flow-2")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            client.balance().await.unwrap().balance,
            Some(start - charges(&r))
        );
    }
    assert_eq!((r.sms.len(), r.call.len()), (1, 1), "flow 2 has two nodes");
    let call = &r.call[0];
    let pay = r.sms[0].pay.unwrap();
    let cost = call.cost.unwrap();
    let charged = call.charged_duration.unwrap();
    assert_eq!(
        cost,
        (dec("0.0850") * Decimal::from(charged) / Decimal::from(60)).round_dp(4)
    );
    assert_eq!(
        call.termination_code,
        Some(0),
        "answered under seed 1: {call:?}"
    );
    assert!(call.is_delivered());
    let duration = call.call_duration.unwrap();
    assert!((15..=45).contains(&duration), "{duration}");
    assert_eq!(
        charged, 60,
        "60+60 billing rounds {duration} s up to a minute"
    );
    assert_eq!(cost, dec("0.0850"));
    let end = client.balance().await.unwrap().balance.unwrap();
    assert_eq!(end, start - (pay + cost));
    assert_eq!(end, dec("5000") - pay - dec("0.0850"));
    assert!(end < start);
    assert_eq!(h.sim.balance(), end);

    // Nothing more happens to this order: later the balance has not moved.
    h.advance(600);
    assert_eq!(client.balance().await.unwrap().balance, Some(end));
    let last = client
        .record_by_order_id(APP_ID, "ord-flow-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((last.sms, last.call), (r.sms, r.call));
    assert!(rec.calls().iter().all(|c| c.1 == "0"));
}

#[tokio::test]
async fn unknown_ids_are_none() {
    let h = start(Chaos::default()).await;
    let (client, rec) = h.client();
    assert_eq!(
        client.record_by_order_id(APP_ID, "no-such-order").await,
        Ok(None)
    );
    assert_eq!(
        client
            .record_by_verification_id("99999999999999999999")
            .await,
        Ok(None)
    );
    // A known orderId under another appId is not visible either.
    client
        .send_rule(&send_rule_request(1, "ord-known", "1234"))
        .await
        .unwrap();
    assert_eq!(
        client.record_by_order_id("otherApp", "ord-known").await,
        Ok(None)
    );
    assert!(client
        .record_by_order_id(APP_ID, "ord-known")
        .await
        .unwrap()
        .is_some());
    // -24 is a business answer: the API is up, and it was asked once each time.
    assert_eq!(
        rec.calls(),
        [
            (Endpoint::RecordByOrderId, "-24".to_string(), true),
            (Endpoint::RecordByVerificationId, "-24".to_string(), true),
            (Endpoint::SendRule, "0".to_string(), true),
            (Endpoint::RecordByOrderId, "-24".to_string(), true),
            (Endpoint::RecordByOrderId, "0".to_string(), true),
        ]
    );
}
