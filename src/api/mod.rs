//! The signed itniotech API client: request signing, tolerant reply models, vendor status codes,
//! retries, rate limiting and clock-skew correction.

pub mod model;
pub mod sign;
