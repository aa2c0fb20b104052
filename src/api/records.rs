//! What the agent reads from the vendor: the flow catalog, order records and the balance.
//!
//! [`RecordSource`] is the agent's whole view of the API, so the pollers can be driven by a
//! fake in tests; [`Client`] implements it with the signed calls.

use futures::future::BoxFuture;
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::Value;

use super::client::{take_data, Client};
use super::endpoint::Endpoint;
use super::error::ApiError;
use super::model::{one_or_many, BalanceReply, Flow, OrderRecord};
use crate::domain::OrderKey;

/// The account balance (`sms/getBalance`). Currency is not stated by the vendor (USD inferred).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    pub balance: Option<Decimal>,
    pub gift: Option<Decimal>,
    pub credit: Option<Decimal>,
}

/// The vendor calls the agent makes.
pub trait RecordSource: Send + Sync + 'static {
    /// `GET /otp/flow/list`.
    fn flows(&self) -> BoxFuture<'_, Result<Vec<Flow>, ApiError>>;
    /// The order's record by its key; `Ok(None)` when the vendor has none (yet).
    fn record<'a>(
        &'a self,
        key: &'a OrderKey,
    ) -> BoxFuture<'a, Result<Option<OrderRecord>, ApiError>>;
    /// `GET /sms/getBalance`.
    fn balance(&self) -> BoxFuture<'_, Result<Balance, ApiError>>;
}

impl RecordSource for Client {
    fn flows(&self) -> BoxFuture<'_, Result<Vec<Flow>, ApiError>> {
        Box::pin(self.flow_list())
    }

    fn record<'a>(
        &'a self,
        key: &'a OrderKey,
    ) -> BoxFuture<'a, Result<Option<OrderRecord>, ApiError>> {
        Box::pin(async move {
            match key {
                OrderKey::Order { app_id, order_id } => {
                    self.record_by_order_id(app_id, order_id).await
                }
                OrderKey::Verification { verification_id } => {
                    self.record_by_verification_id(verification_id).await
                }
            }
        })
    }

    fn balance(&self) -> BoxFuture<'_, Result<Balance, ApiError>> {
        Box::pin(self.get_balance())
    }
}

impl Client {
    /// `GET /otp/flow/list`. A single object as `data` is accepted; flows that do not parse are
    /// skipped (and logged); null `data` is an empty list.
    async fn flow_list(&self) -> Result<Vec<Flow>, ApiError> {
        let call = self.call(
            Endpoint::FlowList,
            Method::GET,
            &["otp", "flow", "list"],
            None,
        )?;
        self.execute(call, |mut reply| {
            let data = take_data(&mut reply);
            let expected = match &data {
                Value::Null => return Ok(Vec::new()),
                Value::Array(items) => items.len(),
                Value::Object(_) => 1,
                _ => return Err(ApiError::decode("flow list data is not an array")),
            };
            let flows: Vec<Flow> = one_or_many(data);
            if flows.len() != expected {
                tracing::warn!(
                    endpoint = Endpoint::FlowList.as_str(),
                    skipped = expected - flows.len(),
                    "skipped flows that could not be parsed"
                );
            }
            Ok(flows)
        })
        .await
    }

    /// `POST /otp/verification/orderId/record`. `Ok(None)`: no such record (vendor -24 or -14,
    /// or success without data). `order_id` is filled from the request when the reply lacks it.
    async fn record_by_order_id(
        &self,
        app_id: &str,
        order_id: &str,
    ) -> Result<Option<OrderRecord>, ApiError> {
        let body = serde_json::json!({ "appId": app_id, "orderId": order_id });
        let call = self.call(
            Endpoint::RecordByOrderId,
            Method::POST,
            &["otp", "verification", "orderId", "record"],
            Some(&body),
        )?;
        let res = self
            .execute(call, |mut reply| {
                parse_record(take_data(&mut reply)).map(|rec| {
                    rec.map(|mut rec| {
                        rec.order_id.get_or_insert_with(|| order_id.to_string());
                        rec
                    })
                })
            })
            .await;
        not_found_as_none(res)
    }

    /// `GET /otp/verification/record/{verificationId}`. `Ok(None)`: no such record (vendor -24
    /// or -14, or success without data). `verification_id` is filled from the path when the
    /// reply lacks it.
    async fn record_by_verification_id(
        &self,
        verification_id: &str,
    ) -> Result<Option<OrderRecord>, ApiError> {
        let call = self.call(
            Endpoint::RecordByVerificationId,
            Method::GET,
            &["otp", "verification", "record", verification_id],
            None,
        )?;
        let res = self
            .execute(call, |mut reply| {
                parse_record(take_data(&mut reply)).map(|rec| {
                    rec.map(|mut rec| {
                        rec.verification_id
                            .get_or_insert_with(|| verification_id.to_string());
                        rec
                    })
                })
            })
            .await;
        not_found_as_none(res)
    }

    /// `GET /sms/getBalance` (fields at the top level, no `data`).
    async fn get_balance(&self) -> Result<Balance, ApiError> {
        let call = self.call(Endpoint::Balance, Method::GET, &["sms", "getBalance"], None)?;
        self.execute(call, |reply| {
            let r: BalanceReply = serde_json::from_value(reply)
                .map_err(|e| ApiError::decode(format!("balance: {e}")))?;
            Ok(Balance {
                balance: r.balance,
                gift: r.gift,
                credit: r.credit,
            })
        })
        .await
    }
}

fn parse_record(data: Value) -> Result<Option<OrderRecord>, ApiError> {
    if data.is_null() {
        return Ok(None);
    }
    if !data.is_object() {
        return Err(ApiError::decode("record data is not an object"));
    }
    serde_json::from_value(data)
        .map(Some)
        .map_err(|e| ApiError::decode(format!("record: {e}")))
}

fn not_found_as_none<T>(res: Result<Option<T>, ApiError>) -> Result<Option<T>, ApiError> {
    match res {
        Err(ApiError::Vendor { code, .. }) if code.is_not_found() => Ok(None),
        other => other,
    }
}
