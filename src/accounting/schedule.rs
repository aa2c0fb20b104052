//! When to poll an order next, from what its record shows (docs/design.md §4).
//!
//! Soon after submit and while an attempt runs (young attempts often, old ones rarely); when a
//! flow step may start; after 1×, 2×, 4×… the code's age while a delivered code is unverified;
//! when the verify window closes; and never past the maximum tracking age.

use super::lifecycle::Lifecycle;
use super::{Next, OrderState, Settings};
use chrono::{DateTime, Duration, Utc};

pub(super) fn next_poll(
    state: &OrderState,
    life: &Lifecycle<'_>,
    now: DateTime<Utc>,
    cfg: &Settings,
) -> Next {
    if life.expired || (state.finalised && !life.in_progress && !life.step_possible) {
        return Next::Forget;
    }
    let mut at = now + cfg.max_age; // replaced below by a nearer reason
    if life.in_progress {
        let youngest = life.youngest_running().unwrap_or(life.created);
        // Poll young attempts often (most SMS complete within seconds), old ones less; a
        // report that lags for minutes (or an order already counted) is checked rarely.
        let age = now - youngest;
        let max_delay = if state.finalised || age > Duration::minutes(5) {
            cfg.interval.max(Duration::minutes(5))
        } else {
            cfg.interval
        };
        let delay = (age / 4)
            .max(cfg.first_delay)
            .min(max_delay.max(cfg.first_delay));
        at = at.min(now + delay);
    }
    if let Some(due) = life.step_due.filter(|_| life.step_possible) {
        at = at.min(if due > now { due } else { now + cfg.interval });
    }
    let window_end = life.window_end;
    if !state.finalised && now < window_end + cfg.grace {
        at = at.min(window_end + cfg.grace);
        if life.any_delivered && !life.matched.is_settled(now >= window_end) {
            // Most users verify within a minute of delivery: look again after 1×, 2×, 4×…
            // the code's age instead of waiting for the window to close, so the order's
            // outcome is fresh at the cost of a few calls.
            let age = now - life.anchor;
            let delay = age.clamp(cfg.interval, (cfg.verify_window / 2).max(cfg.interval));
            at = at.min(now + delay);
        }
    }
    if !state.finalised && !life.in_progress && !life.step_possible && now >= window_end {
        // Nothing more will happen but the outcome is undetermined: wait for max age.
        at = at.min(now + cfg.interval * 4);
    }
    at = at.min(life.created + cfg.max_age);
    Next::PollAt(at.max(now + Duration::seconds(1)))
}
