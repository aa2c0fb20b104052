//! The signed itniotech API client: signing, tolerant reply models, vendor status codes,
//! retries, rate limiting and clock-skew correction.
//!
//! - [`sign`]: `Sign = md5(apiKey + apiSecret + Timestamp)`.
//! - [`model`]: tolerant reply models, and the vendor's enums decoded once (pure, no I/O).
//! - [`status`], [`error`]: vendor codes and [`ApiError`] with its metric label.
//! - [`client`]: the signed HTTP transport, reporting each attempt to an [`ApiObserver`];
//!   [`retry`] decides what follows a failure, [`skew`] keeps timestamps in the vendor's window.
//! - [`records`]: [`RecordSource`], everything the agent reads (flows, records, balance).
//! - [`sender`]: [`OtpSender`], sending and verifying codes (demo and tests only).

pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod model;
pub mod records;
pub mod retry;
pub mod sender;
pub mod sign;
pub mod skew;
pub mod status;

pub use client::{Client, ClientConfig};
pub use credentials::Credentials;
pub use endpoint::{ApiObserver, Endpoint, NoopObserver};
pub use error::ApiError;
pub use records::{Balance, RecordSource};
pub use retry::RetryPolicy;
pub use sender::{OtpSender, SendRequest};
pub use status::VendorCode;
