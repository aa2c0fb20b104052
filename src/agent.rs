//! Wiring: builds every stage from the configuration and runs them until shutdown.
//!
//! Nothing here has logic of its own; it connects intake → tracker → poller → accounting →
//! metrics → server exactly once, for both `run` and `demo`.

use crate::accounting::Settings;
use crate::api::{ApiError, ApiHealth, Client, ClientConfig, Credentials};
use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::poller::{CatalogPoller, FlowCatalogHandle, OrderPoller, PollerError};
use crate::server::{
    self, IntakeLimits, LandingInfo, Readiness, ServeOptions, ServerState, WebConfig,
    WebConfigHandle,
};
use crate::tracker::store::{Store, StoreError};
use crate::tracker::{Tracker, TrackerConfig};
use std::sync::Arc;
use tokio::sync::watch;

/// The version reported in `itniotech_exporter_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision the binary was built from.
pub const REVISION: &str = env!("ITNIOTECH_REVISION");

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("building the API client: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Poller(#[from] PollerError),
    #[error("reading {what}: {error}")]
    Io { what: String, error: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Proxy(String),
    #[error(
        "the store writer stopped ({0}); exiting so that the supervisor restarts the agent \
         (the store is consistent: every acknowledged order and counted increment is committed)"
    )]
    WriterStopped(String),
}

/// The agent's bound sockets.
#[derive(Debug)]
pub struct Listeners {
    /// Metrics, probes, landing page and intake.
    pub web: tokio::net::TcpListener,
    /// The capture proxy, when configured.
    pub proxy: Option<tokio::net::TcpListener>,
}

/// Every stage, built and connected but not yet running.
pub struct Agent {
    metrics: Arc<Metrics>,
    tracker: Tracker,
    orders: OrderPoller,
    catalog: CatalogPoller,
    api_health: Arc<ApiHealth>,
    clock: SharedClock,
    /// The capture proxy's router, when `--proxy.listen-address` is set.
    proxy: Option<axum::Router>,
    cfg: Config,
    intake_token: Option<String>,
    web: WebConfigHandle,
}

impl Agent {
    /// Opens the store (restoring persisted metrics) and builds every stage.
    pub fn build(cfg: Config, creds: Credentials, clock: SharedClock) -> Result<Agent, AgentError> {
        let intake_token = match &cfg.intake.token_file {
            Some(path) => Some(crate::config::read_token_file(path)?),
            None => None,
        };
        let web = match &cfg.web.config_file {
            Some(path) => {
                for file in WebConfig::files(path) {
                    crate::config::warn_if_exposed(&file, "web config");
                }
                WebConfig::load(path).map_err(|e| ConfigError::WebConfig(e.to_string()))?
            }
            None => WebConfig::default(),
        };
        if intake_must_be_protected(&cfg, intake_token.is_some()) && !web.authenticates_clients() {
            return Err(ConfigError::OpenIntake {
                address: cfg.web.listen_address,
            }
            .into());
        }
        let web = WebConfigHandle::new(web);
        let mut store = Store::open(&cfg.storage.path)?;
        let now_ms = clock.now().timestamp_millis();
        // Damaged rows: skipped into the quarantine table, unless skipping would reset a
        // counter Prometheus has seen (then this fails with how to recover).
        let mut ledger = store.open_ledger(now_ms)?;
        let unreadable = store.quarantine_unreadable(now_ms)?;
        ledger.set_budget(crate::ledger::Budget::from_config(
            &cfg.metrics,
            clock.clone(),
        ));
        tracing::info!(
            path = %cfg.storage.path.display(),
            series = ledger.len(),
            quarantined_orders = unreadable,
            "store opened"
        );
        let metrics = Arc::new(Metrics::new(ledger, VERSION, REVISION));
        metrics.op.quarantined(store.quarantined()?);
        let tracker = Tracker::start_observed(
            store,
            metrics.ledger.clone(),
            TrackerConfig::from(&cfg),
            clock.clone(),
            metrics.op.clone(),
        );
        let api_health = Arc::new(ApiHealth::new(metrics.op.clone(), clock.clone()));
        let client = Arc::new(Client::new(
            ClientConfig::from(&cfg.api),
            creds,
            clock.clone(),
            api_health.clone(),
        )?);
        let flows = FlowCatalogHandle::default();
        let catalog = CatalogPoller::new(
            client.clone(),
            metrics.op.clone(),
            flows.clone(),
            cfg.api.currency.to_string(),
            cfg.flows.refresh_interval.get(),
            cfg.balance.refresh_interval.get(),
        )?;
        let orders = OrderPoller::new(
            tracker.clone(),
            client,
            flows,
            metrics.op.clone(),
            Settings::from(&cfg),
            clock.clone(),
            cfg.api.concurrency,
        )?;
        let proxy = match cfg.proxy.listen_address {
            None => None,
            Some(_) => {
                let upstream = reqwest::Url::parse(cfg.api.base_url.as_str()).map_err(|e| {
                    ConfigError::Invalid {
                        key: "api.base_url",
                        message: e.to_string(),
                    }
                })?;
                let http = crate::proxy::upstream_client(cfg.proxy.timeout.get())
                    .map_err(|e| AgentError::Proxy(format!("the proxy's HTTP client: {e}")))?;
                Some(crate::proxy::router(crate::proxy::ProxyState {
                    upstream,
                    http,
                    sink: Arc::new(tracker.clone()),
                    metrics: metrics.op.clone(),
                    clock: clock.clone(),
                }))
            }
        };
        Ok(Agent {
            metrics,
            tracker,
            orders,
            catalog,
            api_health,
            clock,
            proxy,
            cfg,
            intake_token,
            web,
        })
    }

    /// The bearer token the intake requires, if one is configured.
    pub fn intake_token(&self) -> Option<String> {
        self.intake_token.clone()
    }

    /// The HTTP router: metrics, health, readiness, landing page and intake.
    pub fn router(&self) -> axum::Router {
        let metrics = self.metrics.clone();
        let op = self.metrics.op.clone();
        let store = self.tracker.health().clone();
        let api = self.api_health.clone();
        let clock = self.clock.clone();
        let window = chrono::Duration::from_std(self.cfg.readiness.api_window.get())
            .unwrap_or(chrono::Duration::MAX);
        server::router(ServerState {
            sink: Arc::new(self.tracker.clone()),
            observer: self.metrics.op.clone(),
            http: self.metrics.op.clone(),
            render_metrics: Arc::new(move || metrics.render()),
            ready: Arc::new(move || Readiness {
                store: store.readiness(clock.now()),
                vendor: api.readiness(window),
            }),
            pending: Arc::new(move || op.pending_orders()),
            intake_token: self.intake_token.clone(),
            web: self.web.clone(),
            telemetry_path: self.cfg.web.telemetry_path.clone(),
            max_body_bytes: self.cfg.intake.max_body_bytes,
            max_items: self.cfg.intake.max_items,
            intake_limits: IntakeLimits::from(&self.cfg.intake),
            landing: LandingInfo::default(),
        })
    }

    /// Whether the intake is served over TLS (the web config in force has it).
    pub fn tls(&self) -> bool {
        self.web.current().config.tls.is_some()
    }

    /// Binds the listeners the configuration asks for: the web server and, when configured,
    /// the capture proxy.
    pub async fn bind(&self) -> Result<Listeners, AgentError> {
        let bind = |addr: std::net::SocketAddr, what: &'static str| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|error| AgentError::Io {
                    what: format!("listening for {what} on {addr}"),
                    error,
                })
        };
        let web = bind(self.cfg.web.listen_address, "the web server").await?;
        let proxy = match self.cfg.proxy.listen_address {
            Some(addr) if self.proxy.is_some() => Some(bind(addr, "the capture proxy").await?),
            _ => None,
        };
        Ok(Listeners { web, proxy })
    }

    /// Serves on the listeners and runs the pollers until `shutdown` resolves, then stops them
    /// and lets in-flight store writes finish. Every listener goes through the same web config
    /// (TLS, basic auth, rate limit, headers) and the same connection limits. If the store's
    /// writer thread dies, everything stops the same way and this returns
    /// [`AgentError::WriterStopped`]: the process must exit non-zero so that its supervisor
    /// restarts it on the same store.
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), AgentError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let router = self.router();
        let op = self.metrics.op.clone();
        let opts = ServeOptions::from(&self.cfg.web);
        server::HttpObserver::limits(&*op, opts.max_connections, self.cfg.intake.max_pending);
        let started = self.clock.now().timestamp_millis() as f64 / 1000.0;
        server::HttpObserver::web_config_loaded(&*op, true, started);
        let catalog_task = tokio::spawn(self.catalog.clone().run(wait(stop_rx.clone())));
        let proxy_task = match (self.proxy.clone(), listeners.proxy) {
            (Some(proxy), Some(listener)) => {
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(
                        address = %addr,
                        upstream = %self.cfg.api.base_url,
                        tls = self.tls(),
                        "capture proxy listening"
                    );
                }
                let proxy = server::protect(proxy, self.web.clone(), op.clone());
                Some(tokio::spawn(server::serve(
                    listener,
                    proxy,
                    self.web.clone(),
                    opts,
                    op.clone(),
                    wait(stop_rx.clone()),
                )))
            }
            _ => None,
        };
        let orders_task = tokio::spawn(self.orders.clone().run(wait(stop_rx.clone())));
        if let Some(path) = self.cfg.web.config_file.clone() {
            let tls = self.tls();
            let must_protect = intake_must_be_protected(&self.cfg, self.intake_token.is_some());
            let address = self.cfg.web.listen_address;
            tokio::spawn(server::watch_web_config(
                self.web.clone(),
                path,
                op.clone(),
                self.clock.clone(),
                move |c: &WebConfig| {
                    if c.tls.is_some() != tls {
                        return Err("switching TLS on or off needs a restart".into());
                    }
                    if must_protect && !c.authenticates_clients() {
                        return Err(format!(
                            "it would leave the intake on {address} unauthenticated"
                        ));
                    }
                    Ok(())
                },
                wait(stop_rx.clone()),
            ));
        }
        let writer_died = Arc::new(std::sync::Mutex::new(None::<String>));
        let tracker = self.tracker.clone();
        let died = writer_died.clone();
        let served = server::serve(
            listeners.web,
            router,
            self.web.clone(),
            opts,
            op,
            async move {
                tokio::select! {
                    _ = shutdown => {}
                    reason = tracker.stopped() => {
                        *died.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
                    }
                }
                let _ = stop_tx.send(true);
            },
        )
        .await;
        let _ = catalog_task.await;
        let _ = orders_task.await;
        if let Some(task) = proxy_task {
            let _ = task.await;
        }
        if let Some(reason) = writer_died.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(AgentError::WriterStopped(reason));
        }
        served.map_err(|error| AgentError::Io {
            what: "the HTTP listener".into(),
            error,
        })
    }
}

/// Off loopback, an intake without a token needs the web config to authenticate clients,
/// unless the operator opened it on purpose (`--intake.allow-unauthenticated`).
fn intake_must_be_protected(cfg: &Config, has_token: bool) -> bool {
    !cfg.web.listen_address.ip().is_loopback() && !has_token && !cfg.intake.allow_unauthenticated
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that dies (a panic: every known cause of one is a bug) must end `run` with
    /// `WriterStopped`, which `main` turns into a non-zero exit, instead of leaving an agent
    /// that answers 503 to every intake while looking alive.
    #[tokio::test]
    async fn the_writers_death_ends_run_with_writer_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = Config::default();
        cfg.storage.path = dir.path().to_path_buf();
        // Nothing listens there: the pollers fail, which is beside the point.
        cfg.api.base_url = "http://127.0.0.1:9".parse().unwrap();
        // Loopback: an open intake is allowed there.
        cfg.web.listen_address = "127.0.0.1:0".parse().unwrap();
        let agent = Agent::build(cfg, Credentials::new("k", "s"), crate::clock::system()).unwrap();
        let tracker = agent.tracker.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listeners = Listeners {
            web: listener,
            proxy: None,
        };
        let run = tokio::spawn(agent.run(listeners, std::future::pending()));
        tracker.crash_for_test().await;
        let ended = tokio::time::timeout(std::time::Duration::from_secs(30), run)
            .await
            .expect("run ends once the writer is dead")
            .unwrap();
        match ended {
            Err(AgentError::WriterStopped(reason)) => {
                assert!(reason.contains("panicked"), "{reason}")
            }
            other => panic!("expected WriterStopped, got {other:?}"),
        }
    }
}
