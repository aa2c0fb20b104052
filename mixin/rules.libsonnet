// Recording rules shared by the alerts and the dashboards.
//
// Naming: level:metric:operations (https://prometheus.io/docs/practices/rules/). The level
// names the labels kept besides the group labels (job, and cluster/namespace when configured),
// which every rule keeps: app_country = app_id + country, app_flow = app_id + flow_id,
// app = app_id, instance = one exporter process, currency = one account currency, job = the
// deployment alone. Cost and balance series also keep `currency`.
//
// Why some rates are "rate5m_avg1h" and not "rate1h": rate(x[1h]) divides by the full hour even
// when the series (or Prometheus) is only minutes old, so it reads far too low at first and any
// "1h vs 24h" comparison fires on a fresh server. avg_over_time() of a short rate averages only
// the samples that exist. Ratios of two rates over the same window do not have this problem.
local promql = import 'lib/promql.libsonnet';

{
  local cn = $._config,
  local p = promql(cn),
  local c = p.text(cn),
  local rec(name, expr) = { record: name, expr: expr },
  local sum(extra, inner) = 'sum %s (%s)' % [p.by(extra), inner],
  local ratio(extra, num, den) = |||
    %s
    /
    %s
  ||| % [sum(extra, num), sum(extra, den)],

  local sloOutcomes = 'outcome=~"delivered|failed|unresolved"',
  local orders(m='') = p.m('itniotech_otp_orders_total', m),
  local appFlowKeys = p.by(['app_id', 'flow_id']),

  // First matching override wins, then the channel plan's default (see config.slo).
  local objectiveExpr =
    local base(m) = 'group %s (%s)' % [appFlowKeys, orders(m)];
    local overrides = [
      '%s * %s' % [base(o.selector), o.objective]
      for o in c.slo.overrides
    ];
    local planned = |||
      %(base)s
      * %(on)s group_left ()
      (
          0 * (flow:itniotech_otp_flow_channels:count >= 2) + %(multi)s
        or
          0 * flow:itniotech_otp_flow_channels:count + %(single)s
      )
    ||| % {
      base: base('flow_id!="none"'),
      on: p.on(['flow_id']),
      multi: c.slo.objectives.multi_channel,
      single: c.slo.objectives.single_channel,
    };
    std.join('\nor\n', overrides + [
      std.rstripChars(planned, '\n'),
      '%s * %s' % [base(''), c.slo.objectives.no_flow],
    ]) + '\n',

  local dailyCapExpr =
    local base(m) = 'group %s (%s)' % [p.by(['app_id', 'currency']), p.m('itniotech_otp_cost_total', m)];
    std.join('\nor\n', [
      '%s * %s' % [base(o.selector), o.cap]
      for o in c.dailySpendCap.overrides
    ] + ['%s * %s' % [base(''), c.dailySpendCap.default]]) + '\n',

  local orderWindows = ['5m', '30m', '1h', '2h', '6h', '1d', '3d'],
  local eventWindows = ['1h', '6h', '1d', '3d'],

  prometheusRules+:: {
    groups+: [
      {
        name: 'itniotech-slo.rules',
        rules: [
          // Channels a flow's steps use (1 = SMS only or SMS then SMS; 2 = SMS then voice).
          rec('flow:itniotech_otp_flow_channels:count', |||
            count %s (
              group %s (%s)
            )
          ||| % [p.by(['flow_id']), p.by(['flow_id', 'channel']), p.m('itniotech_otp_flow_step_info')]),
          // THE order-delivery objective of each app and flow. Change it in the mixin config
          // (slo.objectives, slo.overrides): burn-rate alerts and dashboards read it from here.
          rec('app_flow:itniotech_otp_delivery_slo:objective', objectiveExpr),
          rec('app_flow:itniotech_otp_delivery_slo:error_budget',
              '1 - app_flow:itniotech_otp_delivery_slo:objective'),
        ],
      },
      {
        name: 'itniotech-otp-sms.rules',
        rules: [
          rec('app_country:itniotech_otp_sms:rate10m',
              sum(['app_id', 'country'], 'rate(%s[10m])' % p.m('itniotech_otp_sms_total'))),
          rec('app_country:itniotech_otp_sms_failed:ratio_rate10m', ratio(
            ['app_id', 'country'],
            'rate(%s[10m])' % p.m('itniotech_otp_sms_total', 'status="failed"'),
            'rate(%s[10m])' % p.m('itniotech_otp_sms_total'),
          )),
          // The low-volume variant of the failure alert looks at a whole hour.
          rec('app_country:itniotech_otp_sms_failed:rate1h',
              sum(['app_id', 'country'], 'rate(%s[1h])' % p.m('itniotech_otp_sms_total', 'status="failed"'))),
          rec('app_country:itniotech_otp_sms_failed:ratio_rate1h', ratio(
            ['app_id', 'country'],
            'rate(%s[1h])' % p.m('itniotech_otp_sms_total', 'status="failed"'),
            'rate(%s[1h])' % p.m('itniotech_otp_sms_total'),
          )),
          rec('app_country_mnc:itniotech_otp_sms:rate10m',
              sum(['app_id', 'country', 'mnc'], 'rate(%s[10m])' % p.m('itniotech_otp_sms_total'))),
          rec('app_country_mnc:itniotech_otp_sms_failed:ratio_rate10m', ratio(
            ['app_id', 'country', 'mnc'],
            'rate(%s[10m])' % p.m('itniotech_otp_sms_total', 'status="failed"'),
            'rate(%s[10m])' % p.m('itniotech_otp_sms_total'),
          )),
          // Latency of delivered SMS only: failed ones (EXPIRED reports after up to 30 min)
          // would turn a delivery problem into a latency page.
          rec('app_country:itniotech_otp_sms_delivery_seconds:p95_rate10m', |||
            histogram_quantile(0.95,
              sum %s (rate(%s[10m]))
            )
          ||| % [p.by(['app_id', 'country', 'le']), p.m('itniotech_otp_sms_delivery_seconds_bucket', 'status="delivered"')]),
          // Delivered SMS slower than the latency threshold (a bucket bound; the exporter
          // writes it "60.0", promtool tests "60"): a p95 of a few dozen SMS moves with two
          // slow ones, so OtpSmsLatencyHigh also wants enough of them.
          rec('app_country:itniotech_otp_sms_delivered_slow:rate10m', |||
            sum %(by)s (rate(%(all)s[10m]))
            - %(on)s
            sum %(by)s (rate(%(fast)s[10m]))
          ||| % {
            by: p.by(['app_id', 'country']),
            on: p.on(['app_id', 'country']),
            all: p.m('itniotech_otp_sms_delivery_seconds_bucket', 'status="delivered", le="+Inf"'),
            fast: p.m('itniotech_otp_sms_delivery_seconds_bucket', 'status="delivered", le=~"%s(\\\\.0)?"' % c.latency.p95Seconds),
          }),
          rec('app_country:itniotech_otp_sms:rate5m',
              sum(['app_id', 'country'], 'rate(%s[5m])' % p.m('itniotech_otp_sms_total'))),
          rec('app_country:itniotech_otp_sms:rate5m_avg1h',
              'avg_over_time(app_country:itniotech_otp_sms:rate5m[1h])'),
        ],
      },
      {
        name: 'itniotech-otp-calls.rules',
        rules: [
          rec('app_country:itniotech_otp_calls:rate30m',
              sum(['app_id', 'country'], 'rate(%s[30m])' % p.m('itniotech_otp_calls_total'))),
          // Every termination code but 0 (answered): busy, no answer, rejected, unreachable.
          rec('app_country:itniotech_otp_calls_failed:ratio_rate30m', ratio(
            ['app_id', 'country'],
            'rate(%s[30m])' % p.m('itniotech_otp_calls_total', 'termination_code!="0"'),
            'rate(%s[30m])' % p.m('itniotech_otp_calls_total'),
          )),
        ],
      },
      {
        name: 'itniotech-otp-orders.rules',
        rules: [
          // Order failure ratio of the SLO: failed / (delivered + failed + unresolved).
          // not_found orders are an intake/tracking problem, not a delivery outcome.
          rec('app_flow:itniotech_otp_orders_failed:ratio_rate' + w, ratio(
            ['app_id', 'flow_id'],
            'rate(%s[%s])' % [orders('outcome="failed"'), w],
            'rate(%s[%s])' % [orders(sloOutcomes), w],
          ))
          for w in orderWindows
        ] + [
          // SLO events of the long windows: the minimum-volume guards of the burn-rate alerts.
          rec('app_flow:itniotech_otp_orders_slo_events:rate' + w,
              sum(['app_id', 'flow_id'], 'rate(%s[%s])' % [orders(sloOutcomes), w]))
          for w in eventWindows
        ] + [
          // Channel switches per finalised order (a flow with two fallback steps can exceed 1).
          rec('app_flow:itniotech_otp_fallbacks_per_order:ratio_rate1h', ratio(
            ['app_id', 'flow_id'],
            'rate(%s[1h])' % p.m('itniotech_otp_fallbacks_total'),
            'rate(%s[1h])' % orders(sloOutcomes),
          )),
          // Orders the API never knew (intake of wrong ids, or a vendor losing records).
          rec('app:itniotech_otp_orders_not_found:rate30m',
              sum(['app_id'], 'rate(%s[30m])' % orders('outcome="not_found"'))),
          rec('app:itniotech_otp_orders_not_found:ratio_rate30m', ratio(
            ['app_id'],
            'rate(%s[30m])' % orders('outcome="not_found"'),
            'rate(%s[30m])' % orders(),
          )),
        ],
      },
      {
        name: 'itniotech-otp-verification.rules',
        rules: [
          // Verification results are counted when the order is final, so numerator and
          // denominator move together: no bias from codes typed minutes after delivery.
          rec('app_country:itniotech_otp_verifications:rate1h',
              sum(['app_id', 'country'], 'rate(%s[1h])' % p.m('itniotech_otp_verifications_total'))),
          rec('app_country:itniotech_otp_verifications_verified:ratio_rate1h', ratio(
            ['app_id', 'country'],
            'rate(%s[1h])' % p.m('itniotech_otp_verifications_total', 'result="verified"'),
            'rate(%s[1h])' % p.m('itniotech_otp_verifications_total'),
          )),
          rec('app_flow:itniotech_otp_verifications_verified:ratio_rate1h', ratio(
            ['app_id', 'flow_id'],
            'rate(%s[1h])' % p.m('itniotech_otp_verifications_total', 'result="verified"'),
            'rate(%s[1h])' % p.m('itniotech_otp_verifications_total'),
          )),
          // The unverified-OTP budget (after authgear's fraud protection): unverified codes to
          // a country in an hour may not exceed max(floor, ratio x the most codes verified
          // there in any hour of the history window). Pumped numbers never verify, so an attack
          // cannot raise its own budget.
          rec('app_country:itniotech_otp_verifications_verified:increase1h',
              sum(['app_id', 'country'], 'increase(%s[1h])' % p.m('itniotech_otp_verifications_total', 'result="verified"'))),
          rec('app_country:itniotech_otp_verifications_unverified:increase1h',
              sum(['app_id', 'country'], 'increase(%s[1h])' % p.m('itniotech_otp_verifications_total', 'result!="verified"'))),
          rec('app_country:itniotech_otp_verifications_unverified:budget1h', |||
            clamp_min(
              %s * max_over_time(app_country:itniotech_otp_verifications_verified:increase1h[%s]),
              %s
            )
          ||| % [c.unverifiedBudget.ratio, c.unverifiedBudget.history, c.unverifiedBudget.floorPerHour]),
        ],
      },
      {
        name: 'itniotech-otp-cost.rules',
        rules: [
          rec('app_country_channel:itniotech_otp_cost:rate1h',
              sum(['app_id', 'country', 'channel', 'currency'], 'rate(%s[1h])' % p.m('itniotech_otp_cost_total'))),
          rec('app:itniotech_otp_cost:rate5m',
              sum(['app_id', 'currency'], 'rate(%s[5m])' % p.m('itniotech_otp_cost_total'))),
          rec('app:itniotech_otp_cost:rate5m_avg30m', 'avg_over_time(app:itniotech_otp_cost:rate5m[30m])'),
          rec('app:itniotech_otp_cost:rate5m_avg1h', 'avg_over_time(app:itniotech_otp_cost:rate5m[1h])'),
          rec('app:itniotech_otp_cost:rate5m_avg1d', 'avg_over_time(app:itniotech_otp_cost:rate5m[1d])'),
          // The spend an app is expected to have now: the largest of the same hour yesterday,
          // the same hour a week ago (both centred on now, so a daily ramp is in them) and the
          // average of the 24h before the last 30 minutes. The week term is skipped while
          // Prometheus has less than a week of history. Without yesterday there is no baseline
          // at all: on a first day the 24h average is mostly night, and the first morning would
          // look like a spike (OtpSmsPumpingSuspected and the daily cap still watch that day).
          rec('app:itniotech_otp_cost:rate_baseline', |||
            max %(by)s (
                label_replace(app:itniotech_otp_cost:rate5m_avg1h offset 23h30m, "baseline", "yesterday", "", "")
              or
                label_replace(app:itniotech_otp_cost:rate5m_avg1h offset 167h30m, "baseline", "last_week", "", "")
              or
                label_replace(app:itniotech_otp_cost:rate5m_avg1d offset 30m, "baseline", "last_24h", "", "")
            )
            and %(on)s
            app:itniotech_otp_cost:rate5m_avg1h offset 23h30m
          ||| % { by: p.by(['app_id', 'currency']), on: p.on(['app_id', 'currency']) }),
          // The baseline held while spend stays above factor x baseline: without it a lasting
          // spike becomes its own baseline (the 24h average within hours, yesterday's hour after
          // a day) and the alert resolves although nothing changed. The hold ends when spend
          // drops back, or after a week at the new level (the same hour last week then carries it).
          // It reads its own previous value, so it needs no state outside Prometheus.
          rec('app:itniotech_otp_cost:rate_baseline_held', |||
            (
                app:itniotech_otp_cost:rate_baseline_held
              and %(on)s
                app:itniotech_otp_cost:rate5m_avg30m > %(on)s %(f)s * app:itniotech_otp_cost:rate_baseline_held
              unless %(on)s
                (app:itniotech_otp_cost:rate5m_avg1h offset 167h30m) > %(on)s %(f)s * app:itniotech_otp_cost:rate_baseline_held
            )
            or
              app:itniotech_otp_cost:rate_baseline
          ||| % { on: p.on(['app_id', 'currency']), f: c.costSpike.factor }),
          rec('app:itniotech_otp_cost:increase1d',
              sum(['app_id', 'currency'], 'increase(%s[1d])' % p.m('itniotech_otp_cost_total'))),
          // The daily spend cap of each app (config dailySpendCap): first matching override wins.
          rec('app:itniotech_otp_cost:daily_cap', dailyCapExpr),
          // Account-wide spend (all apps) for the balance runway.
          rec('currency:itniotech_otp_cost:rate5m',
              sum(['currency'], 'rate(%s[5m])' % p.m('itniotech_otp_cost_total'))),
          rec('currency:itniotech_otp_cost:rate5m_avg15m', 'avg_over_time(currency:itniotech_otp_cost:rate5m[15m])'),
          rec('currency:itniotech_otp_cost:rate5m_avg1h', 'avg_over_time(currency:itniotech_otp_cost:rate5m[1h])'),
          // Every replica reports the same account balance.
          rec('currency:itniotech_account_balance:max',
              'max %s (%s)' % [p.by(['currency']), p.m('itniotech_account_balance', 'kind="balance"')]),
          // Hours of balance left at the higher of the last 15 minutes' and the last hour's
          // spend (the first reacts fast, the second keeps a short lull from hiding a drain).
          rec('currency:itniotech_account_balance:runway_hours', |||
            currency:itniotech_account_balance:max
            / %(on)s
            (
                currency:itniotech_otp_cost:rate5m_avg15m > %(on)s currency:itniotech_otp_cost:rate5m_avg1h
              or
                currency:itniotech_otp_cost:rate5m_avg1h
            )
            / 3600
          ||| % { on: p.on(['currency']) }),
        ],
      },
      {
        name: 'itniotech-otp-send.rules',
        rules: [
          // Send calls seen by the capture proxy, and those the vendor refused with a send
          // limit (-27 the app's period total, -28 the period limit for one number).
          rec('app_country:itniotech_otp_send_requests:rate15m',
              sum(['app_id', 'country'], 'rate(%s[15m])' % p.m('itniotech_otp_send_requests_total'))),
          rec('app_country_status:itniotech_otp_send_requests_limited:rate15m',
              sum(['app_id', 'country', 'status'], 'rate(%s[15m])' % p.m('itniotech_otp_send_requests_total', 'status=~"-27|-28"'))),
        ],
      },
      {
        name: 'itniotech-api.rules',
        rules: [
          rec('instance_api_endpoint:itniotech_api_requests:rate10m',
              'sum %s (rate(%s[10m]))' % [p.byInstance(['api_endpoint']), p.m('itniotech_api_requests_total')]),
          // Errors = every vendor code but "0", and every transport class (timeout, http_5xx,
          // ...). "-24" (record not found) is excluded: right after submit it is expected and
          // the tracker retries it; lasting not-found orders show as outcome="not_found".
          rec('instance_api_endpoint:itniotech_api_requests_errors:ratio_rate10m', |||
            sum %(by)s (rate(%(err)s[10m]))
            /
            sum %(by)s (rate(%(all)s[10m]))
          ||| % {
            by: p.byInstance(['api_endpoint']),
            err: p.m('itniotech_api_requests_total', 'status!~"0|-24"'),
            all: p.m('itniotech_api_requests_total'),
          }),
        ],
      },
      {
        name: 'itniotech-exporter.rules',
        rules: [
          // Intake of the whole deployment (an application may post to any replica).
          rec('job:itniotech_exporter_orders_received:rate10m',
              sum([], 'rate(%s[10m])' % p.m('itniotech_exporter_orders_received_total'))),
          rec('job:itniotech_exporter_orders_received:rate30m',
              sum([], 'rate(%s[30m])' % p.m('itniotech_exporter_orders_received_total'))),
          rec('job:itniotech_exporter_orders_received:rate1h',
              sum([], 'rate(%s[1h])' % p.m('itniotech_exporter_orders_received_total'))),
          rec('job:itniotech_exporter_orders_invalid:rate15m',
              sum([], 'rate(%s[15m])' % p.m('itniotech_exporter_orders_rejected_total', 'reason="invalid"'))),
          // Invalid items are not counted as received: invalid / (received + invalid).
          rec('job:itniotech_exporter_orders_invalid:ratio_rate15m', |||
            job:itniotech_exporter_orders_invalid:rate15m
            /
            (
                job:itniotech_exporter_orders_invalid:rate15m
              + %(on)s
                %(received)s
            )
          ||| % {
            on: p.on(),
            received: sum([], 'rate(%s[15m])' % p.m('itniotech_exporter_orders_received_total')),
          }),
          // How stale each exporter's delivery metrics are.
          rec('instance:itniotech_exporter_attempt_freshness_seconds:p90_rate10m', |||
            histogram_quantile(0.9,
              sum %s (rate(%s[10m]))
            )
          ||| % [p.byInstance(['le']), p.m('itniotech_exporter_attempt_freshness_seconds_bucket')]),
          rec('instance:itniotech_exporter_attempt_freshness:rate10m',
              'sum %s (rate(%s[10m]))' % [p.byInstance(), p.m('itniotech_exporter_attempt_freshness_seconds_count')]),
        ],
      },
    ],
  },
}
