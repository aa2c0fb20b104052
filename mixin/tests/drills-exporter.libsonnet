// Drill cases of the vendor API, intake and exporter-health alerts.
local d = import 'drill.libsonnet';
local series = import 'series.libsonnet';
local ctr = series.counter;
local gauge = series.gauge;

local req(endpoint, status, segs, instance=d.instance) =
  d.s('itniotech_api_requests_total', { api_endpoint: endpoint, status: status }, ctr(segs), instance=instance);
local received(segs, instance=d.instance, job=d.job) =
  d.s('itniotech_exporter_orders_received_total', { source: 'http' }, ctr(segs), instance=instance, job=job);
local rejected(reason, segs) =
  d.s('itniotech_exporter_orders_rejected_total', { reason: reason }, ctr(segs));
local g(name, values, instance=d.instance) = d.s(name, {}, values, instance=instance);
// Attempt freshness histogram: `segs` = [perMinute, le bucket all attempts fall in, minutes].
local freshness(segs, instance=d.instance) =
  local les = ['5', '30', '120', '300', '600', '1800', '+Inf'];
  local idx(le) = std.find(le, les)[0];
  [
    d.s('itniotech_exporter_attempt_freshness_seconds_bucket', { le: les[i] },
        ctr([[if i >= idx(s[1]) then s[0] else 0, s[2]] for s in segs]), instance=instance)
    for i in std.range(0, std.length(les) - 1)
  ] + [
    d.s('itniotech_exporter_attempt_freshness_seconds_count', {}, ctr([[s[0], s[2]] for s in segs]), instance=instance),
  ];
local capfail(reason, segs, instance=d.instance) =
  d.s('itniotech_exporter_capture_failures_total', { reason: reason }, ctr(segs), instance=instance);
local H = 1500;
local R1 = 'exp-1:9867';
local R2 = 'exp-2:9867';

[
  // --- ItniotechApiDown -----------------------------------------------------------------
  d.case(
    'ItniotechApiDown', 'fire', 'api-unreachable',
    'itniotech_up drops to 0 and stays there',
    [g('itniotech_up', gauge([[1, 30], [0, 31]]))],
    60, start=30, detect=5,
    alerts=[{
      eval_time: '50m',
      alertname: 'ItniotechApiDown',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, instance: d.instance },
        exp_annotations: {
          summary: 'The itniotech API does not answer the exporter exp-0:9867',
          description: 'The last itniotech API calls of exporter exp-0:9867 (itniotech-exporter) did not authenticate or answer for 5 minutes. OTP delivery is not being observed (and sending may be failing too).',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechapidown',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechApiDown', 'quiet', 'flapping-api',
    'api-degraded: every other minute a call fails',
    [g('itniotech_up', gauge([[if i % 2 == 0 then 1 else 0, 1] for i in std.range(0, 60)]))],
    60,
  ),
  d.case(
    'ItniotechApiDown', 'low-volume', 'idle-exporter',
    'an exporter without orders: only the balance call runs, and it fails',
    [g('itniotech_up', gauge([[0, 31]]))],
    30, detect=5,
  ),

  // --- ItniotechApiAuthFailing ----------------------------------------------------------
  d.case(
    'ItniotechApiAuthFailing', 'fire', 'key-disabled',
    'every record call is rejected with -30 (key disabled)',
    [
      req('record', '0', [[10, 30], [0, 30]]),
      req('record', '-30', [[0, 30], [10, 30]]),
    ],
    60, start=30, detect=6,
    alerts=[{
      eval_time: '50m',
      alertname: 'ItniotechApiAuthFailing',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, instance: d.instance, status: '-30' },
        exp_annotations: {
          summary: "itniotech API rejects the exporter's credentials (status -30)",
          description: '100 itniotech API calls of exporter exp-0:9867 in the last 10 minutes were rejected with status -30 (-1 bad key or signature, -2/-31 IP not allowed, -30 key disabled, -32 no permission for the app).',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechapiauthfailing',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechApiAuthFailing', 'quiet', 'stray-rejection-and-timestamps',
    'one -1 in an hour, and -16 (timestamp) errors, which are clock skew',
    [
      req('record', '0', [[10, 60]]),
      req('balance', '-1', [[0, 20], [1, 1], [0, 39]]),
      req('record', '-16', [[5, 60]]),
    ],
    60,
  ),
  d.case(
    'ItniotechApiAuthFailing', 'low-volume', 'idle-exporter-bad-signature',
    'an idle exporter calls the API every 3 minutes, each call rejected with -1',
    [req('balance', '-1', [[0, 30]] + [[if i % 3 == 0 then 1 else 0, 1] for i in std.range(0, 29)])],
    60, start=30, detect=12,
  ),

  // --- ItniotechApiClockSkew ------------------------------------------------------------
  d.case(
    'ItniotechApiClockSkew', 'fire', 'clock-drifts',
    'the exporter host clock jumps 45 s ahead of the API',
    [g('itniotech_exporter_clock_skew_seconds', gauge([[0.2, 30], [45, 31]]))],
    60, start=30, detect=10,
    alerts=[{
      eval_time: '50m',
      alertname: 'ItniotechApiClockSkew',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, instance: d.instance },
        exp_annotations: {
          summary: 'Exporter clock is 45s off the itniotech API clock',
          description: "The clock of exporter exp-0:9867 differs from the itniotech API server's by 45s (threshold 30s). Signed requests carry a timestamp; a large skew gets them rejected with status -16.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechapiclockskew',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechApiClockSkew', 'quiet', 'small-skew',
    'a 5 s skew, either way',
    [g('itniotech_exporter_clock_skew_seconds', gauge([[5, 30], [-5, 31]]))],
    60,
  ),
  d.case(
    'ItniotechApiClockSkew', 'low-volume', 'behind-and-idle',
    'an idle exporter 90 s behind (measured on its rare balance calls)',
    [g('itniotech_exporter_clock_skew_seconds', gauge([[-90, 31]]))],
    30, detect=10,
  ),

  // --- ItniotechApiErrorsHigh -----------------------------------------------------------
  d.case(
    'ItniotechApiErrorsHigh', 'fire', 'timeouts',
    '10 % of 100 record calls/min time out',
    [
      req('record', '0', [[100, 30], [90, 60]]),
      req('record', 'timeout', [[0, 30], [10, 60]]),
      req('record', '-24', [[20, 90]]),
    ],
    90, start=30, detect=17,
    alerts=[{
      eval_time: '80m',
      alertname: 'ItniotechApiErrorsHigh',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, instance: d.instance, api_endpoint: 'record' },
        exp_annotations: {
          summary: '8.333% of itniotech API calls to record fail',
          description: "8.333% of exporter exp-0:9867's calls to the itniotech endpoint record returned an error status or a transport error over the last 10 minutes (threshold 5%). Metrics get late; see the status breakdown.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechapierrorshigh',
        },
      }],
    }],
  ),
  // Two exporters of one deployment: averaged, the bad one would read 4.5 %.
  d.case(
    'ItniotechApiErrorsHigh', 'fire', 'bad-exporter-next-to-healthy',
    'exporter exp-0 sees 9 % of its 100 record calls/min time out; exp-1 (100 calls/min) none',
    [
      req('record', '0', [[100, 30], [91, 60]]),
      req('record', 'timeout', [[0, 30], [9, 60]]),
      req('record', '0', [[100, 90]], instance=R1),
      req('record', 'timeout', [[0, 90]], instance=R1),
    ],
    90, start=30, detect=16,
    alerts=[{
      eval_time: '80m',
      alertname: 'ItniotechApiErrorsHigh',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, instance: d.instance, api_endpoint: 'record' },
        exp_annotations: {
          summary: '9% of itniotech API calls to record fail',
          description: "9% of exporter exp-0:9867's calls to the itniotech endpoint record returned an error status or a transport error over the last 10 minutes (threshold 5%). Metrics get late; see the status breakdown.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechapierrorshigh',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechApiErrorsHigh', 'quiet', 'not-found-after-submit',
    '20 % of record calls answer -24 right after submit (retried), 1 % time out',
    [
      req('record', '0', [[79, 90]]),
      req('record', '-24', [[20, 90]]),
      req('record', 'timeout', [[1, 90]]),
    ],
    90,
  ),
  d.case(
    'ItniotechApiErrorsHigh', 'low-volume', 'rare-balance-failures',
    'the balance endpoint (1 call/min) fails half the time (under the 20 calls/10m guard)',
    [
      req('balance', '0', [[0.5, 90]]),
      req('balance', 'http_5xx', [[0.5, 90]]),
    ],
    90,
  ),

  // --- ItniotechIntakeStopped -----------------------------------------------------------
  d.case(
    'ItniotechIntakeStopped', 'fire', 'intake-stops',
    'the applications stop posting orders (30/min before)',
    [received([[30, 90], [0, 60]])],
    150, start=90, detect=15,
    alerts=[{
      eval_time: '140m',
      alertname: 'ItniotechIntakeStopped',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job },
        exp_annotations: {
          summary: 'No OTP orders reach the intake of itniotech-exporter',
          description: 'The intake of itniotech-exporter received no order for 10 minutes after at least 60 in the hour before. Either the applications stopped sending OTPs (logins failing upstream?) or they stopped telling the exporter (a deploy, a credential, a network change): OTP delivery is no longer observed.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechintakestopped',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechIntakeStopped', 'quiet', 'night-lull',
    'traffic falls from 30 to 1 order/min at night; one replica gets nothing',
    [received([[30, 90], [1, 60]]), received([[0, 150]], instance=R1)],
    150,
  ),
  d.case(
    'ItniotechIntakeStopped', 'low-volume', 'small-deployment-stops',
    'a deployment with 0.5 orders/min (under 60/h) stops: ItniotechIntakeLow covers it a day later',
    [received([[0.5, 90], [0, 60]])],
    150,
  ),

  // --- ItniotechIntakeLow ---------------------------------------------------------------
  d.case(
    'ItniotechIntakeLow', 'fire', 'one-app-stops-reporting',
    'after a day at 30 orders/min the intake gets 5/min (one big app stopped reporting)',
    [received([[30, H], [5, 60]])],
    H + 60, start=H, detect=43,
    alerts=[{
      eval_time: '%dm' % (H + 50),
      alertname: 'ItniotechIntakeLow',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job },
        exp_annotations: {
          summary: 'The intake of itniotech-exporter gets far fewer orders than a day ago',
          description: 'Over the last 30 minutes the intake of itniotech-exporter received 16.67% of the orders of the same 30 minutes yesterday (threshold 25%, and a week ago too when known). Part of the applications or regions stopped reporting their OTPs, or stopped sending them.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechintakelow',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechIntakeLow', 'quiet', 'daily-pattern',
    'the night (5/min) follows the day (30/min) exactly as yesterday',
    [received([[30, 480], [5, 960], [30, 480], [5, 120]])],
    2040,
  ),
  d.case(
    'ItniotechIntakeLow', 'low-volume', 'small-deployment-drop',
    'a deployment at 0.5 orders/min drops to 0.1 (under 30 orders per 30m yesterday)',
    [received([[0.5, H], [0.1, 60]])],
    H + 60,
  ),

  // --- ItniotechIntakeInvalidHigh -------------------------------------------------------
  d.case(
    'ItniotechIntakeInvalidHigh', 'fire', 'client-sends-bad-items',
    'a client starts posting items without orderId: 10 % of 30 items/min',
    [received([[30, 30], [27, 60]]), rejected('invalid', [[0, 30], [3, 60]])],
    90, start=30, detect=18,
    alerts=[{
      eval_time: '80m',
      alertname: 'ItniotechIntakeInvalidHigh',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job },
        exp_annotations: {
          summary: '10% of the orders posted to itniotech-exporter are invalid',
          description: '10% of the order items posted to the intake of itniotech-exporter over the last 15 minutes were rejected as invalid (HTTP 400, threshold 5%). A client sends a wrong format (missing appId/orderId, bad JSON); those OTPs are not observed.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechintakeinvalidhigh',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechIntakeInvalidHigh', 'quiet', 'rare-bad-items',
    '1 % of 30 items/min are invalid',
    [received([[29.7, 90]]), rejected('invalid', [[0.3, 90]]), rejected('duplicate', [[5, 90]])],
    90,
  ),
  d.case(
    'ItniotechIntakeInvalidHigh', 'low-volume', 'small-client',
    'a client posting 1 item/min sends 40 % invalid ones (under 10 per 15m)',
    [received([[0.6, 90]]), rejected('invalid', [[0.4, 90]])],
    90,
  ),

  // --- ItniotechCaptureFailing ---------------------------------------------------------
  d.case(
    'ItniotechCaptureFailing', 'fire', 'store-cannot-commit',
    'the disk of exporter exp-0 fills up: none of its 20 proxied sends/min can be recorded',
    [
      capfail('store', [[0, 30], [20, 60]]),
      capfail('unreadable', [[0, 90]]),
    ],
    90, start=30, detect=6, match='reason="store"',
    alerts=[{
      eval_time: '90m',
      alertname: 'ItniotechCaptureFailing',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, instance: d.instance, reason: 'store' },
        exp_annotations: {
          summary: 'Exporter exp-0:9867 cannot record the OTPs its proxy forwards (store)',
          description: "600 sends or verifies that the capture proxy of exporter exp-0:9867 (job itniotech-exporter) forwarded over the last 30 minutes could not be recorded (reason store: store = the store could not commit, disk full or I/O; unreadable = the request or the vendor's reply could not be read). The applications got their replies, but those orders are invisible: their delivery, cost and fraud signals are missing.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechcapturefailing',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechCaptureFailing', 'quiet', 'an-unreadable-reply-an-hour',
    'one send an hour cannot be read (a truncated reply), the rest is recorded',
    [
      capfail('unreadable', [[0, 20], [1, 1], [0, 59], [1, 1], [0, 39]]),
      capfail('store', [[0, 120]]),
    ],
    120,
  ),
  d.case(
    'ItniotechCaptureFailing', 'low-volume', 'small-deployment-store-fails',
    'a deployment proxying one send every 5 minutes can record none of them',
    [capfail('store', [[0, 30]] + [[if i % 5 == 0 then 1 else 0, 1] for i in std.range(0, 59)])],
    90, start=30, detect=16, match='reason="store"',
  ),

  // --- ItniotechExporterBacklog ---------------------------------------------------------
  d.case(
    'ItniotechExporterBacklog', 'fire', 'polls-late',
    'due polls run 5 minutes late (API rate limit)',
    [g('itniotech_exporter_poll_lag_seconds', gauge([[0.05, 30], [300, 31]]))],
    60, start=30, detect=15, match='signal="poll_lag"',
    alerts=[{
      eval_time: '50m',
      alertname: 'ItniotechExporterBacklog',
      exp_alerts: [{
        exp_labels: { severity: 'warning', signal: 'poll_lag', job: d.job, instance: d.instance },
        exp_annotations: {
          summary: 'Exporter exp-0:9867 polls 5m 0s late',
          description: 'Due record polls of exporter exp-0:9867 run 5m 0s after their scheduled time (threshold 2m). Delivery metrics are stale by that much; the API rate limit or the store cannot keep up.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechexporterbacklog',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechExporterBacklog', 'quiet', 'normal-lag-and-age',
    'polls 2 s late; the oldest pending order 30 minutes old',
    [
      g('itniotech_exporter_poll_lag_seconds', gauge([[2, 61]])),
      g('itniotech_exporter_oldest_pending_order_age_seconds', gauge([[1800, 61]])),
    ],
    60,
  ),
  d.case(
    'ItniotechExporterBacklog', 'low-volume', 'one-stuck-order',
    'an idle exporter keeps one order pending: its age passes 3 hours',
    [g('itniotech_exporter_oldest_pending_order_age_seconds', series.ramp(9000, 60, 61))],
    60, start=30, detect=16, match='signal="oldest_pending_order"',
  ),

  // --- ItniotechExporterMetricsStale ----------------------------------------------------
  d.case(
    'ItniotechExporterMetricsStale', 'fire', 'attempts-counted-late',
    'attempts (30/min) used to be counted within 5 s; now 5-10 minutes after they end',
    freshness([[30, '5', 30], [30, '600', 60]]),
    90, start=30, detect=17,
    alerts=[{
      eval_time: '80m',
      alertname: 'ItniotechExporterMetricsStale',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, instance: d.instance },
        exp_annotations: {
          summary: 'Delivery metrics of exporter exp-0:9867 are 9m 30s late (p90)',
          description: '90 % of the OTP attempts exporter exp-0:9867 counted over the last 10 minutes were counted more than 9m 30s after they ended (threshold 5m). Dashboards and delivery alerts see problems that late; see the poll lag and API errors of that exporter.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechexportermetricsstale',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechExporterMetricsStale', 'quiet', 'fresh-metrics',
    'attempts counted within 30 s of their end',
    freshness([[30, '30', 90]]),
    90,
  ),
  d.case(
    'ItniotechExporterMetricsStale', 'low-volume', 'few-attempts-late',
    'an exporter counting 1 attempt/min, all late (under 20 per 10m)',
    freshness([[1, '1800', 90]]),
    90,
  ),

  // --- ItniotechExporterReplicaDivergence -----------------------------------------------
  d.case(
    'ItniotechExporterReplicaDivergence', 'fire', 'one-replica-falls-behind',
    'three replicas hold ~300 pending orders; one stops finishing them (+50/min)',
    [
      g('itniotech_exporter_orders_pending', gauge([[300, 91]])),
      g('itniotech_exporter_orders_pending', gauge([[310, 91]]), instance=R1),
      g('itniotech_exporter_orders_pending', gauge([[290, 30]]) + ' ' + series.ramp(340, 50, 61), instance=R2),
    ],
    90, start=30, detect=21, match='instance="exp-2:9867", signal="orders_pending"',
    alerts=[{
      eval_time: '80m',
      alertname: 'ItniotechExporterReplicaDivergence',
      exp_alerts: [{
        exp_labels: { severity: 'warning', signal: 'orders_pending', job: d.job, instance: R2 },
        exp_annotations: {
          summary: 'Replica exp-2:9867 of itniotech-exporter falls behind its peers (pending orders)',
          description: 'The pending orders of exporter replica exp-2:9867 is 2.84k, more than 2x the average of the other replicas of itniotech-exporter and at least 200 above it. That replica (its store, its API quota, its node) is in trouble while the others are fine; the OTP metrics of the orders it owns are late.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechexporterreplicadivergence',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechExporterReplicaDivergence', 'fire', 'one-replica-stale',
    'two replicas; one counts attempts 10 minutes late while the other is fresh',
    freshness([[30, '5', 90]]) + freshness([[30, '5', 30], [30, '1800', 60]], instance=R1),
    90, start=30, detect=17, match='signal="attempt_freshness_p90"',
  ),
  d.case(
    'ItniotechExporterReplicaDivergence', 'quiet', 'replicas-in-step',
    'three replicas with 250-350 pending orders, polls 1-3 s late',
    [
      g('itniotech_exporter_orders_pending', gauge([[250, 91]])),
      g('itniotech_exporter_orders_pending', gauge([[350, 91]]), instance=R1),
      g('itniotech_exporter_orders_pending', gauge([[300, 91]]), instance=R2),
      g('itniotech_exporter_poll_lag_seconds', gauge([[1, 91]])),
      g('itniotech_exporter_poll_lag_seconds', gauge([[3, 91]]), instance=R1),
      g('itniotech_exporter_poll_lag_seconds', gauge([[2, 91]]), instance=R2),
    ],
    90,
  ),
  d.case(
    'ItniotechExporterReplicaDivergence', 'low-volume', 'idle-replicas',
    'two nearly idle replicas: 0 and 12 pending orders (a ratio, but no gap); a lone replica',
    [
      g('itniotech_exporter_orders_pending', gauge([[0, 91]])),
      g('itniotech_exporter_orders_pending', gauge([[12, 91]]), instance=R1),
      d.s('itniotech_exporter_orders_pending', {}, gauge([[5000, 91]]), job='itniotech-solo'),
    ],
    90,
  ),

  // --- ItniotechExporterDown ------------------------------------------------------------
  d.case(
    'ItniotechExporterDown', 'fire', 'scrape-fails',
    'the exporter stops answering scrapes',
    [
      d.s('up', {}, gauge([[1, 30], [0, 31]])),
      g('itniotech_exporter_build_info', gauge([[1, 30]])),
    ],
    60, start=30, detect=5,
    alerts=[{
      eval_time: '50m',
      alertname: 'ItniotechExporterDown',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, instance: d.instance },
        exp_annotations: {
          summary: 'itniotech-exporter is down (exp-0:9867)',
          description: 'Prometheus cannot scrape itniotech-exporter exp-0:9867 (job itniotech-exporter). The OTP delivery of the orders it owns is not being observed.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechexporterdown',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechExporterDown', 'quiet', 'healthy-and-unrelated',
    'a healthy exporter; an unrelated node_exporter target is down',
    [
      d.s('up', {}, gauge([[1, 61]])),
      g('itniotech_exporter_build_info', gauge([[1, 61]])),
      d.s('up', {}, gauge([[0, 61]]), job='node', instance='other:9100'),
    ],
    60,
  ),
  d.case(
    'ItniotechExporterDown', 'low-volume', 'nothing-scraped',
    'no itniotech-exporter target at all (service discovery lost it)',
    [d.s('up', {}, gauge([[1, 61]]), job='node', instance='other:9100')],
    60, detect=5,
  ),
]
