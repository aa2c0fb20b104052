//! Configuration: the command line, the optional TOML file, and the one typed [`Config`] built
//! from them (flags > file > defaults), plus secrets and logging setup.
//!
//! Every setting is one row of the table below: its type (a validated type from [`types`]),
//! its default, its flag, its bounds and its doc. The table generates the config structs, their
//! `Default`, the flags (whose help shows the default), the config-file keys, and the merge that
//! validates each value, so a setting cannot drift between those places.
//!
//! The file has the same settings as the flags, grouped in sections named like the flags'
//! prefixes. Durations are humantime strings (`"15s"`, `"5m"`, `"2h"`). Unknown keys are errors,
//! so a typo never silently falls back to a default:
//!
//! ```toml
//! [web]
//! listen_address = "0.0.0.0:9867"
//! [api]
//! max_rps = 10.0
//! timeout = "10s"
//! [tracking]
//! max_age = "2h"
//! [log]
//! format = "json"
//! ```
//!
//! Secrets never come from flags or the file (see [`secrets`]).

mod secrets;
pub(crate) mod table;
pub mod types;

pub use secrets::{load_secrets, read_token_file, Secrets};
pub use types::{
    BaseUrl, Currency, HumanDuration, LogFormat, LogLevel, Rps, SamplingRatio, TelemetryPath,
};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use table::{setting_default, setting_default_text, setting_type, setting_value, settings};

/// The exporter's one fixed, documented default port (in the style of Prometheus' default port
/// allocations). The table's `web.listen_address` default carries it.
pub const DEFAULT_PORT: u16 = 9867;
/// Environment variable holding the API key.
pub const ENV_API_KEY: &str = "ITNIOTECH_API_KEY";
/// Environment variable holding the API secret.
pub const ENV_API_SECRET: &str = "ITNIOTECH_API_SECRET";

settings! {
    /// HTTP server: metrics, probes, intake.
    web: WebConfig, WebArgs, WebFile {
        /// Address to listen on for metrics, probes and intake
        listen_address: SocketAddr = "0.0.0.0:9867", "web.listen-address", "ADDR";
        /// Path under which to expose metrics
        telemetry_path: TelemetryPath = "/metrics", "web.telemetry-path", "PATH";
    }
    /// The vendor API client.
    api: ApiConfig, ApiArgs, ApiFile {
        /// Base URL of the itniotech API
        base_url: BaseUrl = "https://api.itniotech.com", "api.base-url", "URL";
        /// Maximum API requests per second
        max_rps: Rps = "10", "api.max-rps", "RPS", "0.01" ..= "1000";
        /// Timeout of one API request attempt
        timeout: HumanDuration = "10s", "api.timeout", "DURATION", "100ms" ..= "5m";
        /// Account currency, the `currency` label of cost and balance metrics
        currency: Currency = "USD", "api.currency", "CODE";
        /// Maximum API requests in flight
        concurrency: usize = "8", "api.concurrency", "N", "1" ..= "256";
        /// Attempts per API call for transient failures, the first included
        max_attempts: u32 = "4", "api.max-attempts", "N", "1" ..= "10";
    }
    /// The durable order store.
    storage: StorageConfig, StorageArgs, StorageFile {
        /// Directory of the durable order store
        path: PathBuf = "./data", "storage.path", "DIR";
    }
    /// When order records are polled.
    poll: PollConfig, PollArgs, PollFile {
        /// Delay from intake to an order's first poll
        first_delay: HumanDuration = "5s", "poll.first-delay", "DURATION", "100ms" ..= "1h";
        /// Re-poll interval while an attempt is in progress
        interval: HumanDuration = "15s", "poll.interval", "DURATION", "1s" ..= "1h";
        /// Slack after a flow step or verification window is due, before polling
        grace: HumanDuration = "5s", "poll.grace", "DURATION", "0s" ..= "10m";
    }
    /// How long orders are tracked.
    tracking: TrackingConfig, TrackingArgs, TrackingFile {
        /// How long after the last attempt a code may still be verified
        verify_window: HumanDuration = "5m", "tracking.verify-window", "DURATION", "10s" ..= "1day";
        /// Age at which an order stops being tracked and counts as unresolved
        max_age: HumanDuration = "2h", "tracking.max-age", "DURATION", "1m" ..= "7days";
        /// Polls that may find no record before the order counts as not found
        not_found_retries: u32 = "3", "tracking.not-found-retries", "N", "0" ..= "20";
    }
    /// The flow catalog poller (`flow/list`).
    flows: FlowsConfig, FlowsArgs, FlowsFile {
        /// Interval between flow catalog refreshes
        refresh_interval: HumanDuration = "5m", "flows.refresh-interval", "DURATION", "10s" ..= "1day";
    }
    /// The balance poller (`sms/getBalance`).
    balance: BalanceConfig, BalanceArgs, BalanceFile {
        /// Interval between balance refreshes
        refresh_interval: HumanDuration = "1m", "balance.refresh-interval", "DURATION", "10s" ..= "1day";
    }
    /// Which share of orders is tracked.
    sampling: SamplingConfig, SamplingArgs, SamplingFile {
        /// Share of orders to track, 0 < ratio <= 1
        ratio: SamplingRatio = "1", "sampling.ratio", "RATIO";
    }
    /// Intake limits and authentication.
    intake: IntakeConfig, IntakeArgs, IntakeFile {
        /// File holding the bearer token required by the intake; no token when absent
        token_file: PathBuf = None, "intake.token-file", "PATH";
        /// Largest intake request body in bytes
        max_body_bytes: usize = "1048576", "intake.max-body-bytes", "BYTES", "1024" ..= "67108864";
        /// Most orders in one intake request
        max_items: usize = "10000", "intake.max-items", "N", "1" ..= "100000";
    }
    /// The capture proxy: apps point their itniotech base URL here instead of at the vendor.
    proxy: ProxyConfig, ProxyArgs, ProxyFile {
        /// Address of the capture proxy (e.g. 0.0.0.0:9869); no proxy when absent
        listen_address: SocketAddr = None, "proxy.listen-address", "ADDR";
        /// Timeout of one request forwarded to the vendor
        timeout: HumanDuration = "30s", "proxy.timeout", "DURATION", "1s" ..= "5m";
    }
    /// Logging.
    log: LogConfig, LogArgs, LogFile {
        /// Log level or tracing filter directives (e.g. info,itniotech_exporter=debug)
        level: LogLevel = "info", "log.level", "LEVEL";
        /// Log format: logfmt or json
        format: LogFormat = "logfmt", "log.format", "FORMAT";
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why the configuration, the secrets or logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {error}", .path.display())]
    ReadFile {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("invalid config file {}: {message}", .path.display())]
    ParseFile { path: PathBuf, message: String },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
    #[error(
        "missing API credentials: set {ENV_API_KEY} and {ENV_API_SECRET} in the environment, \
         or pass --api.key-file and --api.secret-file"
    )]
    MissingCredentials,
    #[error("cannot read {what} file {}: {error}", .path.display())]
    ReadSecret {
        what: &'static str,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{what} is empty{}", .path.as_ref().map(|p| format!(" (file {})", p.display())).unwrap_or_default())]
    EmptySecret {
        what: &'static str,
        path: Option<PathBuf>,
    },
    #[error("cannot set up logging: {0}")]
    Tracing(String),
}

// ---------------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------------

/// Prometheus exporter and monitoring agent for the itniotech OTP platform.
#[derive(Debug, clap::Parser)]
#[command(name = "itniotech-exporter", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Watch OTP delivery on the real itniotech API (needs credentials).
    Run(RunArgs),
    /// Run the agent against an embedded simulator with generated traffic (no credentials).
    Demo(DemoArgs),
    /// Run only the simulator of the itniotech API, for your own test setups.
    Simulate(SimulateArgs),
}

/// Flags of `simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on; port 0 picks a free port (printed at start).
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = "127.0.0.1:9868"
    )]
    pub listen_address: SocketAddr,
    #[command(flatten)]
    pub sim: crate::simulator::SimArgs,
}

/// Flags of `run`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// Flags of `demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Generated orders per second.
    #[arg(long = "demo.rate", value_name = "PER_SECOND", default_value_t = 5.0)]
    pub rate: f64,
    /// Traffic scenario of the simulator; the simulator's default when absent.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenario: Option<String>,
    /// Seed of the traffic generator and simulator, for reproducible runs.
    #[arg(long = "seed", default_value_t = 1)]
    pub seed: u64,
    /// Stop after this long (e.g. "10m"); run until interrupted when absent.
    #[arg(long = "demo.duration", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stop sending after this many OTPs (the agent keeps tracking them); no limit when absent.
    #[arg(long = "demo.orders", value_name = "N")]
    pub orders: Option<u64>,
    /// Send the OTPs through the agent's capture proxy instead of posting each order to the
    /// intake (opens the proxy on a free loopback port unless --proxy.listen-address is given).
    #[arg(long = "demo.via-proxy")]
    pub via_proxy: bool,
}

/// Flags shared by `run` and `demo`: the config file, every setting, and the secret files.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    /// TOML configuration file; flags override its settings.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    #[command(flatten)]
    pub settings: SettingArgs,
    /// File holding the API key (else the ITNIOTECH_API_KEY environment variable).
    #[arg(long = "api.key-file", value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// File holding the API secret (else the ITNIOTECH_API_SECRET environment variable).
    #[arg(long = "api.secret-file", value_name = "PATH")]
    pub api_secret_file: Option<PathBuf>,
}

impl Config {
    /// Builds the configuration: defaults, then the `--config.file` (when given), then the
    /// flags; then checks the relations between settings.
    pub fn from_args(args: &AgentArgs) -> Result<Config, ConfigError> {
        Self::from_args_over(Config::default(), args)
    }

    /// [`Config::from_args`] over other defaults (the demo's: loopback, a faster API budget).
    pub fn from_args_over(defaults: Config, args: &AgentArgs) -> Result<Config, ConfigError> {
        let file = match &args.config_file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|error| ConfigError::ReadFile {
                        path: path.clone(),
                        error,
                    })?;
                Self::parse_file(path, &text)?
            }
            None => FileConfig::default(),
        };
        let mut config = defaults;
        config.merge(file, &args.settings)?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML config text (`path` only names it in errors) over the defaults.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.merge(Self::parse_file(path, text)?, &SettingArgs::default())?;
        config.validate()?;
        Ok(config)
    }

    fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// The rules between settings (each value alone is valid by its type and bounds).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tracking.verify_window >= self.tracking.max_age {
            return Err(ConfigError::Invalid {
                key: "tracking.max_age",
                message: "must be longer than tracking.verify_window".into(),
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------

/// Install the global `tracing` subscriber: level filter from `log.level`, compact `key=value`
/// lines or JSON on stderr. Fails when a subscriber is already set.
pub fn init_tracing(log: &LogConfig) -> Result<(), ConfigError> {
    let filter = tracing_subscriber::EnvFilter::try_new(log.level.as_str())
        .map_err(|e| ConfigError::Tracing(e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let result = match log.format {
        LogFormat::Logfmt => builder.compact().try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| ConfigError::Tracing(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_within_their_bounds() {
        // Building the default parses every default of the table; merging nothing re-checks
        // each bound.
        let mut c = Config::default();
        c.merge(FileConfig::default(), &SettingArgs::default())
            .unwrap();
        c.validate().unwrap();
        assert_eq!(c.web.listen_address.port(), DEFAULT_PORT);
        assert_eq!(c.intake.max_body_bytes, 1 << 20);
    }

    #[test]
    fn every_setting_has_a_flag_named_like_its_key() {
        for (key, flag) in Config::keys() {
            assert_eq!(key.replace('_', "-"), flag, "{key}");
        }
    }

    #[test]
    fn max_age_must_exceed_the_verify_window() {
        let mut c = Config::default();
        c.tracking.max_age = Duration::from_secs(60).into();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("tracking.max_age"), "{err}");
    }
}
