// Alerting rules. Every alert: severity (critical = page, warning = ticket/chat, info = no
// notification, a dashboard annotation), summary, description and runbook_url (docs/runbook.md,
// one section per alert name). Rate-based alerts carry a minimum-volume guard so one failed OTP
// at night pages nobody. Thresholds come from config.libsonnet.
local promql = import 'lib/promql.libsonnet';

{
  local cn = $._config,
  local p = promql(cn),
  local c = p.text(cn),
  local pct(x) = '%g%%' % (x * 100),
  // 120 -> 2m, 10800 -> 3h, 90 -> 90s: thresholds the way Prometheus durations read.
  local dur(sec) =
    if sec % 3600 == 0 then '%dh' % (sec / 3600)
    else if sec % 60 == 0 then '%dm' % (sec / 60)
    else '%ds' % sec,
  local runbook(name) = c.runbookURLPattern % std.asciiLower(name),

  local alert(name, expr, severity, summary, description, forDuration='', labels={}, keepFiringFor='') =
    {
      alert: name,
      expr: expr,
      labels: { severity: severity } + labels,
      annotations: {
        summary: summary,
        description: description,
        runbook_url: runbook(name),
      },
    }
    + (if forDuration != '' then { 'for': forDuration } else {})
    + (if keepFiringFor != '' then { keep_firing_for: keepFiringFor } else {}),

  local appCountry = p.on(['app_id', 'country']),
  local appFlow = p.on(['app_id', 'flow_id']),

  // Multi-window, multi-burn-rate (SRE workbook ch. 5), thresholds capped at maxErrorRatio.
  local burn(long, short, factor, forDuration, severity, consumed) =
    local threshold = 'clamp_max(%s * app_flow:itniotech_otp_delivery_slo:error_budget, %s)' % [factor, c.slo.maxErrorRatio];
    local seconds = { '1h': 3600, '6h': 21600, '1d': 86400, '3d': 259200 }[long];
    alert(
      'OtpDeliveryErrorBudgetBurn',
      |||
        app_flow:itniotech_otp_orders_failed:ratio_rate%(long)s > %(on)s %(t)s
        and %(on)s
        app_flow:itniotech_otp_orders_failed:ratio_rate%(short)s > %(on)s %(t)s
        and %(on)s
        app_flow:itniotech_otp_orders_slo_events:rate%(long)s * %(s)d >= %(min)d
      ||| % { long: long, short: short, on: appFlow, t: threshold, s: seconds, min: cn.slo.minEvents },
      severity,
      if factor == 1
      then 'Flow {{ $labels.flow_id }} of app {{ $labels.app_id }} is spending its whole OTP delivery error budget'
      else 'Flow {{ $labels.flow_id }} of app {{ $labels.app_id }} burns its OTP delivery error budget %sx too fast' % factor,
      '{{ $value | humanizePercentage }} of the orders of app {{ $labels.app_id }}, flow {{ $labels.flow_id }} failed over the last %(long)s (and the last %(short)s); its objective is %(obj)s delivered. %(consumed)s' % {
        long: long,
        short: short,
        obj: p.queryValue('app_flow:itniotech_otp_delivery_slo:objective', ['app_id', 'flow_id']),
        consumed: consumed,
      },
      forDuration,
      { long_window: long, burn_rate: std.toString(factor) },
    ),

  local divergence(signal, value, what, unit) =
    local s = c.replicaDivergence.signals[signal];
    // Mean of the other replicas of the same deployment, for each replica.
    local peers = |||
      (
        (sum %(by)s (%(v)s) - %(on)s group_right () %(v)s)
        / %(on)s group_left ()
        (count %(by)s (%(v)s) - 1)
      )
    ||| % { by: p.by(), on: p.on(), v: value };
    alert(
      'ItniotechExporterReplicaDivergence',
      |||
        %(v)s
        > %(f)s * %(peers)s
        and
        %(v)s
        - %(peers)s
        > %(d)s
      ||| % { v: value, f: s.factor, d: s.minDiff, peers: p.indent(peers, 0) },
      'warning',
      'Replica {{ $labels.instance }} of {{ $labels.job }} falls behind its peers (%s)' % what,
      'The %s of exporter replica {{ $labels.instance }} is {{ $value | %s }}, more than %sx the average of the other replicas of {{ $labels.job }} and at least %s above it. That replica (its store, its API quota, its node) is in trouble while the others are fine; the OTP metrics of the orders it owns are late.' % [what, unit, s.factor, s.minDiff],
      '15m',
      { signal: signal },
    ),

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'itniotech-otp-delivery.alerts',
        rules: [
          alert(
            'OtpSmsDeliveryFailureRateHigh',
            |||
              app_country:itniotech_otp_sms_failed:ratio_rate10m > %(r)s
              and %(on)s
              app_country:itniotech_otp_sms:rate10m * 600 >= %(min)s
            ||| % { r: c.smsFailure.ratio, on: appCountry, min: c.smsFailure.minSms10m },
            'critical',
            'OTP SMS to {{ $labels.country }} are failing ({{ $value | humanizePercentage }})',
            '{{ $value | humanizePercentage }} of the terminal SMS attempts of app {{ $labels.app_id }} to {{ $labels.country }} failed over the last 10 minutes (threshold %s). Users there are not getting their codes by SMS; check the failure reasons and carriers (mnc).' % pct(cn.smsFailure.ratio),
            '5m',
            { window: '10m' },
          ),
          // Countries under the 10m volume guard: one hour of traffic, a higher ratio and an
          // absolute number of failures, so a small country failing completely pages too.
          alert(
            'OtpSmsDeliveryFailureRateHigh',
            |||
              app_country:itniotech_otp_sms_failed:ratio_rate1h > %(r)s
              and %(on)s
              app_country:itniotech_otp_sms_failed:rate1h * 3600 >= %(min)s
              unless %(on)s
              app_country:itniotech_otp_sms:rate10m * 600 >= %(big)s
            ||| % { r: c.smsFailure.lowVolumeRatio, on: appCountry, min: c.smsFailure.lowVolumeMinFailed1h, big: c.smsFailure.minSms10m },
            'critical',
            'OTP SMS to {{ $labels.country }} are failing ({{ $value | humanizePercentage }}, low volume)',
            '{{ $value | humanizePercentage }} of the terminal SMS attempts of app {{ $labels.app_id }} to {{ $labels.country }} failed over the last hour (threshold %s, at least %s failed SMS; a country with fewer than %s SMS in 10 minutes). Users there are not getting their codes by SMS.' % [pct(cn.smsFailure.lowVolumeRatio), c.smsFailure.lowVolumeMinFailed1h, c.smsFailure.minSms10m],
            '5m',
            { window: '1h' },
          ),
          alert(
            'OtpSmsCarrierFailureRateHigh',
            |||
              app_country_mnc:itniotech_otp_sms_failed:ratio_rate10m > %(r)s
              and %(on)s
              app_country_mnc:itniotech_otp_sms:rate10m * 600 >= %(min)s
            ||| % { r: c.carrierFailure.ratio, on: p.on(['app_id', 'country', 'mnc']), min: c.carrierFailure.minSms10m },
            'critical',
            'OTP SMS to carrier {{ $labels.mnc }} in {{ $labels.country }} are failing ({{ $value | humanizePercentage }})',
            '{{ $value | humanizePercentage }} of the terminal SMS attempts of app {{ $labels.app_id }} to mobile network {{ $labels.mnc }} in {{ $labels.country }} failed over the last 10 minutes (threshold %s). The users of that carrier get no codes by SMS even when the country as a whole looks healthy.' % pct(cn.carrierFailure.ratio),
            '10m',
          ),
          alert(
            'OtpCallFailureRateHigh',
            |||
              app_country:itniotech_otp_calls_failed:ratio_rate30m > %(r)s
              and %(on)s
              app_country:itniotech_otp_calls:rate30m * 1800 >= %(min)s
            ||| % { r: c.callFailure.ratio, on: appCountry, min: c.callFailure.minCalls30m },
            'warning',
            'Voice OTP calls to {{ $labels.country }} fail ({{ $value | humanizePercentage }})',
            '{{ $value | humanizePercentage }} of the voice OTP calls of app {{ $labels.app_id }} to {{ $labels.country }} ended unanswered or failed over the last 30 minutes (threshold %s; 15-30 %% is normal). Voice fallback is not rescuing the users whose SMS failed.' % pct(cn.callFailure.ratio),
            '10m',
          ),
          burn('1h', '5m', 14.4, '2m', 'critical', 'At this rate 2% of the 30-day error budget is gone in an hour.'),
          burn('6h', '30m', 6, '15m', 'critical', 'At this rate 5% of the 30-day error budget is gone in 6 hours.'),
          burn('1d', '2h', 3, '1h', 'warning', 'At this rate the 30-day error budget is gone in 10 days.'),
          burn('3d', '6h', 1, '3h', 'warning', 'The flow misses its delivery objective if this continues.'),
          alert(
            'OtpVerificationConversionLow',
            |||
              app_country:itniotech_otp_verifications_verified:ratio_rate1h < %(r)s
              and %(on)s
              app_country:itniotech_otp_verifications:rate1h * 3600 >= %(min)s
            ||| % { r: c.conversion.ratio, on: appCountry, min: c.conversion.minResults1h },
            'warning',
            'Only {{ $value | humanizePercentage }} of OTPs to {{ $labels.country }} are verified',
            'Over the last hour only {{ $value | humanizePercentage }} of the finalised OTP orders of app {{ $labels.app_id }} to {{ $labels.country }} were verified (threshold %s). Codes are not arriving, arriving late, or going to numbers nobody reads (SMS pumping).' % pct(cn.conversion.ratio),
            '30m',
          ),
          alert(
            'OtpFallbackRateHigh',
            |||
              app_flow:itniotech_otp_fallbacks_per_order:ratio_rate1h > %(r)s
              and %(on)s
              app_flow:itniotech_otp_orders_slo_events:rate1h * 3600 >= %(min)s
            ||| % { r: c.fallback.perOrder, on: appFlow, min: c.fallback.minOrders1h },
            'warning',
            'Flow {{ $labels.flow_id }} of app {{ $labels.app_id }} switches channel {{ printf "%.2f" $value }} times per order',
            'Orders of app {{ $labels.app_id }}, flow {{ $labels.flow_id }} switched to a next attempt {{ printf "%%.2f" $value }} times per finalised order over the last hour (threshold %s). First attempts are failing or going unverified; fallback calls cost more and reach users late.' % c.fallback.perOrder,
            '30m',
          ),
          alert(
            'OtpSmsLatencyHigh',
            |||
              app_country:itniotech_otp_sms_delivery_seconds:p95_rate10m > %(s)s
              and %(on)s
              app_country:itniotech_otp_sms:rate10m * 600 >= %(min)s
              and %(on)s
              app_country:itniotech_otp_sms_delivered_slow:rate10m * 600 >= %(slow)s
            ||| % { s: c.latency.p95Seconds, on: appCountry, min: c.latency.minSms10m, slow: c.latency.minSlow10m },
            'warning',
            'OTP SMS to {{ $labels.country }} take {{ $value | humanizeDuration }} (p95)',
            "The 95th percentile of submit-to-delivery time of app {{ $labels.app_id }}'s delivered SMS to {{ $labels.country }} is {{ $value | humanizeDuration }} over the last 10 minutes (threshold %s). Codes arrive after users gave up or after the flow already fell back." % dur(cn.latency.p95Seconds),
            '15m',
          ),
          alert(
            'OtpOrdersNotFoundHigh',
            |||
              app:itniotech_otp_orders_not_found:ratio_rate30m > %(r)s
              and %(on)s
              app:itniotech_otp_orders_not_found:rate30m * 1800 >= %(min)s
            ||| % { r: c.notFound.ratio, on: p.on(['app_id']), min: c.notFound.min30m },
            'warning',
            'The itniotech API does not know {{ $value | humanizePercentage }} of the orders of app {{ $labels.app_id }}',
            '{{ $value | humanizePercentage }} of the orders of app {{ $labels.app_id }} finalised over the last 30 minutes were never found by the API (threshold %s). The application posts wrong order ids or app ids to the intake, or the vendor loses records; their delivery is not observed.' % pct(cn.notFound.ratio),
            '15m',
          ),
        ],
      },
      {
        name: 'itniotech-otp-cost-fraud.alerts',
        rules: [
          alert(
            'OtpCostSpike',
            |||
              app:itniotech_otp_cost:rate5m_avg30m / %(on)s app:itniotech_otp_cost:rate_baseline_held > %(f)s
              and %(on)s
              app:itniotech_otp_cost:rate5m > %(on)s %(f)s * app:itniotech_otp_cost:rate_baseline_held
              and %(on)s
              app:itniotech_otp_cost:rate5m_avg30m * 3600 >= %(min)s
            ||| % { on: p.on(['app_id', 'currency']), f: c.costSpike.factor, min: c.costSpike.minPerHour },
            'warning',
            'OTP spend of app {{ $labels.app_id }} is {{ printf "%.1f" $value }}x its baseline',
            'App {{ $labels.app_id }} spends {{ printf "%%.1f" $value }}x its baseline over the last 30 minutes (and the last 5), now %(spend)s {{ $labels.currency }}/h. The baseline is the largest of the same hour yesterday, the same hour last week and the last 24h average, held from the start of the spike. Check the spend by country and channel for SMS pumping or a fallback storm.' % {
              spend: p.queryValue('3600 * app:itniotech_otp_cost:rate5m_avg30m', ['app_id', 'currency'], 'humanize'),
            },
            // The two windows make it steady at the start; the held baseline keeps it firing
            // while the spike lasts; keep_firing_for rides out a dip under the threshold.
            '1m',
            keepFiringFor='15m',
          ),
          alert(
            'OtpDailySpendCapExceeded',
            |||
              app:itniotech_otp_cost:increase1d > %(on)s app:itniotech_otp_cost:daily_cap
            ||| % { on: p.on(['app_id', 'currency']) },
            'critical',
            'App {{ $labels.app_id }} spent {{ $value | humanize }} {{ $labels.currency }} in 24h, over its cap',
            'App {{ $labels.app_id }} spent {{ $value | humanize }} {{ $labels.currency }} on OTPs over the last 24 hours, more than its daily cap of %s {{ $labels.currency }}. Find what drives the spend before it continues.' % p.queryValue('app:itniotech_otp_cost:daily_cap', ['app_id', 'currency'], 'humanize'),
            '5m',
          ),
          alert(
            'OtpUnverifiedBudgetExceeded',
            |||
              app_country:itniotech_otp_verifications_unverified:increase1h
              > %(on)s
              app_country:itniotech_otp_verifications_unverified:budget1h
            ||| % { on: appCountry },
            'critical',
            '{{ printf "%.0f" $value }} unverified OTPs to {{ $labels.country }} in an hour, over budget',
            '{{ printf "%%.0f" $value }} OTPs of app {{ $labels.app_id }} to {{ $labels.country }} went unverified over the last hour, more than the country\'s budget of %s (max(%s, %s x the most codes verified there in one hour of the last %s)). Pumped numbers never verify: this is the low-volume SMS-pumping signal.' % [
              p.queryValue('app_country:itniotech_otp_verifications_unverified:budget1h', ['app_id', 'country'], 'printf "%.0f"'),
              c.unverifiedBudget.floorPerHour,
              c.unverifiedBudget.ratio,
              c.unverifiedBudget.history,
            ],
            '5m',
          ),
          alert(
            'OtpSmsPumpingSuspected',
            |||
              (
                  app_country:itniotech_otp_verifications_verified:ratio_rate1h < %(conv)s
                and %(on)s
                  app_country:itniotech_otp_sms:rate5m_avg1h * 3600 >= %(min)s
              )
              and %(on)s
              (
                  app_country:itniotech_otp_sms:rate5m_avg1h > %(f)s * (app_country:itniotech_otp_sms:rate5m_avg1h offset 1d)
                or
                  app_country:itniotech_otp_sms:rate5m_avg1h > %(f)s * (app_country:itniotech_otp_sms:rate5m_avg1h offset 1w)
                or
                  (
                      (
                          app_country:itniotech_otp_sms:rate5m_avg1h
                        / %(onApp)s group_left ()
                          sum %(byApp)s (app_country:itniotech_otp_sms:rate5m_avg1h)
                      ) > %(share)s
                    unless %(on)s
                      (app_country:itniotech_otp_sms:rate5m_avg1h offset 1d)
                  )
              )
            ||| % {
              conv: c.pumping.conversion,
              on: appCountry,
              onApp: p.on(['app_id']),
              byApp: p.by(['app_id']),
              min: c.pumping.minSmsPerHour,
              f: c.pumping.volumeFactor,
              share: c.pumping.newCountryShare,
            },
            'critical',
            'SMS pumping suspected: traffic to {{ $labels.country }} spiked, only {{ $value | humanizePercentage }} verified',
            "App {{ $labels.app_id }} sends unusually many OTP SMS to {{ $labels.country }} (%sx its usual volume, or over %s of the app's SMS) and only {{ $value | humanizePercentage }} of them are verified over the last hour. This is the SMS-pumping (artificially inflated traffic) pattern: every SMS is billed." % [c.pumping.volumeFactor, pct(cn.pumping.newCountryShare)],
            '15m',
          ),
          // The vendor's send limits as a fraud signal (sends seen by the capture proxy): -28
          // means the same numbers are requested again and again, an early pumping or bombing
          // sign before volume or cost moves; -27 means the app's quota is gone and every
          // further OTP is refused.
          alert(
            'OtpSendLimitRejections',
            |||
              app_country_status:itniotech_otp_send_requests_limited:rate15m{status="-28"}
              / %(on)s group_left ()
              app_country:itniotech_otp_send_requests:rate15m
              > %(r)s
              and %(onStatus)s
              app_country_status:itniotech_otp_send_requests_limited:rate15m * 900 >= %(min)s
            ||| % { on: appCountry, onStatus: p.on(['app_id', 'country', 'status']), r: c.sendLimits.sameNumberRatio, min: c.sendLimits.minRejected15m },
            'warning',
            'itniotech refuses {{ $value | humanizePercentage }} of the OTPs of app {{ $labels.app_id }} to {{ $labels.country }}: same number too often (-28)',
            "{{ $value | humanizePercentage }} of the OTP sends of app {{ $labels.app_id }} to {{ $labels.country }} over the last 15 minutes were refused with -28, the vendor's per-number send limit (threshold %s). Someone requests codes for the same numbers over and over: SMS pumping or OTP bombing, usually before volume or cost moves. The limit absorbs it for now; find the source before it moves to new numbers." % pct(cn.sendLimits.sameNumberRatio),
            '5m',
            { limit: 'same_number' },
          ),
          alert(
            'OtpSendLimitRejections',
            |||
              sum %(by)s (app_country_status:itniotech_otp_send_requests_limited:rate15m{status="-27"}) * 900
              >= %(min)s
            ||| % { by: p.by(['app_id']), min: c.sendLimits.appTotalMin15m },
            'critical',
            'App {{ $labels.app_id }} hit its itniotech send limit (-27): OTPs are refused',
            "{{ printf \"%.0f\" $value }} OTP sends of app {{ $labels.app_id }} were refused with -27 over the last 15 minutes: the app's total send limit for the period is used up, and every further OTP (logins, payments) fails until the period ends. Either a surge nobody planned (SMS pumping, OTP bombing, a retry loop) or a limit set too low for real traffic.",
            '5m',
            { limit: 'app_total' },
          ),
          // Info: no notification, an annotation on the dashboards and an entry in the
          // Alertmanager UI. SMS to a country the app has not sent to for a week (and the app
          // has at least a day of history, so a fresh Prometheus does not flag every country).
          alert(
            'OtpSmsNewCountry',
            |||
              app_country:itniotech_otp_sms:rate5m > 0
              unless %(on)s
              max_over_time(app_country:itniotech_otp_sms:rate5m[1w] offset 1h) > 0
              and %(onApp)s
              group %(byApp)s (app_country:itniotech_otp_sms:rate5m offset 1d)
            ||| % { on: appCountry, onApp: p.on(['app_id']), byApp: p.by(['app_id']) },
            'info',
            'App {{ $labels.app_id }} sends OTP SMS to {{ $labels.country }}, a country without SMS in the last week',
            'App {{ $labels.app_id }} started sending OTP SMS to {{ $labels.country }} ({{ $value | humanize }}/s) after at least a week without any. A new market is fine; an unexpected one is how SMS pumping starts: check its conversion.',
          ),
          alert(
            'ItniotechBalanceRunwayLow',
            |||
              currency:itniotech_account_balance:runway_hours < %(h)s
            ||| % { h: c.balance.runwayCriticalHours },
            'critical',
            'The itniotech balance lasts {{ $value | humanize }} more hours at the current spend',
            'At the spend of the last 15 minutes to 1 hour, the {{ $labels.currency }} balance of the itniotech account ({{ $labels.job }}) runs out in {{ $value | humanize }} hours (threshold %s h). At 0 every OTP send fails with status -10: top up now, or stop what drives the spend.' % c.balance.runwayCriticalHours,
            '10m',
          ),
          alert(
            'ItniotechBalanceLow',
            |||
              currency:itniotech_account_balance:max < %(low)s
            ||| % { low: c.balance.low },
            'warning',
            'itniotech account balance is {{ $value | humanize }} {{ $labels.currency }}',
            'The itniotech account balance is {{ $value | humanize }} {{ $labels.currency }}, below the %s {{ $labels.currency }} threshold. At 0 every OTP send fails with status -10. Top up the account.' % c.balance.low,
            '10m',
          ),
          // Linear fit over 6h projected ahead. Guards: the series existed 6h ago (no forecast
          // from minutes of data) and the balance really fell over those 6h (a top-up or noise
          // cannot make a rising account look like it is running out).
          alert(
            'ItniotechBalanceExhaustionForecast',
            |||
              max %(by)s (predict_linear(%(b)s[6h], %(s)d)) < 0
              and %(on)s
              currency:itniotech_account_balance:max < %(on)s (currency:itniotech_account_balance:max offset 6h)
            ||| % { by: p.by(['currency']), on: p.on(['currency']), b: p.m('itniotech_account_balance', 'kind="balance"'), s: cn.balance.forecastDays * 86400 },
            'warning',
            'itniotech balance runs out within %s days at the current spend' % c.balance.forecastDays,
            'At the spend rate of the last 6 hours the {{ $labels.currency }} balance of the itniotech account ({{ $labels.job }}) reaches 0 within %s days (linear forecast: {{ $value | humanize }} {{ $labels.currency }}). Top up or find what drives the spend.' % c.balance.forecastDays,
            '30m',
          ),
        ],
      },
      {
        name: 'itniotech-api.alerts',
        rules: [
          alert(
            'ItniotechApiDown',
            'max %s (%s) == 0\n' % [p.byInstance(), p.m('itniotech_up')],
            'critical',
            'The itniotech API does not answer the exporter {{ $labels.instance }}',
            'The last itniotech API calls of exporter {{ $labels.instance }} ({{ $labels.job }}) did not authenticate or answer for 5 minutes. OTP delivery is not being observed (and sending may be failing too).',
            '5m',
          ),
          alert(
            'ItniotechApiAuthFailing',
            // -1 bad key/sign, -2 and -31 IP not allowed, -30 key disabled, -32 no permission.
            'sum %s (increase(%s[10m])) >= %s\n' % [
              p.byInstance(['status']),
              p.m('itniotech_api_requests_total', 'status=~"-1|-2|-30|-31|-32"'),
              c.api.authFailures10m,
            ],
            'critical',
            "itniotech API rejects the exporter's credentials (status {{ $labels.status }})",
            '{{ $value | humanize }} itniotech API calls of exporter {{ $labels.instance }} in the last 10 minutes were rejected with status {{ $labels.status }} (-1 bad key or signature, -2/-31 IP not allowed, -30 key disabled, -32 no permission for the app).',
            '5m',
          ),
          alert(
            'ItniotechApiClockSkew',
            'max %s (abs(%s)) > %s\n' % [p.byInstance(), p.m('itniotech_exporter_clock_skew_seconds'), c.api.clockSkewSeconds],
            'warning',
            'Exporter clock is {{ $value | humanizeDuration }} off the itniotech API clock',
            "The clock of exporter {{ $labels.instance }} differs from the itniotech API server's by {{ $value | humanizeDuration }} (threshold %s). Signed requests carry a timestamp; a large skew gets them rejected with status -16." % dur(cn.api.clockSkewSeconds),
            '10m',
          ),
          alert(
            'ItniotechApiErrorsHigh',
            |||
              instance_api_endpoint:itniotech_api_requests_errors:ratio_rate10m > %(r)s
              and %(on)s
              instance_api_endpoint:itniotech_api_requests:rate10m * 600 >= %(min)s
            ||| % { r: c.api.errorRatio, on: p.onInstance(['api_endpoint']), min: c.api.minCalls10m },
            'warning',
            '{{ $value | humanizePercentage }} of itniotech API calls to {{ $labels.api_endpoint }} fail',
            "{{ $value | humanizePercentage }} of exporter {{ $labels.instance }}'s calls to the itniotech endpoint {{ $labels.api_endpoint }} returned an error status or a transport error over the last 10 minutes (threshold %s). Metrics get late; see the status breakdown." % pct(cn.api.errorRatio),
            '10m',
          ),
        ],
      },
      {
        name: 'itniotech-exporter.alerts',
        rules: [
          alert(
            'ItniotechIntakeStopped',
            |||
              job:itniotech_exporter_orders_received:rate10m == 0
              and %(on)s
              (job:itniotech_exporter_orders_received:rate1h offset 10m) * 3600 >= %(min)s
            ||| % { on: p.on(), min: c.intake.stoppedMinPerHour },
            'critical',
            'No OTP orders reach the intake of {{ $labels.job }}',
            'The intake of {{ $labels.job }} received no order for 10 minutes after at least %s in the hour before. Either the applications stopped sending OTPs (logins failing upstream?) or they stopped telling the exporter (a deploy, a credential, a network change): OTP delivery is no longer observed.' % c.intake.stoppedMinPerHour,
            '5m',
          ),
          alert(
            'ItniotechIntakeLow',
            |||
              job:itniotech_exporter_orders_received:rate30m / (job:itniotech_exporter_orders_received:rate30m offset 1d) < %(r)s
              unless %(on)s
              job:itniotech_exporter_orders_received:rate30m >= %(r)s * (job:itniotech_exporter_orders_received:rate30m offset 1w)
              and %(on)s
              (job:itniotech_exporter_orders_received:rate30m offset 1d) * 1800 >= %(min)s
            ||| % { r: c.intake.lowRatio, on: p.on(), min: c.intake.lowMin30m },
            'warning',
            'The intake of {{ $labels.job }} gets far fewer orders than a day ago',
            'Over the last 30 minutes the intake of {{ $labels.job }} received {{ $value | humanizePercentage }} of the orders of the same 30 minutes yesterday (threshold %s, and a week ago too when known). Part of the applications or regions stopped reporting their OTPs, or stopped sending them.' % pct(cn.intake.lowRatio),
            '15m',
          ),
          alert(
            'ItniotechIntakeInvalidHigh',
            |||
              job:itniotech_exporter_orders_invalid:ratio_rate15m > %(r)s
              and %(on)s
              job:itniotech_exporter_orders_invalid:rate15m * 900 >= %(min)s
            ||| % { r: c.intake.invalidRatio, on: p.on(), min: c.intake.invalidMin15m },
            'warning',
            '{{ $value | humanizePercentage }} of the orders posted to {{ $labels.job }} are invalid',
            '{{ $value | humanizePercentage }} of the order items posted to the intake of {{ $labels.job }} over the last 15 minutes were rejected as invalid (HTTP 400, threshold %s). A client sends a wrong format (missing appId/orderId, bad JSON); those OTPs are not observed.' % pct(cn.intake.invalidRatio),
            '10m',
          ),
          // The capture proxy fails open: the app gets the vendor's reply even when the order
          // could not be recorded, so these orders are simply missing from every metric.
          alert(
            'ItniotechCaptureFailing',
            |||
              sum %(by)s (increase(%(m)s[30m])) >= %(min)s
            ||| % { by: p.byInstance(['reason']), m: p.m('itniotech_exporter_capture_failures_total'), min: c.capture.minFailures30m },
            'critical',
            'Exporter {{ $labels.instance }} cannot record the OTPs its proxy forwards ({{ $labels.reason }})',
            "{{ printf \"%.0f\" $value }} sends or verifies that the capture proxy of exporter {{ $labels.instance }} (job {{ $labels.job }}) forwarded over the last 30 minutes could not be recorded (reason {{ $labels.reason }}: store = the store could not commit, disk full or I/O; unreadable = the request or the vendor's reply could not be read). The applications got their replies, but those orders are invisible: their delivery, cost and fraud signals are missing.",
            '5m',
          ),
          alert(
            'ItniotechExporterBacklog',
            'max %s (%s) > %s\n' % [p.byInstance(), p.m('itniotech_exporter_poll_lag_seconds'), c.backlog.pollLagSeconds],
            'warning',
            'Exporter {{ $labels.instance }} polls {{ $value | humanizeDuration }} late',
            'Due record polls of exporter {{ $labels.instance }} run {{ $value | humanizeDuration }} after their scheduled time (threshold %s). Delivery metrics are stale by that much; the API rate limit or the store cannot keep up.' % dur(cn.backlog.pollLagSeconds),
            '15m',
            { signal: 'poll_lag' },
          ),
          alert(
            'ItniotechExporterBacklog',
            'max %s (%s) > %s\n' % [p.byInstance(), p.m('itniotech_exporter_oldest_pending_order_age_seconds'), c.backlog.oldestPendingSeconds],
            'warning',
            'Exporter {{ $labels.instance }} keeps an order pending for {{ $value | humanizeDuration }}',
            'The oldest order tracked by exporter {{ $labels.instance }} has been pending for {{ $value | humanizeDuration }}, longer than the maximum tracking age allows (threshold %s). Orders are not being finalised: outcomes are missing from the metrics.' % dur(cn.backlog.oldestPendingSeconds),
            '15m',
            { signal: 'oldest_pending_order' },
          ),
          alert(
            'ItniotechExporterMetricsStale',
            |||
              instance:itniotech_exporter_attempt_freshness_seconds:p90_rate10m > %(s)s
              and %(on)s
              instance:itniotech_exporter_attempt_freshness:rate10m * 600 >= %(min)s
            ||| % { s: c.freshness.p90Seconds, on: p.onInstance(), min: c.freshness.minAttempts10m },
            'warning',
            'Delivery metrics of exporter {{ $labels.instance }} are {{ $value | humanizeDuration }} late (p90)',
            '90 %% of the OTP attempts exporter {{ $labels.instance }} counted over the last 10 minutes were counted more than {{ $value | humanizeDuration }} after they ended (threshold %s). Dashboards and delivery alerts see problems that late; see the poll lag and API errors of that exporter.' % dur(cn.freshness.p90Seconds),
            '15m',
          ),
          divergence('orders_pending', 'max %s (%s)' % [p.byInstance(), p.m('itniotech_exporter_orders_pending')], 'pending orders', 'humanize'),
          divergence('oldest_pending_order_age', 'max %s (%s)' % [p.byInstance(), p.m('itniotech_exporter_oldest_pending_order_age_seconds')], 'oldest pending order age', 'humanizeDuration'),
          divergence('poll_lag', 'max %s (max_over_time(%s[10m]))' % [p.byInstance(), p.m('itniotech_exporter_poll_lag_seconds')], 'poll lag', 'humanizeDuration'),
          divergence('attempt_freshness_p90', 'instance:itniotech_exporter_attempt_freshness_seconds:p90_rate10m', 'attempt freshness p90', 'humanizeDuration'),
          alert(
            'ItniotechExporterDown',
            // One alert whether a target fails its scrapes or nothing is scraped at all.
            |||
              %(up)s == 0
              or on ()
              absent(%(build)s)
            ||| % { up: p.m('up'), build: p.m('itniotech_exporter_build_info') },
            'critical',
            'itniotech-exporter is down{{ if $labels.instance }} ({{ $labels.instance }}){{ end }}',
            '{{ if $labels.instance }}Prometheus cannot scrape itniotech-exporter {{ $labels.instance }} (job {{ $labels.job }}){{ else }}No itniotech-exporter is being scraped (itniotech_exporter_build_info is absent){{ end }}. The OTP delivery of the orders it owns is not being observed.',
            '5m',
          ),
        ],
      },
    ],
  },
}
