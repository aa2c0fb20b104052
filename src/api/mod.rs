//! The signed itniotech API client: request signing, tolerant reply models, vendor status codes,
//! retries, rate limiting and clock-skew correction.
//!
//! - [`sign`]: `Sign = md5(apiKey + apiSecret + Timestamp)`.
//! - [`model`]: tolerant reply models (pure, no I/O).
//! - [`status`], [`error`]: vendor codes and [`ApiError`] with its metric label.
//! - [`client`]: the HTTP [`Client`], reporting each attempt to an [`ApiObserver`].

pub mod client;
pub mod credentials;
pub mod endpoint;
pub mod error;
pub mod model;
pub mod sign;
pub mod status;

pub use client::{Balance, Client, ClientConfig, SendRequest};
pub use credentials::Credentials;
pub use endpoint::{ApiObserver, Endpoint, NoopObserver};
pub use error::ApiError;
pub use status::VendorCode;
