//! The reply models never panic, whatever the vendor (or a broken proxy) sends.

use itniotech_exporter::api::model::{
    one_or_many, parse_time, BalanceReply, Envelope, Flow, OrderRecord, SendResult, VerifyResult,
};
use proptest::prelude::*;
use serde_json::{Map, Number, Value};

/// Real field names of every model, so random values land on the real deserializers.
const KEYS: &[&str] = &[
    "status",
    "reason",
    "data",
    "orderId",
    "verificationId",
    "flowId",
    "verifications",
    "matched",
    "verifiedDate",
    "oriReceiver",
    "channel",
    "sms",
    "call",
    "sna",
    "submitTm",
    "sendTm",
    "doneTm",
    "mcc",
    "mnc",
    "sender",
    "chargeCnt",
    "pay",
    "terminationCode",
    "terminationReason",
    "submitTime",
    "callTime",
    "ringingTime",
    "answerTime",
    "hangupTime",
    "callDuration",
    "chargedDuration",
    "displayNum",
    "billPeriod",
    "billPeriodstring",
    "code",
    "rate",
    "cost",
    "costEur",
    "flow",
    "waitingTime",
    "channelCut",
    "name",
    "balance",
    "gift",
    "credit",
    "snaUrl",
    "to",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u64>().prop_map(|n| Value::Number(n.into())),
        // Edge integers, which a uniform i64 almost never hits (i64::MIN once panicked here).
        proptest::sample::select(vec![i64::MIN, i64::MIN + 1, i64::MAX, -1, 0, 1, 100_000_000_000])
            .prop_map(|n| Value::Number(n.into())),
        any::<f64>().prop_map(|f| Number::from_f64(f).map(Value::Number).unwrap_or(Value::Null)),
        ".{0,24}".prop_map(Value::String),
        // Strings shaped like the vendor's numbers, decimals and times.
        "-?[0-9]{1,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{1,12})?".prop_map(Value::String),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,12})?([+-][0-9]{2}:?[0-9]{2}|Z)?"
            .prop_map(Value::String),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z]{0,8}",
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..10)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn parse_all(v: &Value) {
    let _ = serde_json::from_value::<Envelope<OrderRecord>>(v.clone());
    let _ = serde_json::from_value::<OrderRecord>(v.clone());
    let _ = serde_json::from_value::<Envelope<Vec<Flow>>>(v.clone());
    let _ = serde_json::from_value::<Envelope<SendResult>>(v.clone());
    let _ = serde_json::from_value::<Envelope<VerifyResult>>(v.clone());
    let _ = serde_json::from_value::<BalanceReply>(v.clone());
    let _ = one_or_many::<Flow>(v.clone());
    let _ = parse_time(v);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(v in json()) {
        parse_all(&v);
        // Also wrapped as a successful envelope, so the record deserializers see it as data.
        let wrapped = serde_json::json!({"status": "0", "data": v});
        parse_all(&wrapped);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = serde_json::from_slice::<Envelope<OrderRecord>>(&bytes);
        let _ = serde_json::from_slice::<BalanceReply>(&bytes);
        let _ = serde_json::from_slice::<Value>(&bytes);
    }

    #[test]
    fn json_like_text_never_panics(text in "[\\[\\]{}\",:0-9a-zA-Z .eE+-]{0,200}") {
        let _ = serde_json::from_str::<Envelope<OrderRecord>>(&text);
    }
}

#[test]
fn extreme_numbers_and_times_do_not_panic() {
    for s in [
        "1e-4294967296",
        "1e4294967296",
        "9e99999999999",
        "-0.0000000000000000000000000000001",
        "79228162514264337593543950336",
        "1.7976931348623157e308",
        "99999999999999999999",
        "-9223372036854775808",
        "9999-12-31 23:59:59",
        "0000-01-01T00:00:00+23:59",
    ] {
        let v = serde_json::json!({"status": "0", "data": {
            "sms": {"pay": s, "submitTm": s, "mcc": s, "status": s},
            "call": {"cost": s, "rate": s, "hangupTime": s, "callDuration": s}}});
        parse_all(&v);
    }
    for n in [i64::MIN, i64::MAX, -1, 0] {
        let _ = parse_time(&Value::Number(n.into()));
    }
    let _ = parse_time(&serde_json::json!(u64::MAX));
    let _ = parse_time(&serde_json::json!(1e300));
}
