//! `init_tracing` installs the global subscriber once (own test binary: the subscriber is global).

use itniotech_exporter::config::{init_tracing, ConfigError, LogConfig, LogFormat};

#[test]
fn init_tracing_once_and_rejects_bad_filters() {
    let bad = LogConfig {
        level: "info,=[".into(),
        format: LogFormat::Logfmt,
    };
    assert!(matches!(
        init_tracing(&bad),
        Err(ConfigError::Invalid {
            key: "log.level",
            ..
        })
    ));
    let good = LogConfig {
        level: "debug".into(),
        format: LogFormat::Json,
    };
    init_tracing(&good).unwrap();
    tracing::info!(answer = 42, "logging works");
    assert!(matches!(init_tracing(&good), Err(ConfigError::Tracing(_))));
}
