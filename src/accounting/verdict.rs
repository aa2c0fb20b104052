//! Whether an order is final after this poll, and how it ended (spec: docs/design.md §4).
//!
//! An order is final when the verification is settled and its outcome is known, or when
//! nothing more can happen (no attempt running, no flow step to come, verify window closed), or
//! when tracking reaches its maximum age.

use super::lifecycle::Lifecycle;
use crate::api::model::Matched;
use crate::ledger::{OrderOutcome, VerificationResult};
use chrono::{DateTime, Utc};

/// The order's verdict at one poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// Not final yet.
    Open,
    /// Final with this poll: count it now.
    FinalNow {
        outcome: OrderOutcome,
        result: VerificationResult,
    },
    /// Counted by an earlier poll; only late attempts may still be counted.
    AlreadyFinal,
}

pub(super) fn verdict(life: &Lifecycle<'_>, already_final: bool, now: DateTime<Utc>) -> Verdict {
    if already_final {
        return Verdict::AlreadyFinal;
    }
    let window_closed = now >= life.window_end;
    // An unknown verificationId (matched 3) settles the order as it is: nothing more will come.
    let determinable = life.verified
        || life.any_delivered
        || life.matched == Matched::Unknown
        || (life.all_failed && !life.step_possible);
    let settled = life.matched.is_settled(window_closed);
    let nothing_more = !life.in_progress && !life.step_possible && window_closed;
    if !(life.expired || (determinable && (settled || nothing_more))) {
        return Verdict::Open;
    }
    let outcome = if life.verified || life.any_delivered {
        OrderOutcome::Delivered
    } else if life.all_failed {
        OrderOutcome::Failed
    } else {
        OrderOutcome::Unresolved
    };
    let result = match life.matched {
        Matched::Verified => VerificationResult::Verified,
        Matched::Failed => VerificationResult::Failed,
        Matched::Unknown => VerificationResult::Unknown,
        _ => VerificationResult::NotVerified,
    };
    Verdict::FinalNow { outcome, result }
}
