//! Validated setting types: a value of one of these is valid by construction, so an invalid
//! configuration cannot be built, only refused with a message that says why.

use std::fmt;
use std::ops::Deref;
use std::str::FromStr;
use std::time::Duration;

use crate::server::RESERVED_PATHS;

/// A duration written the humantime way (`15s`, `5m`, `2h`, `1h 30m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl Deref for HumanDuration {
    type Target = Duration;
    fn deref(&self) -> &Duration {
        &self.0
    }
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|e| format!("not a duration such as 15s, 5m or 2h ({e})"))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// The path of the metrics route: starts with `/`, is a plain path, and is none of the other
/// routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryPath(String);

impl TelemetryPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for TelemetryPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if !s.starts_with('/') || RESERVED_PATHS.contains(&s) {
            return Err(format!(
                "must start with '/' and not be one of {}",
                RESERVED_PATHS.join(", ")
            ));
        }
        if s.contains(['{', '}', '*', '?', '#']) || s.chars().any(char::is_whitespace) {
            return Err("must be a plain path (no spaces, '{', '}', '*', '?', '#')".into());
        }
        Ok(TelemetryPath(s.to_owned()))
    }
}

impl fmt::Display for TelemetryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute `http://` or `https://` URL with a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for BaseUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match reqwest::Url::parse(s) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(BaseUrl(s.to_owned()))
            }
            _ => Err("must be an absolute http:// or https:// URL".into()),
        }
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Requests per second: a finite number above 0.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Rps(f64);

impl Rps {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Rps {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => Ok(Rps(v)),
            _ => Err("must be a number above 0".into()),
        }
    }
}

impl fmt::Display for Rps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The share of orders tracked: `0 < ratio <= 1`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct SamplingRatio(f64);

impl SamplingRatio {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for SamplingRatio {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 && r <= 1.0 => Ok(SamplingRatio(r)),
            _ => Err(format!("must be in (0, 1], got {s}")),
        }
    }
}

impl fmt::Display for SamplingRatio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Currency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Currency(s.to_owned()))
        } else {
            Err("must be an ISO 4217 code of 3 upper-case letters (e.g. USD)".into())
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A log level or `tracing` filter directives (`info,itniotech_exporter=debug`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLevel(String);

impl LogLevel {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        tracing_subscriber::EnvFilter::try_new(s)
            .map(|_| LogLevel(s.to_owned()))
            .map_err(|e| e.to_string())
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Compact `key=value` lines.
    #[default]
    Logfmt,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            _ => Err("must be logfmt or json".into()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Logfmt => "logfmt",
            LogFormat::Json => "json",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_cannot_be_built() {
        for bad in ["metrics", "/", "/-/ready", "/api/v1/orders", "/a b", "/{x}"] {
            assert!(bad.parse::<TelemetryPath>().is_err(), "{bad}");
        }
        assert_eq!("/m".parse::<TelemetryPath>().unwrap().as_str(), "/m");
        for bad in ["ftp://x", "not a url", "http://"] {
            assert!(bad.parse::<BaseUrl>().is_err(), "{bad}");
        }
        for bad in ["0", "-1", "NaN", "inf", "x"] {
            assert!(bad.parse::<Rps>().is_err(), "{bad}");
        }
        for bad in ["0", "1.5", "-0.1", "NaN", "inf"] {
            assert!(bad.parse::<SamplingRatio>().is_err(), "{bad}");
        }
        for bad in ["usd", "US", "EURO"] {
            assert!(bad.parse::<Currency>().is_err(), "{bad}");
        }
        assert!("info,=[".parse::<LogLevel>().is_err());
        assert!("xml".parse::<LogFormat>().is_err());
        assert!("15".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn durations_print_as_they_are_written() {
        for text in ["15s", "5m", "2h", "100ms"] {
            assert_eq!(text.parse::<HumanDuration>().unwrap().to_string(), text);
        }
    }
}

/// Comparisons with the plain values, so code and tests can write `path == "/metrics"` or
/// `timeout == Duration::from_secs(10)`.
macro_rules! eq_plain {
    ($($ty:ty => $plain:ty, |$v:ident| $get:expr;)+) => {$(
        impl PartialEq<$plain> for $ty {
            fn eq(&self, other: &$plain) -> bool {
                let $v = self;
                $get == *other
            }
        }
    )+};
}

eq_plain! {
    TelemetryPath => &str, |v| v.0.as_str();
    BaseUrl => &str, |v| v.0.as_str();
    Currency => &str, |v| v.0.as_str();
    LogLevel => &str, |v| v.0.as_str();
    Rps => f64, |v| v.0;
    SamplingRatio => f64, |v| v.0;
    HumanDuration => Duration, |v| v.0;
}
