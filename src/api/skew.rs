//! The client's knowledge of the vendor's clock.
//!
//! The vendor rejects a `Timestamp` outside an undocumented window with `-16`. Every reply's
//! `Date` header tells how far the local clock is from the server's; after a `-16` the client
//! adds that difference to its timestamps, so an agent on a drifting host keeps working (and
//! `itniotech_exporter_clock_skew_seconds` shows the drift).

use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Last measured local-minus-server skew, seconds.
    last: Option<f64>,
    /// Added to the local clock to make the `Timestamp` header (set after a `-16`).
    correction: f64,
}

/// Shared by the clones of one client.
#[derive(Debug, Default)]
pub struct ClockSkew(Mutex<State>);

impl ClockSkew {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unix seconds for the `Timestamp` header at local time `now`: corrected once a `-16`
    /// taught the skew.
    pub fn timestamp(&self, now: DateTime<Utc>) -> i64 {
        let correction = self.state().correction;
        if correction == 0.0 {
            return now.timestamp();
        }
        (unix_seconds_f64(now) + correction).floor() as i64
    }

    /// Local minus server time from a reply's `Date` header, remembered. The header has
    /// one-second resolution (truncated), so the server time is taken as the middle of that
    /// second.
    pub fn measure(&self, date_header: &str, now: DateTime<Utc>) -> Option<f64> {
        let server = httpdate::parse_http_date(date_header).ok()?;
        let server = server.duration_since(UNIX_EPOCH).ok()?.as_secs_f64() + 0.5;
        let skew = unix_seconds_f64(now) - server;
        self.state().last = Some(skew);
        Some(skew)
    }

    /// After a `-16`: correct future timestamps by the skew just measured.
    pub fn correct(&self, skew: f64) {
        self.state().correction = -skew;
    }

    /// The last measured skew, if a reply carried a `Date` header yet.
    pub fn last(&self) -> Option<f64> {
        self.state().last
    }
}

fn unix_seconds_f64(t: DateTime<Utc>) -> f64 {
    t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_correction_moves_timestamps_to_the_server_clock() {
        let skew = ClockSkew::default();
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(skew.timestamp(now), 1_700_000_000);
        // The server is 400 s behind: its Date header reads now - 400.
        let server =
            httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(1_699_999_600));
        let measured = skew.measure(&server, now).unwrap();
        assert_eq!(measured, 399.5);
        assert_eq!(skew.last(), Some(399.5));
        assert_eq!(
            skew.timestamp(now),
            1_700_000_000,
            "measuring alone corrects nothing"
        );
        skew.correct(measured);
        assert_eq!(skew.timestamp(now), 1_699_999_600);
        assert_eq!(skew.measure("not a date", now), None);
    }
}
