//! The simulator seen from outside: a plain HTTP client that knows only docs/vendor-api.md
//! (signed headers, JSON bodies) talks to a simulator on an ephemeral 127.0.0.1 port whose
//! clock is a `ManualClock`.

use chrono::{DateTime, Utc};
use itniotech_exporter::api::sign::sign;
use itniotech_exporter::clock::ManualClock;
use itniotech_exporter::simulator::{Chaos, SimConfig, Simulator};
use reqwest::{Method, StatusCode};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

const KEY: &str = "bDqJFiq9";
const SECRET: &str = "7bz1lzh9";

struct Harness {
    base: String,
    http: reqwest::Client,
    clock: ManualClock,
    sim: Simulator,
}

struct Reply {
    status: StatusCode,
    date: Option<String>,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_715_648_000, 0).unwrap()
}

async fn start(virtual_users: bool) -> Harness {
    start_with(SimConfig {
        seed: 11,
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        virtual_users,
        ..SimConfig::default()
    })
    .await
}

async fn start_with(cfg: SimConfig) -> Harness {
    let clock = ManualClock::new(t0());
    let sim = Simulator::new(cfg, Arc::new(clock.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sim.clone().serve(listener));
    Harness {
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap(),
        clock,
        sim,
    }
}

impl Harness {
    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        secret: &str,
        ts: i64,
    ) -> Reply {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("Content-Type", "application/json;charset=UTF-8")
            .header("Api-Key", KEY)
            .header("Timestamp", ts.to_string())
            .header("Sign", sign(KEY, secret, ts));
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let resp = req.send().await.unwrap();
        Reply {
            status: resp.status(),
            date: resp
                .headers()
                .get("date")
                .map(|d| d.to_str().unwrap().to_owned()),
            text: resp.text().await.unwrap(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let ts = chrono_now(&self.clock).timestamp();
        let r = self.raw(method, path, body, SECRET, ts).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json()
    }

    async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(Method::POST, path, Some(body)).await
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn chrono_now(clock: &ManualClock) -> DateTime<Utc> {
    use itniotech_exporter::clock::Clock;
    clock.now()
}

fn ok_data(v: &Value) -> &Value {
    assert_eq!(v["status"], "0", "{v}");
    assert_eq!(v["reason"], "success");
    &v["data"]
}

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("decimal string expected: {v}")),
    )
    .unwrap()
}

fn assert_time(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("time string expected: {v}"));
    assert!(s.ends_with("+08:00"), "{s}");
    DateTime::parse_from_rfc3339(s).unwrap();
}

fn assert_time_or_null(v: &Value) {
    if !v.is_null() {
        assert_time(v);
    }
}

fn assert_sms_shape(s: &Value) {
    assert_time(&s["submitTm"]);
    assert_time_or_null(&s["sendTm"]);
    assert_time_or_null(&s["doneTm"]);
    assert!(s["mcc"].is_i64() && s["mnc"].is_i64(), "{s}");
    assert!(s["sender"].is_string() && s["reason"].is_string());
    assert!(s["chargeCnt"].is_i64());
    dec(&s["pay"]);
    assert!(
        [-1, 0, 1].contains(&s["status"].as_i64().unwrap()),
        "int status: {s}"
    );
}

fn assert_call_shape(c: &Value) {
    for k in [
        "submitTime",
        "callTime",
        "ringingTime",
        "answerTime",
        "hangupTime",
    ] {
        assert!(c.get(k).is_some(), "{k} missing: {c}");
        assert_time_or_null(&c[k]);
    }
    assert!(c["terminationCode"].is_i64() || c["terminationCode"].is_null());
    assert!(c["callDuration"].is_i64() && c["chargedDuration"].is_i64());
    assert!(c.get("displayNum").is_some());
    let bp = c["billPeriodstring"].as_str().unwrap();
    assert!(bp == "60+60" || bp == "20+20", "{bp}");
    assert!(c["code"].is_string());
    dec(&c["rate"]);
    dec(&c["cost"]);
}

#[tokio::test]
async fn flows_list_details_add_update() {
    let h = start(true).await;
    let list = h.get("/otp/flow/list").await;
    let flows = ok_data(&list).as_array().unwrap();
    let names: Vec<&str> = flows.iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "sms_only",
            "sms_then_voice",
            "sms_verify_then_voice",
            "sms_retry_then_voice"
        ]
    );
    let f2 = &flows[1];
    assert_eq!(f2["flowId"], 2);
    assert_eq!(
        f2["flow"],
        json!([{"waitingTime":60,"status":1,"channel":"sms","channelCut":0},
               {"waitingTime":90,"status":1,"channel":"call","channelCut":0}])
    );
    let d = h.get("/otp/flow/details/4").await;
    assert_eq!(ok_data(&d)["flow"].as_array().unwrap().len(), 3);

    let new = json!({"name":"voice_first","flow":[{"waitingTime":45,"status":1,"channel":"call","channelCut":0},{"waitingTime":60,"status":2,"channel":"sms"}]});
    let added = h.post("/otp/flow/add", new.clone()).await;
    let id = ok_data(&added)["flowId"].as_i64().unwrap();
    assert_eq!(ok_data(&added)["flow"][1]["channelCut"], 0, "default");
    assert_eq!(h.post("/otp/flow/add", new).await["status"], "-20");
    let list = h.get("/otp/flow/list").await;
    assert!(ok_data(&list)
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["flowId"] == id && f["name"] == "voice_first"));

    let upd = json!({"name":"voice_first_v2","flow":[{"waitingTime":30,"status":2,"channel":"sms","channelCut":1}]});
    let r = h
        .call(
            Method::PUT,
            &format!("/otp/flow/update/{id}"),
            Some(upd.clone()),
        )
        .await;
    assert_eq!(ok_data(&r)["name"], "voice_first_v2");
    let r = h.post(&format!("/otp/flow/update/{id}"), upd).await;
    assert_eq!(r["status"], "0", "POST accepted too");
    let bad = json!({"name":"xx","flow":[]});
    assert_eq!(h.post("/otp/flow/add", bad).await["status"], "-22");
    let bad = json!({"name":"slow_flow","flow":[{"waitingTime":10,"status":1,"channel":"sms"}]});
    assert_eq!(h.post("/otp/flow/add", bad).await["status"], "-22");
    assert_eq!(h.get("/otp/flow/details/999").await["status"], "-24");
}

#[tokio::test]
async fn authentication_timestamp_window_and_date_header() {
    let h = start(true).await;
    let now = t0().timestamp();
    let r = h
        .raw(Method::GET, "/otp/flow/list", None, "wrong", now)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json(),
        json!({"status":"-1","reason":"Authentication error"})
    );

    let r = h
        .raw(Method::GET, "/sms/getBalance", None, SECRET, now - 301)
        .await;
    assert_eq!(r.json()["status"], "-16");
    assert_eq!(r.json()["reason"], "Timestamp expires");
    let date = httpdate::parse_http_date(r.date.as_deref().unwrap()).unwrap();
    assert_eq!(
        DateTime::<Utc>::from(date),
        t0(),
        "Date is the simulator's clock"
    );
    let r = h
        .raw(Method::GET, "/sms/getBalance", None, SECRET, now + 299)
        .await;
    assert_eq!(r.json()["status"], "0");

    // Uppercase signatures are accepted.
    let resp = h
        .http
        .get(format!("{}/otp/flow/list", h.base))
        .header("Api-Key", KEY)
        .header("Timestamp", now.to_string())
        .header("Sign", sign(KEY, SECRET, now).to_uppercase())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "0");

    let r = h.raw(Method::GET, "/otp/nope", None, SECRET, now).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.date.is_some());

    // A skewed server clock moves Date and the window.
    h.sim.set_chaos(Chaos {
        clock_offset_secs: 600,
        ..Chaos::default()
    });
    let r = h
        .raw(Method::GET, "/sms/getBalance", None, SECRET, now)
        .await;
    assert_eq!(r.json()["status"], "-16");
    let date = httpdate::parse_http_date(r.date.as_deref().unwrap()).unwrap();
    assert_eq!(DateTime::<Utc>::from(date).timestamp(), now + 600);
}

#[tokio::test]
async fn bad_parameters_and_unknown_records() {
    let h = start(true).await;
    let good = json!({"appId":"Qw7rT2kZ","to":"6281234567890","code":"123456","channel":"sms"});
    let mut cases = Vec::new();
    for (k, v) in [
        ("appId", json!("abc")),
        ("to", json!("123")),
        ("to", json!("62812345678901234")),
        ("to", json!("62812ab567890")),
        ("channel", json!("fax")),
        ("flowId", json!(999)),
        ("code", json!("12345678901")),
        ("code", Value::Null),
    ] {
        let mut b = good.clone();
        b[k] = v;
        cases.push(("/otp/verification/sendRule", b));
    }
    cases.push(("/otp/verification/send", good.clone())); // no templateId
    cases.push((
        "/otp/verification/verify",
        json!({"verificationId":"1","code":"12"}),
    ));
    cases.push((
        "/otp/verification/orderId/record",
        json!({"appId":"Qw7rT2kZ"}),
    ));
    for (path, body) in cases {
        let r = h.post(path, body.clone()).await;
        assert_eq!(r["status"], "-22", "{path} {body} -> {r}");
    }
    let r = h
        .raw(
            Method::POST,
            "/otp/verification/sendRule",
            None,
            SECRET,
            t0().timestamp(),
        )
        .await;
    assert_eq!(r.json()["status"], "-22", "empty body");

    let r = h.get("/otp/verification/record/24051409123310000417").await;
    assert_eq!(r, json!({"status":"-24","reason":"Data does not exist"}));
    let r = h
        .post(
            "/otp/verification/orderId/record",
            json!({"appId":"Qw7rT2kZ","orderId":"nope"}),
        )
        .await;
    assert_eq!(r["status"], "-24");
    let r = h
        .post(
            "/otp/verification/verify",
            json!({"verificationId":"42","code":"1234"}),
        )
        .await;
    assert_eq!(r["status"], "-24");

    // send with a template works and the reply has the documented shape.
    let mut b = good;
    b["templateId"] = json!(812);
    b["code"] = Value::Null;
    let r = h.post("/otp/verification/send", b).await;
    let d = ok_data(&r);
    assert_eq!(d["verificationId"].as_str().unwrap().len(), 20);
    assert_eq!(
        (d["to"].as_str(), d["channel"].as_str()),
        (Some("6281234567890"), Some("sms"))
    );
    assert!(d.get("snaUrl").unwrap().is_null());
}

#[tokio::test]
async fn outage_flow_falls_back_to_call_and_balance_matches_record() {
    let h = start(false).await;
    h.sim.set_chaos(Chaos {
        outage_country: Some("ID".into()),
        ..Chaos::default()
    });
    let before = dec(&h.get("/sms/getBalance").await["balance"]);
    assert_eq!(before, Decimal::from(5000));
    let body =
        json!({"appId":"Qw7rT2kZ","flowId":2,"to":"6281234567890","code":"4821","orderId":"ord-1"});
    let r = h.post("/otp/verification/sendRule", body.clone()).await;
    let vid = ok_data(&r)["verificationId"].as_str().unwrap().to_owned();
    assert_eq!(ok_data(&r)["channel"], "sms");
    assert_eq!(
        h.post("/otp/verification/sendRule", body).await["status"],
        "-20"
    );

    let by_order = json!({"appId":"Qw7rT2kZ","orderId":"ord-1"});
    let rec = h
        .post("/otp/verification/orderId/record", by_order.clone())
        .await;
    let d = ok_data(&rec);
    assert_eq!(d["sms"][0]["status"], -1, "still sending: {d}");
    assert!(d["sms"][0]["doneTm"].is_null());

    h.advance(61);
    let rec = h
        .post("/otp/verification/orderId/record", by_order.clone())
        .await;
    let d = ok_data(&rec);
    assert_eq!(
        (d["orderId"].as_str(), d["flowId"].as_i64()),
        (Some("ord-1"), Some(2))
    );
    let v = &d["verifications"];
    assert_eq!(
        (v["matched"].as_i64(), v["verifiedDate"].is_null()),
        (Some(-1), true)
    );
    assert_eq!(
        (v["oriReceiver"].as_str(), v["channel"].as_str()),
        (Some("6281234567890"), Some("call"))
    );
    let sms = d["sms"].as_array().unwrap();
    assert_eq!(sms.len(), 1);
    assert_sms_shape(&sms[0]);
    assert_eq!(
        (sms[0]["status"].as_i64(), sms[0]["reason"].as_str()),
        (Some(1), Some("UNDELIV"))
    );
    assert_eq!(
        (sms[0]["mcc"].as_i64(), sms[0]["mnc"].is_i64()),
        (Some(510), true)
    );
    let calls = d["call"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "fallback call started: {d}");
    assert_call_shape(&calls[0]);
    assert!(calls[0]["hangupTime"].is_null(), "call in progress");
    assert!(d["sna"].as_array().unwrap().is_empty());

    // By verificationId: the same order with sms/call as objects.
    let rec = h.get(&format!("/otp/verification/record/{vid}")).await;
    let d = ok_data(&rec);
    assert_eq!(d["verificationId"], vid.as_str());
    assert!(d["sms"].is_object() && d["call"].is_object(), "{d}");
    assert_sms_shape(&d["sms"]);
    assert_call_shape(&d["call"]);

    h.advance(600);
    let rec = h.post("/otp/verification/orderId/record", by_order).await;
    let d = ok_data(&rec);
    let call = &d["call"][0];
    assert_call_shape(call);
    assert!(
        call["terminationCode"].is_i64() && call["hangupTime"].is_string(),
        "{call}"
    );
    if call["terminationCode"] == 0 {
        assert!(call["answerTime"].is_string());
        assert!(
            call["chargedDuration"].as_i64().unwrap() >= call["callDuration"].as_i64().unwrap()
        );
    } else {
        assert!(call["answerTime"].is_null());
    }
    let spent: Decimal = d["sms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| dec(&s["pay"]))
        .sum::<Decimal>()
        + d["call"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| dec(&c["cost"]))
            .sum::<Decimal>();
    assert!(spent > Decimal::ZERO);
    let bal = h.get("/sms/getBalance").await;
    assert_eq!(bal["status"], "0");
    assert!(bal.get("data").is_none(), "getBalance has no data wrapper");
    dec(&bal["gift"]);
    dec(&bal["credit"]);
    assert_eq!(dec(&bal["balance"]), before - spent);
    assert_eq!(h.sim.balance(), before - spent);
}

#[tokio::test]
async fn verify_right_and_wrong_codes() {
    let h = start(false).await;
    let r = h
        .post(
            "/otp/verification/sendRule",
            json!({"appId":"Qw7rT2kZ","to":"919876543210","code":"5555","orderId":"v-1"}),
        )
        .await;
    let vid = ok_data(&r)["verificationId"].as_str().unwrap().to_owned();
    h.advance(30);
    let r = h
        .post(
            "/otp/verification/verify",
            json!({"verificationId": vid, "code":"1234"}),
        )
        .await;
    let d = ok_data(&r);
    assert_eq!(
        (d["matched"].as_i64(), d["channel"].as_str()),
        (Some(2), Some("sms"))
    );
    assert_eq!(d["verificationId"], vid.as_str());
    let rec = h.get(&format!("/otp/verification/record/{vid}")).await;
    assert_eq!(ok_data(&rec)["verifications"]["matched"], 2);
    assert_time(&ok_data(&rec)["verifications"]["verifiedDate"]);

    h.advance(5);
    let r = h
        .post(
            "/otp/verification/verify",
            json!({"verificationId": vid, "code":"5555"}),
        )
        .await;
    assert_eq!(ok_data(&r)["matched"], 0);
    let rec = h
        .post(
            "/otp/verification/orderId/record",
            json!({"appId":"Qw7rT2kZ","orderId":"v-1"}),
        )
        .await;
    let v = &ok_data(&rec)["verifications"];
    assert_eq!(v["matched"], 0);
    let at = DateTime::parse_from_rfc3339(v["verifiedDate"].as_str().unwrap()).unwrap();
    assert_eq!(at.timestamp(), t0().timestamp() + 35);
}

#[tokio::test]
async fn user_actions_are_handed_out_for_a_traffic_generator() {
    let h = start(false).await;
    let mut vids = Vec::new();
    for i in 0..20 {
        let to = format!("1201555{i:04}");
        let r = h
            .post(
                "/otp/verification/sendRule",
                json!({"appId":"Qw7rT2kZ","to": to,"code":"2468"}),
            )
            .await;
        vids.push(ok_data(&r)["verificationId"].as_str().unwrap().to_owned());
    }
    assert!(h.sim.take_user_actions().is_empty(), "nothing is due yet");
    let mut actions = Vec::new();
    for _ in 0..30 {
        h.advance(10);
        actions.extend(h.sim.take_user_actions());
    }
    assert!(actions.len() >= 10, "most users act: {actions:?}");
    for a in &actions {
        assert!(vids.contains(&a.verification_id));
        let r = h
            .post(
                "/otp/verification/verify",
                json!({"verificationId": a.verification_id, "code": a.code}),
            )
            .await;
        assert_eq!(ok_data(&r)["matched"], if a.code == "2468" { 0 } else { 2 });
    }
}

#[tokio::test]
async fn chaos_replies_appear() {
    let h = start(true).await;
    let ts = t0().timestamp();
    h.sim.set_chaos(Chaos {
        http_503_rate: 1.0,
        ..Chaos::default()
    });
    let r = h.raw(Method::GET, "/otp/flow/list", None, SECRET, ts).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.date.is_some());

    h.sim.set_chaos(Chaos {
        http_500_rate: 1.0,
        ..Chaos::default()
    });
    let r = h.raw(Method::GET, "/otp/flow/list", None, SECRET, ts).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);

    h.sim.set_chaos(Chaos {
        vendor_error_rate: 1.0,
        ..Chaos::default()
    });
    let r = h.get("/otp/flow/list").await;
    assert_eq!(r, json!({"status":"-18","reason":"Port program unusual"}));

    h.sim.set_chaos(Chaos {
        malformed_rate: 1.0,
        ..Chaos::default()
    });
    let r = h.raw(Method::GET, "/otp/flow/list", None, SECRET, ts).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        serde_json::from_str::<Value>(&r.text).is_err(),
        "{}",
        r.text
    );

    h.sim.set_chaos(Chaos {
        latency: Duration::from_millis(50),
        ..Chaos::default()
    });
    let started = std::time::Instant::now();
    assert_eq!(h.get("/otp/flow/list").await["status"], "0");
    assert!(started.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn api_degraded_scenario_mixes_in_errors() {
    let h = start_with(SimConfig {
        seed: 3,
        api_key: KEY.into(),
        api_secret: SECRET.into(),
        scenario: "api-degraded".parse().unwrap(),
        ..SimConfig::default()
    })
    .await;
    let ts = t0().timestamp();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    let calls = (0..80).map(|_| h.raw(Method::GET, "/otp/flow/list", None, SECRET, ts));
    for r in futures::future::join_all(calls).await {
        let kind = if r.status != StatusCode::OK {
            r.status.as_str().to_owned()
        } else {
            match serde_json::from_str::<Value>(&r.text) {
                Ok(v) => v["status"].as_str().unwrap().to_owned(),
                Err(_) => "malformed".into(),
            }
        };
        *seen.entry(kind).or_default() += 1;
    }
    assert!(seen.get("0").copied().unwrap_or(0) >= 60, "{seen:?}");
    assert!(seen.len() >= 2, "some degradation shows: {seen:?}");
}
