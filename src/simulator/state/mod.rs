//! The simulated account: flows, orders and balance, and how orders evolve with time.
//!
//! Every order is planned lazily but deterministically: its attempts, outcomes and end-user
//! behaviour are drawn from its own ChaCha RNG (seed + order sequence) in event order. Before
//! any request is answered, [`State::advance`] replays all events with time ≤ now, so a record
//! only ever shows what has happened by the simulator's clock.
//!
//! Charging: an SMS is charged its `pay` when submitted (it shows in the record from then on);
//! a call is charged its `cost` at hang-up (its `cost` reads `"0.0000"` until then). So at any
//! moment the balance fell by exactly the sum of the `pay` and `cost` values the records show.

use super::config::{Chaos, Scenario};
use super::plan::{self};
use super::presets::{self, SimChannel, SimFlow, SimFlowNode};
use super::UserAction;
use crate::api::model::StepTrigger;
use chrono::{DateTime, FixedOffset, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

mod order;
use order::*;

/// A business error: HTTP 200 with a non-zero string status.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct SimApiError {
    pub status: &'static str,
    pub reason: String,
}

impl SimApiError {
    pub fn new(status: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }
    pub fn param(reason: impl Into<String>) -> Self {
        Self::new("-22", reason)
    }
    pub fn not_found() -> Self {
        Self::new("-24", "Data does not exist")
    }
}

pub(crate) type SimResult = Result<Value, SimApiError>;

/// A validated send / sendRule request.
#[derive(Clone, Debug)]
pub(crate) struct SimSendRequest {
    pub app_id: String,
    pub to: String,
    pub channel: SimChannel,
    pub flow_id: Option<i64>,
    pub order_id: Option<String>,
    /// `None` for `send` (the platform generates the code).
    pub code: Option<String>,
}

/// Timestamps in records: ISO-8601 with the vendor's +08:00 offset.
pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    let cst = FixedOffset::east_opt(8 * 3600).expect("valid offset");
    t.with_timezone(&cst)
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn fmt_money(d: Decimal) -> String {
    format!("{d:.4}")
}

fn visible(t: DateTime<Utc>, now: DateTime<Utc>) -> Value {
    if t <= now {
        Value::String(fmt_time(t))
    } else {
        Value::Null
    }
}

fn flow_json(f: &SimFlow) -> Value {
    json!({
        "flowId": f.id,
        "name": f.name,
        "flow": f.nodes.iter().map(|n| json!({
            "waitingTime": n.waiting_time,
            "status": n.trigger.code(),
            "channel": n.channel.as_str(),
            "channelCut": n.channel_cut,
        })).collect::<Vec<_>>(),
    })
}

/// The whole simulated account.
pub(crate) struct State {
    seed: u64,
    pub scenario: Scenario,
    virtual_users: bool,
    pub chaos: Chaos,
    /// Drives chaos decisions (independent of the order RNGs).
    pub chaos_rng: ChaCha8Rng,
    pub balance: Decimal,
    flows: BTreeMap<i64, SimFlow>,
    next_flow_id: i64,
    orders: Vec<Order>,
    by_verification_id: HashMap<String, usize>,
    by_order_id: HashMap<String, usize>,
    /// Orders that still have events to replay.
    active: BTreeSet<usize>,
    outbox: Vec<UserAction>,
}

impl State {
    pub fn new(
        seed: u64,
        scenario: Scenario,
        chaos: Chaos,
        balance: Decimal,
        virtual_users: bool,
    ) -> Self {
        let flows: BTreeMap<i64, SimFlow> = presets::preset_flows()
            .into_iter()
            .map(|f| (f.id, f))
            .collect();
        Self {
            seed,
            scenario,
            virtual_users,
            chaos,
            chaos_rng: ChaCha8Rng::seed_from_u64(seed ^ 0xC4A0_5C4A_05C4_A05C),
            balance,
            next_flow_id: flows.keys().max().copied().unwrap_or(0) + 1,
            flows,
            orders: Vec::new(),
            by_verification_id: HashMap::new(),
            by_order_id: HashMap::new(),
            active: BTreeSet::new(),
            outbox: Vec::new(),
        }
    }

    /// Replay all orders' events up to `now`.
    pub fn advance(&mut self, now: DateTime<Utc>) {
        let Self {
            scenario,
            chaos,
            balance,
            virtual_users,
            outbox,
            orders,
            active,
            ..
        } = self;
        let mut env = Env {
            scenario: *scenario,
            chaos,
            balance,
            virtual_users: *virtual_users,
            outbox,
        };
        active.retain(|&i| orders[i].advance(now, &mut env));
    }

    pub fn take_user_actions(&mut self, now: DateTime<Utc>) -> Vec<UserAction> {
        self.advance(now);
        std::mem::take(&mut self.outbox)
    }

    pub fn send(&mut self, now: DateTime<Utc>, req: SimSendRequest) -> SimResult {
        self.advance(now);
        let nodes = match req.flow_id {
            Some(id) => match self.flows.get(&id) {
                Some(f) => f.nodes.clone(),
                None => return Err(SimApiError::param("flowId does not exist")),
            },
            None => vec![SimFlowNode {
                waiting_time: 0,
                trigger: StepTrigger::SendFailure,
                channel: req.channel,
                channel_cut: 0,
            }],
        };
        let Some(country) = presets::country_of(&req.to) else {
            return Err(SimApiError::new("-26", "Failed to get rate"));
        };
        if let Some(id) = &req.order_id {
            if self.by_order_id.contains_key(id) {
                return Err(SimApiError::new("-20", "orderId already exists"));
            }
        }
        if self.balance <= Decimal::ZERO {
            return Err(SimApiError::new("-10", "Insufficient balance"));
        }
        let seq = self.orders.len() as u64;
        let mut rng =
            ChaCha8Rng::seed_from_u64(self.seed ^ (seq + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let code = req.code.unwrap_or_else(|| plan::numeric_code(&mut rng, 6));
        let verification_id = format!(
            "{}{:08}",
            fmt_time(now)
                .get(2..19)
                .unwrap_or_default()
                .replace(['-', 'T', ':'], ""),
            10_000_000 + seq % 90_000_000
        );
        let mut order = Order {
            verification_id: verification_id.clone(),
            order_id: req.order_id.clone(),
            app_id: req.app_id,
            operator: presets::operator_of(country, &req.to),
            country,
            to: req.to.clone(),
            flow_id: req.flow_id,
            nodes,
            code,
            rng,
            attempts: Vec::new(),
            decision_at: None,
            pending_user: VecDeque::new(),
            matched: -1,
            verified_date: None,
        };
        let channel = order.nodes[0].channel;
        let idx = self.orders.len();
        {
            let mut env = Env {
                scenario: self.scenario,
                chaos: &self.chaos,
                balance: &mut self.balance,
                virtual_users: self.virtual_users,
                outbox: &mut self.outbox,
            };
            order.start_attempt(0, now, &mut env);
            if order.advance(now, &mut env) {
                self.active.insert(idx);
            }
        }
        self.by_verification_id.insert(verification_id.clone(), idx);
        if let Some(id) = req.order_id {
            self.by_order_id.insert(id, idx);
        }
        self.orders.push(order);
        Ok(json!({
            "verificationId": verification_id,
            "to": req.to,
            "channel": channel.as_str(),
            "snaUrl": Value::Null,
        }))
    }

    pub fn verify(&mut self, now: DateTime<Utc>, verification_id: &str, code: &str) -> SimResult {
        self.advance(now);
        let idx = *self
            .by_verification_id
            .get(verification_id)
            .ok_or_else(SimApiError::not_found)?;
        let order = &mut self.orders[idx];
        let matched = order.apply_verify(code, now);
        Ok(json!({
            "verificationId": order.verification_id,
            "to": order.to,
            "channel": order.channel().as_str(),
            "matched": matched,
        }))
    }

    pub fn record_by_verification_id(&mut self, now: DateTime<Utc>, id: &str) -> SimResult {
        self.advance(now);
        let idx = *self
            .by_verification_id
            .get(id)
            .ok_or_else(SimApiError::not_found)?;
        Ok(self.orders[idx].record_json(now, false))
    }

    pub fn record_by_order_id(&mut self, now: DateTime<Utc>, app_id: &str, id: &str) -> SimResult {
        self.advance(now);
        match self.by_order_id.get(id).map(|&i| &self.orders[i]) {
            Some(order) if order.app_id == app_id => Ok(order.record_json(now, true)),
            _ => Err(SimApiError::not_found()),
        }
    }

    pub fn balance_at(&mut self, now: DateTime<Utc>) -> Decimal {
        self.advance(now);
        self.balance
    }

    pub fn flow_list(&self) -> SimResult {
        Ok(Value::Array(self.flows.values().map(flow_json).collect()))
    }

    pub fn flow_details(&self, id: i64) -> SimResult {
        self.flows
            .get(&id)
            .map(flow_json)
            .ok_or_else(SimApiError::not_found)
    }

    pub fn flow_add(&mut self, name: String, nodes: Vec<SimFlowNode>) -> SimResult {
        if self.flows.values().any(|f| f.name == name) {
            return Err(SimApiError::new("-20", "Data already exists"));
        }
        let id = self.next_flow_id;
        self.next_flow_id += 1;
        let flow = SimFlow { id, name, nodes };
        let reply = flow_json(&flow);
        self.flows.insert(id, flow);
        Ok(reply)
    }

    pub fn flow_update(&mut self, id: i64, name: String, nodes: Vec<SimFlowNode>) -> SimResult {
        if !self.flows.contains_key(&id) {
            return Err(SimApiError::not_found());
        }
        if self.flows.values().any(|f| f.name == name && f.id != id) {
            return Err(SimApiError::new("-20", "Data already exists"));
        }
        let flow = SimFlow { id, name, nodes };
        let reply = flow_json(&flow);
        self.flows.insert(id, flow);
        Ok(reply)
    }
}

#[cfg(test)]
mod tests;
