//! The `itniotech-exporter` binary: parses flags, sets up logging, and hands over to the
//! library. Errors become one line on stderr; configuration and credential errors exit with 2.

use anyhow::Context;
use clap::Parser;
use itniotech_exporter::agent::Agent;
use itniotech_exporter::api::{
    Client, ClientConfig, Credentials, NoopObserver, OtpSender, RetryPolicy,
};
use itniotech_exporter::clock;
use itniotech_exporter::config::{
    self, Cli, Command, Config, ConfigError, DemoArgs, RunArgs, SimulateArgs,
};
use itniotech_exporter::demo::{TrafficConfig, TrafficGenerator};
use itniotech_exporter::simulator::{
    self, Scenario, SimConfig, Simulator, DEMO_API_KEY, DEMO_API_SECRET,
};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<ConfigError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Demo(args) => demo(args).await,
        Command::Simulate(args) => simulate(args).await,
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let cfg = Config::from_args(&args.agent)?;
    config::init_tracing(&cfg.log)?;
    let secrets = config::load_secrets(&args.agent, &|k| std::env::var(k).ok())?;
    let creds = Credentials::new(secrets.api_key.clone(), secrets.api_secret.clone());
    let listen = cfg.web.listen_address;
    let agent = Agent::build(cfg, creds, clock::system())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(address = %addr, version = itniotech_exporter::agent::VERSION, "listening");
    agent.run(listener, shutdown_signal()).await?;
    Ok(())
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    config::init_tracing(&Config::default().log)?;
    let key = std::env::var(config::ENV_API_KEY).unwrap_or_else(|_| DEMO_API_KEY.into());
    let secret = std::env::var(config::ENV_API_SECRET).unwrap_or_else(|_| DEMO_API_SECRET.into());
    let cfg = args.sim.to_config(key, secret)?;
    Ok(simulator::run_standalone(args.listen_address, cfg).await?)
}

/// The address to reach a listener on from this machine.
fn local_url(addr: SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        addr.ip()
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let mut cfg = Config::from_args(&args.agent)?;
    config::init_tracing(&cfg.log)?;
    // The demo lives on loopback unless told otherwise.
    if args.agent.listen_address.is_none() {
        cfg.web.listen_address = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            cfg.web.listen_address.port(),
        );
    }
    // A fresh store per demo: the simulator's orders do not outlive the process either.
    let temp_store = args.agent.storage_path.is_none().then(|| {
        std::env::temp_dir().join(format!("itniotech-exporter-demo-{}", std::process::id()))
    });
    if let Some(dir) = &temp_store {
        cfg.storage.path = dir.clone();
    }
    // The simulator is local: allow the agent more calls per second than the real API default.
    if args.agent.max_rps.is_none() {
        cfg.api.max_rps = cfg.api.max_rps.max(200.0);
    }
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
            ..SimConfig::default()
        },
        clock::system(),
    );
    let sim_listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let sim_url = local_url(sim_listener.local_addr()?);
    tokio::spawn(sim.clone().serve(sim_listener));
    cfg.api.base_url = sim_url.clone();

    let listen = cfg.web.listen_address;
    let telemetry = cfg.web.telemetry_path.clone();
    let agent = Agent::build(
        cfg,
        Credentials::new(DEMO_API_KEY, DEMO_API_SECRET),
        clock::system(),
    )?;
    let intake_token = agent.intake_token();
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    let url = local_url(addr);
    tracing::info!(address = %addr, "listening");
    println!(
        "itniotech-exporter demo (scenario {scenario}, {} orders/s, seed {})",
        args.rate, args.seed
    );
    println!("  metrics:    {url}{telemetry}");
    println!("  landing:    {url}/");
    println!("  intake:     {url}/api/v1/orders");
    println!("  simulator:  {sim_url}  (api key {DEMO_API_KEY}, secret {DEMO_API_SECRET})");
    println!("Press Ctrl-C to stop.");

    let gen = TrafficGenerator {
        // The generator plays the customer's backend: no rate limit of its own.
        sender: OtpSender::new(Client::new(
            ClientConfig {
                base_url: sim_url,
                timeout: Duration::from_secs(10),
                max_rps: None,
                retry: RetryPolicy::new(4),
            },
            Credentials::new(DEMO_API_KEY, DEMO_API_SECRET),
            clock::system(),
            Arc::new(NoopObserver),
        )?),
        simulator: sim,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?,
        cfg: TrafficConfig {
            rate: args.rate,
            scenario,
            seed: args.seed,
            intake_url: format!("{url}/api/v1/orders"),
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
                    _ = shutdown_signal() => {},
                    _ = tokio::time::sleep(d) => tracing::info!("demo duration reached"),
                }
            }
            None => shutdown_signal().await,
        }
        let _ = stop_tx.send(true);
    };
    let result = agent.run(listener, stop).await;
    if let Ok(stats) = traffic.await {
        println!(
            "demo: {} OTPs sent ({} send errors), {} orders posted, {} codes verified",
            stats.sent, stats.send_errors, stats.posted, stats.verifies
        );
    }
    if let Some(dir) = temp_store {
        let _ = std::fs::remove_dir_all(dir);
    }
    result?;
    Ok(())
}
