//! The web config in force, and its reload when the file (or a file it names) changes.
//!
//! The exporter-toolkit re-reads its file on every request; we instead look at the file and
//! the certificate, key and CA files it names every [`CHECK_EVERY`] and rebuild only when their
//! content changed (a rotated certificate, a `kubectl apply` of a Secret's symlink swap). A
//! file that fails to load keeps the last good configuration in force, logs why once per
//! change, and sets `itniotech_exporter_web_config_last_reload_successful` to 0.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::web_config::WebConfig;
use super::HttpObserver;
use crate::clock::SharedClock;

/// How often the files are looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// One loaded configuration with the state that lives as long as it does.
#[derive(Debug, Default)]
pub struct Generation {
    pub config: WebConfig,
    /// The token bucket of `rate_limit`.
    pub rate_limiter: Option<DefaultDirectRateLimiter>,
}

impl Generation {
    pub fn new(config: WebConfig) -> Generation {
        let rate_limiter = config.rate_limit.map(|r| {
            let burst = NonZeroU32::new(r.burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(r.interval)
                .expect("a non-zero interval")
                .allow_burst(burst);
            RateLimiter::direct(quota)
        });
        Generation {
            config,
            rate_limiter,
        }
    }
}

/// The web config in force, shared by the routes, the connections and the reloader.
#[derive(Debug, Clone, Default)]
pub struct WebConfigHandle {
    current: Arc<RwLock<Arc<Generation>>>,
}

impl WebConfigHandle {
    /// A handle holding `config`.
    pub fn new(config: WebConfig) -> WebConfigHandle {
        WebConfigHandle {
            current: Arc::new(RwLock::new(Arc::new(Generation::new(config)))),
        }
    }

    /// The configuration in force now.
    pub fn current(&self) -> Arc<Generation> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, config: WebConfig) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(Generation::new(config));
    }
}

/// A fingerprint of the content of `files` (an unreadable file counts by its error).
fn fingerprint(files: &[PathBuf]) -> u64 {
    let mut bytes = Vec::new();
    for f in files {
        bytes.extend_from_slice(f.as_os_str().as_encoded_bytes());
        match std::fs::read(f) {
            Ok(content) => {
                bytes.push(1);
                bytes.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(&content).to_le_bytes());
            }
            Err(e) => {
                bytes.push(0);
                bytes.extend_from_slice(e.kind().to_string().as_bytes());
            }
        }
    }
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Re-reads `path` whenever its content (or a file it names) changes, until `stop` resolves.
/// `accept` vets a new configuration against what cannot change at run time (TLS on or off,
/// an intake that must stay protected); a refusal keeps the last good configuration.
pub async fn watch_web_config(
    handle: WebConfigHandle,
    path: PathBuf,
    observer: Arc<dyn HttpObserver>,
    clock: SharedClock,
    accept: impl Fn(&WebConfig) -> Result<(), String> + Send + 'static,
    stop: impl std::future::Future<Output = ()> + Send,
) {
    tokio::pin!(stop);
    let mut last = fingerprint(&WebConfig::files(&path));
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        let files = WebConfig::files(&path);
        let now = fingerprint(&files);
        if now == last {
            continue;
        }
        last = now;
        let at = clock.now().timestamp_millis() as f64 / 1000.0;
        for f in &files {
            crate::config::warn_if_exposed(f, "web config");
        }
        match WebConfig::load(&path)
            .map_err(|e| e.to_string())
            .and_then(|c| {
                accept(&c)?;
                Ok(c)
            }) {
            Ok(config) => {
                handle.replace(config);
                observer.web_config_loaded(true, at);
                tracing::info!(path = %path.display(), "web config reloaded");
            }
            Err(error) => {
                observer.web_config_loaded(false, at);
                tracing::error!(
                    path = %path.display(),
                    %error,
                    "web config reload failed; the last good configuration stays in force"
                );
            }
        }
    }
}
