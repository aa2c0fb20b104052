//! `--web.config.file` on the real binary: TLS, basic auth, client certificates, headers,
//! reloads, and a real Prometheus scraping over TLS with basic auth. Certificates are made per
//! test (rcgen); nothing listens anywhere but 127.0.0.1.

mod common;

use common::{eventually, parse_exposition, spawn_agent, spawn_sim, sum, Proc};
use itniotech_exporter::simulator::{DEMO_API_KEY, DEMO_API_SECRET};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

/// A CA, a server certificate for 127.0.0.1/localhost, a client CA and client certificates.
fn pki() -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = |name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.self_signed(&key).unwrap();
        (cert, key)
    };
    let leaf = |sans: &[&str], purpose, issuer: &(rcgen::Certificate, KeyPair)| {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.extended_key_usages = vec![purpose];
        let cert = p.signed_by(&key, &issuer.0, &issuer.1).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let server_ca = ca("test server CA");
    let client_ca = ca("test client CA");
    let other_ca = ca("someone else's CA");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap();
    };
    let (cert, key) = leaf(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &server_ca,
    );
    write("server.crt", &cert);
    write("server.key", &key);
    write("ca.crt", &server_ca.0.pem());
    write("client-ca.crt", &client_ca.0.pem());
    for (name, san, issuer) in [
        ("client", "prometheus.test", &client_ca),
        ("intruder", "intruder.test", &client_ca),
        ("stranger", "prometheus.test", &other_ca),
    ] {
        let (cert, key) = leaf(&[san], ExtendedKeyUsagePurpose::ClientAuth, issuer);
        write(&format!("{name}.pem"), &format!("{cert}{key}"));
    }
    Pki {
        ca_pem: server_ca.0.pem(),
        dir,
    }
}

impl Pki {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client trusting the test CA, optionally presenting a client certificate.
    fn client(&self, identity: Option<&str>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap());
        if let Some(name) = identity {
            let pem = std::fs::read(self.path(&format!("{name}.pem"))).unwrap();
            b = b.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        b.build().unwrap()
    }
}

fn write_web_config(path: &Path, text: &str) {
    // Written next to the certificates, so relative paths resolve; 0600 like a real one.
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

async fn scrape_with(client: &reqwest::Client, url: &str) -> Vec<common::Sample> {
    let body = client
        .get(url)
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    parse_exposition(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_basic_auth_on_every_route() {
    let pki = pki();
    let web = pki.path("web.yml");
    write_web_config(
        &web,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n\
             basic_auth_users:\n  prometheus: '{}'\n",
            hash(PASSWORD)
        ),
    );
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &["--web.config.file", web.to_str().unwrap()],
    );
    assert!(agent.output().contains("tls=true"), "{}", agent.output());
    let https = pki.client(None);
    let base = format!("https://{addr}");
    // Every route asks for credentials, health included (like the exporter-toolkit).
    for path in ["/metrics", "/-/healthy", "/-/ready", "/", "/nope"] {
        let r = https.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"itniotech-exporter\""
        );
    }
    let r = https
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = https
        .get(format!("{base}/metrics"))
        .basic_auth("nobody", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = https
        .get(format!("{base}/metrics"))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    // Basic auth protects the intake too (no token is configured).
    let r = https
        .post(format!("{base}/api/v1/orders"))
        .basic_auth("prometheus", Some(PASSWORD))
        .header("content-type", "application/json")
        .body(r#"{"appId":"tlsapp","orderId":"o-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP must not be served on the TLS port"
    );
    // A client that does not trust the CA fails the handshake.
    let untrusting = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert!(untrusting
        .get(format!("{base}/metrics"))
        .send()
        .await
        .is_err());
    let samples = scrape_with(&https, &format!("{base}/metrics")).await;
    // 5 anonymous + wrong password + unknown user.
    assert_eq!(
        sum(
            &samples,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", "unauthorized")]
        ),
        7.0
    );
    assert_eq!(
        sum(&samples, "itniotech_exporter_orders_received_total", &[]),
        1.0
    );
    assert!(
        sum(
            &samples,
            "itniotech_exporter_http_connections_dropped_total",
            &[("reason", "tls_handshake_error")]
        ) >= 1.0
    );
    assert!(!agent.output().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_required_verified_and_san_checked() {
    let pki = pki();
    let web = pki.path("web.yml");
    write_web_config(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n  \
         client_allowed_sans: [prometheus.test]\n  min_version: TLS13\n",
    );
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    // Client certificates protect the intake: no token, no --intake.allow-unauthenticated.
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &["--web.config.file", web.to_str().unwrap()],
    );
    let url = format!("https://{addr}/metrics");
    let ok = pki.client(Some("client")).get(&url).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    for who in [None, Some("stranger"), Some("intruder")] {
        let r = pki.client(who).get(&url).send().await;
        assert!(r.is_err(), "{who:?} must be refused: {r:?}");
    }
    let samples = parse_exposition(
        &pki.client(Some("client"))
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let dropped = |reason| {
        sum(
            &samples,
            "itniotech_exporter_http_connections_dropped_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(dropped("client_not_allowed"), 1.0, "the intruder's SAN");
    assert!(dropped("tls_handshake_error") >= 2.0, "no cert, foreign CA");
    let r = pki
        .client(Some("client"))
        .post(format!("https://{addr}/api/v1/orders"))
        .header("content-type", "application/json")
        .body(r#"{"appId":"certapp","orderId":"o-1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_reloads_on_change_and_keeps_the_last_good_one() {
    let pki = pki();
    let web = pki.path("web.yml");
    let users = |user: &str| format!("basic_auth_users:\n  {user}: '{}'\n", hash(PASSWORD));
    write_web_config(&web, &users("alice"));
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &["--web.config.file", web.to_str().unwrap()],
    );
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let status = |user: &'static str| {
        let http = http.clone();
        let url = url.clone();
        async move {
            http.get(&url)
                .basic_auth(user, Some(PASSWORD))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status("alice").await, 200);
    assert_eq!(status("bob").await, 401);
    write_web_config(&web, &users("bob"));
    eventually(Duration::from_secs(10), || async {
        (status("bob").await == 200).then_some(())
    })
    .await
    .expect("the new user is accepted without a restart");
    assert_eq!(status("alice").await, 401);
    let gauge = |text: String| {
        sum(
            &parse_exposition(&text),
            "itniotech_exporter_web_config_last_reload_successful",
            &[],
        )
    };
    let metrics = || async {
        http.get(&url)
            .basic_auth("bob", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    assert_eq!(gauge(metrics().await), 1.0);
    // A broken file: the last good configuration stays, the gauge and the log say so.
    write_web_config(&web, "basic_auth_users: [this is: not a map\n");
    eventually(Duration::from_secs(10), || async {
        (gauge(metrics().await) == 0.0).then_some(())
    })
    .await
    .expect("a failed reload shows in the gauge");
    assert_eq!(status("bob").await, 200);
    assert!(agent.output().contains("web config reload failed"));
    // Removing every user would open the intake on loopback only: allowed there.
    write_web_config(&web, &users("carol"));
    eventually(Duration::from_secs(10), || async {
        (status("carol").await == 200).then_some(())
    })
    .await
    .expect("a fixed file is loaded again");
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(tool_prometheus),
    ignore = "needs prometheus (.ci/install-prometheus.sh)"
)]
async fn prometheus_scrapes_over_tls_with_basic_auth() {
    if !common::tool_available(
        "prometheus",
        &["--version"],
        "apt-get install prometheus (.ci/install-prometheus.sh)",
    ) {
        return;
    }
    let pki = pki();
    let web = pki.path("web.yml");
    write_web_config(
        &web,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: '{}'\n",
            hash(PASSWORD)
        ),
    );
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &["--web.config.file", web.to_str().unwrap()],
    );
    let config = pki.path("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: agent\n    scheme: https\n    \
             tls_config:\n      ca_file: {:?}\n    \
             basic_auth:\n      username: prometheus\n      password: {PASSWORD:?}\n    \
             static_configs:\n      - targets: [{addr:?}]\n",
            pki.path("ca.crt").display().to_string()
        ),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let mut last_error = String::new();
    for attempt in 0..5 {
        let port = free_port();
        let log = pki.path(&format!("prometheus-{attempt}.log"));
        let mut prom = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg(format!(
                "--storage.tsdb.path={}",
                pki.path(&format!("tsdb-{attempt}")).display()
            ))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start prometheus");
        // up is 1 and the agent's own series arrived: the scrape authenticated and parsed.
        let expr = "up{job=\"agent\"} * on(instance) group_left itniotech_exporter_build_info{job=\"agent\"}";
        let encoded: String = expr
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        let query = format!("http://127.0.0.1:{port}/api/v1/query?query={encoded}");
        let deadline = Instant::now() + Duration::from_secs(45);
        let mut up = None;
        while Instant::now() < deadline && up.is_none() {
            if let Ok(Some(_)) = prom.try_wait() {
                break; // the port was taken meanwhile: another attempt
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            let Ok(r) = http.get(&query).send().await else {
                continue;
            };
            let Ok(v) = r.json::<serde_json::Value>().await else {
                continue;
            };
            if v["data"]["result"][0]["value"][1] == "1" {
                up = Some(());
            }
        }
        let _ = prom.kill();
        let _ = prom.wait();
        if up.is_some() {
            return;
        }
        last_error = std::fs::read_to_string(&log).unwrap_or_default();
    }
    panic!("Prometheus never scraped the agent over TLS with basic auth:\n{last_error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_throttled_while_prometheus_keeps_scraping() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    write_web_config(
        &web,
        &format!("basic_auth_users:\n  prometheus: '{}'\n", hash(PASSWORD)),
    );
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &["--web.config.file", web.to_str().unwrap()],
    );
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/metrics");
    let get = |password: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            http.get(&url)
                .basic_auth("prometheus", Some(password))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(get(PASSWORD.into()).await.status(), 200);
    // 40 different wrong passwords from one address: each costs a bcrypt until the address's
    // budget (a burst of 10, then one a second) is spent, then 429 at once.
    let (mut unauthorized, mut throttled) = (0.0, 0.0);
    for i in 0..40 {
        let r = get(format!("guess-{i}")).await;
        match r.status().as_u16() {
            401 => unauthorized += 1.0,
            429 => {
                assert_eq!(r.headers()["retry-after"], "1");
                throttled += 1.0;
            }
            other => panic!("guess {i}: {other}"),
        }
    }
    // The first, right, password took one of the 10 uncached checks.
    assert!(
        unauthorized >= 9.0 && throttled >= 20.0,
        "{unauthorized} {throttled}"
    );
    // Prometheus, whose password was verified before, is not throttled: a cache hit.
    let r = get(PASSWORD.into()).await;
    assert_eq!(r.status(), 200);
    let samples = parse_exposition(&r.text().await.unwrap());
    let rejected = |reason| {
        sum(
            &samples,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", reason)],
        )
    };
    assert_eq!(rejected("unauthorized"), unauthorized);
    assert_eq!(rejected("auth_throttled"), throttled);
    assert!(!agent.output().contains("guess-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_config_rate_limit_answers_429() {
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.yml");
    write_web_config(&web, "rate_limit:\n  interval: 2s\n  burst: 3\n");
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &["--web.config.file", web.to_str().unwrap()],
    );
    let http = reqwest::Client::new();
    let mut codes = Vec::new();
    for _ in 0..5 {
        let r = http
            .get(format!("http://{addr}/-/healthy"))
            .send()
            .await
            .unwrap();
        codes.push(r.status().as_u16());
    }
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    // The bucket refills one request every 2 s; the scrape that gets through counts them all.
    let mut refused = 2.0;
    let samples = loop {
        let r = http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .unwrap();
        if r.status() == 200 {
            break parse_exposition(&r.text().await.unwrap());
        }
        assert_eq!(r.status(), 429);
        refused += 1.0;
        assert!(refused < 50.0, "the rate limit never let a scrape through");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        sum(
            &samples,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", "rate_limited")]
        ),
        refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_finishes_the_tls_handshake_is_dropped() {
    let pki = pki();
    let web = pki.path("web.yml");
    write_web_config(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
    );
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (_agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &[
            "--web.config.file",
            web.to_str().unwrap(),
            "--web.read-header-timeout",
            "1s",
        ],
    );
    use tokio::io::AsyncReadExt;
    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let t = Instant::now();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), silent.read_to_end(&mut buf))
        .await
        .expect("closed by the server")
        .ok();
    assert!(buf.is_empty());
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    let samples = parse_exposition(
        &pki.client(None)
            .get(format!("https://{addr}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(
        sum(
            &samples,
            "itniotech_exporter_http_connections_dropped_total",
            &[("reason", "tls_handshake_timeout")]
        ),
        1.0
    );
}

/// The proxy's address from the agent's "capture proxy listening" log line.
fn proxy_addr(proc: &Proc) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = proc.output();
        if let Some(addr) = out
            .lines()
            .filter(|l| l.contains("capture proxy listening"))
            .find_map(common::find_loopback_addr)
        {
            return addr;
        }
        assert!(Instant::now() < deadline, "no proxy line:\n{out}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_proxy_takes_tls_and_basic_auth_from_the_web_config() {
    use itniotech_exporter::api::sign::sign;
    let pki = pki();
    let web = pki.path("web.yml");
    write_web_config(
        &web,
        &format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             basic_auth_users:\n  prometheus: '{}'\n",
            hash(PASSWORD)
        ),
    );
    let store = tempfile::tempdir().unwrap();
    let (_sim, sim) = spawn_sim();
    let (agent, addr) = spawn_agent(
        &sim,
        store.path(),
        &[
            "--web.config.file",
            web.to_str().unwrap(),
            "--proxy.listen-address",
            "127.0.0.1:0",
        ],
    );
    let proxy = proxy_addr(&agent);
    assert!(agent.output().contains("tls=true"));
    let https = pki.client(None);
    // An app's own signed call, sent to the proxy instead of the vendor.
    let balance = |password: Option<&str>| {
        let ts = itniotech_exporter::clock::system().now().timestamp();
        let mut req = https
            .get(format!("https://{proxy}/sms/getBalance"))
            .header("Api-Key", DEMO_API_KEY)
            .header("Timestamp", ts.to_string())
            .header("Sign", sign(DEMO_API_KEY, DEMO_API_SECRET, ts));
        if let Some(p) = password {
            req = req.basic_auth("prometheus", Some(p));
        }
        req.send()
    };
    let r = balance(Some(PASSWORD)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "0", "the simulator's answer: {body}");
    for password in [None, Some("wrong")] {
        let r = balance(password).await.unwrap();
        assert_eq!(r.status(), 401, "{password:?}");
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"itniotech-exporter\""
        );
    }
    // Plain HTTP on the proxy's TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://{proxy}/sms/getBalance"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    let samples = scrape_with(&https, &format!("https://{addr}/metrics")).await;
    // Only the authenticated call reached the vendor.
    assert_eq!(
        sum(
            &samples,
            "itniotech_exporter_proxy_request_duration_seconds_count",
            &[]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "itniotech_exporter_http_requests_rejected_total",
            &[("reason", "unauthorized")]
        ),
        2.0
    );
    assert!(
        sum(
            &samples,
            "itniotech_exporter_http_connections_dropped_total",
            &[("reason", "tls_handshake_error")]
        ) >= 1.0
    );
}
