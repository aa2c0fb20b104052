// Seven days of normal traffic against the shipped rule files: nothing may fire.
//
// Two deployments in one Prometheus: itniotech-exporter (two replicas, apps demo_login and
// demo_payment) and itniotech-eu (one replica, app eu_login). Traffic follows a day (night at
// 30 %, evening peak at 120 %) and a week (weekends at 70 %). SMS fail 1-10 % by country; the
// order failure ratios are those of the issue: SMS-only flows 5 %, flows with voice fallback
// 1 %, orders without a flow 10 % (a third of them are voice-only calls). 2-minute samples,
// 10-minute rule evaluation: a week at 1-minute evaluation of every rule takes promtool minutes.
local series = import 'series.libsonnet';

local days = 7;
local sample = 2;  // minutes per sample
// [from hour, to hour, share of the day's peak traffic]
local blocks = [[0, 6, 0.3], [6, 9, 0.7], [9, 18, 1.0], [18, 22, 1.2], [22, 24, 0.5]];
local profile = [
  { samples: (b[1] - b[0]) * 60 / sample, f: b[2] * (if d % 7 >= 5 then 0.7 else 1) }
  for d in std.range(0, days - 1)
  for b in blocks
];
local totalSamples = days * 1440 / sample;

// A counter growing by `perMin` at peak, following the profile.
local ctr(perMin) = series.counter([[perMin * p.f * sample, p.samples] for p in profile]);
local const(v) = series.gauge([[v, totalSamples + 1]]);

local deployments = [
  { job: 'itniotech-exporter', instances: ['exp-0:9867', 'exp-1:9867'], apps: [['demo_login', 60, 'exp-0:9867'], ['demo_payment', 20, 'exp-1:9867']] },
  { job: 'itniotech-eu', instances: ['eu-0:9867'], apps: [['eu_login', 10, 'eu-0:9867']] },
];
// [flow, share of orders, failed share]
local flows = [['none', 0.25, 0.10], ['1', 0.2, 0.05], ['2', 0.3, 0.01], ['3', 0.25, 0.01]];
// [country, mnc, share of SMS, failed share, verified share of delivered]
local countries = [['ID', '10', 0.3, 0.05, 0.85], ['IN', '45', 0.4, 0.07, 0.85], ['NG', '30', 0.2, 0.10, 0.80], ['DE', '1', 0.1, 0.01, 0.90]];
// Flow catalog: [flow, step, channel, trigger]
local steps = [['1', '1', 'sms', 'unverified'], ['2', '1', 'sms', 'send_failure'], ['2', '2', 'call', 'send_failure'], ['3', '1', 'sms', 'unverified'], ['3', '2', 'call', 'unverified']];

local s(name, ls, values) = { series: series.labels(name, ls), values: values };

local perApp(dep, app) =
  local t = { job: dep.job, instance: app[2] };
  local rate = app[1];
  local a = app[0];
  [
    s('itniotech_otp_orders_total', t { app_id: a, flow_id: f[0], country: 'ID', outcome: 'delivered' }, ctr(rate * f[1] * (1 - f[2])))
    for f in flows
  ] + [
    s('itniotech_otp_orders_total', t { app_id: a, flow_id: f[0], country: 'ID', outcome: 'failed' }, ctr(rate * f[1] * f[2]))
    for f in flows
  ] + [
    s('itniotech_otp_orders_total', t { app_id: a, flow_id: 'none', country: 'unknown', outcome: 'not_found' }, ctr(rate * 0.005)),
    s('itniotech_otp_fallbacks_total', t { app_id: a, flow_id: '2', from_channel: 'sms', to_channel: 'call' }, ctr(rate * 0.3 * 0.06)),
    s('itniotech_otp_fallbacks_total', t { app_id: a, flow_id: '3', from_channel: 'sms', to_channel: 'call' }, ctr(rate * 0.25 * 0.2)),
    s('itniotech_otp_cost_total', t { app_id: a, channel: 'sms', country: 'ID', currency: 'USD' }, ctr(rate * 0.03)),
    s('itniotech_otp_cost_total', t { app_id: a, channel: 'call', country: 'ID', currency: 'USD' }, ctr(rate * 0.005)),
    // Sends through the capture proxy: a few users re-request a code too often (-28).
    s('itniotech_otp_send_requests_total', t { app_id: a, channel: 'sms', country: 'ID', status: '0' }, ctr(rate * 0.995)),
    s('itniotech_otp_send_requests_total', t { app_id: a, channel: 'sms', country: 'ID', status: '-28' }, ctr(rate * 0.005)),
    s('itniotech_otp_calls_total', t { app_id: a, country: 'NG', termination_code: '0', termination_reason: 'success' }, ctr(rate * 0.05 * 0.75)),
    s('itniotech_otp_calls_total', t { app_id: a, country: 'NG', termination_code: '100003', termination_reason: 'no_answer' }, ctr(rate * 0.05 * 0.25)),
  ] + std.flattenArrays([
    [
      s('itniotech_otp_sms_total', t { app_id: a, country: c[0], mnc: c[1], status: 'delivered' }, ctr(rate * c[2] * (1 - c[3]))),
      s('itniotech_otp_sms_total', t { app_id: a, country: c[0], mnc: c[1], status: 'failed' }, ctr(rate * c[2] * c[3])),
      s('itniotech_otp_verifications_total', t { app_id: a, flow_id: '2', country: c[0], channel: 'sms', result: 'verified' }, ctr(rate * c[2] * (1 - c[3]) * c[4])),
      s('itniotech_otp_verifications_total', t { app_id: a, flow_id: '2', country: c[0], channel: 'sms', result: 'not_verified' }, ctr(rate * c[2] * (1 - (1 - c[3]) * c[4]))),
    ] + [
      // Delivery latency: 60 % within 10 s, 35 % within 30 s, 5 % within 60 s.
      s('itniotech_otp_sms_delivery_seconds_bucket', t { app_id: a, country: c[0], status: 'delivered', le: b[0] }, ctr(rate * c[2] * (1 - c[3]) * b[1]))
      for b in [['10', 0.6], ['30', 0.95], ['60', 1], ['+Inf', 1]]
    ]
    for c in countries
  ]);

local perInstance(dep, instance, orders) =
  local t = { job: dep.job, instance: instance };
  [
    s('up', t, const(1)),
    s('itniotech_up', t, const(1)),
    s('itniotech_exporter_build_info', t { version: '0.1.0', revision: 'abc' }, const(1)),
    s('itniotech_exporter_orders_pending', t, const(orders * 5)),
    s('itniotech_exporter_oldest_pending_order_age_seconds', t, const(1500)),
    s('itniotech_exporter_poll_lag_seconds', t, const(0.2)),
    s('itniotech_exporter_clock_skew_seconds', t, const(-0.4)),
    s('itniotech_account_balance', t { kind: 'balance', currency: 'USD' }, series.ramp(1e6, -5 * sample, totalSamples + 1)),
    s('itniotech_exporter_orders_received_total', t { source: 'http' }, ctr(orders)),
    s('itniotech_exporter_orders_rejected_total', t { reason: 'invalid' }, ctr(orders * 0.002)),
    s('itniotech_exporter_capture_failures_total', t { reason: 'store' }, const(0)),
    s('itniotech_exporter_capture_failures_total', t { reason: 'unreadable' }, const(0)),
    s('itniotech_exporter_orders_rejected_total', t { reason: 'duplicate' }, ctr(orders * 0.01)),
    s('itniotech_api_requests_total', t { api_endpoint: 'record', status: '0' }, ctr(orders * 2 * 0.98)),
    s('itniotech_api_requests_total', t { api_endpoint: 'record', status: '-24' }, ctr(orders * 2 * 0.015)),
    s('itniotech_api_requests_total', t { api_endpoint: 'record', status: 'timeout' }, ctr(orders * 2 * 0.005)),
    s('itniotech_api_requests_total', t { api_endpoint: 'balance', status: '0' }, ctr(1)),
  ] + [
    s('itniotech_exporter_attempt_freshness_seconds_bucket', t { le: b[0] }, ctr(orders * 1.2 * b[1]))
    for b in [['5', 0.9], ['30', 0.99], ['120', 1], ['+Inf', 1]]
  ] + [
    s('itniotech_exporter_attempt_freshness_seconds_count', t, ctr(orders * 1.2)),
  ] + [
    s('itniotech_otp_flow_step_info', t { flow_id: st[0], step: st[1], channel: st[2], trigger: st[3], channel_switch: 'true' }, const(1))
    for st in steps
  ];

{
  test: {
    name: 'seven days of normal traffic in two deployments fire nothing',
    interval: '%dm' % sample,
    input_series: std.flattenArrays([
      perApp(dep, app)
      for dep in deployments
      for app in dep.apps
    ] + [
      perInstance(dep, i, std.foldl(function(acc, app) acc + (if app[2] == i then app[1] else 0), dep.apps, 0))
      for dep in deployments
      for i in dep.instances
    ]),
    promql_expr_test: [
      {
        expr: 'count by (alertname) (max_over_time(ALERTS{alertstate="firing"}[%dd]))' % days,
        eval_time: '%dd' % days,
        exp_samples: [],
      },
      // The scenario is what it claims: the objectives and failure ratios of the issue.
      {
        expr: 'app_flow:itniotech_otp_delivery_slo:objective{app_id="demo_login"}',
        eval_time: '%dd' % days,
        exp_samples: [
          { labels: 'app_flow:itniotech_otp_delivery_slo:objective{job="itniotech-exporter", app_id="demo_login", flow_id="%s"}' % o[0], value: o[1] }
          for o in [['1', 0.92], ['2', 0.98], ['3', 0.98], ['none', 0.85]]
        ],
      },
    ],
  },
}
