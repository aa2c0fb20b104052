//! Configuration: the command line, the optional TOML file, and the one typed [`Config`] built
//! from them (flags > file > defaults), plus secrets and logging setup.
//!
//! Secrets never come from flags or the config file: the API key and secret come from the
//! environment (`ITNIOTECH_API_KEY`, `ITNIOTECH_API_SECRET`) or from files named by
//! `--api.key-file` / `--api.secret-file`, and nothing that holds one prints it in `Debug`.
//!
//! The file has the same settings as the flags, grouped in sections, plus a few file-only ones
//! (`api.max_attempts`, `poll.grace`, `tracking.not_found_retries`, `intake.max_body_bytes`,
//! `intake.max_items`). Durations are humantime strings (`"15s"`, `"5m"`, `"2h"`). Unknown keys
//! are errors, so a typo never silently falls back to a default:
//!
//! ```toml
//! [web]
//! listen_address = "0.0.0.0:9867"
//! telemetry_path = "/metrics"
//! [api]
//! base_url = "https://api.itniotech.com"
//! max_rps = 10.0
//! timeout = "10s"
//! [tracking]
//! max_age = "2h"
//! [sampling]
//! ratio = 0.5
//! [log]
//! format = "json"
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::server::RESERVED_PATHS;

/// The exporter's one fixed, documented default port (in the style of Prometheus' default port
/// allocations).
pub const DEFAULT_PORT: u16 = 9867;
/// Default metrics path.
pub const DEFAULT_TELEMETRY_PATH: &str = "/metrics";
/// Default API base URL.
pub const DEFAULT_API_BASE_URL: &str = "https://api.itniotech.com";
/// Environment variable holding the API key.
pub const ENV_API_KEY: &str = "ITNIOTECH_API_KEY";
/// Environment variable holding the API secret.
pub const ENV_API_SECRET: &str = "ITNIOTECH_API_SECRET";

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Why the configuration, the secrets or logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", .path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
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
    #[error("cannot read {what} file {}: {source}", .path.display())]
    ReadSecret {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what} is empty{}", .path.as_ref().map(|p| format!(" (file {})", p.display())).unwrap_or_default())]
    EmptySecret {
        what: &'static str,
        path: Option<PathBuf>,
    },
    #[error("cannot set up logging: {0}")]
    Tracing(String),
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The typed configuration
// ---------------------------------------------------------------------------------------------

/// The whole configuration of the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// HTTP server: metrics, probes, intake.
    pub web: WebConfig,
    /// The vendor API client.
    pub api: ApiConfig,
    /// The durable order store.
    pub storage: StorageConfig,
    /// When order records are polled.
    pub poll: PollConfig,
    /// How long orders are tracked.
    pub tracking: TrackingConfig,
    /// The flow catalog poller (`flow/list`).
    pub flows: RefreshConfig,
    /// The balance poller (`sms/getBalance`).
    pub balance: RefreshConfig,
    /// Which share of orders is tracked.
    pub sampling: SamplingConfig,
    /// Intake limits and authentication.
    pub intake: IntakeConfig,
    /// Logging.
    pub log: LogConfig,
}

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// Address to listen on. Default `0.0.0.0:9867` ([`DEFAULT_PORT`]).
    pub listen_address: SocketAddr,
    /// Path of the metrics route. Default `/metrics`.
    pub telemetry_path: String,
}

/// Vendor API client settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiConfig {
    /// Base URL of the API. Default `https://api.itniotech.com`.
    pub base_url: String,
    /// Maximum requests per second across all endpoints. Default 10.
    pub max_rps: f64,
    /// Timeout of one request attempt. Default 10s.
    pub timeout: Duration,
    /// Account currency, the `currency` label of money metrics. Default `USD`.
    pub currency: String,
    /// Maximum requests in flight. Default 8.
    pub concurrency: usize,
    /// Attempts per request, the first included, for retryable failures. Default 4.
    pub max_attempts: u32,
}

/// Durable store settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    /// Directory of the store. Default `./data`.
    pub path: PathBuf,
}

/// Poll schedule settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    /// Delay from intake to the first poll of an order. Default 5s.
    pub first_delay: Duration,
    /// Re-poll interval while an attempt is in progress. Default 15s.
    pub interval: Duration,
    /// Slack added after a computed moment (fallback step start, window close) before polling.
    /// Default 5s.
    pub grace: Duration,
}

/// Order tracking limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackingConfig {
    /// How long after the last attempt a code may still be verified. Default 5m.
    pub verify_window: Duration,
    /// Orders older than this are finalised as `unresolved`. Default 2h.
    pub max_age: Duration,
    /// Polls that may answer "not found" before the order counts as `not_found`. Default 3.
    pub not_found_retries: u32,
}

/// A periodic refresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshConfig {
    /// Time between refreshes. Default 5m for flows, 1m for the balance.
    pub refresh_interval: Duration,
}

/// Sampling of orders.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Share of orders tracked, `0 < ratio <= 1`. Default 1.0 (all).
    pub ratio: f64,
}

/// Intake settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeConfig {
    /// File holding the bearer token the intake requires; no token when absent.
    pub token_file: Option<PathBuf>,
    /// Largest intake body in bytes. Default 1 MiB.
    pub max_body_bytes: usize,
    /// Most orders in one intake request. Default 10000.
    pub max_items: usize,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Level filter: `error`, `warn`, `info`, `debug`, `trace`, or `tracing` directives such as
    /// `info,itniotech_exporter=debug`. Default `info`.
    pub level: String,
    /// Output format. Default `logfmt`.
    pub format: LogFormat,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Compact `key=value` lines.
    #[default]
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            web: WebConfig {
                listen_address: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_PORT),
                telemetry_path: DEFAULT_TELEMETRY_PATH.to_owned(),
            },
            api: ApiConfig {
                base_url: DEFAULT_API_BASE_URL.to_owned(),
                max_rps: 10.0,
                timeout: Duration::from_secs(10),
                currency: "USD".to_owned(),
                concurrency: 8,
                max_attempts: 4,
            },
            storage: StorageConfig {
                path: PathBuf::from("./data"),
            },
            poll: PollConfig {
                first_delay: Duration::from_secs(5),
                interval: Duration::from_secs(15),
                grace: Duration::from_secs(5),
            },
            tracking: TrackingConfig {
                verify_window: Duration::from_secs(5 * 60),
                max_age: Duration::from_secs(2 * 60 * 60),
                not_found_retries: 3,
            },
            flows: RefreshConfig {
                refresh_interval: Duration::from_secs(5 * 60),
            },
            balance: RefreshConfig {
                refresh_interval: Duration::from_secs(60),
            },
            sampling: SamplingConfig { ratio: 1.0 },
            intake: IntakeConfig {
                token_file: None,
                max_body_bytes: 1024 * 1024,
                max_items: 10_000,
            },
            log: LogConfig {
                level: "info".to_owned(),
                format: LogFormat::Logfmt,
            },
        }
    }
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
}

/// Flags shared by `run` and `demo`. Every setting is optional so that the precedence
/// flags > config file > defaults can be applied by [`Config::from_args`].
#[derive(Debug, Clone, Default, clap::Args)]
pub struct AgentArgs {
    /// TOML configuration file; flags override its settings.
    #[arg(long = "config.file", value_name = "PATH")]
    pub config_file: Option<PathBuf>,
    /// Address to listen on for metrics, probes and intake [default: 0.0.0.0:9867].
    #[arg(long = "web.listen-address", value_name = "ADDR")]
    pub listen_address: Option<SocketAddr>,
    /// Path under which to expose metrics [default: /metrics].
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub telemetry_path: Option<String>,
    /// Base URL of the itniotech API [default: https://api.itniotech.com].
    #[arg(long = "api.base-url", value_name = "URL")]
    pub base_url: Option<String>,
    /// Maximum API requests per second [default: 10].
    #[arg(
        long = "api.max-rps",
        value_name = "RPS",
        allow_negative_numbers = true
    )]
    pub max_rps: Option<f64>,
    /// Timeout of one API request attempt [default: 10s].
    #[arg(long = "api.timeout", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub api_timeout: Option<Duration>,
    /// Account currency, the `currency` label of cost and balance metrics [default: USD].
    #[arg(long = "api.currency", value_name = "CODE")]
    pub currency: Option<String>,
    /// Maximum API requests in flight [default: 8].
    #[arg(long = "api.concurrency", value_name = "N")]
    pub concurrency: Option<usize>,
    /// File holding the API key (else the ITNIOTECH_API_KEY environment variable).
    #[arg(long = "api.key-file", value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// File holding the API secret (else the ITNIOTECH_API_SECRET environment variable).
    #[arg(long = "api.secret-file", value_name = "PATH")]
    pub api_secret_file: Option<PathBuf>,
    /// Directory of the durable order store [default: ./data].
    #[arg(long = "storage.path", value_name = "DIR")]
    pub storage_path: Option<PathBuf>,
    /// Delay from intake to an order's first poll [default: 5s].
    #[arg(long = "poll.first-delay", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_first_delay: Option<Duration>,
    /// Re-poll interval while an attempt is in progress [default: 15s].
    #[arg(long = "poll.interval", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub poll_interval: Option<Duration>,
    /// How long after the last attempt a code may still be verified [default: 5m].
    #[arg(long = "tracking.verify-window", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub verify_window: Option<Duration>,
    /// Age at which an order stops being tracked and counts as unresolved [default: 2h].
    #[arg(long = "tracking.max-age", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub max_age: Option<Duration>,
    /// Interval between flow catalog refreshes [default: 5m].
    #[arg(long = "flows.refresh-interval", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub flows_refresh_interval: Option<Duration>,
    /// Interval between balance refreshes [default: 1m].
    #[arg(long = "balance.refresh-interval", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub balance_refresh_interval: Option<Duration>,
    /// Share of orders to track, 0 < ratio <= 1 [default: 1].
    #[arg(
        long = "sampling.ratio",
        value_name = "RATIO",
        allow_negative_numbers = true
    )]
    pub sampling_ratio: Option<f64>,
    /// File holding the bearer token required by the intake; no token when absent.
    #[arg(long = "intake.token-file", value_name = "PATH")]
    pub intake_token_file: Option<PathBuf>,
    /// Log level or tracing filter directives [default: info].
    #[arg(long = "log.level", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format [default: logfmt].
    #[arg(long = "log.format", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

// ---------------------------------------------------------------------------------------------
// The config file
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    web: Option<FileWeb>,
    api: Option<FileApi>,
    storage: Option<FileStorage>,
    poll: Option<FilePoll>,
    tracking: Option<FileTracking>,
    flows: Option<FileRefresh>,
    balance: Option<FileRefresh>,
    sampling: Option<FileSampling>,
    intake: Option<FileIntake>,
    log: Option<FileLog>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileWeb {
    listen_address: Option<SocketAddr>,
    telemetry_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileApi {
    base_url: Option<String>,
    max_rps: Option<f64>,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    currency: Option<String>,
    concurrency: Option<usize>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStorage {
    path: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePoll {
    #[serde(default, with = "humantime_serde")]
    first_delay: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    grace: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTracking {
    #[serde(default, with = "humantime_serde")]
    verify_window: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    max_age: Option<Duration>,
    not_found_retries: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRefresh {
    #[serde(default, with = "humantime_serde")]
    refresh_interval: Option<Duration>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSampling {
    ratio: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileIntake {
    token_file: Option<PathBuf>,
    max_body_bytes: Option<usize>,
    max_items: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    level: Option<String>,
    format: Option<LogFormat>,
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

impl Config {
    /// Build the configuration: defaults, then the `--config.file` (when given), then the flags;
    /// then validate.
    pub fn from_args(args: &AgentArgs) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        if let Some(path) = &args.config_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: path.clone(),
                source,
            })?;
            config.apply_file(Self::parse_file(path, &text)?);
        }
        config.apply_flags(args);
        config.validate()?;
        Ok(config)
    }

    /// Parse TOML config text (`path` only names it in errors) over the defaults, and validate.
    pub fn from_toml(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let mut config = Config::default();
        config.apply_file(Self::parse_file(path, text)?);
        config.validate()?;
        Ok(config)
    }

    fn parse_file(path: &Path, text: &str) -> Result<FileConfig, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::ParseFile {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    fn apply_file(&mut self, file: FileConfig) {
        let FileConfig {
            web,
            api,
            storage,
            poll,
            tracking,
            flows,
            balance,
            sampling,
            intake,
            log,
        } = file;
        let web = web.unwrap_or_default();
        set(&mut self.web.listen_address, web.listen_address);
        set(&mut self.web.telemetry_path, web.telemetry_path);
        let api = api.unwrap_or_default();
        set(&mut self.api.base_url, api.base_url);
        set(&mut self.api.max_rps, api.max_rps);
        set(&mut self.api.timeout, api.timeout);
        set(&mut self.api.currency, api.currency);
        set(&mut self.api.concurrency, api.concurrency);
        set(&mut self.api.max_attempts, api.max_attempts);
        set(&mut self.storage.path, storage.unwrap_or_default().path);
        let poll = poll.unwrap_or_default();
        set(&mut self.poll.first_delay, poll.first_delay);
        set(&mut self.poll.interval, poll.interval);
        set(&mut self.poll.grace, poll.grace);
        let tracking = tracking.unwrap_or_default();
        set(&mut self.tracking.verify_window, tracking.verify_window);
        set(&mut self.tracking.max_age, tracking.max_age);
        set(
            &mut self.tracking.not_found_retries,
            tracking.not_found_retries,
        );
        set(
            &mut self.flows.refresh_interval,
            flows.unwrap_or_default().refresh_interval,
        );
        set(
            &mut self.balance.refresh_interval,
            balance.unwrap_or_default().refresh_interval,
        );
        set(&mut self.sampling.ratio, sampling.unwrap_or_default().ratio);
        let intake = intake.unwrap_or_default();
        if intake.token_file.is_some() {
            self.intake.token_file = intake.token_file;
        }
        set(&mut self.intake.max_body_bytes, intake.max_body_bytes);
        set(&mut self.intake.max_items, intake.max_items);
        let log = log.unwrap_or_default();
        set(&mut self.log.level, log.level);
        set(&mut self.log.format, log.format);
    }

    fn apply_flags(&mut self, a: &AgentArgs) {
        set(&mut self.web.listen_address, a.listen_address);
        set(&mut self.web.telemetry_path, a.telemetry_path.clone());
        set(&mut self.api.base_url, a.base_url.clone());
        set(&mut self.api.max_rps, a.max_rps);
        set(&mut self.api.timeout, a.api_timeout);
        set(&mut self.api.currency, a.currency.clone());
        set(&mut self.api.concurrency, a.concurrency);
        set(&mut self.storage.path, a.storage_path.clone());
        set(&mut self.poll.first_delay, a.poll_first_delay);
        set(&mut self.poll.interval, a.poll_interval);
        set(&mut self.tracking.verify_window, a.verify_window);
        set(&mut self.tracking.max_age, a.max_age);
        set(&mut self.flows.refresh_interval, a.flows_refresh_interval);
        set(
            &mut self.balance.refresh_interval,
            a.balance_refresh_interval,
        );
        set(&mut self.sampling.ratio, a.sampling_ratio);
        if a.intake_token_file.is_some() {
            self.intake.token_file = a.intake_token_file.clone();
        }
        set(&mut self.log.level, a.log_level.clone());
        set(&mut self.log.format, a.log_format);
    }

    /// Check every setting; the error names the setting (`section.key`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let path = &self.web.telemetry_path;
        if !path.starts_with('/') || RESERVED_PATHS.contains(&path.as_str()) {
            return Err(invalid(
                "web.telemetry_path",
                format!(
                    "must start with '/' and not be one of {}",
                    RESERVED_PATHS.join(", ")
                ),
            ));
        }
        if path.contains(['{', '}', '*', '?', '#']) || path.chars().any(char::is_whitespace) {
            return Err(invalid(
                "web.telemetry_path",
                "must be a plain path (no spaces, '{', '}', '*', '?', '#')",
            ));
        }
        match reqwest::Url::parse(&self.api.base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => {
                return Err(invalid(
                    "api.base_url",
                    "must be an absolute http:// or https:// URL",
                ))
            }
        }
        if !(self.api.max_rps.is_finite() && self.api.max_rps > 0.0) {
            return Err(invalid("api.max_rps", "must be a number above 0"));
        }
        if self.api.currency.len() != 3
            || !self.api.currency.bytes().all(|b| b.is_ascii_uppercase())
        {
            return Err(invalid(
                "api.currency",
                "must be an ISO 4217 code of 3 upper-case letters (e.g. USD)",
            ));
        }
        if self.api.concurrency == 0 {
            return Err(invalid("api.concurrency", "must be at least 1"));
        }
        if self.api.max_attempts == 0 {
            return Err(invalid("api.max_attempts", "must be at least 1"));
        }
        let positive = [
            ("api.timeout", self.api.timeout),
            ("poll.interval", self.poll.interval),
            ("tracking.max_age", self.tracking.max_age),
            ("flows.refresh_interval", self.flows.refresh_interval),
            ("balance.refresh_interval", self.balance.refresh_interval),
        ];
        for (key, d) in positive {
            if d.is_zero() {
                return Err(invalid(key, "must be above 0"));
            }
        }
        if self.tracking.verify_window >= self.tracking.max_age {
            return Err(invalid(
                "tracking.max_age",
                "must be longer than tracking.verify_window",
            ));
        }
        let r = self.sampling.ratio;
        if !(r.is_finite() && r > 0.0 && r <= 1.0) {
            return Err(invalid(
                "sampling.ratio",
                format!("must be in (0, 1], got {r}"),
            ));
        }
        if self.intake.max_body_bytes == 0 {
            return Err(invalid("intake.max_body_bytes", "must be at least 1"));
        }
        if self.intake.max_items == 0 {
            return Err(invalid("intake.max_items", "must be at least 1"));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", e.to_string()));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------------------------

/// The API credentials. `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secrets {
    pub api_key: String,
    pub api_secret: String,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("api_key", &"<redacted>")
            .field("api_secret", &"<redacted>")
            .finish()
    }
}

/// Load the API key and secret: each from its `--api.*-file` when given (the file wins), else
/// from `ITNIOTECH_API_KEY` / `ITNIOTECH_API_SECRET` via `env`. A trailing newline of a file is
/// removed. Either one missing is [`ConfigError::MissingCredentials`]; an empty value is
/// [`ConfigError::EmptySecret`].
pub fn load_secrets(
    args: &AgentArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Secrets, ConfigError> {
    let api_key = secret(
        "the API key",
        args.api_key_file.as_deref(),
        ENV_API_KEY,
        env,
    )?;
    let api_secret = secret(
        "the API secret",
        args.api_secret_file.as_deref(),
        ENV_API_SECRET,
        env,
    )?;
    match (api_key, api_secret) {
        (Some(api_key), Some(api_secret)) => Ok(Secrets {
            api_key,
            api_secret,
        }),
        _ => Err(ConfigError::MissingCredentials),
    }
}

fn secret(
    what: &'static str,
    file: Option<&Path>,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<String>, ConfigError> {
    if let Some(path) = file {
        return read_secret_file(what, path).map(Some);
    }
    match env(var) {
        None => Ok(None),
        Some(v) if v.trim().is_empty() => Err(ConfigError::EmptySecret { what, path: None }),
        Some(v) => Ok(Some(v)),
    }
}

fn read_secret_file(what: &'static str, path: &Path) -> Result<String, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadSecret {
        what,
        path: path.to_owned(),
        source,
    })?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.trim().is_empty() {
        return Err(ConfigError::EmptySecret {
            what,
            path: Some(path.to_owned()),
        });
    }
    Ok(value.to_owned())
}

/// Read the intake bearer token from `path` (trailing newline removed; empty is an error).
pub fn read_token_file(path: &Path) -> Result<String, ConfigError> {
    read_secret_file("the intake token", path)
}

// ---------------------------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------------------------

/// Install the global `tracing` subscriber: level filter from `log.level`, compact `key=value`
/// lines or JSON on stderr. Fails when the filter is invalid or a subscriber is already set.
pub fn init_tracing(log: &LogConfig) -> Result<(), ConfigError> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .map_err(|e| invalid("log.level", e.to_string()))?;
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
    fn defaults_are_valid() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.web.listen_address.port(), DEFAULT_PORT);
        assert_eq!(c.intake.max_body_bytes, 1 << 20);
    }

    #[test]
    fn telemetry_path_rules() {
        for bad in ["metrics", "/", "/-/ready", "/api/v1/orders", "/a b", "/{x}"] {
            let mut c = Config::default();
            c.web.telemetry_path = bad.into();
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains("web.telemetry_path"), "{bad}: {err}");
        }
    }

    #[test]
    fn other_rules() {
        type Mutation = Box<dyn Fn(&mut Config)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "api.base_url",
                Box::new(|c| c.api.base_url = "ftp://x".into()),
            ),
            (
                "api.base_url",
                Box::new(|c| c.api.base_url = "not a url".into()),
            ),
            ("api.max_rps", Box::new(|c| c.api.max_rps = 0.0)),
            ("api.currency", Box::new(|c| c.api.currency = "usd".into())),
            ("api.concurrency", Box::new(|c| c.api.concurrency = 0)),
            ("api.timeout", Box::new(|c| c.api.timeout = Duration::ZERO)),
            (
                "tracking.max_age",
                Box::new(|c| c.tracking.max_age = Duration::from_secs(60)),
            ),
            ("intake.max_items", Box::new(|c| c.intake.max_items = 0)),
            ("log.level", Box::new(|c| c.log.level = "info,=[".into())),
        ];
        for (key, mutate) in cases {
            let mut c = Config::default();
            mutate(&mut c);
            let err = c.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
