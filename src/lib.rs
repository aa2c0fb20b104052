//! itniotech-exporter: a monitoring agent for the itniotech OTP platform.
//!
//! The platform has no delivery webhook and no "list recent orders" call, so the agent is told
//! which orders exist and polls each one's record until it is final. Data flows one way:
//!
//! ```text
//! intake (HTTP) -> tracker (SQLite: pending orders + counted state + persisted counters)
//!   -> poller (signed API calls) -> accounting (pure: record -> metric updates)
//!   -> metrics (registry) -> server (GET /metrics)
//! ```
//!
//! The simulator is a faithful fake of the vendor API used by `demo` and the tests.

#![forbid(unsafe_code)]

pub mod accounting;
pub mod agent;
pub mod api;
pub mod clock;
pub mod config;
pub mod country;
pub mod demo;
pub mod domain;
pub mod intake;
pub mod ledger;
pub mod metrics;
pub mod poller;
pub mod proxy;
pub mod server;
pub mod simulator;
pub mod tracker;
