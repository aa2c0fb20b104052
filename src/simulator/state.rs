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
use super::plan::{self, CallPlan, PlannedAction, SmsConditions, SmsPlan};
use super::presets::{self, CountryPreset, OperatorPreset, SimChannel, SimFlow, SimFlowNode};
use super::UserAction;
use crate::api::model::StepTrigger;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

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

#[derive(Clone, Debug)]
enum AttemptKind {
    Sms(SmsPlan),
    Call(CallPlan),
}

#[derive(Clone, Debug)]
struct Attempt {
    /// Index of the flow node this attempt runs.
    node: usize,
    kind: AttemptKind,
    charged: bool,
    /// The outcome has been looked at (and the end user planned if the code reached them).
    settled: bool,
}

impl Attempt {
    fn start(&self) -> DateTime<Utc> {
        match &self.kind {
            AttemptKind::Sms(s) => s.submit,
            AttemptKind::Call(c) => c.submit,
        }
    }
    fn channel(&self) -> SimChannel {
        match self.kind {
            AttemptKind::Sms(_) => SimChannel::Sms,
            AttemptKind::Call(_) => SimChannel::Call,
        }
    }
    fn charge(&self) -> (DateTime<Utc>, Decimal) {
        match &self.kind {
            AttemptKind::Sms(s) => (s.submit, s.pay),
            AttemptKind::Call(c) => (c.hangup, c.cost),
        }
    }
    /// When the outcome is known.
    fn settles_at(&self) -> DateTime<Utc> {
        match &self.kind {
            AttemptKind::Sms(s) => s.done,
            AttemptKind::Call(c) => c.hangup,
        }
    }
    fn reached_user(&self) -> bool {
        match &self.kind {
            AttemptKind::Sms(s) => s.delivered,
            AttemptKind::Call(c) => c.termination_code == 0,
        }
    }
    fn failed_by(&self, t: DateTime<Utc>) -> bool {
        !self.reached_user() && self.settles_at() <= t
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    Charge(usize),
    Settle(usize),
    User,
    Decide,
}

/// What an order needs from the account while it evolves.
struct Env<'a> {
    scenario: Scenario,
    chaos: &'a Chaos,
    balance: &'a mut Decimal,
    virtual_users: bool,
    outbox: &'a mut Vec<UserAction>,
}

#[derive(Clone, Debug)]
struct Order {
    verification_id: String,
    order_id: Option<String>,
    app_id: String,
    to: String,
    country: &'static CountryPreset,
    operator: &'static OperatorPreset,
    flow_id: Option<i64>,
    nodes: Vec<SimFlowNode>,
    code: String,
    rng: ChaCha8Rng,
    attempts: Vec<Attempt>,
    decision_at: Option<DateTime<Utc>>,
    pending_user: VecDeque<PlannedAction>,
    matched: i8,
    verified_date: Option<DateTime<Utc>>,
}

/// SMS delivery conditions for a destination under a scenario and chaos knobs.
pub(crate) fn sms_conditions(
    scenario: Scenario,
    chaos: &Chaos,
    country: &CountryPreset,
    operator: &OperatorPreset,
) -> SmsConditions {
    let forced = chaos
        .outage_country
        .as_deref()
        .is_some_and(|c| c.eq_ignore_ascii_case(country.iso2))
        || chaos.outage_operator == Some((operator.mcc, operator.mnc));
    if forced {
        return SmsConditions {
            delivery_prob: 0.0,
            outage: true,
        };
    }
    if scenario == Scenario::CarrierOutage && (operator.mcc, operator.mnc) == (510, 10) {
        return SmsConditions {
            delivery_prob: 0.05,
            outage: true,
        };
    }
    SmsConditions {
        delivery_prob: country.sms_delivery_prob,
        outage: false,
    }
}

/// Probability that the end user types a code that reached them.
pub(crate) fn verify_prob(scenario: Scenario, country: &CountryPreset) -> f64 {
    if scenario == Scenario::SmsPumping && country.iso2 == "UZ" {
        0.02
    } else {
        country.verify_prob
    }
}

impl Order {
    fn start_attempt(&mut self, node: usize, at: DateTime<Utc>, env: &mut Env<'_>) {
        let kind = match self.nodes[node].channel {
            SimChannel::Sms => {
                let cond = sms_conditions(env.scenario, env.chaos, self.country, self.operator);
                AttemptKind::Sms(plan::plan_sms(
                    &mut self.rng,
                    self.country,
                    self.operator,
                    at,
                    cond,
                ))
            }
            SimChannel::Call => AttemptKind::Call(plan::plan_call(
                &mut self.rng,
                self.country,
                self.operator,
                at,
            )),
        };
        self.attempts.push(Attempt {
            node,
            kind,
            charged: false,
            settled: false,
        });
        self.decision_at = (node + 1 < self.nodes.len())
            .then(|| at + Duration::seconds(i64::from(self.nodes[node].waiting_time)));
    }

    fn next_event(&self) -> Option<(DateTime<Utc>, Event)> {
        let mut events = Vec::new();
        for (i, a) in self.attempts.iter().enumerate() {
            if !a.charged {
                events.push((a.charge().0, Event::Charge(i)));
            }
            if !a.settled {
                events.push((a.settles_at(), Event::Settle(i)));
            }
        }
        if let Some(p) = self.pending_user.front() {
            events.push((p.at, Event::User));
        }
        if let Some(t) = self.decision_at {
            events.push((t, Event::Decide));
        }
        events.into_iter().min()
    }

    /// Replay every event with time ≤ now. Returns whether anything is still to happen.
    fn advance(&mut self, now: DateTime<Utc>, env: &mut Env<'_>) -> bool {
        while let Some((t, ev)) = self.next_event() {
            if t > now {
                return true;
            }
            match ev {
                Event::Charge(i) => {
                    let a = &mut self.attempts[i];
                    a.charged = true;
                    *env.balance -= a.charge().1;
                }
                Event::Settle(i) => {
                    self.attempts[i].settled = true;
                    if self.attempts[i].reached_user()
                        && self.matched != 0
                        && self.pending_user.is_empty()
                    {
                        let p = verify_prob(env.scenario, self.country);
                        let actions = plan::plan_user(&mut self.rng, t, &self.code, p);
                        self.pending_user.extend(actions);
                    }
                }
                Event::User => {
                    let action = self.pending_user.pop_front().expect("event exists");
                    if env.virtual_users {
                        self.apply_verify(&action.code, action.at);
                    } else {
                        env.outbox.push(UserAction {
                            verification_id: self.verification_id.clone(),
                            code: action.code,
                        });
                    }
                }
                Event::Decide => {
                    self.decision_at = None;
                    let last = self.attempts.last().expect("an order has an attempt");
                    let node = last.node;
                    let trigger = match self.nodes[node].trigger {
                        StepTrigger::SendFailure => last.failed_by(t),
                        StepTrigger::Unverified | StepTrigger::Unknown => self.matched != 0,
                    };
                    if trigger && node + 1 < self.nodes.len() && *env.balance > Decimal::ZERO {
                        self.start_attempt(node + 1, t, env);
                    }
                }
            }
        }
        false
    }

    /// Check a code typed at `at`; returns the `matched` value of this check.
    fn apply_verify(&mut self, code: &str, at: DateTime<Utc>) -> i8 {
        if code == self.code {
            if self.matched != 0 {
                self.matched = 0;
                self.verified_date = Some(at);
            }
            0
        } else {
            if self.matched != 0 {
                self.matched = 2;
                self.verified_date = Some(at);
            }
            2
        }
    }

    fn channel(&self) -> SimChannel {
        self.attempts
            .last()
            .map(Attempt::channel)
            .unwrap_or(self.nodes[0].channel)
    }

    fn verifications_json(&self) -> Value {
        json!({
            "matched": self.matched,
            "verifiedDate": self.verified_date.map(fmt_time),
            "oriReceiver": self.to,
            "channel": self.channel().as_str(),
            "orderId": self.order_id,
        })
    }

    fn visible_attempts(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Attempt> {
        self.attempts.iter().filter(move |a| a.start() <= now)
    }

    /// `sms`/`call` as arrays (orderId record) or as the latest attempt's object.
    fn record_json(&self, now: DateTime<Utc>, arrays: bool) -> Value {
        let sms: Vec<Value> = self
            .visible_attempts(now)
            .filter_map(|a| match &a.kind {
                AttemptKind::Sms(s) => Some(sms_json(s, now)),
                AttemptKind::Call(_) => None,
            })
            .collect();
        let call: Vec<Value> = self
            .visible_attempts(now)
            .filter_map(|a| match &a.kind {
                AttemptKind::Call(c) => Some(call_json(c, now)),
                AttemptKind::Sms(_) => None,
            })
            .collect();
        if arrays {
            json!({
                "orderId": self.order_id,
                "flowId": self.flow_id,
                "verifications": self.verifications_json(),
                "sms": sms,
                "call": call,
                "sna": [],
            })
        } else {
            let mut data = json!({
                "verificationId": self.verification_id,
                "verifications": self.verifications_json(),
            });
            if let Some(s) = sms.into_iter().last() {
                data["sms"] = s;
            }
            if let Some(c) = call.into_iter().last() {
                data["call"] = c;
            }
            data
        }
    }
}

fn sms_json(s: &SmsPlan, now: DateTime<Utc>) -> Value {
    let done = s.done <= now;
    json!({
        "submitTm": fmt_time(s.submit),
        "sendTm": visible(s.send, now),
        "doneTm": visible(s.done, now),
        "mcc": s.mcc,
        "mnc": s.mnc,
        "sender": s.sender,
        "chargeCnt": s.charge_cnt,
        "pay": fmt_money(s.pay),
        "status": if !done { -1 } else if s.delivered { 0 } else { 1 },
        "reason": if done { s.reason } else { "" },
    })
}

fn call_json(c: &CallPlan, now: DateTime<Utc>) -> Value {
    let over = c.hangup <= now;
    let opt = |t: Option<DateTime<Utc>>| t.map_or(Value::Null, |t| visible(t, now));
    json!({
        "terminationCode": if over { json!(c.termination_code) } else { Value::Null },
        "terminationReason": if over { json!(c.termination_reason) } else { Value::Null },
        "submitTime": fmt_time(c.submit),
        "callTime": visible(c.call, now),
        "ringingTime": opt(c.ringing),
        "answerTime": opt(c.answer),
        "hangupTime": visible(c.hangup, now),
        "callDuration": if over { c.call_duration } else { 0 },
        "chargedDuration": if over { c.charged_duration } else { 0 },
        "displayNum": Value::Null,
        "billPeriodstring": c.bill_period,
        "code": c.label,
        "rate": fmt_money(c.rate),
        "cost": fmt_money(if over { c.cost } else { Decimal::ZERO }),
    })
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
mod tests {
    use super::*;
    use crate::simulator::presets::{random_receiver, COUNTRIES};

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn state(seed: u64, scenario: Scenario, chaos: Chaos, virtual_users: bool) -> State {
        State::new(seed, scenario, chaos, Decimal::from(5000), virtual_users)
    }

    fn req(to: &str, flow_id: Option<i64>, order_id: &str) -> SimSendRequest {
        SimSendRequest {
            app_id: "app1".into(),
            to: to.into(),
            channel: SimChannel::Sms,
            flow_id,
            order_id: Some(order_id.into()),
            code: Some("123456".into()),
        }
    }

    fn country(iso2: &str) -> &'static CountryPreset {
        COUNTRIES.iter().find(|c| c.iso2 == iso2).unwrap()
    }

    /// Send `n` orders to `iso2` one second apart, run an hour, return the orderId records.
    fn run(st: &mut State, iso2: &str, flow: Option<i64>, n: usize) -> Vec<Value> {
        let mut rng = ChaCha8Rng::seed_from_u64(77);
        for i in 0..n {
            let to = random_receiver(country(iso2), &mut rng);
            let now = t0() + Duration::seconds(i as i64);
            st.send(now, req(&to, flow, &format!("o{i}"))).unwrap();
        }
        let end = t0() + Duration::hours(1);
        (0..n)
            .map(|i| {
                st.record_by_order_id(end, "app1", &format!("o{i}"))
                    .unwrap()
            })
            .collect()
    }

    fn sms_failure_ratio(records: &[Value]) -> f64 {
        let sms: Vec<&Value> = records
            .iter()
            .flat_map(|r| r["sms"].as_array().unwrap())
            .collect();
        sms.iter().filter(|s| s["status"] == 1).count() as f64 / sms.len() as f64
    }

    #[test]
    fn same_seed_same_records_other_seed_differs() {
        let a = run(
            &mut state(5, Scenario::Normal, Chaos::default(), true),
            "IN",
            Some(3),
            40,
        );
        let b = run(
            &mut state(5, Scenario::Normal, Chaos::default(), true),
            "IN",
            Some(3),
            40,
        );
        let c = run(
            &mut state(6, Scenario::Normal, Chaos::default(), true),
            "IN",
            Some(3),
            40,
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn record_shows_only_past_events() {
        let mut st = state(1, Scenario::Normal, Chaos::default(), true);
        st.send(t0(), req("6281234567890", None, "x")).unwrap();
        let r = st.record_by_order_id(t0(), "app1", "x").unwrap();
        let sms = &r["sms"][0];
        assert_eq!(sms["status"], -1);
        assert_eq!(sms["doneTm"], Value::Null);
        assert_eq!(r["verifications"]["matched"], -1);
        let r = st
            .record_by_order_id(t0() + Duration::hours(1), "app1", "x")
            .unwrap();
        assert_ne!(r["sms"][0]["status"], -1);
        assert!(r["sms"][0]["doneTm"].is_string());
    }

    #[test]
    fn flow_walks_from_failed_sms_to_call() {
        let chaos = Chaos {
            outage_country: Some("ID".into()),
            ..Chaos::default()
        };
        let mut st = state(1, Scenario::Normal, chaos, true);
        st.send(t0(), req("6281234567890", Some(2), "x")).unwrap();
        let r = st
            .record_by_order_id(t0() + Duration::seconds(59), "app1", "x")
            .unwrap();
        assert_eq!(r["sms"][0]["status"], 1);
        assert_eq!(r["call"].as_array().unwrap().len(), 0, "still waiting");
        let r = st
            .record_by_order_id(t0() + Duration::seconds(60), "app1", "x")
            .unwrap();
        assert_eq!(r["call"].as_array().unwrap().len(), 1);
        assert_eq!(r["call"][0]["hangupTime"], Value::Null, "in progress");
        assert_eq!(r["verifications"]["channel"], "call");
    }

    #[test]
    fn flow_four_retries_sms_then_calls_when_unverified() {
        let chaos = Chaos {
            outage_operator: Some((510, 10)),
            outage_country: Some("ID".into()),
            ..Chaos::default()
        };
        let mut st = state(1, Scenario::Normal, chaos, false);
        st.send(t0(), req("6281234567890", Some(4), "x")).unwrap();
        let r = st
            .record_by_order_id(t0() + Duration::seconds(30 + 45 + 1), "app1", "x")
            .unwrap();
        assert_eq!(r["sms"].as_array().unwrap().len(), 2);
        assert_eq!(r["call"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn delivered_sms_stops_a_send_failure_flow() {
        let mut st = state(3, Scenario::Normal, Chaos::default(), true);
        let recs = run(&mut st, "DE", Some(2), 50);
        for r in &recs {
            let sms = &r["sms"][0];
            let failed_early = sms["status"] == 1
                && (chrono::DateTime::parse_from_rfc3339(sms["doneTm"].as_str().unwrap()).unwrap()
                    - chrono::DateTime::parse_from_rfc3339(sms["submitTm"].as_str().unwrap())
                        .unwrap())
                .num_seconds()
                    <= 60;
            assert_eq!(
                r["call"].as_array().unwrap().len(),
                usize::from(failed_early)
            );
        }
    }

    #[test]
    fn virtual_users_verify_most_delivered_codes() {
        let mut st = state(4, Scenario::Normal, Chaos::default(), true);
        let recs = run(&mut st, "US", None, 300);
        let verified = recs
            .iter()
            .filter(|r| r["verifications"]["matched"] == 0)
            .count();
        assert!((220..=285).contains(&verified), "{verified}");
        for r in recs.iter().filter(|r| r["verifications"]["matched"] != -1) {
            assert!(r["verifications"]["verifiedDate"].is_string());
        }
    }

    #[test]
    fn without_virtual_users_actions_are_handed_out_when_due() {
        let mut st = state(4, Scenario::Normal, Chaos::default(), false);
        let v = st.send(t0(), req("12015550123", None, "x")).unwrap();
        assert!(st.take_user_actions(t0()).is_empty());
        let mut actions = Vec::new();
        for s in 0..600 {
            actions.extend(st.take_user_actions(t0() + Duration::seconds(s)));
        }
        let r = st
            .record_by_order_id(t0() + Duration::hours(1), "app1", "x")
            .unwrap();
        assert_eq!(
            r["verifications"]["matched"], -1,
            "nothing applied by itself"
        );
        for a in &actions {
            assert_eq!(a.verification_id, v["verificationId"]);
        }
        if let Some(last) = actions.last() {
            assert_eq!(last.code, "123456");
            let m = st.verify(t0() + Duration::hours(1), &last.verification_id, &last.code);
            assert_eq!(m.unwrap()["matched"], 0);
        }
    }

    #[test]
    fn carrier_outage_hits_telkomsel_only() {
        let mut normal = state(8, Scenario::Normal, Chaos::default(), true);
        let mut outage = state(8, Scenario::CarrierOutage, Chaos::default(), true);
        let n = sms_failure_ratio(&run(&mut normal, "ID", None, 400));
        let o = sms_failure_ratio(&run(&mut outage, "ID", None, 400));
        assert!(n < 0.12, "normal {n}");
        assert!(o > 0.4, "outage {o}");
        let mut outage = state(8, Scenario::CarrierOutage, Chaos::default(), true);
        let in_ratio = sms_failure_ratio(&run(&mut outage, "IN", None, 200));
        assert!(in_ratio < 0.15, "{in_ratio}");
    }

    #[test]
    fn sms_pumping_numbers_deliver_but_do_not_verify() {
        let mut st = state(9, Scenario::SmsPumping, Chaos::default(), true);
        let recs = run(&mut st, "UZ", None, 200);
        assert!(sms_failure_ratio(&recs) < 0.15);
        let verified = recs
            .iter()
            .filter(|r| r["verifications"]["matched"] == 0)
            .count();
        assert!(verified < 15, "{verified}");
    }

    #[test]
    fn balance_falls_by_every_charge_and_blocks_sends_at_zero() {
        let start = Decimal::new(10, 2);
        let mut st = State::new(2, Scenario::Normal, Chaos::default(), start, true);
        let pay = |st: &State, i: usize| match &st.orders[i].attempts[0].kind {
            AttemptKind::Sms(s) => s.pay,
            AttemptKind::Call(_) => unreachable!(),
        };
        st.send(t0(), req("6281234567890", None, "a")).unwrap();
        assert_eq!(st.balance_at(t0()), start - pay(&st, 0));
        let mut refused = None;
        for i in 1..10 {
            match st.send(
                t0(),
                req(&format!("628123456789{i}"), None, &format!("o{i}")),
            ) {
                Ok(_) => {}
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert_eq!(refused.unwrap().status, "-10");
        let spent: Decimal = (0..st.orders.len()).map(|i| pay(&st, i)).sum();
        assert_eq!(st.balance_at(t0()), start - spent);
        assert!(st.balance <= Decimal::ZERO);
    }

    #[test]
    fn flows_add_update_and_reject_duplicates() {
        let mut st = state(1, Scenario::Normal, Chaos::default(), true);
        let nodes = vec![SimFlowNode {
            waiting_time: 30,
            trigger: StepTrigger::SendFailure,
            channel: SimChannel::Call,
            channel_cut: 0,
        }];
        let f = st.flow_add("voice_only".into(), nodes.clone()).unwrap();
        assert_eq!(f["flowId"], 5);
        assert_eq!(
            st.flow_add("sms_only".into(), nodes.clone())
                .unwrap_err()
                .status,
            "-20"
        );
        assert_eq!(
            st.flow_update(5, "sms_only".into(), nodes.clone())
                .unwrap_err()
                .status,
            "-20"
        );
        assert!(st
            .flow_update(5, "voice_first".into(), nodes.clone())
            .is_ok());
        assert_eq!(st.flow_details(5).unwrap()["name"], "voice_first");
        assert_eq!(st.flow_details(99).unwrap_err().status, "-24");
        assert_eq!(st.flow_list().unwrap().as_array().unwrap().len(), 5);
    }
}
