//! TEMPORARY stub of the intake types (the real module lands from the web branch).
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum OrderKey {
    Order { app_id: String, order_id: String },
    Verification { verification_id: String },
}
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub key: OrderKey,
    pub flow_id: Option<i64>,
    pub submitted_at: Option<DateTime<Utc>>,
}
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueReport {
    pub accepted: usize,
    pub duplicates: usize,
    pub sampled_out: usize,
}
pub trait OrderSink: Send + Sync + 'static {
    fn enqueue(
        &self,
        orders: Vec<NewOrder>,
    ) -> futures::future::BoxFuture<'static, Result<EnqueueReport, SinkError>>;
}
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("shutting down")]
    ShuttingDown,
}
