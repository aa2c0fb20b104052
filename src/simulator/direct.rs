//! In-process access to the simulated account, without HTTP, signing or chaos: what the
//! polling benchmark (benches/polling.rs) drives on a simulated clock so that a run of
//! thousands of orders takes seconds and depends only on the seed.
//!
//! Replies are the vendor's `data` objects as the HTTP API would serve them, so the agent's
//! own models decode them.

use super::presets::SimChannel;
use super::state::SimSendRequest;
use super::Simulator;
use crate::domain::OrderKey;
use serde_json::Value;

impl Simulator {
    /// `sendRule` (or `send` when `flow_id` is `None`) at the simulator's clock. Returns the
    /// reply's `data` (`verificationId`, …) or the vendor's `status: reason`.
    pub fn send_direct(
        &self,
        app_id: &str,
        to: &str,
        channel: SimChannel,
        flow_id: Option<i64>,
        order_id: Option<&str>,
    ) -> Result<Value, String> {
        let req = SimSendRequest {
            app_id: app_id.to_owned(),
            to: to.to_owned(),
            channel,
            flow_id,
            order_id: order_id.map(str::to_owned),
            code: None,
        };
        self.with_now(|st, now| st.send(now, req))
            .map_err(|e| format!("{}: {}", e.status, e.reason))
    }

    /// The record's `data` as the record call for `key` would return it now; `None` when the
    /// vendor has no such record.
    pub fn record_direct(&self, key: &OrderKey) -> Option<Value> {
        self.with_now(|st, now| match key {
            OrderKey::Order { app_id, order_id } => st.record_by_order_id(now, app_id, order_id),
            OrderKey::Verification { verification_id } => {
                st.record_by_verification_id(now, verification_id)
            }
        })
        .ok()
    }

    /// The `flow/list` reply's `data`.
    pub fn flows_direct(&self) -> Value {
        self.lock().flow_list().unwrap_or(Value::Null)
    }
}
