//! Injectable wall clock.
//!
//! The tracker, the poller and the simulator never read the system time directly: they take a
//! [`SharedClock`], so tests advance a [`ManualClock`] instead of sleeping, and the simulator can
//! run with a skewed clock to exercise the client's skew handling.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    fn now(&self) -> DateTime<Utc>;
}

pub type SharedClock = Arc<dyn Clock>;

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the system clock
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += ChronoDuration::from_std(by).unwrap_or(ChronoDuration::MAX);
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Another clock shifted by a fixed offset (the simulator's "server clock is off" chaos knob).
#[derive(Debug, Clone)]
pub struct OffsetClock {
    pub inner: SharedClock,
    pub offset: ChronoDuration,
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now() + self.offset
    }
}

pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_time() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = ManualClock::new(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        other.advance(Duration::from_secs(90));
        assert_eq!(clock.now().timestamp(), 1_700_000_090);
    }

    #[test]
    fn offset_clock_shifts_inner_clock() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let inner: SharedClock = Arc::new(ManualClock::new(start));
        let skewed = OffsetClock {
            inner,
            offset: ChronoDuration::seconds(-400),
        };
        assert_eq!(skewed.now().timestamp(), 1_699_999_600);
    }
}
