//! The `demo` command: the simulator, a traffic generator and the agent, wired on loopback.
//!
//! The traffic generator plays the customer's backend and its end users: it sends OTPs through
//! the simulator with `sendRule` (across the preset flows and countries, weighted by the
//! scenario), tells the agent about each order through the real intake over HTTP, and sends the
//! codes the simulated users type through `verify`. Everything goes over loopback HTTP exactly as
//! a real deployment would, so the demo exercises the whole product.

use crate::agent::{Agent, AgentError};
use crate::api::{
    ApiError, Client, ClientConfig, Credentials, NoopObserver, OtpSender, RetryPolicy, SendRequest,
};
use crate::clock;
use crate::config::{Config, ConfigError, DemoArgs};
use crate::server::INTAKE_PATH;
use crate::simulator::{
    random_receiver, Scenario, SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error("building the traffic generator's client: {0}")]
    Client(#[from] ApiError),
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DemoError {
    let what = what.into();
    move |error| DemoError::Io { what, error }
}

/// The demo's defaults, under the config file and the flags: loopback only, a store of its own
/// that dies with the process, and an API budget fit for a local simulator.
pub fn demo_defaults() -> Config {
    let mut cfg = Config::default();
    cfg.web.listen_address = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        cfg.web.listen_address.port(),
    );
    cfg.storage.path = temp_store();
    cfg.api.max_rps = "200".parse().expect("a valid rate");
    cfg
}

fn temp_store() -> PathBuf {
    std::env::temp_dir().join(format!("itniotech-exporter-demo-{}", std::process::id()))
}

/// The simulated account's opening balance: about three weeks of the demo's spend (~0.03 USD
/// an order), as a real account holds. The simulator's own 5 000 USD would last the default
/// 5 orders/s some ten hours, and `ItniotechBalanceRunwayLow` would rightly page a `normal` demo.
fn demo_opening_balance(orders_per_second: f64) -> rust_decimal::Decimal {
    const PER_ORDER_PER_SECOND: f64 = 50_000.0;
    let usd = (orders_per_second.clamp(0.01, 1000.0) * PER_ORDER_PER_SECOND).round();
    rust_decimal::Decimal::from(usd as i64).max(rust_decimal::Decimal::from(5000))
}

/// The address to reach a listener on from this machine.
fn local_url(addr: SocketAddr) -> String {
    local_url_scheme(addr, "http")
}

fn local_url_scheme(addr: SocketAddr, scheme: &str) -> String {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// Runs the simulator, the traffic generator and the agent until `shutdown` resolves or the
/// demo's duration passes; prints where to look, and a summary at the end.
pub async fn run(
    args: DemoArgs,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DemoError> {
    let mut cfg = Config::from_args_over(demo_defaults(), &args.agent)?;
    crate::config::init_tracing(&cfg.log)?;
    let scenario: Scenario = match &args.scenario {
        Some(s) => s.parse().map_err(|e| ConfigError::Invalid {
            key: "scenario",
            message: format!("{e}"),
        })?,
        None => Scenario::Normal,
    };
    let sim = Simulator::new(
        SimConfig {
            seed: args.seed,
            scenario,
            virtual_users: false,
            initial_balance: demo_opening_balance(args.rate),
            ..SimConfig::default()
        },
        clock::system(),
    );
    let sim_listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(io("listening for the simulator"))?;
    let sim_addr = sim_listener
        .local_addr()
        .map_err(io("the simulator's address"))?;
    let sim_url = local_url(sim_addr);
    tokio::spawn(sim.clone().serve(sim_listener));
    cfg.api.base_url = sim_url.parse().map_err(|message| ConfigError::Invalid {
        key: "api.base_url",
        message,
    })?;

    if args.via_proxy && cfg.proxy.listen_address.is_none() {
        cfg.proxy.listen_address = Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0));
    }
    let temp_store = (cfg.storage.path == temp_store()).then(|| cfg.storage.path.clone());
    let telemetry = cfg.web.telemetry_path.clone();
    let agent = Agent::build(
        cfg,
        Credentials::new(DEMO_API_KEY, DEMO_API_SECRET),
        clock::system(),
    )?;
    let intake_token = agent.intake_token();
    let tls = agent.tls();
    let scheme = if tls { "https" } else { "http" };
    let listeners = agent.bind().await?;
    let addr = listeners
        .web
        .local_addr()
        .map_err(io("the agent's address"))?;
    let url = local_url_scheme(addr, scheme);
    tracing::info!(address = %addr, tls, "listening");
    let proxy_url = match &listeners.proxy {
        Some(l) => Some(local_url_scheme(
            l.local_addr().map_err(io("the proxy's address"))?,
            scheme,
        )),
        None => None,
    };
    println!(
        "itniotech-exporter demo (scenario {scenario}, {} orders/s, seed {})",
        args.rate, args.seed
    );
    println!("  metrics:    {url}{telemetry}");
    println!("  landing:    {url}/");
    println!("  intake:     {url}{INTAKE_PATH}");
    println!("  simulator:  {sim_url}  (api key {DEMO_API_KEY}, secret {DEMO_API_SECRET})");
    if let Some(p) = &proxy_url {
        println!("  proxy:      {p}  (the itniotech API through the agent)");
    }
    println!("Press Ctrl-C to stop.");
    // Via the proxy, the generator calls the vendor through the agent and posts nothing: the
    // proxy captures every order on the send path.
    let (api_url, intake_url) = match (&proxy_url, args.via_proxy) {
        (Some(p), true) => (p.clone(), None),
        _ => (sim_url.clone(), Some(format!("{url}{INTAKE_PATH}"))),
    };

    let gen = TrafficGenerator {
        // The generator plays the customer's backend: no rate limit of its own.
        sender: OtpSender::new(Client::new(
            ClientConfig {
                base_url: api_url,
                timeout: Duration::from_secs(10),
                max_rps: None,
                retry: RetryPolicy::new(4),
            },
            Credentials::new(DEMO_API_KEY, DEMO_API_SECRET),
            clock::system(),
            Arc::new(NoopObserver),
        )?),
        simulator: sim,
        // The generator talks to its own agent on this machine: with TLS on (a web config
        // given to the demo), it does not check the agent's certificate, which may name
        // another host. It posts with the intake token when one is set.
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .tls_danger_accept_invalid_certs(tls)
            .build()
            .map_err(|e| DemoError::Io {
                what: "building the intake client".into(),
                error: std::io::Error::other(e),
            })?,
        cfg: TrafficConfig {
            rate: args.rate,
            max_orders: args.orders,
            scenario,
            seed: args.seed,
            intake_url,
            intake_token,
        },
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wait = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let traffic = tokio::spawn(gen.run(wait(stop_rx.clone())));
    let duration = args.duration;
    let stop = async move {
        match duration {
            Some(d) => {
                tokio::select! {
                    _ = shutdown => {},
                    _ = tokio::time::sleep(d) => tracing::info!("demo duration reached"),
                }
            }
            None => shutdown.await,
        }
        let _ = stop_tx.send(true);
    };
    let result = agent.run(listeners, stop).await;
    if let Ok(stats) = traffic.await {
        println!(
            "demo: {} OTPs sent ({} send errors), {} orders posted, {} codes verified",
            stats.sent, stats.send_errors, stats.posted, stats.verifies
        );
    }
    if let Some(dir) = temp_store {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(result?)
}

/// Traffic generator settings.
#[derive(Clone, Debug)]
pub struct TrafficConfig {
    /// New OTP orders per second.
    pub rate: f64,
    /// Stop sending after this many orders (users still verify); unbounded when `None`.
    pub max_orders: Option<u64>,
    pub scenario: Scenario,
    pub seed: u64,
    /// The agent's intake URL, e.g. `http://127.0.0.1:9867/api/v1/orders`; `None` when the
    /// agent learns the orders through its capture proxy.
    pub intake_url: Option<String>,
    pub intake_token: Option<String>,
}

/// Apps the demo sends for, with their share of traffic.
const APPS: &[(&str, f64)] = &[("demo_login", 0.7), ("demo_payment", 0.3)];
/// (flow id, share); `None` sends a single attempt without a flow.
const FLOWS: &[(Option<i64>, f64)] = &[
    (None, 0.25),
    (Some(1), 0.2),
    (Some(2), 0.25),
    (Some(3), 0.15),
    (Some(4), 0.15),
];

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

/// Counters of what the generator did, for the demo's closing line and tests.
#[derive(Clone, Debug, Default)]
pub struct TrafficStats {
    pub sent: u64,
    pub send_errors: u64,
    pub posted: u64,
    pub post_errors: u64,
    pub verifies: u64,
}

pub struct TrafficGenerator {
    pub sender: OtpSender,
    pub simulator: Simulator,
    pub http: reqwest::Client,
    pub cfg: TrafficConfig,
}

impl TrafficGenerator {
    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> TrafficStats {
        tokio::pin!(shutdown);
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ 0x5eed_7aff_1c00_0000);
        let mix = self.cfg.scenario.traffic_mix();
        let period = Duration::from_secs_f64(1.0 / self.cfg.rate.clamp(0.01, 1000.0));
        let mut send_tick = tokio::time::interval(period);
        send_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut user_tick = tokio::time::interval(Duration::from_millis(500));
        let mut stats = TrafficStats::default();
        let mut seq: u64 = 0;
        loop {
            tokio::select! {
                _ = &mut shutdown => return stats,
                _ = send_tick.tick(), if self.cfg.max_orders.is_none_or(|max| seq < max) => {
                    seq += 1;
                    let app = *pick(&mut rng, APPS);
                    let flow = *pick(&mut rng, FLOWS);
                    let country = *pick(&mut rng, &mix);
                    let to = random_receiver(country, &mut rng);
                    // Voice-only OTPs exist too: they show call metrics within seconds.
                    let channel = match flow {
                        None if rng.random_bool(0.3) => "call",
                        _ => "sms",
                    };
                    let code = format!("{:06}", rng.random_range(0..1_000_000));
                    let order_id = format!("demo-{}-{seq}", self.cfg.seed);
                    let by_verification_id = flow.is_none() && rng.random_bool(0.1);
                    let req = SendRequest {
                        app_id: app.to_string(),
                        template_id: None,
                        flow_id: flow,
                        to,
                        channel: Some(channel.to_string()),
                        order_id: Some(order_id.clone()),
                        code: Some(code),
                    };
                    match self.sender.send_rule(&req).await {
                        Ok(sent) => {
                            stats.sent += 1;
                            let item = if by_verification_id {
                                serde_json::json!({"verificationId": sent.verification_id})
                            } else {
                                serde_json::json!({"appId": app, "orderId": order_id, "flowId": flow})
                            };
                            match &self.cfg.intake_url {
                                None => {}
                                Some(url) if self.post(url, &item).await => stats.posted += 1,
                                Some(_) => stats.post_errors += 1,
                            }
                        }
                        Err(e) => {
                            stats.send_errors += 1;
                            tracing::debug!(status = %e.status_label(), "demo send failed");
                        }
                    }
                }
                _ = user_tick.tick() => {
                    for action in self.simulator.take_user_actions() {
                        if self.sender.verify(&action.verification_id, &action.code).await.is_ok() {
                            stats.verifies += 1;
                        }
                    }
                }
            }
        }
    }

    async fn post(&self, url: &str, item: &serde_json::Value) -> bool {
        let mut req = self.http.post(url).json(item);
        if let Some(t) = &self.cfg.intake_token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), "intake refused a demo order");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "posting a demo order to the intake failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn opening_balance_lasts_the_demo_weeks() {
        use rust_decimal::Decimal;
        // The default rate spends ~540 USD an hour: 250 000 is about 19 days of it.
        assert_eq!(super::demo_opening_balance(5.0), Decimal::from(250_000));
        assert_eq!(super::demo_opening_balance(0.5), Decimal::from(25_000));
        // Never under the simulator's own default.
        assert_eq!(super::demo_opening_balance(0.01), Decimal::from(5000));
    }

    use super::*;

    #[test]
    fn weighted_pick_covers_every_item_and_respects_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0usize; 5];
        for _ in 0..10_000 {
            let f = *pick(&mut rng, FLOWS);
            let i = FLOWS.iter().position(|(x, _)| *x == f).unwrap();
            counts[i] += 1;
        }
        assert!(counts.iter().all(|c| *c > 1000), "{counts:?}");
        assert!((2200..2800).contains(&counts[0]), "{counts:?}");
    }
}
