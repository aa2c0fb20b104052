//! A faithful fake of the itniotech OTP API, used by `demo`, `simulate` and the tests
//! (docs/vendor-api.md §5 lists what it models and what it does not).
//!
//! It serves the same paths, headers, envelopes and quirks as the vendor (string top-level
//! `status`, int `sms.status`, objects vs arrays on the two record calls, decimal strings,
//! `+08:00` timestamps, `billPeriodstring`, getBalance without `data`), builds its replies on its
//! own (it never uses the agent's reply models), and evolves orders purely as a function of the
//! injected [`SharedClock`] and the seed:
//!
//! - `presets`: countries, operators, flows and call outcomes shared with dashboards and tests;
//! - `plan`: pure, seeded planning of one SMS / call attempt and of the end user's behaviour;
//! - `state`: the account (flows, orders, balance) and how orders walk their task flows;
//! - `http`: routes, authentication, chaos injection and reply envelopes;
//! - `config`: [`SimConfig`], [`Scenario`], [`Chaos`] and the CLI flags [`SimArgs`].
//!
//! Semantics chosen where the vendor is silent: a flow node's trigger is evaluated exactly
//! `waitingTime` s after its attempt started (status 1: a failure report has arrived by then;
//! status 2: the code is not verified by then); a flow stops early once the balance is ≤ 0. An
//! SMS is charged its `pay` at submit, a call its `cost` at hang-up, so the balance always fell
//! by exactly the `pay`/`cost` the records show. Chaos faults (timeout, HTTP 500/503) hit before
//! authentication, `-18` after it, and a malformed body is a processed request whose reply was
//! cut. Scenario faults (`api-degraded`) add to the [`Chaos`] knobs rather than replace them.
//!
//! Not modelled: apps, templates (any `templateId` is accepted, the code is 6 digits), resend,
//! the `sna` channel (`-22`), backfill calls, send limits (`-27`/`-28`), code expiry, IP
//! allow-lists, and push reports.

mod config;
mod http;
mod plan;
mod presets;
mod state;

pub use config::{
    parse_operator, Chaos, Scenario, SimArgs, SimConfig, SimError, CHAOS_TIMEOUT_HANG,
    DEFAULT_INITIAL_BALANCE, DEFAULT_TIMESTAMP_WINDOW, DEMO_API_KEY, DEMO_API_SECRET,
};
pub use presets::{
    country_of, operator_of, preset_flows, random_receiver, CallFailure, CountryPreset,
    OperatorPreset, SimChannel, SimFlow, SimFlowNode, CALL_FAILURES, COUNTRIES,
};

use crate::clock::SharedClock;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rust_decimal::Decimal;
use state::State;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// An end-user action planned by the simulator, handed out by [`Simulator::take_user_actions`]
/// when virtual users are off: send `code` to `POST /otp/verification/verify`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserAction {
    pub verification_id: String,
    /// The code the user types: usually right, sometimes a wrong first try.
    pub code: String,
}

/// The simulated vendor API. Cheap to clone; clones share the account.
#[derive(Clone)]
pub struct Simulator {
    inner: Arc<Inner>,
}

struct Inner {
    clock: SharedClock,
    api_key: String,
    api_secret: String,
    timestamp_window: Duration,
    state: Mutex<State>,
}

impl Simulator {
    pub fn new(cfg: SimConfig, clock: SharedClock) -> Self {
        let state = State::new(
            cfg.seed,
            cfg.scenario,
            cfg.chaos,
            cfg.initial_balance,
            cfg.virtual_users,
        );
        Self {
            inner: Arc::new(Inner {
                clock,
                api_key: cfg.api_key,
                api_secret: cfg.api_secret,
                timestamp_window: cfg.timestamp_window,
                state: Mutex::new(state),
            }),
        }
    }

    /// The HTTP API (unknown routes answer 404).
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// Serve the API on `listener` until the task is dropped or the server fails.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Replace the chaos knobs (takes effect on the next request / attempt).
    pub fn set_chaos(&self, chaos: Chaos) {
        self.lock().chaos = chaos;
    }

    /// The account balance now (after replaying everything due).
    pub fn balance(&self) -> Decimal {
        self.with_now(|st, now| st.balance_at(now))
    }

    /// With virtual users off: the end-user actions whose time has come, oldest first. Each
    /// action is handed out once.
    pub fn take_user_actions(&self) -> Vec<UserAction> {
        self.with_now(|st, now| st.take_user_actions(now))
    }

    /// The preset destination countries (for traffic generators).
    pub fn countries() -> &'static [CountryPreset] {
        COUNTRIES
    }

    /// The simulator's own clock: the injected clock plus `chaos.clock_offset_secs`. This is the
    /// time in `Date` headers and records, and the one `Timestamp` is checked against.
    pub fn server_now(&self) -> DateTime<Utc> {
        let offset = self.lock().chaos.clock_offset_secs;
        self.inner.clock.now() + ChronoDuration::seconds(offset)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_now<T>(&self, f: impl FnOnce(&mut State, DateTime<Utc>) -> T) -> T {
        let mut st = self.lock();
        let now = self.inner.clock.now() + ChronoDuration::seconds(st.chaos.clock_offset_secs);
        f(&mut st, now)
    }
}

/// Run the simulator alone on `listen` (real clock) until Ctrl-C.
pub async fn run_standalone(listen: std::net::SocketAddr, cfg: SimConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    println!(
        "itniotech simulator listening on http://{addr} (scenario {}, seed {}, api key {})",
        cfg.scenario, cfg.seed, cfg.api_key
    );
    let sim = Simulator::new(cfg, crate::clock::system());
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
