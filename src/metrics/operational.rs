//! The agent's own metrics: API calls, intake, polling, backlog, flows, balance, build.
//!
//! Plain prometheus-client metrics that start from zero like any exporter's. Each has one
//! writer, which reports through an intent-named method here (the API client through
//! [`ApiObserver`], the intake through [`IntakeObserver`], the pollers through the poll and
//! catalog methods), so no other module touches a family directly.
//!
//! Size (about 800 lines): every self-metric's registration, its sibling series at 0 and its
//! one writing method sit together, so "one writer per counter" can be checked in one file; the
//! metrics are grouped by the stage that writes them (API, intake, polling, HTTP, store, proxy).
//! When a stage's group outgrows a screen it moves to a submodule of its own.

use crate::accounting::{Anomaly, RecordField, VendorTimeAnomaly};
use crate::api::model::Flow;
use crate::api::{ApiObserver, Endpoint};
use crate::intake::{IntakeObserver, IntakeSource, RejectReason};
use crate::ledger::family::label_enum;
use crate::ledger::{LabelOverflowObserver, LedgerFamily};
use crate::proxy::{CaptureFailure, ProxyEndpoint, UpstreamErrorKind};
use crate::server::{ConnDrop, HttpObserver, Rejection};
use crate::tracker::store::{Quarantined, StoreErrorKind};
use crate::tracker::StoreObserver;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

const FRESHNESS_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0, 300.0];
/// Whole proxied requests: the vendor's latency plus ours.
const PROXY_DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The proxy's own share: sub-millisecond when healthy, a store commit on the send path.
const PROXY_OVERHEAD_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];
const API_DURATION_BUCKETS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// The `table` values of `itniotech_exporter_quarantined_rows`.
const QUARANTINE_TABLES: [&str; 2] = ["orders", "series"];
/// Longest flow name exported in `itniotech_otp_flow_info`.
const FLOW_NAME_MAX_CHARS: usize = 64;
/// Distinct `status` values of `itniotech_api_requests_total`: the known vendor codes and
/// transport classes are about 40; an API answering ever new codes folds the rest into
/// `other` (counted in `itniotech_exporter_label_overflow_total`).
pub const API_STATUS_BUDGET: usize = 64;
/// The family name `itniotech_exporter_label_overflow_total{metric}` gives the API requests.
const API_REQUESTS_METRIC: &str = "itniotech_api_requests_total";

label_enum! {
    /// How one record poll ended.
    PollResult {
        Ok => "ok",
        NotFound => "not_found",
        Error => "error",
    }
}

label_enum! {
    /// The kinds of `itniotech_account_balance`.
    BalanceKind {
        Balance => "balance",
        Gift => "gift",
        Credit => "credit",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointStatus {
    /// Not `endpoint`: prometheus-operator adds a target label of that name.
    api_endpoint: &'static str,
    status: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabel {
    api_endpoint: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabel {
    field: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TableLabel {
    table: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowInfoLabels {
    flow_id: String,
    flow_name: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowStepInfoLabels {
    flow_id: String,
    step: String,
    channel: String,
    trigger: String,
    channel_switch: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlowStepLabels {
    flow_id: String,
    step: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BalanceLabels {
    kind: &'static str,
    currency: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OverflowLabels {
    metric: String,
    label: String,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProxyRequestLabels {
    api_endpoint: &'static str,
    code: u16,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabel {
    direction: &'static str,
}
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    revision: String,
}

type F64Gauge = Gauge<f64, AtomicU64>;

/// Label sets of the flow info families currently exported.
#[derive(Debug, Default)]
struct PublishedFlows {
    info: Vec<FlowInfoLabels>,
    steps: Vec<FlowStepInfoLabels>,
    waits: Vec<FlowStepLabels>,
}

/// The agent's operational metrics.
#[derive(Debug)]
pub struct Operational {
    up: Gauge,
    api_requests: Family<EndpointStatus, Counter>,
    api_request_duration: Family<EndpointLabel, Histogram, fn() -> Histogram>,
    orders_received: Family<SourceLabel, Counter>,
    orders_rejected: Family<ReasonLabel, Counter>,
    orders_pending: Gauge,
    oldest_pending_age: F64Gauge,
    poll_lag: F64Gauge,
    polls: Family<ResultLabel, Counter>,
    orders_finalised: Counter,
    attempt_freshness: Histogram,
    clock_skew: F64Gauge,
    flow_info: Family<FlowInfoLabels, Gauge>,
    flow_step_info: Family<FlowStepInfoLabels, Gauge>,
    flow_step_wait: Family<FlowStepLabels, Gauge>,
    balance: Family<BalanceLabels, F64Gauge>,
    build_info: Family<BuildLabels, Gauge>,
    http_connections: Gauge,
    http_connections_limit: Gauge,
    http_connections_dropped: Family<ReasonLabel, Counter>,
    http_requests_rejected: Family<ReasonLabel, Counter>,
    orders_pending_limit: Gauge,
    web_config_ok: Gauge,
    web_config_success_time: F64Gauge,
    label_overflow: Family<OverflowLabels, Counter>,
    /// Distinct API `status` label values seen, bounded by [`API_STATUS_BUDGET`].
    api_statuses: Mutex<std::collections::BTreeSet<String>>,
    store_errors: Family<KindLabel, Counter>,
    quarantined_rows: Family<TableLabel, Gauge>,
    vendor_time_anomalies: Family<KindLabel, Counter>,
    record_anomalies: Family<FieldLabel, Counter>,
    orders_merged: Counter,
    proxy_duration: Family<ProxyRequestLabels, Histogram, fn() -> Histogram>,
    proxy_overhead: Histogram,
    proxy_upstream_errors: Family<KindLabel, Counter>,
    proxy_bytes: Family<DirectionLabel, Counter>,
    capture_failures: Family<ReasonLabel, Counter>,
    /// The flow label sets published by the last catalog refresh, so the next one can remove
    /// only the stale ones (clearing first would let a scrape see no flows at all).
    published_flows: Mutex<PublishedFlows>,
}

fn api_histogram() -> Histogram {
    Histogram::new(API_DURATION_BUCKETS.iter().copied())
}

fn proxy_histogram() -> Histogram {
    Histogram::new(PROXY_DURATION_BUCKETS.iter().copied())
}

impl Operational {
    /// Creates the metrics, registers them in `registry`, and initialises the series that
    /// ratios divide by at 0.
    pub fn register(registry: &mut Registry, version: &str, revision: &str) -> Operational {
        let op = Operational {
            up: Gauge::default(),
            api_requests: Family::default(),
            api_request_duration: Family::new_with_constructor(api_histogram),
            orders_received: Family::default(),
            orders_rejected: Family::default(),
            orders_pending: Gauge::default(),
            oldest_pending_age: F64Gauge::default(),
            poll_lag: F64Gauge::default(),
            polls: Family::default(),
            orders_finalised: Counter::default(),
            attempt_freshness: Histogram::new(FRESHNESS_BUCKETS.iter().copied()),
            clock_skew: F64Gauge::default(),
            flow_info: Family::default(),
            flow_step_info: Family::default(),
            flow_step_wait: Family::default(),
            balance: Family::default(),
            build_info: Family::default(),
            http_connections: Gauge::default(),
            http_connections_limit: Gauge::default(),
            http_connections_dropped: Family::default(),
            http_requests_rejected: Family::default(),
            orders_pending_limit: Gauge::default(),
            web_config_ok: Gauge::default(),
            web_config_success_time: F64Gauge::default(),
            label_overflow: Family::default(),
            api_statuses: Mutex::default(),
            store_errors: Family::default(),
            quarantined_rows: Family::default(),
            vendor_time_anomalies: Family::default(),
            record_anomalies: Family::default(),
            orders_merged: Counter::default(),
            proxy_duration: Family::new_with_constructor(proxy_histogram),
            proxy_overhead: Histogram::new(PROXY_OVERHEAD_BUCKETS.iter().copied()),
            proxy_upstream_errors: Family::default(),
            proxy_bytes: Family::default(),
            capture_failures: Family::default(),
            published_flows: Mutex::default(),
        };
        registry.register(
            "itniotech_up",
            "1 when the last API call authenticated and answered",
            op.up.clone(),
        );
        registry.register(
            "itniotech_api_requests",
            "API requests by endpoint and vendor status or transport class, retries included",
            op.api_requests.clone(),
        );
        registry.register(
            "itniotech_api_request_duration_seconds",
            "API request latency per attempt",
            op.api_request_duration.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_received",
            "Orders received at intake, before de-duplication and sampling",
            op.orders_received.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_rejected",
            "Orders not tracked, by reason",
            op.orders_rejected.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_pending",
            "Orders tracked and not yet forgotten",
            op.orders_pending.clone(),
        );
        registry.register(
            "itniotech_exporter_oldest_pending_order_age_seconds",
            "Age of the oldest pending order",
            op.oldest_pending_age.clone(),
        );
        registry.register(
            "itniotech_exporter_poll_lag_seconds",
            "How late the most recent due poll ran after its scheduled time",
            op.poll_lag.clone(),
        );
        registry.register(
            "itniotech_exporter_polls",
            "Record polls by result",
            op.polls.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_finalised",
            "Orders whose outcome the order poller counted; record calls over this is the cost of an order",
            op.orders_finalised.clone(),
        );
        registry.register(
            "itniotech_exporter_attempt_freshness_seconds",
            "Delay from an attempt's end (doneTm, hangupTime) to the poll that counted it",
            op.attempt_freshness.clone(),
        );
        registry.register(
            "itniotech_exporter_clock_skew_seconds",
            "Local clock minus API server clock, from the HTTP Date header",
            op.clock_skew.clone(),
        );
        registry.register(
            "itniotech_otp_flow_info",
            "1 for each task flow from flow/list",
            op.flow_info.clone(),
        );
        registry.register(
            "itniotech_otp_flow_step_info",
            "1 for each step of each task flow",
            op.flow_step_info.clone(),
        );
        registry.register(
            "itniotech_otp_flow_step_wait_seconds",
            "waitingTime of each task flow step",
            op.flow_step_wait.clone(),
        );
        registry.register(
            "itniotech_account_balance",
            "Account funds from sms/getBalance",
            op.balance.clone(),
        );
        registry.register(
            "itniotech_exporter_store_errors",
            "Failed store operations (commits, health probes, reads) by kind",
            op.store_errors.clone(),
        );
        registry.register(
            "itniotech_exporter_quarantined_rows",
            "Unreadable store rows moved to the quarantine table, by the table they came from",
            op.quarantined_rows.clone(),
        );
        registry.register(
            "itniotech_exporter_vendor_time_anomalies",
            "Vendor attempt times the agent distrusted, by kind",
            op.vendor_time_anomalies.clone(),
        );
        registry.register(
            "itniotech_exporter_record_anomalies",
            "Implausible numbers in vendor records left out of the OTP counters, by field",
            op.record_anomalies.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_merged",
            "Orders tracked under both key forms, merged into one when a record linked them",
            op.orders_merged.clone(),
        );
        registry.register(
            "itniotech_exporter_build_info",
            "1, labelled with the build's version and git revision",
            op.build_info.clone(),
        );
        registry.register(
            "itniotech_exporter_http_connections",
            "Open HTTP connections",
            op.http_connections.clone(),
        );
        registry.register(
            "itniotech_exporter_http_connections_limit",
            "Most open HTTP connections per listener (--web.max-connections)",
            op.http_connections_limit.clone(),
        );
        registry.register(
            "itniotech_exporter_http_connections_dropped",
            "HTTP connections the server closed or refused because a limit was reached, by reason",
            op.http_connections_dropped.clone(),
        );
        registry.register(
            "itniotech_exporter_http_requests_rejected",
            "HTTP requests refused, by reason",
            op.http_requests_rejected.clone(),
        );
        registry.register(
            "itniotech_exporter_orders_pending_limit",
            "Pending orders at which the intake answers 503 (--intake.max-pending)",
            op.orders_pending_limit.clone(),
        );
        registry.register(
            "itniotech_exporter_web_config_last_reload_successful",
            "1 when the last load of --web.config.file succeeded (a failed one keeps the previous configuration)",
            op.web_config_ok.clone(),
        );
        registry.register(
            "itniotech_exporter_web_config_last_reload_success_timestamp_seconds",
            "When the web configuration in force was loaded, in Unix seconds",
            op.web_config_success_time.clone(),
        );
        registry.register(
            "itniotech_exporter_label_overflow",
            "Label values exported as other because a metric's series budget was full, by metric and label",
            op.label_overflow.clone(),
        );
        for why in ConnDrop::ALL {
            let _ = op.http_connections_dropped.get_or_create(&ReasonLabel {
                reason: why.as_str(),
            });
        }
        for why in Rejection::ALL {
            let _ = op.http_requests_rejected.get_or_create(&ReasonLabel {
                reason: why.as_str(),
            });
        }
        // Every bounded label at 0, so an alert on its rate sees a series from the start.
        for family in LedgerFamily::ALL {
            for label in family.spec().budgeted_labels() {
                let _ = op.label_overflow.get_or_create(&OverflowLabels {
                    metric: family.exposed_name(),
                    label: (*label).to_owned(),
                });
            }
        }
        let _ = op.label_overflow.get_or_create(&OverflowLabels {
            metric: API_REQUESTS_METRIC.to_owned(),
            label: "status".to_owned(),
        });
        registry.register(
            "itniotech_exporter_proxy_request_duration_seconds",
            "Requests through the capture proxy, from arrival to the reply, by vendor endpoint and HTTP status",
            op.proxy_duration.clone(),
        );
        registry.register(
            "itniotech_exporter_proxy_overhead_seconds",
            "Time the capture proxy adds to a request beyond the vendor's own (forwarding, capture commit)",
            op.proxy_overhead.clone(),
        );
        registry.register(
            "itniotech_exporter_proxy_upstream_errors",
            "Proxied requests that could not reach the vendor, by kind",
            op.proxy_upstream_errors.clone(),
        );
        registry.register(
            "itniotech_exporter_proxy_bytes",
            "Body bytes through the capture proxy, by direction",
            op.proxy_bytes.clone(),
        );
        registry.register(
            "itniotech_exporter_capture_failures",
            "Sends or verifies the proxy forwarded but could not record, by reason (the app still got the reply)",
            op.capture_failures.clone(),
        );
        for kind in UpstreamErrorKind::ALL {
            let _ = op.proxy_upstream_errors.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        for direction in ["request", "response"] {
            let _ = op.proxy_bytes.get_or_create(&DirectionLabel { direction });
        }
        for reason in [CaptureFailure::Store, CaptureFailure::Unreadable] {
            let _ = op.capture_failures.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        op.build_info
            .get_or_create(&BuildLabels {
                version: version.to_string(),
                revision: revision.to_string(),
            })
            .set(1);
        for source in IntakeSource::ALL {
            let _ = op.orders_received.get_or_create(&SourceLabel {
                source: source.as_str(),
            });
        }
        for reason in RejectReason::ALL {
            let _ = op.orders_rejected.get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            });
        }
        for result in PollResult::ALL {
            let _ = op.polls.get_or_create(&ResultLabel {
                result: result.as_str(),
            });
        }
        for kind in StoreErrorKind::ALL {
            let _ = op.store_errors.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        for table in QUARANTINE_TABLES {
            let _ = op.quarantined_rows.get_or_create(&TableLabel { table });
        }
        for kind in VendorTimeAnomaly::ALL {
            let _ = op.vendor_time_anomalies.get_or_create(&KindLabel {
                kind: kind.as_str(),
            });
        }
        for field in RecordField::ALL {
            let _ = op.record_anomalies.get_or_create(&FieldLabel {
                field: field.as_str(),
            });
        }
        op
    }

    /// Rows in the store's quarantine table.
    pub fn quarantined(&self, q: Quarantined) {
        for (table, n) in [("orders", q.orders), ("series", q.series)] {
            self.quarantined_rows
                .get_or_create(&TableLabel { table })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Accounting distrusted a vendor time or number (reported after its poll committed).
    pub fn anomaly(&self, a: Anomaly) {
        match a {
            Anomaly::VendorTime(kind) => self
                .vendor_time_anomalies
                .get_or_create(&KindLabel {
                    kind: kind.as_str(),
                })
                .inc(),
            Anomaly::Record(field) => self
                .record_anomalies
                .get_or_create(&FieldLabel {
                    field: field.as_str(),
                })
                .inc(),
        };
    }

    /// An order tracked twice was merged into its other key's order.
    pub fn order_merged(&self) {
        self.orders_merged.inc();
    }

    /// One record poll ended.
    pub fn poll_finished(&self, result: PollResult) {
        self.polls
            .get_or_create(&ResultLabel {
                result: result.as_str(),
            })
            .inc();
    }

    /// A poll counted an order's outcome.
    pub fn order_finalised(&self) {
        self.orders_finalised.inc();
    }

    /// How late the latest round of due polls started after the most overdue one was due.
    pub fn poll_lag(&self, seconds: f64) {
        self.poll_lag.set(seconds);
    }

    /// An attempt was counted, `seconds` after it ended.
    pub fn attempt_counted(&self, seconds: f64) {
        self.attempt_freshness.observe(seconds);
    }

    /// Pending orders as of the last backlog refresh (the intake's `--intake.max-pending`
    /// check reads this instead of querying the store per request).
    pub fn pending_orders(&self) -> u64 {
        u64::try_from(self.orders_pending.get()).unwrap_or(0)
    }

    /// Pending orders and the age of the oldest one.
    pub fn backlog(&self, pending: u64, oldest_age_seconds: f64) {
        self.orders_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.oldest_pending_age.set(oldest_age_seconds);
    }

    /// The account's funds of one kind.
    pub fn balance(&self, kind: BalanceKind, currency: &str, amount: f64) {
        self.balance
            .get_or_create(&BalanceLabels {
                kind: kind.as_str(),
                currency: currency.to_owned(),
            })
            .set(amount);
    }

    /// A request went through the proxy: `total` from its arrival to the reply, `upstream` of
    /// which the vendor took.
    pub fn proxy_request(
        &self,
        endpoint: ProxyEndpoint,
        code: u16,
        total: Duration,
        upstream: Duration,
    ) {
        self.proxy_duration
            .get_or_create(&ProxyRequestLabels {
                api_endpoint: endpoint.as_str(),
                code,
            })
            .observe(total.as_secs_f64());
        self.proxy_overhead
            .observe(total.saturating_sub(upstream).as_secs_f64());
    }

    /// A proxied request could not reach the vendor.
    pub fn proxy_upstream_error(&self, kind: UpstreamErrorKind) {
        self.proxy_upstream_errors
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }

    /// Request body bytes forwarded to the vendor.
    pub fn proxy_bytes_in(&self, n: usize) {
        self.proxy_bytes
            .get_or_create(&DirectionLabel {
                direction: "request",
            })
            .inc_by(n as u64);
    }

    /// Reply body bytes returned to the app.
    pub fn proxy_bytes_out(&self, n: usize) {
        self.proxy_bytes
            .get_or_create(&DirectionLabel {
                direction: "response",
            })
            .inc_by(n as u64);
    }

    /// A captured call could not be recorded.
    pub fn capture_failed(&self, reason: CaptureFailure) {
        self.capture_failures
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Replaces the flow info series with the catalog `flows`. Deleted or renamed flows
    /// disappear; the current ones never blink out during a refresh.
    pub fn publish_flows(&self, flows: &[Flow]) {
        let mut next = PublishedFlows::default();
        for f in flows {
            let id = f.flow_id.to_string();
            let name: String = f
                .name
                .as_deref()
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(FLOW_NAME_MAX_CHARS)
                .collect();
            next.info.push(FlowInfoLabels {
                flow_id: id.clone(),
                flow_name: name,
            });
            for (i, node) in f.flow.iter().enumerate() {
                let step = (i + 1).to_string();
                next.steps.push(FlowStepInfoLabels {
                    flow_id: id.clone(),
                    step: step.clone(),
                    channel: node.channel.map_or("unknown", |c| c.as_str()).into(),
                    trigger: node.trigger.label().into(),
                    channel_switch: node.switches_channel().to_string(),
                });
                let wait = FlowStepLabels {
                    flow_id: id.clone(),
                    step,
                };
                self.flow_step_wait
                    .get_or_create(&wait)
                    .set(node.waiting_time.unwrap_or(0));
                next.waits.push(wait);
            }
        }
        for l in &next.info {
            self.flow_info.get_or_create(l).set(1);
        }
        for l in &next.steps {
            self.flow_step_info.get_or_create(l).set(1);
        }
        let mut published = self
            .published_flows
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for l in published.info.iter().filter(|l| !next.info.contains(l)) {
            self.flow_info.remove(l);
        }
        for l in published.steps.iter().filter(|l| !next.steps.contains(l)) {
            self.flow_step_info.remove(l);
        }
        for l in published.waits.iter().filter(|l| !next.waits.contains(l)) {
            self.flow_step_wait.remove(l);
        }
        *published = next;
    }
}

impl Operational {
    /// The API `status` label within its budget: a value seen before, or a new one while
    /// there is room; else `other`, counted as an overflow.
    fn api_status(&self, status: &str) -> String {
        let mut seen = self.api_statuses.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(status) || seen.len() < API_STATUS_BUDGET {
            seen.insert(status.to_owned());
            return status.to_owned();
        }
        drop(seen);
        self.label_overflowed(API_REQUESTS_METRIC, "status", 1);
        "other".to_owned()
    }

    fn label_overflowed(&self, metric: &str, label: &str, n: u64) {
        self.label_overflow
            .get_or_create(&OverflowLabels {
                metric: metric.to_owned(),
                label: label.to_owned(),
            })
            .inc_by(n);
    }
}

impl LabelOverflowObserver for Operational {
    fn overflowed(&self, family: LedgerFamily, label: &str) {
        self.label_overflowed(&family.exposed_name(), label, 1);
    }
}

impl HttpObserver for Operational {
    fn limits(&self, max_connections: usize, max_pending: u64) {
        self.http_connections_limit
            .set(i64::try_from(max_connections).unwrap_or(i64::MAX));
        self.orders_pending_limit
            .set(i64::try_from(max_pending).unwrap_or(i64::MAX));
    }

    fn connection_opened(&self) {
        self.http_connections.inc();
    }

    fn connection_closed(&self) {
        self.http_connections.dec();
    }

    fn connection_dropped(&self, why: ConnDrop) {
        self.http_connections_dropped
            .get_or_create(&ReasonLabel {
                reason: why.as_str(),
            })
            .inc();
    }

    fn request_rejected(&self, why: Rejection) {
        self.http_requests_rejected
            .get_or_create(&ReasonLabel {
                reason: why.as_str(),
            })
            .inc();
    }

    fn web_config_loaded(&self, ok: bool, unix_seconds: f64) {
        self.web_config_ok.set(i64::from(ok));
        if ok {
            self.web_config_success_time.set(unix_seconds);
        }
    }
}

impl ApiObserver for Operational {
    fn on_request(&self, endpoint: Endpoint, status_label: &str, up: bool, elapsed: Duration) {
        let status = self.api_status(status_label);
        self.api_requests
            .get_or_create(&EndpointStatus {
                api_endpoint: endpoint.as_str(),
                status,
            })
            .inc();
        self.api_request_duration
            .get_or_create(&EndpointLabel {
                api_endpoint: endpoint.as_str(),
            })
            .observe(elapsed.as_secs_f64());
        self.up.set(i64::from(up));
    }

    fn on_clock_skew(&self, seconds: f64) {
        if seconds.is_finite() {
            self.clock_skew.set(seconds);
        }
    }
}

impl StoreObserver for Operational {
    fn store_error(&self, kind: StoreErrorKind) {
        self.store_errors
            .get_or_create(&KindLabel {
                kind: kind.as_str(),
            })
            .inc();
    }
}

impl IntakeObserver for Operational {
    fn received(&self, source: IntakeSource, n: u64) {
        self.orders_received
            .get_or_create(&SourceLabel {
                source: source.as_str(),
            })
            .inc_by(n);
    }

    fn rejected(&self, reason: RejectReason, n: u64) {
        self.orders_rejected
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc_by(n);
    }
}

#[cfg(test)]
mod tests {
    use crate::api::model::{Channel, Flow, FlowNode, StepTrigger};
    use crate::ledger::Ledger;
    use crate::metrics::Metrics;

    fn flow(id: i64, name: &str, steps: usize) -> Flow {
        Flow {
            flow_id: id,
            name: Some(name.into()),
            flow: (0..steps)
                .map(|_| FlowNode {
                    waiting_time: Some(60),
                    trigger: StepTrigger::SendFailure,
                    channel: Some(Channel::Sms),
                    channel_cut: Some(0),
                })
                .collect(),
        }
    }

    #[test]
    fn refresh_removes_only_stale_flow_series() {
        let metrics = Metrics::new(Ledger::new(), "t", "t");
        metrics
            .op
            .publish_flows(&[flow(1, "a_flow", 2), flow(2, "b_flow", 1)]);
        let text = metrics.render();
        assert!(text.contains(r#"itniotech_otp_flow_info{flow_id="2",flow_name="b_flow"} 1"#));
        assert!(text.contains(r#"itniotech_otp_flow_step_wait_seconds{flow_id="1",step="2"} 60"#));
        assert!(text.contains(
            r#"itniotech_otp_flow_step_info{flow_id="1",step="2",channel="sms",trigger="send_failure",channel_switch="true"} 1"#
        ));
        // Flow 2 deleted, flow 1 renamed and shortened.
        metrics.op.publish_flows(&[flow(1, "a_renamed", 1)]);
        let text = metrics.render();
        assert!(text.contains(r#"itniotech_otp_flow_info{flow_id="1",flow_name="a_renamed"} 1"#));
        assert!(!text.contains(r#"flow_name="a_flow""#));
        assert!(!text.contains(r#"flow_id="2""#));
        assert!(!text.contains(r#"itniotech_otp_flow_step_wait_seconds{flow_id="1",step="2"}"#));
    }
}
