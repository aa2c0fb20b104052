//! Whether the vendor API answered recently, for `/-/ready`: an [`ApiObserver`] that notes when
//! a call last authenticated and answered, then passes every report on to the metrics.

use super::endpoint::{ApiObserver, Endpoint};
use crate::clock::SharedClock;
use chrono::{DateTime, Duration, Utc};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Seen {
    last_answer: Option<DateTime<Utc>>,
    /// The status label of the last call, answered or not.
    last_status: Option<String>,
}

/// Remembers the last answer of the vendor API; forwards every report to `inner`.
pub struct ApiHealth {
    inner: Arc<dyn ApiObserver>,
    clock: SharedClock,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for ApiHealth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiHealth")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl ApiHealth {
    pub fn new(inner: Arc<dyn ApiObserver>, clock: SharedClock) -> ApiHealth {
        ApiHealth {
            inner,
            clock,
            seen: Mutex::default(),
        }
    }

    /// `Ok` when a call authenticated and answered within `window`, else why not.
    pub fn readiness(&self, window: Duration) -> Result<String, String> {
        let now = self.clock.now();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let last = seen.last_status.as_deref().unwrap_or("none");
        match seen.last_answer {
            Some(at) if now - at <= window => {
                Ok(format!("answered {}s ago", (now - at).num_seconds().max(0)))
            }
            Some(at) => Err(format!(
                "no answer for {}s (more than {}s); last call: status {last}",
                (now - at).num_seconds(),
                window.num_seconds()
            )),
            None => Err(format!(
                "no answer from the vendor API yet; last call: status {last}"
            )),
        }
    }
}

impl ApiObserver for ApiHealth {
    fn on_request(
        &self,
        endpoint: Endpoint,
        status_label: &str,
        up: bool,
        elapsed: std::time::Duration,
    ) {
        {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            if up {
                seen.last_answer = Some(self.clock.now());
            }
            seen.last_status = Some(status_label.to_owned());
        }
        self.inner.on_request(endpoint, status_label, up, elapsed);
    }

    fn on_clock_skew(&self, seconds: f64) {
        self.inner.on_clock_skew(seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::NoopObserver;
    use crate::clock::ManualClock;

    #[test]
    fn ready_only_while_answers_are_recent() {
        let clock = ManualClock::new(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        let h = ApiHealth::new(Arc::new(NoopObserver), Arc::new(clock.clone()));
        let window = Duration::minutes(5);
        assert!(h
            .readiness(window)
            .unwrap_err()
            .contains("no answer from the vendor API yet"));
        h.on_request(Endpoint::FlowList, "-1", false, std::time::Duration::ZERO);
        assert!(h.readiness(window).unwrap_err().contains("status -1"));
        h.on_request(Endpoint::FlowList, "0", true, std::time::Duration::ZERO);
        clock.advance(std::time::Duration::from_secs(30));
        assert_eq!(h.readiness(window), Ok("answered 30s ago".into()));
        clock.advance(std::time::Duration::from_secs(300));
        let why = h.readiness(window).unwrap_err();
        assert!(why.starts_with("no answer for 330s"), "{why}");
    }
}
