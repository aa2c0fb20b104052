//! What accounting distrusts in a record: vendor times that cannot be right for scheduling, and
//! vendor numbers too large (or negative) to be real. Each is reported once (when its attempt
//! is first seen, or counted) and exported by the poller as
//! `itniotech_exporter_vendor_time_anomalies_total{kind}` and
//! `itniotech_exporter_record_anomalies_total{field}` (docs/design.md §4.8).

use crate::ledger::family::label_enum;

/// Most billed segments one SMS attempt plausibly has: an OTP is one or two; the vendor caps a
/// message far below this.
pub const MAX_SMS_SEGMENTS: i64 = 50;
/// Longest plausible call (duration or billed seconds) of a verification call: two hours.
pub const MAX_CALL_SECONDS: i64 = 7200;
/// Largest plausible call termination code (the vendor's are small integers; SIP causes stay
/// three digits).
pub const MAX_TERMINATION_CODE: i64 = 999_999;

label_enum! {
    /// A vendor time the agent did not trust: the `kind` label of
    /// `itniotech_exporter_vendor_time_anomalies_total`.
    VendorTimeAnomaly {
        /// An attempt's submit time lies before the order's submit time (or intake) minus the
        /// tolerance: scheduling uses our first sight of the attempt instead.
        SubmitBeforeIntake => "submit_before_intake",
        /// An attempt's submit time lies after our first sight of it plus the tolerance.
        SubmitInFuture => "submit_in_future",
        /// An attempt without a submit time.
        SubmitMissing => "submit_missing",
        /// An attempt ended (done, answered) before it was submitted: its latency is left out.
        EndBeforeSubmit => "end_before_submit",
    }
}

label_enum! {
    /// A vendor number left out of the business counters: the `field` label of
    /// `itniotech_exporter_record_anomalies_total`.
    RecordField {
        /// SMS `chargeCnt` above [`MAX_SMS_SEGMENTS`] or negative.
        SmsSegments => "sms_segments",
        /// SMS `pay` negative or above `--records.max-attempt-cost`.
        SmsCost => "sms_cost",
        /// Call `cost` negative or above `--records.max-attempt-cost`.
        CallCost => "call_cost",
        /// Call `callDuration` negative or above [`MAX_CALL_SECONDS`].
        CallDuration => "call_duration",
        /// Call `chargedDuration` negative or above [`MAX_CALL_SECONDS`].
        CallBilledSeconds => "call_billed_seconds",
        /// Call `terminationCode` beyond ±[`MAX_TERMINATION_CODE`]: counted as `other`.
        TerminationCode => "termination_code",
    }
}

/// One thing a poll distrusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anomaly {
    VendorTime(VendorTimeAnomaly),
    Record(RecordField),
}
