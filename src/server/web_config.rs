//! `--web.config.file`: the web configuration file Prometheus exporters share (the
//! exporter-toolkit format, `docs/web-configuration.md` of prometheus/exporter-toolkit), so an
//! SRE protects this agent exactly like node_exporter:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt            # or `cert:` inline PEM
//!   key_file: server.key             # or `key:` inline PEM
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: clients-ca.crt   # or `client_ca:` inline PEM
//!   client_allowed_sans: [prometheus.example.org]
//!   min_version: TLS12               # TLS12 (default) or TLS13; rustls has no TLS 1.0/1.1
//!   max_version: TLS13
//!   cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]   # TLS 1.2 only, as in Go
//!   prefer_server_cipher_suites: true
//!   curve_preferences: [X25519, CurveP256]
//! http_server_config:
//!   http2: true                      # accepted; this server speaks HTTP/1.1 only
//!   headers:
//!     X-Content-Type-Options: nosniff
//! basic_auth_users:
//!   prometheus: $2y$10$...           # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\n')
//! rate_limit:
//!   interval: 100ms                  # one request per interval ...
//!   burst: 20                        # ... with bursts of this many; 0s disables
//! ```
//!
//! Differences from the Go toolkit, each refused with a message rather than silently ignored:
//! TLS 1.0/1.1, CBC and non-ECDHE cipher suites, the P-521 curve and e-mail SANs in
//! `client_allowed_sans` do not exist in rustls/webpki. `http2` is accepted and has no effect.
//!
//! Relative paths are relative to the file's directory, as in the toolkit. The file and every
//! file it names are re-read when their content changes ([`super::reload`]); TLS cannot be
//! switched on or off without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

use super::auth::BasicAuth;
use super::tls::{self, ClientAuth, TlsSettings};

/// Why a web configuration cannot be used. Messages name the key, never a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebConfigError {
    #[error("cannot read {}: {error}", .path.display())]
    Read { path: PathBuf, error: String },
    #[error("invalid web config {}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("invalid web config: {key}: {message}")]
    Invalid { key: String, message: String },
}

impl WebConfigError {
    pub(super) fn invalid(key: &str, message: impl Into<String>) -> Self {
        WebConfigError::Invalid {
            key: key.to_owned(),
            message: message.into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file format (strict: unknown keys are errors, as with the toolkit's UnmarshalStrict)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: Option<HttpFile>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TlsFile {
    pub cert: Option<String>,
    pub key: Option<String>,
    pub client_ca: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_auth_type: Option<String>,
    pub client_ca_file: Option<PathBuf>,
    pub client_allowed_sans: Option<Vec<String>>,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
    pub cipher_suites: Option<Vec<String>>,
    pub prefer_server_cipher_suites: Option<bool>,
    pub curve_preferences: Option<Vec<String>>,
}

impl TlsFile {
    /// Nothing set: the toolkit serves plain HTTP then.
    fn is_empty(&self) -> bool {
        self.cert.is_none()
            && self.key.is_none()
            && self.client_ca.is_none()
            && self.cert_file.is_none()
            && self.key_file.is_none()
            && self.client_ca_file.is_none()
            && self.client_auth_type.is_none()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    burst: Option<u32>,
}

/// The response headers the toolkit lets a web config set, with the values it accepts (`None`:
/// any value).
const HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Content-Security-Policy", None),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-XSS-Protection", None),
    ("Strict-Transport-Security", None),
];

// ---------------------------------------------------------------------------------------------
// The loaded configuration
// ---------------------------------------------------------------------------------------------

/// A validated web configuration, ready to serve with. Cheap to share; a reload builds a new one.
#[derive(Debug, Default)]
pub struct WebConfig {
    /// TLS, when configured.
    pub tls: Option<TlsSettings>,
    /// Basic-auth users, when configured (with their own verification cache).
    pub basic_auth: Option<Arc<BasicAuth>>,
    /// Headers added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The toolkit's `rate_limit`: one request per `interval`, bursts of `burst`.
    pub rate_limit: Option<RateLimit>,
}

/// `rate_limit` of the web config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

impl WebConfig {
    /// Whether this configuration authenticates every client by itself: basic-auth users, or
    /// client certificates that must be presented and verified.
    pub fn authenticates_clients(&self) -> bool {
        self.basic_auth.is_some()
            || self
                .tls
                .as_ref()
                .is_some_and(|t| t.client_auth == ClientAuth::RequireAndVerify)
    }

    /// Reads and validates `path` and every file it names.
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        let text = read(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(path, dir, &text)
    }

    /// The files a configuration at `path` depends on (itself first), for change detection.
    /// An unreadable or invalid file depends on itself only.
    pub fn files(path: &Path) -> Vec<PathBuf> {
        let mut files = vec![path.to_owned()];
        let Ok(text) = std::fs::read_to_string(path) else {
            return files;
        };
        let Ok(file) = serde_yaml_ng::from_str::<FileFormat>(&text) else {
            return files;
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        if let Some(tls) = file.tls_server_config {
            for p in [tls.cert_file, tls.key_file, tls.client_ca_file]
                .into_iter()
                .flatten()
            {
                files.push(dir.join(p));
            }
        }
        files
    }

    /// Parses configuration text; `dir` resolves relative file names.
    pub fn parse(path: &Path, dir: &Path, text: &str) -> Result<WebConfig, WebConfigError> {
        // An empty file is a valid, empty configuration (YAML reads it as null).
        let file: FileFormat = if text.trim().is_empty() {
            FileFormat::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| WebConfigError::Parse {
                path: path.to_owned(),
                // serde_yaml_ng errors quote keys and positions, never scalar values.
                message: e.to_string(),
            })?
        };
        let tls = match file.tls_server_config {
            Some(t) if !t.is_empty() => Some(tls::settings(&t, dir)?),
            _ => None,
        };
        let basic_auth = match file.basic_auth_users {
            Some(users) if !users.is_empty() => Some(Arc::new(BasicAuth::new(users)?)),
            _ => None,
        };
        let mut headers = Vec::new();
        let http = file.http_server_config.unwrap_or_default();
        if http.http2 == Some(true) {
            tracing::debug!("http_server_config.http2 has no effect: this server speaks HTTP/1.1");
        }
        for (name, value) in http.headers.unwrap_or_default() {
            headers.extend(header(&name, &value)?);
        }
        let rate_limit = match file.rate_limit {
            None => None,
            Some(r) => {
                let interval = match r.interval.as_deref() {
                    None => Duration::ZERO,
                    Some(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                        WebConfigError::invalid("rate_limit.interval", format!("{e}"))
                    })?,
                };
                let burst = r.burst.unwrap_or(0);
                if interval.is_zero() {
                    None
                } else if burst == 0 {
                    return Err(WebConfigError::invalid(
                        "rate_limit.burst",
                        "must be at least 1 when an interval is set",
                    ));
                } else {
                    Some(RateLimit { interval, burst })
                }
            }
        };
        Ok(WebConfig {
            tls,
            basic_auth,
            headers,
            rate_limit,
        })
    }
}

fn header(name: &str, value: &str) -> Result<Option<(HeaderName, HeaderValue)>, WebConfigError> {
    let key = format!("http_server_config.headers.{name}");
    let Some((canonical, allowed)) = HEADERS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name))
    else {
        return Err(WebConfigError::invalid(
            &key,
            format!(
                "this header can not be configured (allowed: {})",
                HEADERS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    };
    // Blank means unset, as in the toolkit.
    if value.trim().is_empty() {
        return Ok(None);
    }
    if let Some(allowed) = allowed {
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(value.trim())) {
            return Err(WebConfigError::invalid(
                &key,
                format!("must be one of {}", allowed.join(", ")),
            ));
        }
    }
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| WebConfigError::invalid(&key, "is not a valid header value"))?;
    let name = HeaderName::from_bytes(canonical.as_bytes())
        .map_err(|_| WebConfigError::invalid(&key, "is not a valid header name"))?;
    Ok(Some((name, value)))
}

/// Reads a file for the configuration; the error names the file, not its content.
pub(super) fn read(path: &Path) -> Result<String, WebConfigError> {
    std::fs::read_to_string(path).map_err(|e| WebConfigError::Read {
        path: path.to_owned(),
        error: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::parse(Path::new("web.yml"), Path::new("/nonexistent"), text)
    }

    #[test]
    fn empty_files_and_sections_configure_nothing() {
        for text in [
            "",
            "\n",
            "tls_server_config: {}\n",
            "basic_auth_users: {}\n",
        ] {
            let c = parse(text).unwrap();
            assert!(c.tls.is_none() && c.basic_auth.is_none(), "{text:?}");
            assert!(!c.authenticates_clients());
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = parse("basic_auth_user:\n  a: b\n").unwrap_err();
        assert!(e.to_string().contains("basic_auth_user"), "{e}");
        let e = parse("tls_server_config:\n  certfile: x\n").unwrap_err();
        assert!(e.to_string().contains("certfile"), "{e}");
    }

    #[test]
    fn headers_are_checked_like_the_toolkit() {
        let c = parse(
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n    \
             Strict-Transport-Security: max-age=31536000\n    X-XSS-Protection: \"\"\n",
        )
        .unwrap();
        let names: Vec<&str> = c.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["strict-transport-security", "x-frame-options"]);
        for bad in [
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
            "http_server_config:\n  headers:\n    Server: nginx\n",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        // http2 is accepted (and has no effect: HTTP/1.1 only).
        assert!(parse("http_server_config:\n  http2: true\n").is_ok());
    }

    #[test]
    fn rate_limit() {
        let c = parse("rate_limit:\n  interval: 100ms\n  burst: 5\n").unwrap();
        assert_eq!(
            c.rate_limit,
            Some(RateLimit {
                interval: Duration::from_millis(100),
                burst: 5
            })
        );
        assert_eq!(
            parse("rate_limit:\n  interval: 0s\n  burst: 5\n")
                .unwrap()
                .rate_limit,
            None
        );
        assert!(parse("rate_limit:\n  interval: 1s\n").is_err());
        assert!(parse("rate_limit:\n  interval: soon\n  burst: 1\n").is_err());
    }

    #[test]
    fn basic_auth_users_need_bcrypt_hashes() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let c = parse(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
        assert!(c.authenticates_clients());
        let e = parse("basic_auth_users:\n  prometheus: plaintext-secret\n").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("basic_auth_users.prometheus"), "{msg}");
        assert!(!msg.contains("plaintext-secret"), "a secret leaked: {msg}");
    }

    #[test]
    fn missing_files_are_named() {
        let e = parse("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/a.crt"), "{e}");
    }
}
