//! The slow-client attack of issue 7, on the real binary: how long `/metrics` and an intake POST
//! take while outsiders hold idle connections and trickle request bodies, and how long SIGTERM
//! takes with them attached.
//!
//! Method (docs/performance.md, "Under a slow-client attack"): start `demo` on loopback (its
//! simulator and traffic generator keep the agent busy like a real one), measure `samples`
//! GET `/metrics` and intake POSTs (a fresh connection each, one after the other) with no
//! attack, then open `idle` TCP connections that never send a byte and `slow` uploads that send
//! a POST head announcing 1 MB and then one body byte per second, wait a second, and measure
//! again. Last, SIGTERM with the attack attached, timed until the process exits.
//!
//! Environment: `ATTACK_BINARY` (another build to measure, e.g. the previous release; default
//! the one cargo built), `ATTACK_IDLE` (300), `ATTACK_SLOW` (50), `ATTACK_SAMPLES` (20),
//! `ATTACK_TOKEN=1` (protect the intake with a token; legitimate POSTs send it, the attackers
//! do not), `ATTACK_SLOW_AUTH=1` (the slow uploads send the token too: a misbehaving insider).
//! Without `--bench` (`cargo test --benches`) it runs a small smoke version.

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const TOKEN: &str = "bench-intake-token";

struct Settings {
    binary: std::path::PathBuf,
    idle: usize,
    slow: usize,
    samples: usize,
    token: bool,
    slow_auth: bool,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v == "true")
}

/// Latencies (ms) and status codes (0 = no answer within the client timeout) of one series.
#[derive(Default)]
struct Series {
    ms: Vec<f64>,
    codes: std::collections::BTreeMap<u16, usize>,
}

impl Series {
    fn record(&mut self, started: Instant, code: u16) {
        self.ms.push(started.elapsed().as_secs_f64() * 1000.0);
        *self.codes.entry(code).or_default() += 1;
    }
    fn quantile(&self, q: f64) -> f64 {
        let mut v = self.ms.clone();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
    fn summary(&self) -> String {
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|(c, n)| {
                if *c == 0 {
                    format!("timeout×{n}")
                } else {
                    format!("{c}×{n}")
                }
            })
            .collect();
        format!(
            "p50 {:>8.1} ms  max {:>8.1} ms  [{}]",
            self.quantile(0.5),
            self.quantile(1.0),
            codes.join(" ")
        )
    }
}

async fn measure(addr: &str, samples: usize, token: bool, seq: &mut u64) -> (Series, Series) {
    // A fresh connection per request, like a scraper or backend that reconnects.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let (mut metrics, mut intake) = (Series::default(), Series::default());
    for _ in 0..samples {
        let t = Instant::now();
        let code = match http.get(format!("http://{addr}/metrics")).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let _ = r.bytes().await;
                status
            }
            Err(_) => 0,
        };
        metrics.record(t, code);
        *seq += 1;
        let mut req = http
            .post(format!("http://{addr}/api/v1/orders"))
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"appId":"bench_app","orderId":"bench-{seq}"}}"#
            ));
        if token {
            req = req.bearer_auth(TOKEN);
        }
        let t = Instant::now();
        let code = match req.send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        intake.record(t, code);
    }
    (metrics, intake)
}

/// Holds `idle` silent connections and `slow` trickling uploads until dropped; counts how many
/// the server has closed.
struct Attack {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Attack {
    async fn start(addr: &str, idle: usize, slow: usize, auth: bool) -> Attack {
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..idle + slow {
            let addr = addr.to_owned();
            let closed = closed.clone();
            let Ok(mut stream) = TcpStream::connect(&addr).await else {
                closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                continue;
            };
            let is_slow = i >= idle;
            tasks.push(tokio::spawn(async move {
                if is_slow {
                    let auth = if auth {
                        format!("Authorization: Bearer {TOKEN}\r\n")
                    } else {
                        String::new()
                    };
                    let head = format!(
                        "POST /api/v1/orders HTTP/1.1\r\nHost: {addr}\r\n{auth}\
                         Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n["
                    );
                    if stream.write_all(head.as_bytes()).await.is_err() {
                        closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return;
                    }
                    loop {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        if stream.write_all(b" ").await.is_err() {
                            closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            return;
                        }
                    }
                } else {
                    let mut buf = [0u8; 64];
                    use tokio::io::AsyncReadExt;
                    // Returns when the server closes the connection.
                    let _ = stream.read(&mut buf).await;
                    closed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    std::future::pending::<()>().await;
                }
            }));
        }
        Attack { tasks, closed }
    }

    fn closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (idle, slow, samples) = if full { (300, 50, 20) } else { (10, 5, 2) };
    let s = Settings {
        binary: std::env::var_os("ATTACK_BINARY")
            .map(Into::into)
            .unwrap_or_else(common::binary),
        idle: env_usize("ATTACK_IDLE", idle),
        slow: env_usize("ATTACK_SLOW", slow),
        samples: env_usize("ATTACK_SAMPLES", samples),
        token: env_flag("ATTACK_TOKEN"),
        slow_auth: env_flag("ATTACK_SLOW_AUTH"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = tempfile::tempdir().unwrap();
    let mut token_file = tempfile::NamedTempFile::new().unwrap();
    token_file.write_all(TOKEN.as_bytes()).unwrap();
    let mut args = vec![
        "demo".to_owned(),
        "--web.listen-address=127.0.0.1:0".into(),
        format!("--storage.path={}", store.path().display()),
        "--demo.rate=5".into(),
    ];
    if s.token {
        args.push(format!(
            "--intake.token-file={}",
            token_file.path().display()
        ));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (mut proc, addr) = common::spawn_binary(&s.binary, &args, &[]);
    println!(
        "slow-client attack on {} ({} idle + {} slow uploads{}{}), {} samples each",
        s.binary.display(),
        s.idle,
        s.slow,
        if s.token { ", intake token set" } else { "" },
        if s.slow_auth {
            ", slow uploads authenticated"
        } else {
            ""
        },
        s.samples
    );
    rt.block_on(async {
        let mut seq = 0;
        let (m, i) = measure(&addr, s.samples, s.token, &mut seq).await;
        println!("quiet      /metrics {}", m.summary());
        println!("quiet      intake   {}", i.summary());
        let attack = Attack::start(&addr, s.idle, s.slow, s.slow_auth).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (m2, i2) = measure(&addr, s.samples, s.token, &mut seq).await;
        println!("attacked   /metrics {}", m2.summary());
        println!("attacked   intake   {}", i2.summary());
        println!(
            "ratio attacked/quiet p50: /metrics {:.1}×, intake {:.1}×; attack connections closed by the server so far: {}",
            m2.quantile(0.5) / m.quantile(0.5),
            i2.quantile(0.5) / i.quantile(0.5),
            attack.closed()
        );
        // SIGTERM with the attack still attached.
        let t = Instant::now();
        let pid = proc.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let exited = loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                break Some(status);
            }
            if t.elapsed() > Duration::from_secs(60) {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        match exited {
            Some(status) => println!(
                "SIGTERM with the attack attached: exited in {:.2} s ({status})",
                t.elapsed().as_secs_f64()
            ),
            None => println!("SIGTERM with the attack attached: still running after 60 s"),
        }
        drop(attack);
    });
}
