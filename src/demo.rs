//! The demo's traffic generator: plays the customer's backend and its end users.
//!
//! It sends OTPs through the simulator with `sendRule` (across the preset flows and countries,
//! weighted by the scenario), tells the agent about each order through the real intake over
//! HTTP, and sends the codes the simulated users type through `verify`. Everything goes over
//! loopback HTTP exactly as a real deployment would, so the demo exercises the whole product.

use crate::api::{OtpSender, SendRequest};
use crate::simulator::{random_receiver, Scenario, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Traffic generator settings.
#[derive(Clone, Debug)]
pub struct TrafficConfig {
    /// New OTP orders per second.
    pub rate: f64,
    pub scenario: Scenario,
    pub seed: u64,
    /// The agent's intake URL, e.g. `http://127.0.0.1:9867/api/v1/orders`.
    pub intake_url: String,
    pub intake_token: Option<String>,
}

/// Apps the demo sends for, with their share of traffic.
const APPS: &[(&str, f64)] = &[("demo_login", 0.7), ("demo_payment", 0.3)];
/// (flow id, share); `None` sends a single attempt without a flow.
const FLOWS: &[(Option<i64>, f64)] = &[
    (None, 0.25),
    (Some(1), 0.2),
    (Some(2), 0.25),
    (Some(3), 0.15),
    (Some(4), 0.15),
];

fn pick<'a, T>(rng: &mut impl Rng, items: &'a [(T, f64)]) -> &'a T {
    let total: f64 = items.iter().map(|(_, w)| w).sum();
    let mut x = rng.random::<f64>() * total;
    for (item, w) in items {
        if x < *w {
            return item;
        }
        x -= w;
    }
    &items[items.len() - 1].0
}

/// Counters of what the generator did, for the demo's closing line and tests.
#[derive(Clone, Debug, Default)]
pub struct TrafficStats {
    pub sent: u64,
    pub send_errors: u64,
    pub posted: u64,
    pub post_errors: u64,
    pub verifies: u64,
}

pub struct TrafficGenerator {
    pub sender: OtpSender,
    pub simulator: Simulator,
    pub http: reqwest::Client,
    pub cfg: TrafficConfig,
}

impl TrafficGenerator {
    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> TrafficStats {
        tokio::pin!(shutdown);
        let mut rng = ChaCha8Rng::seed_from_u64(self.cfg.seed ^ 0x5eed_7aff_1c00_0000);
        let mix = self.cfg.scenario.traffic_mix();
        let period = Duration::from_secs_f64(1.0 / self.cfg.rate.clamp(0.01, 1000.0));
        let mut send_tick = tokio::time::interval(period);
        send_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut user_tick = tokio::time::interval(Duration::from_millis(500));
        let mut stats = TrafficStats::default();
        let mut seq: u64 = 0;
        loop {
            tokio::select! {
                _ = &mut shutdown => return stats,
                _ = send_tick.tick() => {
                    seq += 1;
                    let app = *pick(&mut rng, APPS);
                    let flow = *pick(&mut rng, FLOWS);
                    let country = *pick(&mut rng, &mix);
                    let to = random_receiver(country, &mut rng);
                    // Voice-only OTPs exist too: they show call metrics within seconds.
                    let channel = match flow {
                        None if rng.random_bool(0.3) => "call",
                        _ => "sms",
                    };
                    let code = format!("{:06}", rng.random_range(0..1_000_000));
                    let order_id = format!("demo-{}-{seq}", self.cfg.seed);
                    let by_verification_id = flow.is_none() && rng.random_bool(0.1);
                    let req = SendRequest {
                        app_id: app.to_string(),
                        template_id: None,
                        flow_id: flow,
                        to,
                        channel: Some(channel.to_string()),
                        order_id: Some(order_id.clone()),
                        code: Some(code),
                    };
                    match self.sender.send_rule(&req).await {
                        Ok(sent) => {
                            stats.sent += 1;
                            let item = if by_verification_id {
                                serde_json::json!({"verificationId": sent.verification_id})
                            } else {
                                serde_json::json!({"appId": app, "orderId": order_id, "flowId": flow})
                            };
                            if self.post(&item).await {
                                stats.posted += 1;
                            } else {
                                stats.post_errors += 1;
                            }
                        }
                        Err(e) => {
                            stats.send_errors += 1;
                            tracing::debug!(status = %e.status_label(), "demo send failed");
                        }
                    }
                }
                _ = user_tick.tick() => {
                    for action in self.simulator.take_user_actions() {
                        if self.sender.verify(&action.verification_id, &action.code).await.is_ok() {
                            stats.verifies += 1;
                        }
                    }
                }
            }
        }
    }

    async fn post(&self, item: &serde_json::Value) -> bool {
        let mut req = self.http.post(&self.cfg.intake_url).json(item);
        if let Some(t) = &self.cfg.intake_token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED => true,
            Ok(r) => {
                tracing::warn!(status = %r.status(), "intake refused a demo order");
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "posting a demo order to the intake failed");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_pick_covers_every_item_and_respects_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut counts = [0usize; 5];
        for _ in 0..10_000 {
            let f = *pick(&mut rng, FLOWS);
            let i = FLOWS.iter().position(|(x, _)| *x == f).unwrap();
            counts[i] += 1;
        }
        assert!(counts.iter().all(|c| *c > 1000), "{counts:?}");
        assert!((2200..2800).contains(&counts[0]), "{counts:?}");
    }
}
