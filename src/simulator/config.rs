//! Simulator configuration: the typed [`SimConfig`], scenarios, chaos knobs and the CLI flags
//! ([`SimArgs`]) that build them.

use super::presets::{self, CountryPreset};
use rust_decimal::Decimal;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// API key accepted by a default-configured simulator (`demo` mode needs no real credentials).
pub const DEMO_API_KEY: &str = "demoKey1";
/// API secret matching [`DEMO_API_KEY`].
pub const DEMO_API_SECRET: &str = "demoSecret1";
/// Default allowed skew between a request's `Timestamp` and the simulator's clock.
pub const DEFAULT_TIMESTAMP_WINDOW: Duration = Duration::from_secs(300);
/// Default opening balance (USD).
pub const DEFAULT_INITIAL_BALANCE: i64 = 5000;
/// How long a "timeout" chaos reply hangs before answering: longer than any sane client timeout.
pub const CHAOS_TIMEOUT_HANG: Duration = Duration::from_secs(60);

/// Everything a [`Simulator`](super::Simulator) needs besides its clock.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice: the same seed, clock and requests give the same records.
    pub seed: u64,
    pub scenario: Scenario,
    /// The only `Api-Key` accepted.
    pub api_key: String,
    /// The secret used to check `Sign = md5(key + secret + Timestamp)`.
    pub api_secret: String,
    /// Allowed distance between a request's `Timestamp` and the simulator's (offset) clock.
    pub timestamp_window: Duration,
    /// Opening account balance; every SMS `pay` and call `cost` is taken from it.
    pub initial_balance: Decimal,
    /// Fault injection on top of the scenario; changeable at runtime with `set_chaos`.
    pub chaos: Chaos,
    /// true: the simulator plays the end users and verifies codes itself. false: the planned
    /// user actions are handed out by `take_user_actions` for a traffic generator to send.
    pub virtual_users: bool,
    /// Factor on every delay the simulator plans (reports, call progress, user think time,
    /// flow waits, as flow/list reports them); 1 is real time.
    pub time_scale: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            scenario: Scenario::Normal,
            api_key: DEMO_API_KEY.to_owned(),
            api_secret: DEMO_API_SECRET.to_owned(),
            timestamp_window: DEFAULT_TIMESTAMP_WINDOW,
            initial_balance: Decimal::from(DEFAULT_INITIAL_BALANCE),
            chaos: Chaos::default(),
            virtual_users: true,
            time_scale: 1.0,
        }
    }
}

/// A named traffic/fault situation the simulator reproduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum Scenario {
    /// Healthy carriers: 96.5–99.5 % SMS delivery, most users verify.
    #[default]
    Normal,
    /// Indonesia / Telkomsel (510/10) loses ~95 % of SMS with reason `UNDELIV`.
    CarrierOutage,
    /// Uzbek numbers deliver but almost never verify; the traffic mix sends a large share there.
    SmsPumping,
    /// The API itself misbehaves: ~5 % `-18`, ~3 % HTTP 503, +200–800 ms, some malformed JSON.
    ApiDegraded,
}

impl Scenario {
    pub const ALL: [Scenario; 4] = [
        Scenario::Normal,
        Scenario::CarrierOutage,
        Scenario::SmsPumping,
        Scenario::ApiDegraded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::Normal => "normal",
            Scenario::CarrierOutage => "carrier-outage",
            Scenario::SmsPumping => "sms-pumping",
            Scenario::ApiDegraded => "api-degraded",
        }
    }

    /// Relative share of new orders a traffic generator should send to each preset country in
    /// this scenario (weights sum to 1). Under `sms-pumping` ~40 % of the traffic goes to UZ.
    pub fn traffic_mix(self) -> Vec<(&'static CountryPreset, f64)> {
        let countries = presets::COUNTRIES;
        let mut mix: Vec<(&'static CountryPreset, f64)> =
            countries.iter().map(|c| (c, c.weight)).collect();
        if self == Scenario::SmsPumping {
            let others: f64 = mix
                .iter()
                .filter(|(c, _)| c.iso2 != "UZ")
                .map(|(_, w)| w)
                .sum();
            for (c, w) in &mut mix {
                *w = if c.iso2 == "UZ" {
                    0.4
                } else {
                    *w / others * 0.6
                };
            }
        }
        let total: f64 = mix.iter().map(|(_, w)| w).sum();
        for (_, w) in &mut mix {
            *w /= total;
        }
        mix
    }

    /// The API faults this scenario adds on top of the configured [`Chaos`].
    pub(crate) fn api_faults(self) -> ApiFaults {
        match self {
            Scenario::ApiDegraded => ApiFaults {
                vendor_error_rate: 0.05,
                http_503_rate: 0.03,
                malformed_rate: 0.01,
                latency_ms: Some((200, 800)),
            },
            _ => ApiFaults::default(),
        }
    }
}

/// Scenario-level API faults (see [`Scenario::api_faults`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ApiFaults {
    pub vendor_error_rate: f64,
    pub http_503_rate: f64,
    pub malformed_rate: f64,
    pub latency_ms: Option<(u64, u64)>,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scenario {
    type Err = SimError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase().replace('_', "-");
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or(SimError::UnknownScenario(s))
    }
}

/// Fault injection knobs. Rates are probabilities per request in `0..=1`; they are applied
/// independently, in the order timeout, HTTP 500, HTTP 503, `-1`, `-18`, malformed body.
/// Changed at runtime with `Simulator::set_chaos` (a blip: set a rate, later set it back).
#[derive(Clone, Debug, Default)]
pub struct Chaos {
    /// Added to every reply (real time, not simulated time).
    pub latency: Duration,
    /// Share of authenticated requests answered `{"status":"-18"}` without being processed.
    pub vendor_error_rate: f64,
    pub http_500_rate: f64,
    pub http_503_rate: f64,
    /// Share of requests that hang for [`CHAOS_TIMEOUT_HANG`] and then get HTTP 504.
    pub timeout_rate: f64,
    /// Share of requests refused with `-1` (authentication failed) although correctly signed:
    /// a vendor-side auth outage.
    pub auth_failure_rate: f64,
    /// Share of replies whose JSON body is cut in half (the request *was* processed).
    pub malformed_rate: f64,
    /// The simulator's clock runs this many seconds ahead (negative: behind) of the injected one.
    pub clock_offset_secs: i64,
    /// Every SMS to this country (ISO alpha-2) fails with `UNDELIV`.
    pub outage_country: Option<String>,
    /// Every SMS to this operator `(mcc, mnc)` fails with `UNDELIV`.
    pub outage_operator: Option<(u16, u16)>,
}

/// Errors building a simulator configuration.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    #[error(
        "unknown scenario {0:?} (expected normal, carrier-outage, sms-pumping or api-degraded)"
    )]
    UnknownScenario(String),
    #[error("{flag} must be a probability between 0 and 1, got {value}")]
    InvalidRate { flag: &'static str, value: f64 },
    #[error("--sim.outage-operator must be MCC/MNC (e.g. 510/10), got {0:?}")]
    InvalidOperator(String),
    #[error("--sim.outage-country must be an ISO 3166 alpha-2 code (e.g. ID), got {0:?}")]
    InvalidCountry(String),
    #[error("--sim.initial-balance must not be negative, got {0}")]
    NegativeBalance(Decimal),
    #[error("the API key and secret must not be empty")]
    EmptyCredentials,
    #[error("--sim.time-scale must be between 0.001 and 1000, got {0}")]
    InvalidTimeScale(f64),
}

/// Command-line flags of the simulator (`simulate` and `demo` subcommands).
#[derive(Clone, Debug, clap::Args)]
pub struct SimArgs {
    /// Seed of the simulator's random choices; the same seed replays the same orders.
    /// Random when not given (the chosen seed is printed at start-up).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Situation to simulate.
    #[arg(long, value_enum, default_value_t = Scenario::Normal)]
    pub scenario: Scenario,
    /// Allowed skew between a request's Timestamp header and the simulator clock (-16 outside).
    #[arg(long = "sim.timestamp-window", value_parser = humantime::parse_duration, default_value = "300s")]
    pub timestamp_window: Duration,
    /// Opening account balance in USD; sends fail with -10 once it is used up.
    #[arg(long = "sim.initial-balance", default_value = "5000")]
    pub initial_balance: Decimal,
    /// Extra latency added to every API reply (e.g. 250ms).
    #[arg(long = "sim.latency", value_parser = humantime::parse_duration, default_value = "0s")]
    pub latency: Duration,
    /// Share (0..1) of API calls answered with vendor status -18 (server program error).
    #[arg(long = "sim.error-rate", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share (0..1) of API calls answered with HTTP 500.
    #[arg(long = "sim.http-500-rate", default_value_t = 0.0)]
    pub http_500_rate: f64,
    /// Share (0..1) of API calls answered with HTTP 503.
    #[arg(long = "sim.http-503-rate", default_value_t = 0.0)]
    pub http_503_rate: f64,
    /// Share (0..1) of API calls that hang for 60 s before an HTTP 504.
    #[arg(long = "sim.timeout-rate", default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// Share (0..1) of API replies with a truncated, unparseable JSON body.
    #[arg(long = "sim.malformed-rate", default_value_t = 0.0)]
    pub malformed_rate: f64,
    /// Share (0..1) of correctly signed API calls refused with -1 (a vendor auth outage).
    #[arg(long = "sim.auth-failure-rate", default_value_t = 0.0)]
    pub auth_failure_rate: f64,
    /// Factor on every delay the simulator plans (0.1: ten times faster orders); 1 is real time.
    #[arg(long = "sim.time-scale", default_value_t = 1.0)]
    pub time_scale: f64,
    /// Seconds the simulated server clock runs ahead (negative: behind) of the real one.
    #[arg(
        long = "sim.clock-offset",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub clock_offset: i64,
    /// Make every SMS to this country (ISO alpha-2, e.g. ID) fail with UNDELIV.
    #[arg(long = "sim.outage-country")]
    pub outage_country: Option<String>,
    /// Make every SMS to this operator (MCC/MNC, e.g. 510/10) fail with UNDELIV.
    #[arg(long = "sim.outage-operator", value_name = "MCC/MNC")]
    pub outage_operator: Option<String>,
}

impl SimArgs {
    /// Validate the flags into a [`SimConfig`] (virtual users on).
    pub fn to_config(&self, api_key: String, api_secret: String) -> Result<SimConfig, SimError> {
        if api_key.is_empty() || api_secret.is_empty() {
            return Err(SimError::EmptyCredentials);
        }
        if self.initial_balance.is_sign_negative() {
            return Err(SimError::NegativeBalance(self.initial_balance));
        }
        let rate = |flag: &'static str, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(value)
            } else {
                Err(SimError::InvalidRate { flag, value })
            }
        };
        let outage_country = match &self.outage_country {
            None => None,
            Some(c) if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) => {
                Some(c.to_ascii_uppercase())
            }
            Some(c) => return Err(SimError::InvalidCountry(c.clone())),
        };
        let outage_operator = self
            .outage_operator
            .as_deref()
            .map(parse_operator)
            .transpose()?;
        if !(0.001..=1000.0).contains(&self.time_scale) {
            return Err(SimError::InvalidTimeScale(self.time_scale));
        }
        Ok(SimConfig {
            seed: self.seed.unwrap_or_else(rand::random),
            scenario: self.scenario,
            api_key,
            api_secret,
            timestamp_window: self.timestamp_window,
            initial_balance: self.initial_balance,
            chaos: Chaos {
                latency: self.latency,
                vendor_error_rate: rate("--sim.error-rate", self.error_rate)?,
                http_500_rate: rate("--sim.http-500-rate", self.http_500_rate)?,
                http_503_rate: rate("--sim.http-503-rate", self.http_503_rate)?,
                timeout_rate: rate("--sim.timeout-rate", self.timeout_rate)?,
                malformed_rate: rate("--sim.malformed-rate", self.malformed_rate)?,
                auth_failure_rate: rate("--sim.auth-failure-rate", self.auth_failure_rate)?,
                clock_offset_secs: self.clock_offset,
                outage_country,
                outage_operator,
            },
            virtual_users: true,
            time_scale: self.time_scale,
        })
    }
}

/// Parse `MCC/MNC` (e.g. `510/10`).
pub fn parse_operator(s: &str) -> Result<(u16, u16), SimError> {
    let err = || SimError::InvalidOperator(s.to_owned());
    let (mcc, mnc) = s.trim().split_once('/').ok_or_else(err)?;
    Ok((
        mcc.trim().parse().map_err(|_| err())?,
        mnc.trim().parse().map_err(|_| err())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn scenario_names_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(sc.to_string().parse::<Scenario>().unwrap(), sc);
        }
        assert_eq!(
            "Carrier_Outage".parse::<Scenario>().unwrap(),
            Scenario::CarrierOutage
        );
        assert!("nope".parse::<Scenario>().is_err());
    }

    #[test]
    fn flags_build_a_config() {
        let cli = Cli::try_parse_from([
            "x",
            "--seed",
            "7",
            "--scenario",
            "carrier-outage",
            "--sim.timestamp-window",
            "2m",
            "--sim.latency",
            "250ms",
            "--sim.error-rate",
            "0.1",
            "--sim.clock-offset",
            "-400",
            "--sim.outage-country",
            "id",
            "--sim.outage-operator",
            "510/10",
        ])
        .unwrap();
        let cfg = cli.sim.to_config("k".into(), "s".into()).unwrap();
        assert_eq!(cfg.seed, 7);
        assert_eq!(cfg.scenario, Scenario::CarrierOutage);
        assert_eq!(cfg.timestamp_window, Duration::from_secs(120));
        assert_eq!(cfg.chaos.latency, Duration::from_millis(250));
        assert_eq!(cfg.chaos.clock_offset_secs, -400);
        assert_eq!(cfg.chaos.outage_country.as_deref(), Some("ID"));
        assert_eq!(cfg.chaos.outage_operator, Some((510, 10)));
        assert_eq!(cfg.initial_balance, Decimal::from(5000));
    }

    #[test]
    fn bad_flags_are_rejected() {
        let cli = Cli::try_parse_from(["x", "--sim.error-rate", "1.5"]).unwrap();
        assert!(matches!(
            cli.sim.to_config("k".into(), "s".into()),
            Err(SimError::InvalidRate { .. })
        ));
        let cli = Cli::try_parse_from(["x", "--sim.outage-operator", "510-10"]).unwrap();
        assert!(matches!(
            cli.sim.to_config("k".into(), "s".into()),
            Err(SimError::InvalidOperator(_))
        ));
        assert_eq!(parse_operator("405/857"), Ok((405, 857)));
    }

    #[test]
    fn pumping_mix_sends_a_large_share_to_uz() {
        let share = |sc: Scenario| {
            sc.traffic_mix()
                .iter()
                .find(|(c, _)| c.iso2 == "UZ")
                .map(|(_, w)| *w)
                .unwrap()
        };
        assert!(share(Scenario::Normal) < 0.02);
        assert!((share(Scenario::SmsPumping) - 0.4).abs() < 1e-9);
        let total: f64 = Scenario::SmsPumping
            .traffic_mix()
            .iter()
            .map(|(_, w)| w)
            .sum();
        assert!((total - 1.0).abs() < 1e-9);
    }
}
