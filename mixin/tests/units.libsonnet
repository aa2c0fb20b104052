// Unit tests of the recording rules (exact values) and of the configuration (overrides, group
// labels). promtool compares floats exactly: per-second rates here are multiples of 1/4, which
// binary floating point holds exactly, so sums and ratios do not flicker with series order.
local series = import 'series.libsonnet';
local ctr = series.counter;
local gauge = series.gauge;

local s(name, ls, values) = { series: series.labels(name, ls), values: values };
local t(job='itniotech-exporter', instance='exp-0:9867') = { job: job, instance: instance };
local J = 'job="itniotech-exporter"';

{
  // Against the shipped rule files.
  recording: [
    {
      name: 'objectives follow the flow catalog: two channels 98 %, one channel 92 %, no flow 85 %',
      interval: '1m',
      input_series: [
        s('itniotech_otp_flow_step_info', t(instance=i) { flow_id: st[0], step: st[1], channel: st[2], trigger: 'send_failure', channel_switch: 'true' }, gauge([[1, 11]]))
        // Both replicas export the catalog: the objective must not double.
        for i in ['exp-0:9867', 'exp-1:9867']
        for st in [['1', '1', 'sms'], ['2', '1', 'sms'], ['2', '2', 'call'], ['4', '1', 'sms'], ['4', '2', 'sms'], ['4', '3', 'call'], ['9', '1', 'sms'], ['9', '2', 'sms']]
      ] + [
        s('itniotech_otp_orders_total', t() { app_id: 'a1', flow_id: f, country: 'ID', outcome: 'delivered' }, ctr([[1, 10]]))
        // Flow 7 is not in the catalog (yet): the no-flow default.
        for f in ['1', '2', '4', '9', '7', 'none']
      ],
      promql_expr_test: [
        {
          expr: 'app_flow:itniotech_otp_delivery_slo:objective',
          eval_time: '10m',
          exp_samples: [
            { labels: 'app_flow:itniotech_otp_delivery_slo:objective{%s, app_id="a1", flow_id="%s"}' % [J, o[0]], value: o[1] }
            for o in [['1', 0.92], ['2', 0.98], ['4', 0.98], ['9', 0.92], ['7', 0.85], ['none', 0.85]]
          ],
        },
        {
          expr: 'flow:itniotech_otp_flow_channels:count',
          eval_time: '10m',
          exp_samples: [
            { labels: 'flow:itniotech_otp_flow_channels:count{%s, flow_id="%s"}' % [J, o[0]], value: o[1] }
            for o in [['1', 1], ['2', 2], ['4', 2], ['9', 1]]
          ],
        },
      ],
    },
    {
      name: 'SMS, order, fallback and conversion ratios keep the deployment apart',
      interval: '1m',
      input_series: [
        // Two deployments send for an app of the same name: their ratios must not mix.
        s('itniotech_otp_sms_total', t() { app_id: 'a1', country: 'ID', mnc: '10', status: 'failed' }, ctr([[15, 70]])),
        s('itniotech_otp_sms_total', t() { app_id: 'a1', country: 'ID', mnc: '10', status: 'delivered' }, ctr([[45, 70]])),
        s('itniotech_otp_sms_total', t() { app_id: 'a1', country: 'ID', mnc: '1', status: 'failed' }, ctr([[0, 70]])),
        s('itniotech_otp_sms_total', t() { app_id: 'a1', country: 'ID', mnc: '1', status: 'delivered' }, ctr([[60, 70]])),
        s('itniotech_otp_sms_total', t('itniotech-eu', 'eu-0:9867') { app_id: 'a1', country: 'ID', mnc: '10', status: 'delivered' }, ctr([[60, 70]])),
        s('itniotech_otp_sms_total', t('itniotech-eu', 'eu-0:9867') { app_id: 'a1', country: 'ID', mnc: '10', status: 'failed' }, ctr([[0, 70]])),
        s('itniotech_otp_sms_delivery_seconds_bucket', t() { app_id: 'a1', country: 'ID', status: 'delivered', le: '10' }, ctr([[10, 70]])),
        s('itniotech_otp_sms_delivery_seconds_bucket', t() { app_id: 'a1', country: 'ID', status: 'delivered', le: '30' }, ctr([[20, 70]])),
        s('itniotech_otp_sms_delivery_seconds_bucket', t() { app_id: 'a1', country: 'ID', status: 'delivered', le: '+Inf' }, ctr([[20, 70]])),
        // Orders of one app and flow on two replicas: summed.
        s('itniotech_otp_orders_total', t() { app_id: 'a1', flow_id: '2', country: 'ID', outcome: 'delivered' }, ctr([[45, 70]])),
        s('itniotech_otp_orders_total', t(instance='exp-1:9867') { app_id: 'a1', flow_id: '2', country: 'ID', outcome: 'delivered' }, ctr([[45, 70]])),
        s('itniotech_otp_orders_total', t() { app_id: 'a1', flow_id: '2', country: 'IN', outcome: 'failed' }, ctr([[15, 70]])),
        s('itniotech_otp_orders_total', t() { app_id: 'a1', flow_id: '2', country: 'IN', outcome: 'unresolved' }, ctr([[15, 70]])),
        s('itniotech_otp_orders_total', t() { app_id: 'a1', flow_id: '2', country: 'IN', outcome: 'not_found' }, ctr([[60, 70]])),
        s('itniotech_otp_fallbacks_total', t() { app_id: 'a1', flow_id: '2', from_channel: 'sms', to_channel: 'call' }, ctr([[30, 70]])),
        s('itniotech_otp_verifications_total', t() { app_id: 'a1', flow_id: '2', country: 'UZ', channel: 'sms', result: 'verified' }, ctr([[15, 70]])),
        s('itniotech_otp_verifications_total', t() { app_id: 'a1', flow_id: '2', country: 'UZ', channel: 'call', result: 'not_verified' }, ctr([[45, 70]])),
        s('itniotech_otp_verifications_total', t() { app_id: 'a1', flow_id: '3', country: 'UZ', channel: 'sms', result: 'verified' }, ctr([[60, 70]])),
      ],
      promql_expr_test: [
        {
          expr: 'app_country:itniotech_otp_sms_failed:ratio_rate10m',
          eval_time: '30m',
          exp_samples: [
            { labels: 'app_country:itniotech_otp_sms_failed:ratio_rate10m{%s, app_id="a1", country="ID"}' % J, value: 0.125 },
            { labels: 'app_country:itniotech_otp_sms_failed:ratio_rate10m{job="itniotech-eu", app_id="a1", country="ID"}', value: 0 },
          ],
        },
        {
          expr: 'app_country_mnc:itniotech_otp_sms_failed:ratio_rate10m{%s}' % J,
          eval_time: '30m',
          exp_samples: [
            { labels: 'app_country_mnc:itniotech_otp_sms_failed:ratio_rate10m{%s, app_id="a1", country="ID", mnc="1"}' % J, value: 0 },
            { labels: 'app_country_mnc:itniotech_otp_sms_failed:ratio_rate10m{%s, app_id="a1", country="ID", mnc="10"}' % J, value: 0.25 },
          ],
        },
        {
          expr: 'app_country:itniotech_otp_sms:rate10m{%s}' % J,
          eval_time: '30m',
          exp_samples: [{ labels: 'app_country:itniotech_otp_sms:rate10m{%s, app_id="a1", country="ID"}' % J, value: 2 }],
        },
        // Half the SMS within 10 s, the rest within 30 s: p95 = 10 + (19-10)/10 * 20 = 28.
        {
          expr: 'app_country:itniotech_otp_sms_delivery_seconds:p95_rate10m',
          eval_time: '30m',
          exp_samples: [{ labels: 'app_country:itniotech_otp_sms_delivery_seconds:p95_rate10m{%s, app_id="a1", country="ID"}' % J, value: 28 }],
        },
        // failed / (delivered + failed + unresolved) = 0.25 / 2; not_found is left out.
        {
          expr: 'app_flow:itniotech_otp_orders_failed:ratio_rate1h',
          eval_time: '60m',
          exp_samples: [{ labels: 'app_flow:itniotech_otp_orders_failed:ratio_rate1h{%s, app_id="a1", flow_id="2"}' % J, value: 0.125 }],
        },
        {
          expr: 'app_flow:itniotech_otp_orders_slo_events:rate1h',
          eval_time: '60m',
          exp_samples: [{ labels: 'app_flow:itniotech_otp_orders_slo_events:rate1h{%s, app_id="a1", flow_id="2"}' % J, value: 2 }],
        },
        {
          expr: 'app_flow:itniotech_otp_fallbacks_per_order:ratio_rate1h',
          eval_time: '60m',
          exp_samples: [{ labels: 'app_flow:itniotech_otp_fallbacks_per_order:ratio_rate1h{%s, app_id="a1", flow_id="2"}' % J, value: 0.25 }],
        },
        // not_found / all finalised orders = 1 / 3.
        {
          expr: 'app:itniotech_otp_orders_not_found:ratio_rate30m * 3',
          eval_time: '60m',
          exp_samples: [{ labels: '{%s, app_id="a1"}' % J, value: 1 }],
        },
        {
          expr: 'app_country:itniotech_otp_verifications_verified:ratio_rate1h',
          eval_time: '60m',
          exp_samples: [{ labels: 'app_country:itniotech_otp_verifications_verified:ratio_rate1h{%s, app_id="a1", country="UZ"}' % J, value: 0.625 }],
        },
        {
          expr: 'app_flow:itniotech_otp_verifications_verified:ratio_rate1h',
          eval_time: '60m',
          exp_samples: [
            { labels: 'app_flow:itniotech_otp_verifications_verified:ratio_rate1h{%s, app_id="a1", flow_id="2"}' % J, value: 0.25 },
            { labels: 'app_flow:itniotech_otp_verifications_verified:ratio_rate1h{%s, app_id="a1", flow_id="3"}' % J, value: 1 },
          ],
        },
      ],
    },
    {
      name: 'API errors are per exporter: a bad replica is not averaged away by a healthy one',
      interval: '1m',
      input_series: [
        s('itniotech_api_requests_total', t() { api_endpoint: 'record', status: '0' }, ctr([[90, 30]])),
        s('itniotech_api_requests_total', t() { api_endpoint: 'record', status: '-24' }, ctr([[15, 30]])),
        s('itniotech_api_requests_total', t() { api_endpoint: 'record', status: 'http_5xx' }, ctr([[15, 30]])),
        s('itniotech_api_requests_total', t(instance='exp-1:9867') { api_endpoint: 'record', status: '0' }, ctr([[120, 30]])),
      ],
      promql_expr_test: [{
        expr: 'instance_api_endpoint:itniotech_api_requests_errors:ratio_rate10m',
        eval_time: '30m',
        exp_samples: [
          // 1/8, not the 1/16 of both replicas together; exp-1 has no error series at all.
          { labels: 'instance_api_endpoint:itniotech_api_requests_errors:ratio_rate10m{%s, instance="exp-0:9867", api_endpoint="record"}' % J, value: 0.125 },
        ],
      }],
    },
    {
      name: 'money: averages are honest on a fresh series; the runway divides the balance by the account spend',
      interval: '1m',
      input_series: [
        s('itniotech_otp_cost_total', t() { app_id: 'a1', channel: 'sms', country: 'UZ', currency: 'USD' }, ctr([[15, 70]])),
        // Two replicas report the same 7 200 USD balance; a second app spends 0.25/s.
        s('itniotech_account_balance', t() { kind: 'balance', currency: 'USD' }, gauge([[7200, 71]])),
        s('itniotech_account_balance', t(instance='exp-1:9867') { kind: 'balance', currency: 'USD' }, gauge([[7200, 71]])),
        s('itniotech_otp_cost_total', t(instance='exp-1:9867') { app_id: 'a2', channel: 'call', country: 'UZ', currency: 'USD' }, ctr([[15, 70]])),
      ],
      promql_expr_test: [
        // 10 minutes old, true rate 0.25/s: rate(x[1h]) reads a sixth of it, the average of
        // rate5m 80 % (only its first minutes read low) and all of it once they leave the window.
        {
          expr: 'rate(itniotech_otp_cost_total{app_id="a1"}[1h])',
          eval_time: '10m',
          exp_samples: [{ labels: '{%s, instance="exp-0:9867", app_id="a1", channel="sms", country="UZ", currency="USD"}' % J, value: 4.1666666666666664E-02 }],
        },
        {
          expr: 'app:itniotech_otp_cost:rate5m_avg1h{app_id="a1"}',
          eval_time: '10m',
          exp_samples: [{ labels: 'app:itniotech_otp_cost:rate5m_avg1h{%s, app_id="a1", currency="USD"}' % J, value: 1.9999999999999998E-01 }],
        },
        {
          expr: 'app:itniotech_otp_cost:rate5m_avg1h{app_id="a1"}',
          eval_time: '70m',
          exp_samples: [{ labels: 'app:itniotech_otp_cost:rate5m_avg1h{%s, app_id="a1", currency="USD"}' % J, value: 0.25 }],
        },
        // 7 200 USD at 0.5/s (both apps, both replicas): 4 hours.
        {
          expr: 'currency:itniotech_account_balance:runway_hours',
          eval_time: '70m',
          exp_samples: [{ labels: 'currency:itniotech_account_balance:runway_hours{%s, currency="USD"}' % J, value: 4 }],
        },
      ],
    },
  ],

  // The configuration the override test renders its own rule files with.
  overrideConfig:: {
    groupLabels: ['cluster', 'job'],
    slo+: {
      overrides: [
        { selector: 'app_id="pay", flow_id="2"', objective: 0.995 },
        { selector: 'flow_id="2"', objective: 0.97 },
      ],
    },
    dailySpendCap+: { overrides: [{ selector: 'app_id="small"', cap: 100 }] },
  },

  // Against rule files rendered with overrideConfig.
  overrides: [
    {
      name: 'objective overrides: the first match wins over the plan default; group labels include cluster',
      interval: '1m',
      input_series: [
        s('itniotech_otp_flow_step_info', t() { cluster: c, flow_id: st[0], step: st[1], channel: st[2], trigger: 'send_failure', channel_switch: 'true' }, gauge([[1, 11]]))
        for c in ['eu', 'us']
        for st in [['2', '1', 'sms'], ['2', '2', 'call'], ['3', '1', 'sms'], ['3', '2', 'call']]
      ] + [
        s('itniotech_otp_orders_total', t() { cluster: o[0], app_id: o[1], flow_id: o[2], country: 'ID', outcome: 'delivered' }, ctr([[1, 10]]))
        for o in [['eu', 'pay', '2'], ['eu', 'login', '2'], ['eu', 'pay', '3'], ['us', 'pay', '2']]
      ],
      promql_expr_test: [{
        expr: 'app_flow:itniotech_otp_delivery_slo:objective',
        eval_time: '10m',
        exp_samples: [
          { labels: 'app_flow:itniotech_otp_delivery_slo:objective{cluster="%s", %s, app_id="%s", flow_id="%s"}' % [o[0], J, o[1], o[2]], value: o[3] }
          for o in [['eu', 'pay', '2', 0.995], ['eu', 'login', '2', 0.97], ['eu', 'pay', '3', 0.98], ['us', 'pay', '2', 0.995]]
        ],
      }],
    },
    {
      name: 'a per-app daily cap fires for its app only, with the cluster label',
      interval: '1m',
      input_series: [
        s('itniotech_otp_cost_total', t() { cluster: 'eu', app_id: 'small', channel: 'sms', country: 'DE', currency: 'USD' }, ctr([[0.125, 1500]])),
        s('itniotech_otp_cost_total', t() { cluster: 'eu', app_id: 'big', channel: 'sms', country: 'DE', currency: 'USD' }, ctr([[0.125, 1500]])),
      ],
      promql_expr_test: [{
        expr: 'app:itniotech_otp_cost:daily_cap',
        eval_time: '10m',
        exp_samples: [
          { labels: 'app:itniotech_otp_cost:daily_cap{cluster="eu", %s, app_id="big", currency="USD"}' % J, value: 20000 },
          { labels: 'app:itniotech_otp_cost:daily_cap{cluster="eu", %s, app_id="small", currency="USD"}' % J, value: 100 },
        ],
      }],
      alert_rule_test: [{
        eval_time: '1500m',
        alertname: 'OtpDailySpendCapExceeded',
        exp_alerts: [{
          exp_labels: { severity: 'critical', cluster: 'eu', job: 'itniotech-exporter', app_id: 'small', currency: 'USD' },
          exp_annotations: {
            summary: 'App small spent 180 USD in 24h, over its cap',
            description: 'App small spent 180 USD on OTPs over the last 24 hours, more than its daily cap of 100 USD. Find what drives the spend before it continues.',
            runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpdailyspendcapexceeded',
          },
        }],
      }],
    },
  ],
}
