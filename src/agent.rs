//! Wiring: builds every stage from the configuration and runs them until shutdown.
//!
//! Nothing here has logic of its own; it connects intake → tracker → poller → accounting →
//! metrics → server exactly once, for both `run` and `demo`.

use crate::accounting::Settings;
use crate::api::{ApiError, Client, ClientConfig, Credentials};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::poller::{CatalogPoller, FlowCatalogHandle, OrderPoller, PollerError};
use crate::server::{self, LandingInfo, ServerState};
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
    #[error("{0}")]
    Config(String),
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
    /// The capture proxy's router, when `--proxy.listen-address` is set.
    proxy: Option<axum::Router>,
    cfg: Config,
    intake_token: Option<String>,
}

impl Agent {
    /// Opens the store (restoring persisted metrics) and builds every stage.
    pub fn build(cfg: Config, creds: Credentials, clock: SharedClock) -> Result<Agent, AgentError> {
        let intake_token = match &cfg.intake.token_file {
            Some(path) => Some(
                crate::config::read_token_file(path)
                    .map_err(|e| AgentError::Config(e.to_string()))?,
            ),
            None => None,
        };
        let store = Store::open(&cfg.storage.path)?;
        let ledger = store.load_ledger()?;
        tracing::info!(
            path = %cfg.storage.path.display(),
            series = ledger.len(),
            "store opened"
        );
        let metrics = Arc::new(Metrics::new(ledger, VERSION, REVISION));
        let tracker = Tracker::start(
            store,
            metrics.ledger.clone(),
            TrackerConfig::from(&cfg),
            clock.clone(),
        );
        let client = Arc::new(Client::new(
            ClientConfig::from(&cfg.api),
            creds,
            clock.clone(),
            metrics.op.clone(),
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
                let upstream = reqwest::Url::parse(cfg.api.base_url.as_str())
                    .map_err(|e| AgentError::Config(format!("api.base_url: {e}")))?;
                let http = crate::proxy::upstream_client(cfg.proxy.timeout.get())
                    .map_err(|e| AgentError::Config(format!("the proxy's HTTP client: {e}")))?;
                Some(crate::proxy::router(crate::proxy::ProxyState {
                    upstream,
                    http,
                    sink: Arc::new(tracker.clone()),
                    metrics: metrics.op.clone(),
                    clock,
                }))
            }
        };
        Ok(Agent {
            metrics,
            tracker,
            orders,
            catalog,
            proxy,
            cfg,
            intake_token,
        })
    }

    /// The bearer token the intake requires, if one is configured.
    pub fn intake_token(&self) -> Option<String> {
        self.intake_token.clone()
    }

    /// The HTTP router: metrics, health, readiness, landing page and intake.
    pub fn router(&self) -> axum::Router {
        let metrics = self.metrics.clone();
        let flows = self.orders.flows().clone();
        server::router(ServerState {
            sink: Arc::new(self.tracker.clone()),
            observer: self.metrics.op.clone(),
            render_metrics: Arc::new(move || metrics.render()),
            ready: Arc::new(move || flows.attempted()),
            intake_token: self.intake_token.clone(),
            telemetry_path: self.cfg.web.telemetry_path.clone(),
            max_body_bytes: self.cfg.intake.max_body_bytes,
            max_items: self.cfg.intake.max_items,
            landing: LandingInfo::default(),
        })
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
    /// and lets in-flight store writes finish.
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
        let catalog_task = tokio::spawn(self.catalog.clone().run(wait(stop_rx.clone())));
        let proxy_task = match (self.proxy.clone(), listeners.proxy) {
            (Some(proxy), Some(listener)) => {
                if let Ok(addr) = listener.local_addr() {
                    tracing::info!(address = %addr, upstream = %self.cfg.api.base_url, "capture proxy listening");
                }
                Some(tokio::spawn(server::serve(
                    listener,
                    proxy,
                    wait(stop_rx.clone()),
                )))
            }
            _ => None,
        };
        let orders_task = tokio::spawn(self.orders.clone().run(wait(stop_rx.clone())));
        let served = server::serve(listeners.web, router, async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await;
        let _ = catalog_task.await;
        let _ = orders_task.await;
        if let Some(task) = proxy_task {
            let _ = task.await;
        }
        served.map_err(|error| AgentError::Io {
            what: "the HTTP listener".into(),
            error,
        })
    }
}
