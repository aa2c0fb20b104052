//! The configuration contract: flags > file > defaults, strict files, secrets, and the CLI.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use itniotech_exporter::config::{
    load_secrets, read_token_file, AgentArgs, Cli, Command, Config, ConfigError, LogFormat,
    DEFAULT_PORT,
};

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn run_args(args: &[&str]) -> AgentArgs {
    let mut argv = vec!["itniotech-exporter", "run"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Run(run) => run.agent,
        other => panic!("{other:?}"),
    }
}

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn defaults_without_flags_or_file() {
    let c = Config::from_args(&run_args(&[])).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(
        c.web.listen_address.to_string(),
        format!("0.0.0.0:{DEFAULT_PORT}")
    );
    assert_eq!(DEFAULT_PORT, 9867);
    assert_eq!(c.web.telemetry_path, "/metrics");
    assert_eq!(c.api.base_url, "https://api.itniotech.com");
    assert_eq!(c.api.max_rps, 10.0);
    assert_eq!(c.api.timeout, Duration::from_secs(10));
    assert_eq!(c.api.currency, "USD");
    assert_eq!((c.api.concurrency, c.api.max_attempts), (8, 4));
    assert_eq!(c.storage.path, Path::new("./data"));
    assert_eq!(c.poll.first_delay, Duration::from_secs(5));
    assert_eq!(c.poll.interval, Duration::from_secs(15));
    assert_eq!(c.poll.grace, Duration::from_secs(5));
    assert_eq!(c.tracking.verify_window, Duration::from_secs(300));
    assert_eq!(c.tracking.max_age, Duration::from_secs(7200));
    assert_eq!(c.tracking.not_found_retries, 3);
    assert_eq!(c.flows.refresh_interval, Duration::from_secs(300));
    assert_eq!(c.balance.refresh_interval, Duration::from_secs(60));
    assert_eq!(c.sampling.ratio, 1.0);
    assert_eq!(c.intake.token_file, None);
    assert_eq!(
        (c.intake.max_body_bytes, c.intake.max_items),
        (1 << 20, 10_000)
    );
    assert_eq!(
        (c.log.level.as_str(), c.log.format),
        ("info", LogFormat::Logfmt)
    );
}

#[test]
fn flags_override_file_override_defaults() {
    let f = file(
        r#"
[web]
listen_address = "127.0.0.1:1111"
telemetry_path = "/from-file"
[api]
base_url = "http://127.0.0.1:9868"
max_rps = 3.5
timeout = "3s"
max_attempts = 2
[poll]
grace = "1s"
interval = "20s"
[tracking]
max_age = "3h"
not_found_retries = 5
[balance]
refresh_interval = "2m"
[sampling]
ratio = 0.25
[intake]
max_items = 50
token_file = "/from/file"
[log]
level = "debug"
format = "json"
"#,
    );
    let path = f.path().to_str().unwrap();
    // File only.
    let c = Config::from_args(&run_args(&["--config.file", path])).unwrap();
    assert_eq!(c.web.listen_address.to_string(), "127.0.0.1:1111");
    assert_eq!(c.web.telemetry_path, "/from-file");
    assert_eq!(c.api.base_url, "http://127.0.0.1:9868");
    assert_eq!(c.api.max_rps, 3.5);
    assert_eq!(c.api.timeout, Duration::from_secs(3));
    assert_eq!(c.api.max_attempts, 2);
    assert_eq!(c.poll.grace, Duration::from_secs(1));
    assert_eq!(c.poll.interval, Duration::from_secs(20));
    assert_eq!(c.tracking.max_age, Duration::from_secs(3 * 3600));
    assert_eq!(c.tracking.not_found_retries, 5);
    assert_eq!(c.balance.refresh_interval, Duration::from_secs(120));
    assert_eq!(c.sampling.ratio, 0.25);
    assert_eq!(c.intake.max_items, 50);
    assert_eq!(
        c.intake.token_file.as_deref(),
        Some(Path::new("/from/file"))
    );
    assert_eq!(c.log.format, LogFormat::Json);
    // Untouched by the file: defaults.
    assert_eq!(c.api.currency, "USD");
    assert_eq!(c.flows.refresh_interval, Duration::from_secs(300));

    // Flags win over the file.
    let c = Config::from_args(&run_args(&[
        "--config.file",
        path,
        "--web.listen-address",
        "127.0.0.1:2222",
        "--web.telemetry-path",
        "/from-flag",
        "--api.base-url",
        "https://flag.example",
        "--api.max-rps",
        "7",
        "--api.timeout",
        "1m",
        "--api.currency",
        "EUR",
        "--api.concurrency",
        "2",
        "--storage.path",
        "/var/lib/x",
        "--poll.first-delay",
        "2s",
        "--poll.interval",
        "30s",
        "--tracking.verify-window",
        "10m",
        "--tracking.max-age",
        "1h",
        "--flows.refresh-interval",
        "15m",
        "--balance.refresh-interval",
        "30s",
        "--sampling.ratio",
        "0.5",
        "--intake.token-file",
        "/from/flag",
        "--log.level",
        "warn",
        "--log.format",
        "logfmt",
    ]))
    .unwrap();
    assert_eq!(c.web.listen_address.to_string(), "127.0.0.1:2222");
    assert_eq!(c.web.telemetry_path, "/from-flag");
    assert_eq!(c.api.base_url, "https://flag.example");
    assert_eq!(c.api.max_rps, 7.0);
    assert_eq!(c.api.timeout, Duration::from_secs(60));
    assert_eq!(c.api.currency, "EUR");
    assert_eq!(c.api.concurrency, 2);
    assert_eq!(c.api.max_attempts, 2, "file-only setting kept");
    assert_eq!(c.storage.path, Path::new("/var/lib/x"));
    assert_eq!(c.poll.first_delay, Duration::from_secs(2));
    assert_eq!(c.poll.interval, Duration::from_secs(30));
    assert_eq!(
        c.poll.grace,
        Duration::from_secs(1),
        "file-only setting kept"
    );
    assert_eq!(c.tracking.verify_window, Duration::from_secs(600));
    assert_eq!(c.tracking.max_age, Duration::from_secs(3600));
    assert_eq!(c.flows.refresh_interval, Duration::from_secs(900));
    assert_eq!(c.balance.refresh_interval, Duration::from_secs(30));
    assert_eq!(c.sampling.ratio, 0.5);
    assert_eq!(
        c.intake.token_file.as_deref(),
        Some(Path::new("/from/flag"))
    );
    assert_eq!(c.intake.max_items, 50);
    assert_eq!(
        (c.log.level.as_str(), c.log.format),
        ("warn", LogFormat::Logfmt)
    );
}

#[test]
fn unknown_file_keys_are_rejected_by_name() {
    for (text, key) in [
        ("[api]\nmax_rsp = 3\n", "max_rsp"),
        ("[trackng]\nmax_age = \"1h\"\n", "trackng"),
        ("listen_address = \"127.0.0.1:1\"\n", "listen_address"),
    ] {
        let f = file(text);
        let err = Config::from_args(&run_args(&["--config.file", f.path().to_str().unwrap()]))
            .unwrap_err();
        assert!(matches!(err, ConfigError::ParseFile { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(key), "{msg}");
        assert!(
            msg.contains(f.path().to_str().unwrap()),
            "names the file: {msg}"
        );
    }
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let err = Config::from_args(&run_args(&["--config.file", "/nonexistent/x.toml"])).unwrap_err();
    assert!(matches!(err, ConfigError::ReadFile { .. }));
    assert!(err.to_string().contains("/nonexistent/x.toml"));
}

#[test]
fn bad_durations_are_rejected() {
    // Flags are validated with the file's values, and the error names the setting and flag.
    let err = Config::from_args(&run_args(&["--api.timeout", "10 parsecs"])).unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::Invalid {
                key: "api.timeout",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("--api.timeout"), "{err}");
    assert!(Config::from_args(&run_args(&["--poll.interval", "15"])).is_err());
    // Every duration has bounds.
    let err = Config::from_args(&run_args(&["--poll.first-delay", "300000y"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid setting poll.first_delay: must be between 100ms and 1h, got 300000years"
    );

    let f = file("[tracking]\nmax_age = \"two hours\"\n");
    let err =
        Config::from_args(&run_args(&["--config.file", f.path().to_str().unwrap()])).unwrap_err();
    assert!(err.to_string().contains("max_age"), "{err}");
    let f = file("[api]\ntimeout = 10\n");
    assert!(Config::from_args(&run_args(&["--config.file", f.path().to_str().unwrap()])).is_err());
}

#[test]
fn sampling_ratio_range() {
    for ok in ["1", "0.5", "0.0001"] {
        assert!(
            Config::from_args(&run_args(&["--sampling.ratio", ok])).is_ok(),
            "{ok}"
        );
    }
    for bad in ["0", "1.5", "-0.1", "NaN", "inf"] {
        let flag = format!("--sampling.ratio={bad}");
        let err = Config::from_args(&run_args(&[&flag])).unwrap_err();
        assert!(err.to_string().contains("sampling.ratio"), "{bad}: {err}");
    }
    // A negative value reaches validation instead of being taken for a flag.
    let err = Config::from_args(&run_args(&["--sampling.ratio", "-0.5"])).unwrap_err();
    assert!(err.to_string().contains("sampling.ratio"), "{err}");
    let f = file("[sampling]\nratio = 2.0\n");
    let err =
        Config::from_args(&run_args(&["--config.file", f.path().to_str().unwrap()])).unwrap_err();
    assert!(err.to_string().contains("sampling.ratio"), "{err}");
}

#[test]
fn log_format_values() {
    let json = Config::from_args(&run_args(&["--log.format", "json"])).unwrap();
    assert_eq!(json.log.format, LogFormat::Json);
    let err = Config::from_args(&run_args(&["--log.format", "xml"])).unwrap_err();
    assert!(err.to_string().contains("log.format"), "{err}");
    let f = file("[log]\nformat = \"xml\"\n");
    assert!(Config::from_args(&run_args(&["--config.file", f.path().to_str().unwrap()])).is_err());
}

const KEY: &str = "k3y-VALUE-4711";
const SECRET: &str = "s3cr3t-VALUE-0815";

fn env_with(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

#[test]
fn secrets_from_env() {
    let env = env_with(&[("ITNIOTECH_API_KEY", KEY), ("ITNIOTECH_API_SECRET", SECRET)]);
    let s = load_secrets(&run_args(&[]), &env).unwrap();
    assert_eq!((s.api_key.as_str(), s.api_secret.as_str()), (KEY, SECRET));
}

#[test]
fn secrets_from_files_win_and_lose_the_trailing_newline() {
    let key = file(&format!("{KEY}\n"));
    let secret = file(&format!("{SECRET}\r\n"));
    let args = run_args(&[
        "--api.key-file",
        key.path().to_str().unwrap(),
        "--api.secret-file",
        secret.path().to_str().unwrap(),
    ]);
    let env = env_with(&[
        ("ITNIOTECH_API_KEY", "from-env"),
        ("ITNIOTECH_API_SECRET", "from-env"),
    ]);
    let s = load_secrets(&args, &env).unwrap();
    assert_eq!((s.api_key.as_str(), s.api_secret.as_str()), (KEY, SECRET));
    // One from a file, the other from the environment.
    let args = run_args(&["--api.key-file", key.path().to_str().unwrap()]);
    let s = load_secrets(&args, &env).unwrap();
    assert_eq!(
        (s.api_key.as_str(), s.api_secret.as_str()),
        (KEY, "from-env")
    );
}

#[test]
fn missing_or_empty_secrets() {
    let err = load_secrets(&run_args(&[]), &env_with(&[])).unwrap_err();
    assert!(matches!(err, ConfigError::MissingCredentials));
    let msg = err.to_string();
    for needle in [
        "ITNIOTECH_API_KEY",
        "ITNIOTECH_API_SECRET",
        "--api.key-file",
        "--api.secret-file",
    ] {
        assert!(msg.contains(needle), "{msg}");
    }
    let only_key = env_with(&[("ITNIOTECH_API_KEY", KEY)]);
    assert!(matches!(
        load_secrets(&run_args(&[]), &only_key),
        Err(ConfigError::MissingCredentials)
    ));
    let empty = file("\n");
    let args = run_args(&["--api.key-file", empty.path().to_str().unwrap()]);
    let env = env_with(&[("ITNIOTECH_API_SECRET", SECRET)]);
    assert!(matches!(
        load_secrets(&args, &env),
        Err(ConfigError::EmptySecret { .. })
    ));
    let args = run_args(&["--api.key-file", "/nonexistent/key"]);
    let err = load_secrets(&args, &env).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/key"), "{err}");
}

#[test]
fn token_file() {
    let f = file("tok-123\n");
    assert_eq!(read_token_file(f.path()).unwrap(), "tok-123");
    let empty = file("");
    assert!(matches!(
        read_token_file(empty.path()),
        Err(ConfigError::EmptySecret { .. })
    ));
    assert!(read_token_file(Path::new("/nonexistent/token")).is_err());
}

#[test]
fn secrets_never_appear_in_debug() {
    let key = file(&format!("{KEY}\n"));
    let args = run_args(&["--api.key-file", key.path().to_str().unwrap()]);
    let env = env_with(&[("ITNIOTECH_API_SECRET", SECRET)]);
    let secrets = load_secrets(&args, &env).unwrap();
    let config = Config::from_args(&args).unwrap();
    let cli =
        Cli::try_parse_from(["x", "run", "--api.key-file", key.path().to_str().unwrap()]).unwrap();
    for text in [
        format!("{secrets:?}"),
        format!("{secrets:#?}"),
        format!("{config:?}"),
        format!("{args:?}"),
        format!("{cli:?}"),
    ] {
        assert!(!text.contains(KEY) && !text.contains(SECRET), "{text}");
    }
    assert!(format!("{secrets:?}").contains("redacted"));
}

#[test]
fn run_help_lists_every_flag() {
    let mut cmd = Cli::command();
    let help = cmd
        .find_subcommand_mut("run")
        .unwrap()
        .render_long_help()
        .to_string();
    let table_flags = Config::keys().into_iter().map(|(_, f)| format!("--{f}"));
    let other_flags = ["--config.file", "--api.key-file", "--api.secret-file"].map(String::from);
    for flag in table_flags.chain(other_flags) {
        assert!(help.contains(&flag), "run --help lacks {flag}:\n{help}");
    }
    assert!(help.contains("9867"), "the default port is documented");
    insta::assert_snapshot!("run_help", help);
}

#[test]
fn demo_flags() {
    let cli = Cli::try_parse_from([
        "x",
        "demo",
        "--demo.rate",
        "20",
        "--scenario",
        "pumping",
        "--seed",
        "7",
        "--demo.duration",
        "90s",
        "--web.listen-address",
        "127.0.0.1:0",
    ])
    .unwrap();
    let Command::Demo(demo) = cli.command else {
        panic!()
    };
    assert_eq!(demo.rate, 20.0);
    assert_eq!(demo.scenario.as_deref(), Some("pumping"));
    assert_eq!(demo.seed, 7);
    assert_eq!(demo.duration, Some(Duration::from_secs(90)));
    let cfg =
        Config::from_args_over(itniotech_exporter::demo::demo_defaults(), &demo.agent).unwrap();
    assert_eq!(cfg.web.listen_address.to_string(), "127.0.0.1:0");
    assert_eq!(cfg.api.max_rps, 200.0, "the demo's own default");

    let Command::Demo(demo) = Cli::try_parse_from(["x", "demo", "--api.max-rps", "7"])
        .unwrap()
        .command
    else {
        panic!()
    };
    let cfg =
        Config::from_args_over(itniotech_exporter::demo::demo_defaults(), &demo.agent).unwrap();
    assert_eq!(
        cfg.web.listen_address.to_string(),
        "127.0.0.1:9867",
        "loopback"
    );
    assert_eq!(cfg.api.max_rps, 7.0, "a flag wins over the demo's default");

    let Command::Demo(demo) = Cli::try_parse_from(["x", "demo"]).unwrap().command else {
        panic!()
    };
    assert_eq!(
        (demo.rate, demo.seed, demo.scenario, demo.duration),
        (5.0, 1, None, None)
    );
}
