//! `init_tracing` installs the global subscriber once (own test binary: the subscriber is global).

use itniotech_exporter::config::{init_tracing, ConfigError, LogConfig, LogFormat, LogLevel};

#[test]
fn init_tracing_once_and_bad_filters_cannot_be_configured() {
    // An invalid filter cannot even be built, so it never reaches init_tracing.
    let err = "info,=[".parse::<LogLevel>().unwrap_err();
    assert!(!err.is_empty());
    let good = LogConfig {
        level: "debug".parse().unwrap(),
        format: LogFormat::Json,
    };
    init_tracing(&good).unwrap();
    tracing::info!(answer = 42, "logging works");
    assert!(matches!(init_tracing(&good), Err(ConfigError::Tracing(_))));
}
