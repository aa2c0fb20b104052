//! Secrets: the API key and secret, and the intake token.
//!
//! They never come from flags or the config file: the key and secret come from the environment
//! (`ITNIOTECH_API_KEY`, `ITNIOTECH_API_SECRET`) or from files named by `--api.key-file` /
//! `--api.secret-file`, and nothing that holds one prints it in `Debug`.

use std::fmt;
use std::path::Path;

use super::{AgentArgs, ConfigError, ENV_API_KEY, ENV_API_SECRET};

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
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::ReadSecret {
        what,
        path: path.to_owned(),
        error,
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
