//! The `itniotech-exporter` binary: parses flags and hands over to the library. Errors become one
//! line on stderr; configuration and credential errors exit with 2.

#![forbid(unsafe_code)]

use clap::Parser;
use itniotech_exporter::agent::Agent;
use itniotech_exporter::api::Credentials;
use itniotech_exporter::clock;
use itniotech_exporter::config::{self, Cli, Command, Config, ConfigError, RunArgs, SimulateArgs};
use itniotech_exporter::demo::{self, DemoError};
use itniotech_exporter::simulator::{self, DEMO_API_KEY, DEMO_API_SECRET};
use std::process::ExitCode;

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
            let config_error = e.downcast_ref::<ConfigError>().is_some()
                || matches!(e.downcast_ref::<DemoError>(), Some(DemoError::Config(_)));
            if config_error {
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
        Command::Demo(args) => Ok(demo::run(args, shutdown_signal()).await?),
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
    let agent = Agent::build(cfg, creds, clock::system())?;
    let listeners = agent.bind().await?;
    let addr = listeners.web.local_addr()?;
    tracing::info!(address = %addr, version = itniotech_exporter::agent::VERSION, "listening");
    agent.run(listeners, shutdown_signal()).await?;
    Ok(())
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    config::init_tracing(&Config::default().log)?;
    let key = std::env::var(config::ENV_API_KEY).unwrap_or_else(|_| DEMO_API_KEY.into());
    let secret = std::env::var(config::ENV_API_SECRET).unwrap_or_else(|_| DEMO_API_SECRET.into());
    let cfg = args.sim.to_config(key, secret)?;
    Ok(simulator::run_standalone(args.listen_address, cfg).await?)
}
