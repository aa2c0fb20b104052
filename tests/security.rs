//! Secure by default (issue 7), on the real binary: the intake closed off loopback, 415, 429
//! and 503 with `Retry-After`, slow and idle clients that cannot degrade `/metrics` or the
//! intake, SIGTERM that does not wait for them, label budgets that junk cannot spend for good,
//! phone-number app ids refused, and intake counters with exact values. TLS and basic auth:
//! `tests/security_tls.rs`.

mod common;

use common::{eventually, scrape, spawn_agent, spawn_sim, sum};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "intake-token-for-tests";

fn token_file() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(TOKEN.as_bytes()).unwrap();
    f
}

async fn post(http: &reqwest::Client, addr: &str, body: &str) -> reqwest::Response {
    http.post(format!("http://{addr}/api/v1/orders"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn value(samples: &[common::Sample], name: &str, filter: &[(&str, &str)]) -> f64 {
    sum(samples, name, filter)
}

#[test]
fn refuses_to_serve_an_open_intake_off_loopback() {
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(common::binary())
        .args([
            "run",
            "--web.listen-address",
            "0.0.0.0:0",
            "--storage.path",
            store.path().to_str().unwrap(),
        ])
        .env("ITNIOTECH_API_KEY", "k")
        .env("ITNIOTECH_API_SECRET", "s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(
        lines,
        [
            "error: refusing to serve an unauthenticated intake on 0.0.0.0:0: set \
          --intake.token-file, basic_auth_users or client_auth_type RequireAndVerifyClientCert \
          in --web.config.file, or pass --intake.allow-unauthenticated"
        ],
        "{stderr}"
    );
}

#[test]
fn an_intake_protected_or_opened_on_purpose_may_listen_anywhere() {
    use itniotech_exporter::agent::{Agent, AgentError};
    use itniotech_exporter::api::Credentials;
    use itniotech_exporter::config::{Config, ConfigError};
    let build = |edit: &dyn Fn(&mut Config)| {
        let store = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.web.listen_address = "0.0.0.0:9867".parse().unwrap();
        cfg.storage.path = store.path().to_owned();
        edit(&mut cfg);
        // Building checks the configuration and opens the store; nothing listens.
        Agent::build(
            cfg,
            Credentials::new("k", "s"),
            itniotech_exporter::clock::system(),
        )
        .map(|_| ())
    };
    assert!(matches!(
        build(&|_| {}),
        Err(AgentError::Config(ConfigError::OpenIntake { .. }))
    ));
    let token = token_file();
    let token_path = token.path().to_owned();
    build(&|c| c.intake.token_file = Some(token_path.clone())).unwrap();
    build(&|c| c.intake.allow_unauthenticated = true).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(
        &web,
        format!(
            "basic_auth_users:\n  p: '{}'\n",
            bcrypt::hash("x", 4).unwrap()
        ),
    )
    .unwrap();
    build(&|c| c.web.config_file = Some(web.clone())).unwrap();
    // Headers alone protect nothing.
    std::fs::write(
        &web,
        "http_server_config:\n  headers:\n    X-Frame-Options: deny\n",
    )
    .unwrap();
    assert!(build(&|c| c.web.config_file = Some(web.clone())).is_err());
    // The demo's loopback default stays open.
    let store = tempfile::tempdir().unwrap();
    let mut cfg = itniotech_exporter::demo::demo_defaults();
    cfg.storage.path = store.path().to_owned();
    Agent::build(
        cfg,
        Credentials::new("k", "s"),
        itniotech_exporter::clock::system(),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_counters_are_exact_and_phone_numbers_are_refused() {
    let store = tempfile::tempdir().unwrap();
    let token = token_file();
    let (_sim, sim) = spawn_sim();
    let (agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &[
            "--intake.token-file",
            token.path().to_str().unwrap(),
            // Nothing is polled during the test: the counters only move by the intake (fixed
            // intervals, so the first poll is an hour away).
            "--poll.freshness-target",
            "0s",
            "--poll.first-delay",
            "1h",
        ],
    );
    let http = reqwest::Client::new();
    let three = r#"[{"appId":"shop_app","orderId":"o1"},{"appId":"shop_app","orderId":"o2"},{"verificationId":"123"}]"#;
    assert_eq!(post(&http, &addr, three).await.status(), 202);
    let r = post(&http, &addr, three).await;
    assert_eq!(r.status(), 202);
    let report: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        report,
        serde_json::json!({"accepted": 0, "duplicates": 3, "sampled_out": 0})
    );
    // One invalid item refuses its request of 4: 4 orders not tracked.
    let bad = r#"[{"verificationId":"1"},{"verificationId":"2"},{"verificationId":"x"},{"verificationId":"4"}]"#;
    assert_eq!(post(&http, &addr, bad).await.status(), 400);
    // A 13-digit appId (a phone number) is refused, naming the item but not the value.
    let r = post(&http, &addr, r#"{"appId":"6281234567890","orderId":"o9"}"#).await;
    assert_eq!(r.status(), 400);
    let err: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        (err["index"].as_u64(), err["field"].as_str()),
        (Some(0), Some("appId"))
    );
    assert!(!err.to_string().contains("6281234567890"), "{err}");
    // Just under 1 MiB of junk values: refused as a request, no orders counted for it.
    let junk = format!("[{}1]", "1,".repeat(520_000));
    assert!(junk.len() < 1 << 20);
    assert_eq!(post(&http, &addr, &junk).await.status(), 400);
    // Not JSON: 415, nothing read.
    let r = http
        .post(format!("http://{addr}/api/v1/orders"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/plain")
        .body(r#"{"verificationId":"5"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // No token: 401, nothing read.
    let r = http
        .post(format!("http://{addr}/api/v1/orders"))
        .header("content-type", "application/json")
        .body(r#"{"verificationId":"6"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The pending gauge is refreshed after each poll round (about once a second).
    let s = eventually(Duration::from_secs(10), || async {
        let s = scrape(&http, &addr).await?;
        (value(&s, "itniotech_exporter_orders_pending", &[]) == 3.0).then_some(s)
    })
    .await
    .expect("3 orders pending");
    let received = "itniotech_exporter_orders_received_total";
    let rejected = "itniotech_exporter_orders_rejected_total";
    let requests = "itniotech_exporter_http_requests_rejected_total";
    assert_eq!(value(&s, received, &[("source", "http")]), 6.0);
    assert_eq!(value(&s, rejected, &[("reason", "duplicate")]), 3.0);
    assert_eq!(value(&s, rejected, &[("reason", "sampled_out")]), 0.0);
    assert_eq!(
        value(&s, rejected, &[("reason", "invalid")]),
        5.0,
        "4 + the phone-number item"
    );
    assert_eq!(value(&s, requests, &[("reason", "bad_request")]), 3.0);
    assert_eq!(
        value(&s, requests, &[("reason", "unsupported_media_type")]),
        1.0
    );
    assert_eq!(value(&s, requests, &[("reason", "unauthorized")]), 1.0);
    assert!(!agent.output().contains("6281234567890"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_full_is_503_and_a_spent_byte_budget_is_429() {
    let store = tempfile::tempdir().unwrap();
    let token = token_file();
    let (_sim, sim) = spawn_sim();
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &[
            "--intake.token-file",
            token.path().to_str().unwrap(),
            // Fixed intervals: the first poll is an hour away.
            "--poll.freshness-target",
            "0s",
            "--poll.first-delay",
            "1h",
            "--intake.max-pending",
            "5",
            "--intake.max-body-bytes",
            "65536",
            "--intake.max-buffered-bytes",
            "65536",
        ],
    );
    let http = reqwest::Client::new();
    // An authenticated upload that sends 60,000 of its 65,000 bytes and stalls holds most of
    // the byte budget: a second body does not fit and is shed at once.
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 65000\r\n\r\n"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled.write_all(&vec![b' '; 60_000]).await.unwrap();
    let big = format!(r#"[{{"verificationId":"1"}}{}]"#, " ".repeat(10_000));
    let shed = eventually(Duration::from_secs(10), || async {
        let r = post(&http, &addr, &big).await;
        (r.status() == 429).then(|| r.headers()["retry-after"].to_str().unwrap().to_owned())
    })
    .await
    .expect("a body beyond the byte budget is shed with 429");
    assert_eq!(shed, "5");
    drop(stalled);
    // Five pending orders fill --intake.max-pending; the gauge is refreshed every second.
    let five = r#"[{"verificationId":"1"},{"verificationId":"2"},{"verificationId":"3"},{"verificationId":"4"},{"verificationId":"5"}]"#;
    eventually(Duration::from_secs(10), || async {
        (post(&http, &addr, five).await.status() == 202).then_some(())
    })
    .await
    .expect("the budget is free again once the stalled upload is gone");
    let r = eventually(Duration::from_secs(10), || async {
        let r = post(&http, &addr, r#"{"verificationId":"6"}"#).await;
        (r.status() == 503).then_some(r)
    })
    .await
    .expect("503 once max-pending orders are tracked");
    assert_eq!(r.headers()["retry-after"], "5");
    let s = scrape(&http, &addr).await.unwrap();
    assert_eq!(
        value(&s, "itniotech_exporter_orders_pending_limit", &[]),
        5.0
    );
    assert!(
        value(
            &s,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", "backlog_full")]
        ) >= 1.0
    );
    assert!(
        value(
            &s,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", "saturated")]
        ) >= 1.0
    );
}

/// `n` connections that never send a byte, and `slow` uploads that trickle one byte a second.
async fn attack(
    addr: &str,
    idle: usize,
    slow: usize,
    token: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 0..idle + slow {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let auth = if token {
            format!("Authorization: Bearer {TOKEN}\r\n")
        } else {
            String::new()
        };
        let slow_upload = i >= idle;
        tasks.push(tokio::spawn(async move {
            if slow_upload {
                let head = format!(
                    "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\n{auth}\
                     Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n["
                );
                if s.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                while s.write_all(b" ").await.is_ok() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            } else {
                let mut buf = [0u8; 16];
                let _ = s.read(&mut buf).await;
            }
        }));
    }
    tasks
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let t = Instant::now();
    let v = f.await;
    (v, t.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_clients_degrade_nothing_and_sigterm_does_not_wait_for_them() {
    let store = tempfile::tempdir().unwrap();
    let token = token_file();
    let (_sim, sim) = spawn_sim();
    let (mut agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &[
            "--intake.token-file",
            token.path().to_str().unwrap(),
            "--web.read-header-timeout",
            "3s",
            "--intake.read-timeout",
            "3s",
        ],
    );
    // 300 idle connections, 50 authenticated slow uploads (the worst case: an insider or a
    // broken client) and 50 unauthenticated ones.
    let mut tasks = attack(&addr, 300, 50, true).await;
    tasks.extend(attack(&addr, 0, 50, false).await);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..5 {
        let (r, took) = timed(http.get(format!("http://{addr}/metrics")).send()).await;
        assert_eq!(r.unwrap().status(), 200);
        assert!(took < Duration::from_secs(2), "/metrics took {took:?}");
        let (r, took) = timed(post(
            &http,
            &addr,
            &format!(r#"{{"appId":"slowtest","orderId":"legit-{i}"}}"#),
        ))
        .await;
        assert_eq!(r.status(), 202);
        assert!(
            took < Duration::from_secs(2),
            "an intake POST took {took:?}"
        );
    }
    // The limits bite, exactly: every idle connection is closed by the header timeout, every
    // slow upload by the body timeout (408) or, unauthenticated, at once (401).
    let s = eventually(Duration::from_secs(20), || async {
        let s = scrape(&http, &addr).await?;
        let dropped = value(
            &s,
            "itniotech_exporter_http_connections_dropped_total",
            &[("reason", "header_timeout")],
        );
        let timed_out = value(
            &s,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", "body_timeout")],
        );
        (dropped == 300.0 && timed_out == 50.0).then_some(s)
    })
    .await
    .expect("300 header timeouts and 50 body timeouts");
    assert_eq!(
        value(
            &s,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", "unauthorized")]
        ),
        50.0
    );
    // Nothing lost or doubled: the five legitimate orders, exactly, and nothing else.
    assert_eq!(
        value(
            &s,
            "itniotech_exporter_orders_received_total",
            &[("source", "http")]
        ),
        5.0
    );
    assert_eq!(value(&s, "itniotech_exporter_orders_pending", &[]), 5.0);
    drop(tasks);
    // SIGTERM with stalled clients attached: new idle connections and uploads mid-body.
    let _stalled = attack(&addr, 20, 20, true).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    let pid = agent.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(status) = agent.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_the_longest_idle_connection_makes_room() {
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &[
            "--web.max-connections",
            "8",
            "--web.read-header-timeout",
            "1m",
        ],
    );
    let _idle = attack(&addr, 8, 0, false).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let s = eventually(Duration::from_secs(10), || scrape(&http, &addr))
        .await
        .expect("a scrape gets through a full connection table");
    assert!(
        value(
            &s,
            "itniotech_exporter_http_connections_dropped_total",
            &[("reason", "evicted")]
        ) >= 1.0
    );
    assert_eq!(
        value(&s, "itniotech_exporter_http_connections_limit", &[]),
        8.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_app_ids_cannot_lock_a_real_app_out_of_the_budget() {
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let args = |idle: &'static str| {
        vec![
            // The fixed-interval schedule this test times against.
            "--poll.freshness-target",
            "0s",
            "--poll.first-delay",
            "100ms",
            "--tracking.not-found-retries",
            "0",
            "--api.max-rps",
            "1000",
            "--api.concurrency",
            "64",
            "--metrics.series-budget",
            "100",
            "--metrics.series-idle",
            idle,
        ]
    };
    // While the junk is fresh nothing may leave the budget: an idle period longer than the test.
    let (mut agent, addr) = spawn_agent(&sim, store.path(), &args("1h"));
    let http = reqwest::Client::new();
    let post = |addr: String, body: String| {
        let http = http.clone();
        async move {
            http.post(format!("http://{addr}/api/v1/orders"))
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // 10,000 orders of 10,000 junk app ids; the simulator knows none: each ends not_found.
    for batch in 0..10 {
        let items: Vec<String> = (0..1000)
            .map(|i| format!(r#"{{"appId":"junk{}","orderId":"x"}}"#, batch * 1000 + i))
            .collect();
        let status = post(addr.clone(), format!("[{}]", items.join(","))).await;
        assert_eq!(status, 202);
    }
    let orders = "itniotech_otp_orders_total";
    let s = eventually(Duration::from_secs(180), || async {
        let s = scrape(&http, &addr).await?;
        (sum(&s, orders, &[("outcome", "not_found")]) == 10_000.0).then_some(s)
    })
    .await
    .expect("every junk order counted");
    // 100 series hold 25 apps × 4 outcomes; the other 9,975 orders went to other/other.
    let apps = |s: &[common::Sample]| -> std::collections::BTreeSet<String> {
        s.iter()
            .filter(|x| x.name == orders)
            .map(|x| x.labels["app_id"].clone())
            .collect()
    };
    assert_eq!(apps(&s).len(), 26, "{:?}", apps(&s));
    assert_eq!(
        sum(&s, orders, &[("app_id", "other"), ("outcome", "not_found")]),
        9_975.0
    );
    let overflow = |s: &[common::Sample], label| {
        sum(
            s,
            "itniotech_exporter_label_overflow_total",
            &[("metric", orders), ("label", label)],
        )
    };
    assert_eq!(
        (overflow(&s, "app_id"), overflow(&s, "flow_id")),
        (9_975.0, 9_975.0)
    );
    // A real app arriving while the junk is fresh is folded: the budget is really full.
    let status = post(
        addr.clone(),
        r#"{"appId":"realapp","orderId":"early"}"#.into(),
    )
    .await;
    assert_eq!(status, 202);
    let s = eventually(Duration::from_secs(30), || async {
        let s = scrape(&http, &addr).await?;
        (sum(&s, orders, &[("app_id", "other"), ("outcome", "not_found")]) == 9_976.0).then_some(s)
    })
    .await
    .expect("the early real order counted as other");
    assert!(!apps(&s).contains("realapp"));
    // The junk goes idle for longer than the idle period the agent restarts with. Right after
    // the restart, the junk series are idle only because their change times were stored with
    // them (restored as "changed at load" they would hold the budget for 5 s more).
    agent.kill9();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (_agent, addr) = spawn_agent(&sim, store.path(), &args("5s"));
    let status = post(
        addr.clone(),
        r#"{"appId":"realapp","orderId":"first"}"#.into(),
    )
    .await;
    assert_eq!(status, 202);
    let s = eventually(Duration::from_secs(30), || async {
        let s = scrape(&http, &addr).await?;
        (sum(
            &s,
            orders,
            &[("app_id", "realapp"), ("outcome", "not_found")],
        ) == 1.0)
            .then_some(s)
    })
    .await
    .expect("the real app is counted under its own name");
    assert!(
        apps(&s).iter().all(|a| !a.starts_with("junk")),
        "{:?}",
        apps(&s)
    );
    assert_eq!(
        sum(
            &s,
            "itniotech_exporter_label_overflow_total",
            &[("metric", orders)]
        ),
        0.0
    );
}

/// Reads until the server closes (or resets) the connection; the bytes read, or None when it
/// was still open after `limit`.
async fn read_to_close(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(limit, async {
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .ok()?;
    Some(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alives_are_closed_and_a_table_of_busy_requests_refuses_newcomers() {
    let store = tempfile::tempdir().unwrap();
    let token = token_file();
    let (_sim, sim) = spawn_sim();
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &[
            "--intake.token-file",
            token.path().to_str().unwrap(),
            "--web.max-connections",
            "8",
            "--web.idle-timeout",
            "1s",
            "--intake.read-timeout",
            "1m",
        ],
    );
    // A keep-alive connection that asks once and then waits is closed after the idle timeout.
    let mut keep = TcpStream::connect(&addr).await.unwrap();
    keep.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let answer = read_to_close(&mut keep, Duration::from_secs(10))
        .await
        .expect("the idle connection is closed");
    let took = t.elapsed();
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{answer:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // Eight authenticated uploads stalled mid-body hold every connection, all busy: nothing
    // can be evicted, so a newcomer is refused (closed without an answer), not queued.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\
             Expect: 100-continue\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        // "100 Continue" comes when the intake starts reading the body: this request is busy.
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("100 Continue")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 100"), "{:?}", &buf[..n]);
        s.write_all(b"[").await.unwrap();
        stalled.push(s);
    }
    // Should a newcomer still be served (it must not), it is counted apart so that the
    // assertions below say what happened.
    let (refused, answered) = (std::cell::Cell::new(0.0), std::cell::Cell::new(0.0));
    eventually(Duration::from_secs(10), || async {
        let mut s = TcpStream::connect(&addr).await.ok()?;
        let _ = s
            .write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        let bytes = read_to_close(&mut s, Duration::from_secs(5))
            .await
            .expect("closed, at once or after the idle timeout");
        if bytes.is_empty() {
            refused.set(refused.get() + 1.0);
            Some(())
        } else {
            answered.set(answered.get() + 1.0);
            None
        }
    })
    .await
    .expect("a newcomer is refused while every connection is busy");
    let (refused, answered) = (refused.get(), answered.get());
    // The uploads give up: the scrape gets through again, and the refusals were counted.
    drop(stalled);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let s = eventually(Duration::from_secs(10), || scrape(&http, &addr))
        .await
        .expect("scrapes work once the busy connections are gone");
    let dropped = |reason| {
        value(
            &s,
            "itniotech_exporter_http_connections_dropped_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(dropped("idle_timeout"), 1.0 + answered);
    assert_eq!(dropped("refused"), refused);
    assert_eq!(dropped("evicted"), 0.0);
}

#[cfg(unix)]
#[test]
fn the_store_is_private_and_exposed_secrets_are_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let token = dir.path().join("intake-token");
    std::fs::write(&token, TOKEN).unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_sim, sim) = spawn_sim();
    let (agent, _addr) = spawn_agent(
        &sim,
        &store,
        &["--intake.token-file", token.to_str().unwrap()],
    );
    let out = agent.output();
    let warning = out
        .lines()
        .find(|l| l.contains("accessible to other users"))
        .unwrap_or_else(|| panic!("no warning:\n{out}"));
    assert!(
        warning.contains("WARN") && warning.contains("644"),
        "{warning}"
    );
    assert!(warning.contains(token.to_str().unwrap()), "{warning}");
    assert!(!out.contains(TOKEN), "the token leaked into the log");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    let files: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty());
    for f in files {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_its_responses_is_dropped() {
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    // A response that fits in the server's buffers counts as handed over, so such a client is
    // closed by the idle timeout; one stuck mid-response by the write timeout.
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &["--web.write-timeout", "1s", "--web.idle-timeout", "2s"],
    );
    // Pipelined scrapes on a connection that reads nothing (and has a tiny receive buffer):
    // the responses fill the socket, the server's write stalls.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stuck = socket.connect(addr.parse().unwrap()).await.unwrap();
    let requests = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let _ =
        tokio::time::timeout(Duration::from_secs(5), stuck.write_all(requests.as_bytes())).await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let s = eventually(Duration::from_secs(30), || async {
        let s = scrape(&http, &addr).await?;
        let dropped = |reason| {
            value(
                &s,
                "itniotech_exporter_http_connections_dropped_total",
                &[("reason", reason)],
            )
        };
        (dropped("write_timeout") + dropped("idle_timeout") == 1.0).then_some(s)
    })
    .await
    .expect("the stuck connection is dropped");
    // Scrapes on other connections were served all along.
    assert_eq!(value(&s, "itniotech_exporter_http_connections", &[]), 1.0);
    drop(stuck);
}
