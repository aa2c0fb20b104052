// The three dashboards: OTP delivery overview, OTP cost and fraud, exporter health.
local grafana = import '../lib/grafana.libsonnet';

{
  local c = $._config,
  local g = grafana(c),
  local m = g.m,
  local r = g.r,
  local t = g.target,
  local ts = g.timeseries,
  local gby(extra) = 'by (' + std.join(', ', c.groupLabels + extra) + ')',
  local gon(extra) = 'on (' + std.join(', ', c.groupLabels + extra) + ')',

  // Grafana's currency units; any other code shows as a prefix.
  local currencyUnit =
    local known = ['USD', 'GBP', 'EUR', 'JPY', 'RUB', 'UAH', 'BRL', 'DKK', 'ISK', 'NOK', 'SEK', 'CZK', 'CHF', 'PLN', 'ZAR', 'INR', 'KRW', 'IDR', 'PHP', 'VND', 'TRY', 'MYR', 'BGN', 'ILS'];
    if std.member(known, c.currency) then 'currency' + c.currency else 'currency:' + c.currency,

  local otp = 'app_id=~"$app_id", country=~"$country"',
  local otpFlow = 'app_id=~"$app_id", country=~"$country", flow_id=~"$flow_id"',
  local appFlow = 'app_id=~"$app_id", flow_id=~"$flow_id"',
  local sloOutcomes = 'outcome=~"delivered|failed|unresolved"',
  local money = 'app_id=~"$app_id", country=~"$country", currency=~"$currency"',

  // Flow names from the catalog, keeping the series of flows it does not list (flow_id="none"
  // above all): an inner join would drop them.
  local withFlowName(expr) = |||
    (
      %(e)s
      * %(on)s group_left (flow_name)
      max %(by)s (%(info)s)
    )
    or
    %(e)s
  ||| % { e: expr, on: gon(['flow_id']), by: gby(['flow_id', 'flow_name']), info: m('itniotech_otp_flow_info') },

  local otpVars = [
    ['app_id', 'App', 'label_values(itniotech_otp_orders_total{%s}, app_id)' % g.baseMatchers],
    ['country', 'Country', 'label_values(itniotech_otp_sms_total{%s, app_id=~"$app_id"}, country)' % g.baseMatchers],
    ['flow_id', 'Flow', 'label_values(itniotech_otp_orders_total{%s, app_id=~"$app_id"}, flow_id)' % g.baseMatchers],
  ],

  local recordingReason = {
    'target-instance-rule': 'SLO and budget series are recorded per deployment: the replicas of a job share one objective, so they carry no instance label.',
  },

  local failureRatioByWindow(w) = |||
    sum %(by)s (increase(%(failed)s[%(w)s]))
    /
    sum %(by)s (increase(%(all)s[%(w)s]))
  ||| % { by: gby(['app_id', 'flow_id']), failed: m('itniotech_otp_orders_total', appFlow + ', outcome="failed"'), all: m('itniotech_otp_orders_total', appFlow + ', ' + sloOutcomes), w: w },

  grafanaDashboards+:: {
    'otp-delivery-overview.json': g.dashboard(
      'itniotech-otp-delivery',
      'itniotech OTP delivery overview',
      'Are OTPs arriving? Volume, delivered share, failures by country, carrier and flow, latency, fallback and verification.',
      [
        g.row('Overview'),
        g.stat('Finalised orders', 'OTP orders finalised per second (all outcomes).', 'ops',
               [t('sum(rate(%s[$__rate_interval]))' % m('itniotech_otp_orders_total', otpFlow), 'orders/s')]),
        g.stat('Orders delivered', 'Delivered share of the finalised orders over the dashboard range: delivered / (delivered + failed + unresolved). An order counts as delivered when any attempt (SMS or voice fallback) was delivered or the code was verified.', 'percentunit',
               [t('sum(increase(%s[$__range])) / sum(increase(%s[$__range]))' % [m('itniotech_otp_orders_total', otpFlow + ', outcome="delivered"'), m('itniotech_otp_orders_total', otpFlow + ', ' + sloOutcomes)], 'delivered', instant=true)]),
        g.stat('SMS delivered', 'Delivered share of the terminal SMS attempts over the dashboard range.', 'percentunit',
               [t('sum(increase(%s[$__range])) / sum(increase(%s[$__range]))' % [m('itniotech_otp_sms_total', otp + ', status="delivered"'), m('itniotech_otp_sms_total', otp)], 'delivered', instant=true)]),
        g.stat('Orders pending', 'Orders the selected exporters still track.', 'short',
               [t('sum(%s)' % m('itniotech_exporter_orders_pending'), 'pending')]),

        g.row('Delivery SLO'),
        g.bargauge('Error budget remaining (30 days)', "Share of each flow's 30-day error budget still unspent: 1 - (failed ratio over 30 days) / (1 - objective). Below 0 the flow missed its objective. With less than 30 days of data, the ratio covers what exists.", 'percentunit',
                   [t('1 - (\n%s) / %s %s' % [failureRatioByWindow('30d'), gon(['app_id', 'flow_id']), r('app_flow:itniotech_otp_delivery_slo:error_budget', appFlow)], '{{app_id}} flow {{flow_id}}', instant=true)],
                   width=8, lint=recordingReason),
        g.table('Objective by flow', 'The delivery objective of each app and flow (mixin config: by channel plan, overridable per flow): two channels 98 %, one channel 92 %, no flow 85 % by default.', 'percentunit',
                [t(r('app_flow:itniotech_otp_delivery_slo:objective', appFlow), '{{app_id}} flow {{flow_id}}', instant=true, format='table')],
                width=6, height=8, lint=recordingReason),
        ts('Error budget burn rate by flow, all windows', 'Failed-order ratio divided by the error budget, over the four windows of OtpDeliveryErrorBudgetBurn (1h, 6h, 1d, 3d). 1 = the budget lasts exactly 30 days; the alerts fire at 14.4 (1h, with 5m), 6 (6h, with 30m), 3 (1d, with 2h) and 1 (3d, with 6h).', 'short',
           [
             t('(\n%s) / %s %s' % [failureRatioByWindow(w), gon(['app_id', 'flow_id']), r('app_flow:itniotech_otp_delivery_slo:error_budget', appFlow)], '%s {{app_id}} flow {{flow_id}}' % w)
             for w in ['1h', '6h', '1d', '3d']
           ],
           width=10, lint=recordingReason),
        ts('Order failure ratio by flow', 'failed / (delivered + failed + unresolved) orders by flow. Flows without a catalog entry (flow_id "none": orders sent without a task flow) are shown under their id.', 'percentunit',
           [t(withFlowName('sum %s (rate(%s[$__rate_interval])) / sum %s (rate(%s[$__rate_interval]))' % [gby(['app_id', 'flow_id']), m('itniotech_otp_orders_total', otpFlow + ', outcome="failed"'), gby(['app_id', 'flow_id']), m('itniotech_otp_orders_total', otpFlow + ', ' + sloOutcomes)]), '{{app_id}} {{flow_name}} ({{flow_id}})')]),
        ts('Orders by outcome', 'Finalised orders per second by outcome. not_found: the API never knew the order (intake problem).', 'ops',
           [t('sum by (outcome) (rate(%s[$__rate_interval]))' % m('itniotech_otp_orders_total', otpFlow), '{{outcome}}')], stack=true),

        g.row('Failures by country, carrier and flow'),
        ts('SMS failure ratio by country', 'Failed share of the terminal SMS attempts by country (OtpSmsDeliveryFailureRateHigh: 20 % over 10 minutes with 20 SMS, or 30 % over an hour for small countries).', 'percentunit',
           [t('sum by (app_id, country) (rate(%s[$__rate_interval])) / sum by (app_id, country) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_sms_total', otp + ', status="failed"'), m('itniotech_otp_sms_total', otp)], '{{country}} ({{app_id}})')]),
        ts('SMS failure ratio by carrier (country / mnc)', 'Failed share of the terminal SMS attempts by mobile network (OtpSmsCarrierFailureRateHigh: 50 % over 10 minutes with 20 SMS).', 'percentunit',
           [t('sum by (country, mnc) (rate(%s[$__rate_interval])) / sum by (country, mnc) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_sms_total', otp + ', status="failed"'), m('itniotech_otp_sms_total', otp)], '{{country}} mnc {{mnc}}')]),
        ts('Top SMS failure reasons', 'Failed SMS per second by country and normalised vendor reason (top 10).', 'ops',
           [t('topk(10, sum by (country, reason) (rate(%s[$__rate_interval])))' % m('itniotech_otp_sms_failures_total', otp), '{{country}} {{reason}}')]),
        ts('Voice call failure ratio by country', 'Share of voice OTP calls not answered (busy, no answer, rejected, unreachable) by country; 15-30 % is normal (OtpCallFailureRateHigh: 60 %).', 'percentunit',
           [t('sum by (country) (rate(%s[$__rate_interval])) / sum by (country) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_calls_total', otp + ', termination_code!="0"'), m('itniotech_otp_calls_total', otp)], '{{country}}')]),
        ts('Failed calls by termination reason', 'Failed voice OTP calls per second by normalised termination reason.', 'ops',
           [t('sum by (termination_reason) (rate(%s[$__rate_interval]))' % m('itniotech_otp_calls_total', otp + ', termination_code!="0"'), '{{termination_reason}}')], width=24),

        g.row('Latency'),
        g.heatmap('SMS delivery latency (delivered)', 'Submit-to-delivery-report time of delivered SMS.', 's',
                  'sum by (le) (rate(%s[$__rate_interval]))' % m('itniotech_otp_sms_delivery_seconds_bucket', otp + ', status="delivered"')),
        ts('SMS delivery p95 by country', '95th percentile of the submit-to-delivery time of delivered SMS by country (OtpSmsLatencyHigh: 60 s).', 's',
           [t('histogram_quantile(0.95, sum by (le, country) (rate(%s[$__rate_interval])))' % m('itniotech_otp_sms_delivery_seconds_bucket', otp + ', status="delivered"'), '{{country}}')]),
        g.heatmap('SMS queue time at the platform', 'Submit-to-send time (queued at itniotech). High queue time is the platform; low queue but slow delivery is the carrier.', 's',
                  'sum by (le) (rate(%s[$__rate_interval]))' % m('itniotech_otp_sms_queue_seconds_bucket', otp)),
        g.heatmap('Order time to first delivery', 'First attempt submit to the first delivered attempt of each order.', 's',
                  'sum by (le) (rate(%s[$__rate_interval]))' % m('itniotech_otp_order_delivery_seconds_bucket', appFlow)),
        g.heatmap('Call answer time', 'Voice OTP call submit to answer.', 's',
                  'sum by (le) (rate(%s[$__rate_interval]))' % m('itniotech_otp_call_answer_seconds_bucket', otp)),
        ts('Call duration p50 / p95', 'Duration of terminal voice OTP calls.', 's', [
          t('histogram_quantile(%s, sum by (le) (rate(%s[$__rate_interval])))' % [q[0], m('itniotech_otp_call_duration_seconds_bucket', otp)], q[1])
          for q in [['0.5', 'p50'], ['0.95', 'p95']]
        ]),

        g.row('Fallback and rescue'),
        ts('Channel switches per order by flow', 'Switches to a next attempt per finalised order (a flow with two fallback steps can exceed 1; OtpFallbackRateHigh: 0.5 over an hour).', 'short',
           [t(withFlowName('sum %s (rate(%s[$__rate_interval])) / sum %s (rate(%s[$__rate_interval]))' % [gby(['app_id', 'flow_id']), m('itniotech_otp_fallbacks_total', appFlow), gby(['app_id', 'flow_id']), m('itniotech_otp_orders_total', appFlow + ', ' + sloOutcomes)]), '{{app_id}} {{flow_name}} ({{flow_id}})')]),
        ts('Fallbacks by channel switch', 'Switches per second by from -> to channel.', 'ops',
           [t('sum by (from_channel, to_channel) (rate(%s[$__rate_interval]))' % m('itniotech_otp_fallbacks_total', appFlow), '{{from_channel}} -> {{to_channel}}')]),
        ts('Rescued orders by channel', 'Orders whose first attempt failed or went unverified and a later attempt delivered or was verified, per second.', 'ops',
           [t('sum by (to_channel) (rate(%s[$__rate_interval]))' % m('itniotech_otp_fallback_rescues_total', appFlow), '{{to_channel}}')]),
        ts('Rescue ratio by flow', 'Rescued orders per channel switch, by flow.', 'percentunit',
           [t(withFlowName('sum %s (rate(%s[$__rate_interval])) / sum %s (rate(%s[$__rate_interval]))' % [gby(['app_id', 'flow_id']), m('itniotech_otp_fallback_rescues_total', appFlow), gby(['app_id', 'flow_id']), m('itniotech_otp_fallbacks_total', appFlow)]), '{{app_id}} {{flow_name}} ({{flow_id}})')]),

        g.row('Verification'),
        ts('Verification conversion by country', 'Verified share of the finalised orders by country (OtpVerificationConversionLow: under 50 % over an hour).', 'percentunit',
           [t('sum by (app_id, country) (rate(%s[$__rate_interval])) / sum by (app_id, country) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_verifications_total', otpFlow + ', result="verified"'), m('itniotech_otp_verifications_total', otpFlow)], '{{country}} ({{app_id}})')]),
        ts('Verification results', 'Verification results per second by result and the channel of the attempt that delivered the code.', 'ops',
           [t('sum by (result, channel) (rate(%s[$__rate_interval]))' % m('itniotech_otp_verifications_total', otpFlow), '{{result}} via {{channel}}')]),
        g.heatmap('Time to verify', 'First attempt submit to the verified date.', 's',
                  'sum by (le) (rate(%s[$__rate_interval]))' % m('itniotech_otp_order_verification_seconds_bucket', appFlow)),
        ts('Time to verify p50 / p95 by channel', 'Submit to verification by the channel that delivered the code.', 's', [
          t('histogram_quantile(%s, sum by (le, channel) (rate(%s[$__rate_interval])))' % [q[0], m('itniotech_otp_order_verification_seconds_bucket', appFlow)], '%s {{channel}}' % q[1])
          for q in [['0.5', 'p50'], ['0.95', 'p95']]
        ]),
      ],
      g.variables(otpVars),
      ['Otp(SmsDelivery|SmsCarrier|CallFailure|DeliveryErrorBudget|Verification|Fallback|SmsLatency|OrdersNotFound).*'],
    ),

    'otp-cost-fraud.json': g.dashboard(
      'itniotech-otp-cost-fraud',
      'itniotech OTP cost and fraud',
      'Spend by channel and country, cost per verified OTP, balance and runway, SMS-pumping signals.',
      [
        g.row('Spend'),
        g.stat('Spend, last 24h', 'Money charged over the last 24 hours (SMS pay, call cost), in $currency.', currencyUnit,
               [t('sum(increase(%s[24h]))' % m('itniotech_otp_cost_total', money), 'spend', instant=true)]),
        g.stat('Spend per hour', 'Current spend rate.', currencyUnit,
               [t('sum(rate(%s[$__rate_interval])) * 3600' % m('itniotech_otp_cost_total', money), 'per hour')]),
        g.stat('Balance', 'The itniotech account balance (kind="balance"); every replica reports the same account.', currencyUnit,
               [t('max %s (%s)' % [gby(['currency']), m('itniotech_account_balance', 'kind="balance", currency=~"$currency"')], '{{job}}')]),
        g.stat('Runway at the last hour\'s spend', "Balance divided by the account's spend of the last hour (all apps of the deployment). ItniotechBalanceRunwayLow pages under 12 h at the higher of the last 15 minutes' and hour's spend.", 'h',
               [t('max %s (%s)\n/ %s\n(sum %s (increase(%s[1h])))' % [gby(['currency']), m('itniotech_account_balance', 'kind="balance", currency=~"$currency"'), gon(['currency']), gby(['currency']), m('itniotech_otp_cost_total', 'currency=~"$currency"')], '{{job}}')],
               thresholds=[{ color: 'red', value: null }, { color: 'orange', value: 12 }, { color: 'green', value: 72 }]),
        ts('Spend per hour by channel', 'Spend rate by channel (calls = voice fallback or voice OTP).', currencyUnit,
           [t('sum by (channel) (rate(%s[$__rate_interval])) * 3600' % m('itniotech_otp_cost_total', money), '{{channel}}')], stack=true),
        ts('Spend per hour by country', 'Spend rate of the 10 most expensive countries.', currencyUnit,
           [t('topk(10, sum by (country) (rate(%s[$__rate_interval]))) * 3600' % m('itniotech_otp_cost_total', money), '{{country}}')]),
        ts('Spend vs the same hour yesterday and last week', "The last hour's spend next to the same hour a day and a week earlier: OtpCostSpike's baseline is the largest of these and the last 24h average.", currencyUnit, [
          t('sum(increase(%s[1h]))' % m('itniotech_otp_cost_total', money), 'last hour'),
          // Without that much history, the hourly average so far stands in.
          t('sum(increase(%s[1h] offset 1d))\nor\nsum(increase(%s[1d])) / 24' % [m('itniotech_otp_cost_total', money), m('itniotech_otp_cost_total', money)], 'a day earlier (else the 24h average)'),
          t('sum(increase(%s[1h] offset 1w))\nor\nsum(increase(%s[1d])) / 24' % [m('itniotech_otp_cost_total', money), m('itniotech_otp_cost_total', money)], 'a week earlier (else the 24h average)'),
          t('sum(increase(%s[1d])) / 24' % m('itniotech_otp_cost_total', money), 'last 24h, per hour'),
        ]),
        ts('Cost per verified OTP by country', 'Spend divided by verified codes: pumped countries cost a lot per verified OTP.', currencyUnit,
           [t('sum by (country) (rate(%s[$__rate_interval])) / sum by (country) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_cost_total', money), m('itniotech_otp_verifications_total', otp + ', result="verified"')], '{{country}}')]),
        g.bargauge('Spend by country, last 24h', 'Money charged per country over the last 24 hours.', currencyUnit,
                   [t('sort_desc(sum by (country) (increase(%s[24h])))' % m('itniotech_otp_cost_total', money), '{{country}}', instant=true)]),
        g.bargauge('Spend of the last 24h against the daily cap', 'Rolling 24h spend per app as a share of its daily cap (OtpDailySpendCapExceeded at 100 %).', 'percentunit',
                   [t('sum %s (increase(%s[24h]))\n/ %s\n%s' % [gby(['app_id', 'currency']), m('itniotech_otp_cost_total', money), gon(['app_id', 'currency']), r('app:itniotech_otp_cost:daily_cap', 'app_id=~"$app_id", currency=~"$currency"')], '{{app_id}}', instant=true)],
                   lint={ 'target-instance-rule': 'The daily cap is recorded per deployment and app (mixin config): it has no instance label.' }),
        ts('Billed SMS segments and call seconds', 'What the vendor bills: SMS segments (chargeCnt) and call seconds.', 'short', [
          t('sum(rate(%s[$__rate_interval]))' % m('itniotech_otp_sms_segments_total', otp), 'SMS segments/s'),
          t('sum(rate(%s[$__rate_interval]))' % m('itniotech_otp_call_billed_seconds_total', otp), 'billed call s/s'),
        ], width=24),

        g.row('Balance'),
        ts('Balance and 3-day forecast', 'Account funds by kind, and the linear forecast 3 days ahead from the last 6 hours (ItniotechBalanceExhaustionForecast fires when it is under 0).', currencyUnit, [
          t('max by (kind) (%s)' % m('itniotech_account_balance', 'currency=~"$currency"'), '{{kind}}'),
          t('max(predict_linear(%s[6h], 3 * 86400))' % m('itniotech_account_balance', 'kind="balance", currency=~"$currency"'), 'forecast in 3 days'),
        ]),
        ts('Runway (hours of balance left)', "Balance over the spend of the last 15 minutes and of the last hour; the alert uses the shorter.", 'h', [
          t('max %s (%s)\n/ %s\n(sum %s (increase(%s[%s])) * %s)' % [gby(['currency']), m('itniotech_account_balance', 'kind="balance", currency=~"$currency"'), gon(['currency']), gby(['currency']), m('itniotech_otp_cost_total', 'currency=~"$currency"'), w[0], w[1]], 'at the last %s of spend' % w[0])
          for w in [['15m', '4'], ['1h', '1']]
        ]),

        g.row('SMS pumping signals'),
        ts('SMS volume by country', 'Terminal SMS per second by country.', 'ops',
           [t('sum by (app_id, country) (rate(%s[$__rate_interval]))' % m('itniotech_otp_sms_total', otp), '{{country}} ({{app_id}})')]),
        ts('SMS volume vs a day earlier', 'SMS of the last hour over the same hour a day earlier, by country (OtpSmsPumpingSuspected looks for 3x with low conversion). Without a day of history, over the average hour so far.', 'short',
           [t(|||
             sum by (app_id, country) (increase(%(s)s[1h]))
             / (
                 sum by (app_id, country) (increase(%(s)s[1h] offset 1d))
               or
                 sum by (app_id, country) (increase(%(s)s[1d])) / 24
             )
           ||| % { s: m('itniotech_otp_sms_total', otp) }, '{{country}} ({{app_id}})')]),
        ts("Share of the app's SMS by country", "Each country's share of its app's SMS (a country without history over 20 % with low conversion is a pumping signal).", 'percentunit',
           [t('sum by (app_id, country) (rate(%s[$__rate_interval]))\n/ on (app_id) group_left ()\nsum by (app_id) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_sms_total', otp), m('itniotech_otp_sms_total', 'app_id=~"$app_id"')], '{{country}} ({{app_id}})')]),
        ts('Conversion by country', 'Verified share of the finalised orders by country.', 'percentunit',
           [t('sum by (app_id, country) (rate(%s[$__rate_interval])) / sum by (app_id, country) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_verifications_total', otp + ', result="verified"'), m('itniotech_otp_verifications_total', otp)], '{{country}} ({{app_id}})')]),
        ts('Send requests by vendor status', "OTP sends seen by the capture proxy per second, by the vendor's answer: 0 = accepted, -28 = the same number too often, -27 = the app's quota for the period is used up (OtpSendLimitRejections). Empty when the apps do not send through the proxy.", 'ops',
           [t('sum by (app_id, status) (rate(%s[$__rate_interval]))' % m('itniotech_otp_send_requests_total', otp), '{{app_id}} {{status}}')]),
        ts('Sends refused by a send limit', "Share of each app's sends to a country refused with -28 (same number) or -27 (period quota); OtpSendLimitRejections warns over 5 % of -28 and pages on -27. 0 when nothing is refused.", 'percentunit',
           [t('sum by (app_id, country, status) (rate(%s[$__rate_interval]))\n/ on (app_id, country) group_left ()\nsum by (app_id, country) (rate(%s[$__rate_interval]))\nor\n0 * sum by (app_id, country) (rate(%s[$__rate_interval]))' % [m('itniotech_otp_send_requests_total', otp + ', status=~"-27|-28"'), m('itniotech_otp_send_requests_total', otp), m('itniotech_otp_send_requests_total', otp)], '{{country}} ({{app_id}}) {{status}}')]),
        ts('Unverified OTPs per hour against the budget', "Unverified codes of the last hour by country, and the country's budget: max(%s, %s x the most codes verified there in one hour of the last week). OtpUnverifiedBudgetExceeded pages above it." % [c.unverifiedBudget.floorPerHour, c.unverifiedBudget.ratio], 'short', [
          t('sum %s (increase(%s[1h]))' % [gby(['app_id', 'country']), m('itniotech_otp_verifications_total', otp + ', result!="verified"')], '{{country}} ({{app_id}}) unverified'),
          t(r('app_country:itniotech_otp_verifications_unverified:budget1h', otp), '{{country}} ({{app_id}}) budget'),
        ], width=24, lint={ 'target-instance-rule': 'The unverified budget is recorded per deployment (its history of verified codes spans the replicas): it has no instance label.' }),
      ],
      g.variables([
        otpVars[0],
        otpVars[1],
        // Money panels show the mixin's currency (Grafana units cannot follow a variable).
        { name: 'currency', label: 'Currency', type: 'constant', query: c.currency, hide: 2, current: { text: c.currency, value: c.currency }, options: [] },
      ]),
      ['OtpCostSpike', 'OtpDailySpendCapExceeded', 'OtpUnverifiedBudgetExceeded', 'OtpSmsPumpingSuspected', 'OtpSendLimitRejections', 'OtpSmsNewCountry', 'ItniotechBalance.*'],
    ),

    'exporter-health.json': g.dashboard(
      'itniotech-exporter-health',
      'itniotech exporter health',
      'Is the exporter itself healthy? Scrapes, vendor API status, latency, clock skew, backlog, freshness and intake, per replica.',
      [
        g.row('Status'),
        g.stat('Exporter scraped', 'Prometheus scrape status of each exporter (1 = up).', 'none',
               [t(m('up'), '{{instance}}')], thresholds=[{ color: 'red', value: null }, { color: 'green', value: 1 }]),
        g.stat('API reachable', 'itniotech_up: 1 when the last API call authenticated and answered.', 'none',
               [t(m('itniotech_up'), '{{instance}}')], thresholds=[{ color: 'red', value: null }, { color: 'green', value: 1 }]),
        g.stat('Orders pending', 'Orders tracked and not final, per exporter.', 'short',
               [t(m('itniotech_exporter_orders_pending'), '{{instance}}')]),
        g.table('Build', 'Version and revision of each exporter.', 'none',
                [t(m('itniotech_exporter_build_info'), '{{instance}} {{version}} {{revision}}', instant=true, format='table')], width=6, height=4),

        g.row('Vendor API'),
        ts('API requests by status', 'Vendor API requests per second by status: vendor code ("0" = ok, "-24" = not found yet) or transport class.', 'reqps',
           [t('sum by (status) (rate(%s[$__rate_interval]))' % m('itniotech_api_requests_total'), '{{status}}')], stack=true),
        ts('API error ratio by exporter and endpoint', 'Share of calls that returned an error status or a transport error ("-24" excluded), per exporter and endpoint (ItniotechApiErrorsHigh: 5 % over 10 minutes).', 'percentunit',
           // Endpoints without any error have no error series: 0, not a gap.
           [t('sum by (instance, api_endpoint) (rate(%s[$__rate_interval]))\n/\nsum by (instance, api_endpoint) (rate(%s[$__rate_interval]))\nor\n0 * sum by (instance, api_endpoint) (rate(%s[$__rate_interval]))' % [m('itniotech_api_requests_total', 'status!~"0|-24"'), m('itniotech_api_requests_total'), m('itniotech_api_requests_total')], '{{instance}} {{api_endpoint}}')]),
        g.heatmap('API latency', 'Vendor API request latency per attempt.', 's',
                  'sum by (le) (rate(%s[$__rate_interval]))' % m('itniotech_api_request_duration_seconds_bucket')),
        ts('API latency p50 / p99 by endpoint', 'Vendor API latency by endpoint.', 's', [
          t('histogram_quantile(%s, sum by (le, api_endpoint) (rate(%s[$__rate_interval])))' % [q[0], m('itniotech_api_request_duration_seconds_bucket')], '%s {{api_endpoint}}' % q[1])
          for q in [['0.5', 'p50'], ['0.99', 'p99']]
        ]),
        ts('Auth and permission failures', 'Calls rejected with -1 (bad key or signature), -2/-31 (IP not allowed), -30 (key disabled), -32 (no permission).', 'reqps',
           // A flat "none" line rather than an empty panel when nothing is rejected.
           [t('sum by (instance, status) (rate(%s[$__rate_interval]))\nor on ()\nlabel_replace(vector(0), "status", "none", "", "")' % m('itniotech_api_requests_total', 'status=~"-1|-2|-30|-31|-32"'), '{{instance}} {{status}}')]),
        ts('Clock skew', 'Local clock minus the API server clock (HTTP Date header), per exporter (ItniotechApiClockSkew: 30 s).', 's',
           [t(m('itniotech_exporter_clock_skew_seconds'), '{{instance}}')]),

        g.row('Tracking and freshness'),
        ts('Pending orders', 'Orders tracked and not final, per exporter. Replicas should carry similar loads (ItniotechExporterReplicaDivergence).', 'short',
           [t(m('itniotech_exporter_orders_pending'), '{{instance}}')]),
        ts('Oldest pending order age', 'Age of the oldest pending order, per exporter (ItniotechExporterBacklog: 3 h).', 's',
           [t(m('itniotech_exporter_oldest_pending_order_age_seconds'), '{{instance}}')]),
        ts('Poll lag', 'How late due record polls run, per exporter (ItniotechExporterBacklog: 2 minutes).', 's',
           [t(m('itniotech_exporter_poll_lag_seconds'), '{{instance}}')]),
        ts('Attempt freshness p90', 'Delay from an attempt\'s end to the poll that counted it, 90th percentile per exporter: how stale the delivery metrics are (ItniotechExporterMetricsStale: 5 minutes).', 's',
           [t('histogram_quantile(0.9, sum by (instance, le) (rate(%s[$__rate_interval])))' % m('itniotech_exporter_attempt_freshness_seconds_bucket'), '{{instance}}')]),
        ts('Record polls by result', 'Record polls per second by result.', 'ops',
           [t('sum by (result) (rate(%s[$__rate_interval]))' % m('itniotech_exporter_polls_total'), '{{result}}')]),
        ts('Intake', 'Orders received per second by source, and items rejected by reason (invalid = HTTP 400; ItniotechIntakeInvalidHigh at 5 %).', 'ops', [
          t('sum by (source) (rate(%s[$__rate_interval]))' % m('itniotech_exporter_orders_received_total'), 'received {{source}}'),
          t('sum by (reason) (rate(%s[$__rate_interval]))' % m('itniotech_exporter_orders_rejected_total'), 'rejected {{reason}}'),
        ]),
        ts('Capture failures by reason', 'Sends or verifies the capture proxy forwarded but could not record, per exporter: store = the store could not commit, unreadable = no order key could be read (ItniotechCaptureFailing: 3 in 30 minutes). The apps got their replies; these orders are missing from every metric.', 'ops',
           [t('sum by (instance, reason) (rate(%s[$__rate_interval]))' % m('itniotech_exporter_capture_failures_total'), '{{instance}} {{reason}}')]),
        ts('Intake vs the same time yesterday', 'Orders received per second, and a day earlier (ItniotechIntakeLow: under 25 % of yesterday; ItniotechIntakeStopped: nothing for 10 minutes).', 'ops', [
          t('sum(rate(%s[$__rate_interval]))' % m('itniotech_exporter_orders_received_total'), 'now'),
          t('sum(increase(%s[30m] offset 1d)) / 1800\nor\nsum(increase(%s[1d])) / 86400' % [m('itniotech_exporter_orders_received_total'), m('itniotech_exporter_orders_received_total')], 'a day earlier, 30m average (else the average so far)'),
        ]),
        g.stat('Task flows known', 'Flows and flow steps from the flow catalog (flow/list).', 'short', [
          t('count(count by (flow_id) (%s))' % m('itniotech_otp_flow_info'), 'flows'),
          t('count(count by (flow_id, step) (%s))' % m('itniotech_otp_flow_step_info'), 'steps'),
        ], width=12, height=8),
      ],
      g.variables(),
      ['Itniotech(Api|Exporter|Intake|Capture).*'],
    ),
  },
}
