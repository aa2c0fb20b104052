//! Every example reply in docs/vendor-api.md §3 and the seed vendor page parse into the models,
//! field by field, plus the variants the docs say a client must tolerate (§4).

use chrono::{DateTime, FixedOffset, TimeZone};
use itniotech_exporter::api::model::{
    one_or_many, parse_time, parse_time_str, AppInfo, BalanceReply, Channel, Envelope, Flow,
    Matched, OrderRecord, SendResult, StepTrigger, Template, VerifyResult,
};
use itniotech_exporter::api::VendorCode;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;

fn dec(s: &str) -> Option<Decimal> {
    Some(Decimal::from_str(s).unwrap())
}

/// A time with a +08:00 offset.
fn cst(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Option<DateTime<FixedOffset>> {
    Some(
        FixedOffset::east_opt(8 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, mo, d, h, mi, s)
            .unwrap(),
    )
}

fn env<T: serde::de::DeserializeOwned>(text: &str) -> Envelope<T> {
    serde_json::from_str(text).expect("example parses")
}

#[test]
fn app_details_3_1() {
    let e: Envelope<AppInfo> = env(
        r#"{"status":"0","reason":"success","data":{"appId":"Qw7rT2kZ","name":"login_otp","codeExpiry":10,
 "createTime":"2024-05-14T09:12:33+08:00",
 "periodTotalSendLimit":{"enabled":true,"unit":2,"period":1,"limit":5000},
 "periodPhoneSendLimit":{"enabled":true,"unit":3,"period":10,"limit":3}}}"#,
    );
    assert_eq!(e.status, "0");
    assert_eq!(e.reason.as_deref(), Some("success"));
    let app = e.data.unwrap();
    assert_eq!(app.app_id.as_deref(), Some("Qw7rT2kZ"));
    assert_eq!(app.name.as_deref(), Some("login_otp"));
    assert_eq!(app.code_expiry, Some(10));
    assert_eq!(app.create_time, cst(2024, 5, 14, 9, 12, 33));
    let total = app.period_total_send_limit.unwrap();
    assert!(total.enabled);
    assert_eq!(
        (total.unit, total.period, total.limit),
        (Some(2), Some(1), Some(5000))
    );
    let phone = app.period_phone_send_limit.unwrap();
    assert!(phone.enabled);
    assert_eq!(
        (phone.unit, phone.period, phone.limit),
        (Some(3), Some(10), Some(3))
    );

    // Disabled limits with nulls, and a limit beyond int32.
    let e: Envelope<AppInfo> = env(
        r#"{"status":"0","data":{"periodTotalSendLimit":{"enabled":false,"unit":null,"period":null,"limit":null},
        "periodPhoneSendLimit":{"enabled":true,"unit":1,"period":90,"limit":10000000000}}}"#,
    );
    let app = e.data.unwrap();
    let total = app.period_total_send_limit.unwrap();
    assert!(!total.enabled);
    assert_eq!((total.unit, total.period, total.limit), (None, None, None));
    assert_eq!(
        app.period_phone_send_limit.unwrap().limit,
        Some(10_000_000_000)
    );
}

#[test]
fn template_list_3_2_as_array_and_as_single_object() {
    let e: Envelope<Value> = env(
        r###"{"status":"0","reason":"success","data":[{"templateId":812,"appId":"Qw7rT2kZ",
 "name":"login_sms","text":"Your code is ##code##, valid 10 minutes","codeType":1,
 "codeLength":6,"speechRate":50,"language":"EN","maxDuration":59,"repeatCnt":2,
 "senderId":"ACME"}]}"###,
    );
    let list: Vec<Template> = one_or_many(e.data.clone().unwrap());
    assert_eq!(list.len(), 1);
    let t = &list[0];
    assert_eq!(t.template_id, Some(812));
    assert_eq!(t.app_id.as_deref(), Some("Qw7rT2kZ"));
    assert_eq!(t.name.as_deref(), Some("login_sms"));
    assert_eq!(
        t.text.as_deref(),
        Some("Your code is ##code##, valid 10 minutes")
    );
    assert_eq!(t.code_type, Some(1));
    assert_eq!(t.code_length, Some(6));
    assert_eq!(t.speech_rate, Some(50));
    assert_eq!(t.language.as_deref(), Some("EN"));
    assert_eq!(t.max_duration, Some(59));
    assert_eq!(t.repeat_cnt, Some(2));
    assert_eq!(t.sender_id.as_deref(), Some("ACME"));

    let single = e.data.unwrap()[0].clone();
    let list: Vec<Template> = one_or_many(single);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].template_id, Some(812));
}

#[test]
fn send_reply_3_3_and_its_error_reply() {
    let e: Envelope<SendResult> = env(
        r#"{"status":"0","reason":"success","data":{"verificationId":"24051409123310000417",
 "to":"6281234567890","channel":"sms","snaUrl":null}}"#,
    );
    let r = e.data.unwrap();
    assert_eq!(r.verification_id, "24051409123310000417");
    assert_eq!(r.to.as_deref(), Some("6281234567890"));
    assert_eq!(r.channel, Some(Channel::Sms));
    assert_eq!(r.sna_url, None);

    let e: Envelope<SendResult> = env(r#"{"status":"-28","reason":"Period phone send limit"}"#);
    assert_eq!(e.status, "-28");
    assert_eq!(
        VendorCode::from_status(&e.status),
        VendorCode::PeriodPhoneSendLimit
    );
    assert_eq!(e.reason.as_deref(), Some("Period phone send limit"));
    assert!(e.data.is_none());
    // `data: null` on errors is the same.
    let e: Envelope<SendResult> = env(r#"{"status":"-27","reason":"x","data":null}"#);
    assert!(e.data.is_none());
    assert_eq!(
        VendorCode::from_status(&e.status),
        VendorCode::PeriodTotalSendLimit
    );
}

#[test]
fn verify_reply_3_4() {
    let e: Envelope<VerifyResult> = env(
        r#"{"status":"0","reason":"success","data":{"verificationId":"24051409123310000417",
 "to":"6281234567890","channel":"sms","matched":0}}"#,
    );
    let r = e.data.unwrap();
    assert_eq!(r.verification_id.as_deref(), Some("24051409123310000417"));
    assert_eq!(r.channel, Some(Channel::Sms));
    assert_eq!(r.matched, Some(Matched::Verified));
    let e: Envelope<VerifyResult> = env(r#"{"status":"0","data":{"matched":"2"}}"#);
    assert_eq!(e.data.unwrap().matched, Some(Matched::Failed));
}

#[test]
fn record_by_verification_id_3_5_objects_not_arrays() {
    let e: Envelope<OrderRecord> = env(
        r#"{"status":"0","reason":"success","data":{"verificationId":"24051409123310000417",
 "verifications":{"matched":0,"verifiedDate":"2024-05-14T09:14:02+08:00",
  "oriReceiver":"6281234567890","channel":"sms","orderId":"ord-88231"},
 "sms":{"submitTm":"2024-05-14T09:12:33+08:00","sendTm":"2024-05-14T09:12:34+08:00",
  "doneTm":"2024-05-14T09:12:39+08:00","mcc":510,"mnc":10,"sender":"ACME",
  "chargeCnt":1,"pay":"0.0310","status":0,"reason":"DELIVRD"}}}"#,
    );
    let r = e.data.unwrap();
    assert_eq!(r.verification_id.as_deref(), Some("24051409123310000417"));
    assert_eq!(r.order_id, None);
    assert_eq!(r.flow_id, None);
    let v = &r.verifications;
    assert_eq!(v.matched, Matched::Verified);
    assert_eq!(v.verified_date, cst(2024, 5, 14, 9, 14, 2));
    assert_eq!(v.ori_receiver.as_deref(), Some("6281234567890"));
    assert_eq!(v.channel, Some(Channel::Sms));
    assert_eq!(v.order_id.as_deref(), Some("ord-88231"));
    assert_eq!(r.sms.len(), 1);
    let s = &r.sms[0];
    assert_eq!(s.submit_tm, cst(2024, 5, 14, 9, 12, 33));
    assert_eq!(s.send_tm, cst(2024, 5, 14, 9, 12, 34));
    assert_eq!(s.done_tm, cst(2024, 5, 14, 9, 12, 39));
    assert_eq!((s.mcc, s.mnc), (Some(510), Some(10)));
    assert_eq!(s.sender.as_deref(), Some("ACME"));
    assert_eq!(s.charge_cnt, Some(1));
    assert_eq!(s.pay, dec("0.0310"));
    assert_eq!(s.pay.unwrap().to_string(), "0.0310");
    assert_eq!(s.status, Some(0));
    assert_eq!(s.reason.as_deref(), Some("DELIVRD"));
    assert!(s.is_terminal() && s.is_delivered());
    assert!(r.call.is_empty());
    assert!(r.sna.is_empty());
}

#[test]
fn record_by_order_id_3_6_arrays() {
    let e: Envelope<OrderRecord> = env(
        r#"{"status":"0","reason":"success","data":{"orderId":"ord-88232","flowId":7,
 "verifications":{"matched":-1,"verifiedDate":null,"oriReceiver":"919876543210","channel":"call"},
 "sms":[{"submitTm":"2024-05-14T10:00:01+08:00","sendTm":"2024-05-14T10:00:02+08:00",
   "doneTm":"2024-05-14T10:00:40+08:00","mcc":404,"mnc":45,"sender":"ACME","chargeCnt":1,
   "pay":"0.0045","status":1,"reason":"UNDELIV"}],
 "call":[{"terminationCode":0,"terminationReason":"success",
   "submitTime":"2024-05-14T10:00:32+08:00","callTime":"2024-05-14T10:00:33+08:00",
   "ringingTime":"2024-05-14T10:00:36+08:00","answerTime":"2024-05-14T10:00:41+08:00",
   "hangupTime":"2024-05-14T10:01:02+08:00","callDuration":21,"chargedDuration":60,
   "displayNum":null,"billPeriodstring":"60+60","code":"India(Airtel)","rate":"0.0120",
   "cost":"0.0120"}]}}"#,
    );
    let r = e.data.unwrap();
    assert_eq!(r.order_id.as_deref(), Some("ord-88232"));
    assert_eq!(r.flow_id, Some(7));
    assert_eq!(r.verification_id, None);
    assert_eq!(r.verifications.matched, Matched::NotChecked);
    assert_eq!(r.verifications.verified_date, None);
    assert_eq!(
        r.verifications.ori_receiver.as_deref(),
        Some("919876543210")
    );
    assert_eq!(r.verifications.channel, Some(Channel::Call));
    assert_eq!(r.verifications.order_id, None);

    let s = &r.sms[0];
    assert_eq!(r.sms.len(), 1);
    assert_eq!(s.submit_tm, cst(2024, 5, 14, 10, 0, 1));
    assert_eq!(s.send_tm, cst(2024, 5, 14, 10, 0, 2));
    assert_eq!(s.done_tm, cst(2024, 5, 14, 10, 0, 40));
    assert_eq!((s.mcc, s.mnc), (Some(404), Some(45)));
    assert_eq!(s.pay, dec("0.0045"));
    assert_eq!(s.status, Some(1));
    assert_eq!(s.reason.as_deref(), Some("UNDELIV"));
    assert!(s.is_terminal() && !s.is_delivered());

    assert_eq!(r.call.len(), 1);
    let c = &r.call[0];
    assert_eq!(c.termination_code, Some(0));
    assert_eq!(c.termination_reason.as_deref(), Some("success"));
    assert_eq!(c.submit_time, cst(2024, 5, 14, 10, 0, 32));
    assert_eq!(c.call_time, cst(2024, 5, 14, 10, 0, 33));
    assert_eq!(c.ringing_time, cst(2024, 5, 14, 10, 0, 36));
    assert_eq!(c.answer_time, cst(2024, 5, 14, 10, 0, 41));
    assert_eq!(c.hangup_time, cst(2024, 5, 14, 10, 1, 2));
    assert_eq!(c.call_duration, Some(21));
    assert_eq!(c.charged_duration, Some(60));
    assert_eq!(c.display_num, None);
    assert_eq!(c.bill_period.as_deref(), Some("60+60"));
    assert_eq!(c.code.as_deref(), Some("India(Airtel)"));
    assert_eq!(c.rate, dec("0.0120"));
    assert_eq!(c.cost, dec("0.0120"));
    assert!(c.is_terminal() && c.is_delivered());
}

#[test]
fn seed_page_response_example() {
    // The RESPONSEEXAMPLE of the vendor's "verification/orderId/record" page, verbatim.
    let e: Envelope<OrderRecord> = env(include_str!("fixtures/seed_order_record_example.json"));
    assert_eq!(e.status, "0");
    assert_eq!(e.reason.as_deref(), Some("success"));
    let r = e.data.unwrap();
    assert_eq!(r.order_id.as_deref(), Some("1234566"));
    assert_eq!(r.flow_id, Some(1));
    assert_eq!(r.verifications.matched, Matched::Verified);
    assert_eq!(r.verifications.verified_date, cst(2022, 7, 12, 13, 39, 47));
    assert_eq!(r.verifications.ori_receiver.as_deref(), Some("91856321412"));
    assert_eq!(r.verifications.channel, Some(Channel::Call));
    assert_eq!(r.verifications.order_id.as_deref(), Some("1234566"));

    assert_eq!(r.sms.len(), 1);
    let s = &r.sms[0];
    assert_eq!(s.submit_tm, cst(2022, 7, 12, 13, 39, 45));
    assert_eq!(s.send_tm, cst(2022, 7, 12, 13, 39, 45));
    assert_eq!(s.done_tm, cst(2022, 7, 12, 13, 39, 49));
    assert_eq!((s.mcc, s.mnc), (Some(460), Some(10)));
    assert_eq!(s.sender.as_deref(), Some(""));
    assert_eq!(s.charge_cnt, Some(1));
    assert_eq!(s.pay, dec("0.000002"));
    assert_eq!(s.status, Some(0));
    assert_eq!(s.reason.as_deref(), Some("successR"));

    assert_eq!(r.call.len(), 1);
    let c = &r.call[0];
    assert_eq!(c.termination_code, Some(100005));
    assert_eq!(
        c.termination_reason.as_deref(),
        Some("Temporarily Unavailable")
    );
    assert_eq!(c.submit_time, cst(2022, 7, 12, 13, 59, 55));
    assert_eq!(c.call_time, cst(2022, 7, 12, 13, 59, 56));
    assert_eq!(c.ringing_time, cst(2022, 7, 12, 13, 59, 56));
    assert_eq!(c.answer_time, cst(2022, 7, 12, 13, 59, 56));
    assert_eq!(c.hangup_time, cst(2022, 7, 12, 13, 59, 56));
    assert_eq!((c.call_duration, c.charged_duration), (Some(0), Some(0)));
    assert_eq!(c.display_num, None);
    assert_eq!(c.bill_period.as_deref(), Some("20+20"));
    assert_eq!(c.code.as_deref(), Some("661"));
    assert_eq!(c.rate, dec("0.138"));
    assert_eq!(c.cost, dec("0"), "costEur maps to cost");
    assert!(c.is_terminal() && !c.is_delivered());
}

#[test]
fn flow_list_3_7() {
    let e: Envelope<Vec<Flow>> = env(
        r#"{"status":"0","reason":"success","data":[{"flowId":7,"name":"sms_then_voice",
 "flow":[{"waitingTime":60,"status":2,"channel":"sms","channelCut":0},
         {"waitingTime":90,"status":1,"channel":"call","channelCut":1}]}]}"#,
    );
    let flows = e.data.unwrap();
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert_eq!(f.flow_id, 7);
    assert_eq!(f.name.as_deref(), Some("sms_then_voice"));
    assert_eq!(f.flow.len(), 2);
    assert_eq!(f.flow[0].waiting_time, Some(60));
    assert_eq!(f.flow[0].trigger, StepTrigger::Unverified);
    assert_eq!(f.flow[0].channel, Some(Channel::Sms));
    assert_eq!(f.flow[0].channel_cut, Some(0));
    assert_eq!(f.flow[1].waiting_time, Some(90));
    assert_eq!(f.flow[1].trigger, StepTrigger::SendFailure);
    assert_eq!(f.flow[1].channel, Some(Channel::Call));
    assert_eq!(f.flow[1].channel_cut, Some(1));

    // flow/details: one object; flowId as a string.
    let e: Envelope<Flow> = env(r#"{"status":"0","data":{"flowId":"7","name":"x","flow":[]}}"#);
    assert_eq!(e.data.unwrap().flow_id, 7);
}

#[test]
fn status_only_replies_3_8_and_3_9() {
    let e: Envelope<Value> = env(r#"{"status":"0","reason":"success"}"#);
    assert_eq!(VendorCode::from_status(&e.status), VendorCode::Success);
    assert!(e.data.is_none());
    let e: Envelope<Value> =
        env(r#"{"status":"-14","reason":"Field is empty or query ID is abnormal"}"#);
    assert_eq!(
        VendorCode::from_status(&e.status),
        VendorCode::EmptyFieldOrBadQueryId
    );
    assert_eq!(
        e.reason.as_deref(),
        Some("Field is empty or query ID is abnormal")
    );
}

#[test]
fn balance_3_10_top_level_fields() {
    let b: BalanceReply = serde_json::from_str(
        r#"{"status":"0","reason":"success","balance":"152.3841","gift":"5.0000","credit":"0.0000"}"#,
    )
    .unwrap();
    assert_eq!(b.status, "0");
    assert_eq!(b.reason.as_deref(), Some("success"));
    assert_eq!(b.balance, dec("152.3841"));
    assert_eq!(b.gift, dec("5.0000"));
    assert_eq!(b.credit, dec("0.0000"));
    let b: BalanceReply =
        serde_json::from_str(r#"{"status":"-13","reason":"User locked"}"#).unwrap();
    assert_eq!(VendorCode::from_status(&b.status), VendorCode::UserLocked);
    assert_eq!((b.balance, b.gift, b.credit), (None, None, None));
}

#[test]
fn tolerated_variants_section_4() {
    // Top-level status as an int, mcc/mnc as strings, sms status as a string, unknown keys,
    // both cost spellings, the billPeriod spelling, an sna array, nulls, an empty call object.
    let e: Envelope<OrderRecord> = env(
        r#"{"status":0,"reason":null,"extra":{"a":1},"data":{"orderId":12345,"flowId":null,
        "postVerify":"?","verifications":{"matched":"3","verifiedDate":"","channel":null},
        "sms":[{"mcc":"460","mnc":"01","status":"1","pay":"1E-6","chargeCnt":"2","unknown":[1]},
               null, "junk", {}],
        "call":[{"cost":"0.5","costEur":"0.4","billPeriod":"20+20","billPeriodstring":"60+60",
                 "terminationCode":"0","hangupTime":null,"answerTime":null}],
        "sna":[{"x":1}]}}"#,
    );
    assert_eq!(e.status, "0");
    assert_eq!(e.reason, None);
    let r = e.data.unwrap();
    assert_eq!(r.order_id.as_deref(), Some("12345"));
    assert_eq!(r.flow_id, None);
    assert_eq!(r.verifications.matched, Matched::Unknown);
    assert_eq!(r.verifications.verified_date, None);
    assert_eq!(
        r.sms.len(),
        1,
        "null, junk and empty entries are not attempts"
    );
    let s = &r.sms[0];
    assert_eq!((s.mcc, s.mnc), (Some(460), Some(1)));
    assert_eq!(s.status, Some(1));
    assert_eq!(s.pay, dec("0.000001"));
    assert_eq!(s.charge_cnt, Some(2));
    assert_eq!(r.call.len(), 1, "both cost keys must not drop the attempt");
    let c = &r.call[0];
    assert_eq!(c.cost, dec("0.5"));
    assert_eq!(c.bill_period.as_deref(), Some("20+20"));
    assert_eq!(c.termination_code, Some(0));
    assert!(!c.is_terminal(), "no hangup yet");
    assert_eq!(r.sna.len(), 1);

    // A record whose call channel was never used: an empty object is no attempt.
    let e: Envelope<OrderRecord> = env(r#"{"status":"0","data":{"sms":{"status":0},"call":{}}}"#);
    let r = e.data.unwrap();
    assert_eq!(r.sms.len(), 1);
    assert!(r.call.is_empty());

    // Unparseable nested verifications fall back to the default instead of failing.
    let e: Envelope<OrderRecord> = env(r#"{"status":"0","data":{"verifications":"oops"}}"#);
    assert_eq!(e.data.unwrap().verifications.matched, Matched::NotChecked);
}

#[test]
fn timestamp_forms() {
    let expect = cst(2024, 5, 14, 9, 12, 33).unwrap();
    // ISO-8601 with offset, in other offsets and without the colon.
    assert_eq!(parse_time_str("2024-05-14T09:12:33+08:00"), Some(expect));
    assert_eq!(parse_time_str("2024-05-14T01:12:33Z"), Some(expect));
    assert_eq!(parse_time_str("2024-05-14T09:12:33+0800"), Some(expect));
    // yyyy-MM-dd HH:mm:ss: the vendor's zone, UTC+8.
    let naive = parse_time_str("2024-05-14 09:12:33").unwrap();
    assert_eq!(naive, expect);
    assert_eq!(naive.offset().local_minus_utc(), 8 * 3600);
    // Epoch millis as number and as string, epoch seconds.
    let millis = expect.timestamp_millis();
    assert_eq!(parse_time(&json!(millis)), Some(expect));
    assert_eq!(parse_time(&json!(millis.to_string())), Some(expect));
    assert_eq!(parse_time(&json!(expect.timestamp())), Some(expect));
    assert_eq!(
        parse_time(&json!(1_715_649_153_250_i64))
            .unwrap()
            .timestamp_millis(),
        1_715_649_153_250
    );
    // Empty, blank, null, garbage.
    assert_eq!(parse_time(&json!("")), None);
    assert_eq!(parse_time(&json!("   ")), None);
    assert_eq!(parse_time(&Value::Null), None);
    assert_eq!(parse_time(&json!("yesterday")), None);
    assert_eq!(parse_time(&json!({"t":1})), None);
    // Inside a record.
    let e: Envelope<OrderRecord> = env(
        r#"{"status":"0","data":{"sms":{"submitTm":"2024-05-14 09:12:33","sendTm":1715649153000,
        "doneTm":"","status":-1}}}"#,
    );
    let s = &e.data.unwrap().sms[0];
    assert_eq!(s.submit_tm, Some(expect));
    assert_eq!(s.send_tm, Some(expect));
    assert_eq!(s.done_tm, None);
    assert!(!s.is_terminal());
}
