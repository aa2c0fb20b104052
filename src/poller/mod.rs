//! Pollers: the only stage that calls the vendor API on the agent's behalf.
//!
//! - [`orders`]: polls each due order's record and hands the outcome to the tracker.
//! - [`catalog`]: refreshes the task-flow catalog (flow/list) and the account balance, which the
//!   order poller's schedule and the info/balance gauges read.

pub mod catalog;
pub mod orders;

pub use catalog::{CatalogPoller, FlowCatalogHandle};
pub use orders::OrderPoller;

/// A poller that cannot be built as asked.
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    #[error("invalid poller settings: {0}")]
    Invalid(String),
}
