// Drill cases of the delivery alerts (1-minute samples and evaluation).
local d = import 'drill.libsonnet';
local series = import 'series.libsonnet';
local ctr = series.counter;

local sms(country, mnc, status, segs, app='a1', job=d.job) =
  d.s('itniotech_otp_sms_total', { app_id: app, country: country, mnc: mnc, status: status }, ctr(segs), job=job);
local orders(flow, outcome, segs, app='a1', country='ID') =
  d.s('itniotech_otp_orders_total', { app_id: app, flow_id: flow, country: country, outcome: outcome }, ctr(segs));
local verif(country, result, segs, app='a1', flow='2') =
  d.s('itniotech_otp_verifications_total', { app_id: app, flow_id: flow, country: country, channel: 'sms', result: result }, ctr(segs));
local calls(country, code, reason, segs, app='a1') =
  d.s('itniotech_otp_calls_total', { app_id: app, country: country, termination_code: code, termination_reason: reason }, ctr(segs));
local step(flow, step, channel, trigger) =
  d.s('itniotech_otp_flow_step_info', { flow_id: flow, step: step, channel: channel, trigger: trigger, channel_switch: 'true' }, '1x6000');
// A histogram of SMS delivery latency: `shares` = fraction of each minute's SMS per bucket upper
// bound, for each segment [perMinute, shares, minutes].
local latency(country, segs, app='a1') =
  local les = ['10', '30', '60', '120', '300', '+Inf'];
  local cum(shares, i) = std.foldl(function(a, j) a + shares[j], std.range(0, i), 0);
  [
    d.s('itniotech_otp_sms_delivery_seconds_bucket', { app_id: app, country: country, status: 'delivered', le: les[i] },
        ctr([[s[0] * cum(s[1], i), s[2]] for s in segs]))
    for i in std.range(0, std.length(les) - 1)
  ];
local J = 'job="itniotech-exporter"';

[
  // --- OtpSmsDeliveryFailureRateHigh ----------------------------------------------------
  d.case(
    'OtpSmsDeliveryFailureRateHigh', 'fire', 'carrier-outage',
    'Telkomsel (half of 60 SMS/min to ID) loses 95 %; ID goes from 5 % to 50 % failed',
    [
      sms('ID', '10', 'delivered', [[28.5, 60], [1.5, 60]]),
      sms('ID', '10', 'failed', [[1.5, 60], [28.5, 60]]),
      sms('ID', '1', 'delivered', [[28.5, 120]]),
      sms('ID', '1', 'failed', [[1.5, 120]]),
    ],
    120, start=60, detect=9, match='country="ID"',
    alerts=[{
      eval_time: '75m',
      alertname: 'OtpSmsDeliveryFailureRateHigh',
      exp_alerts: [{
        exp_labels: { severity: 'critical', window: '10m', job: d.job, app_id: 'a1', country: 'ID' },
        exp_annotations: {
          summary: 'OTP SMS to ID are failing (50%)',
          description: '50% of the terminal SMS attempts of app a1 to ID failed over the last 10 minutes (threshold 20%). Users there are not getting their codes by SMS; check the failure reasons and carriers (mnc).',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsmsdeliveryfailureratehigh',
        },
      }],
    }],
  ),
  // Two deployments in one Prometheus with the same app id: merged, ID would read 8.5 %.
  d.case(
    'OtpSmsDeliveryFailureRateHigh', 'fire', 'one-of-two-deployments-fails',
    'deployment itniotech-exporter (10 SMS/min to ID) goes from 5 % to 40 % failed; itniotech-eu (90 SMS/min, same app id) stays at 5 %',
    [
      sms('ID', '10', 'delivered', [[9.5, 60], [6, 60]]),
      sms('ID', '10', 'failed', [[0.5, 60], [4, 60]]),
      sms('ID', '10', 'delivered', [[85.5, 120]], job='itniotech-eu'),
      sms('ID', '10', 'failed', [[4.5, 120]], job='itniotech-eu'),
    ],
    120, start=60, detect=10, match='country="ID"',
    alerts=[{
      eval_time: '100m',
      alertname: 'OtpSmsDeliveryFailureRateHigh',
      exp_alerts: [{
        exp_labels: { severity: 'critical', window: '10m', job: d.job, app_id: 'a1', country: 'ID' },
        exp_annotations: {
          summary: 'OTP SMS to ID are failing (40%)',
          description: '40% of the terminal SMS attempts of app a1 to ID failed over the last 10 minutes (threshold 20%). Users there are not getting their codes by SMS; check the failure reasons and carriers (mnc).',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsmsdeliveryfailureratehigh',
        },
      }],
    }],
  ),
  d.case(
    'OtpSmsDeliveryFailureRateHigh', 'quiet', 'normal-failure-and-a-night',
    'NG fails 10 % of 20 SMS/min for 3 hours; at night 1 of 2 SMS to DE fails',
    [
      sms('NG', '30', 'delivered', [[18, 180]]),
      sms('NG', '30', 'failed', [[2, 180]]),
      sms('DE', '1', 'delivered', [[0, 30], [1, 1], [0, 149]]),
      sms('DE', '1', 'failed', [[0, 40], [1, 1], [0, 139]]),
    ],
    180,
  ),
  d.case(
    'OtpSmsDeliveryFailureRateHigh', 'low-volume', 'small-country-outage',
    'UZ (12 SMS/h, under the 10m volume guard) fails completely: the 1h variant pages',
    [
      sms('UZ', '4', 'delivered', [[0.19, 60], [0, 120]]),
      sms('UZ', '4', 'failed', [[0.01, 60], [0.2, 120]]),
    ],
    180, start=60, detect=55, match='country="UZ", window="1h"',
    alerts=[{
      eval_time: '170m',
      alertname: 'OtpSmsDeliveryFailureRateHigh',
      exp_alerts: [{
        exp_labels: { severity: 'critical', window: '1h', job: d.job, app_id: 'a1', country: 'UZ' },
        exp_annotations: {
          summary: 'OTP SMS to UZ are failing (100%, low volume)',
          description: '100% of the terminal SMS attempts of app a1 to UZ failed over the last hour (threshold 30%, at least 10 failed SMS; a country with fewer than 20 SMS in 10 minutes). Users there are not getting their codes by SMS.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsmsdeliveryfailureratehigh',
        },
      }],
    }],
  ),

  // --- OtpSmsCarrierFailureRateHigh -----------------------------------------------------
  d.case(
    'OtpSmsCarrierFailureRateHigh', 'fire', 'small-carrier-outage',
    'XL (12 of 120 SMS/min to ID) fails completely; ID as a whole stays at 14.5 %',
    [
      sms('ID', '10', 'delivered', [[57, 120]]),
      sms('ID', '10', 'failed', [[3, 120]]),
      sms('ID', '1', 'delivered', [[45.6, 120]]),
      sms('ID', '1', 'failed', [[2.4, 120]]),
      sms('ID', '11', 'delivered', [[11.4, 60], [0, 60]]),
      sms('ID', '11', 'failed', [[0.6, 60], [12, 60]]),
    ],
    120, start=60, detect=15, match='mnc="11"',
    extra=[{
      // The country-wide alert stays quiet: this is the carrier alert's own catch.
      expr: 'count(max_over_time(ALERTS{alertname="OtpSmsDeliveryFailureRateHigh", alertstate="firing"}[120m]))',
      eval_time: '120m',
      exp_samples: [],
    }],
    alerts=[{
      eval_time: '90m',
      alertname: 'OtpSmsCarrierFailureRateHigh',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, app_id: 'a1', country: 'ID', mnc: '11' },
        exp_annotations: {
          summary: 'OTP SMS to carrier 11 in ID are failing (100%)',
          description: '100% of the terminal SMS attempts of app a1 to mobile network 11 in ID failed over the last 10 minutes (threshold 50%). The users of that carrier get no codes by SMS even when the country as a whole looks healthy.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsmscarrierfailureratehigh',
        },
      }],
    }],
  ),
  d.case(
    'OtpSmsCarrierFailureRateHigh', 'quiet', 'carriers-at-normal-failure',
    'two carriers of ID fail 8 % and 12 % of their SMS for 2 hours',
    [
      sms('ID', '10', 'delivered', [[55.2, 120]]),
      sms('ID', '10', 'failed', [[4.8, 120]]),
      sms('ID', '11', 'delivered', [[10.56, 120]]),
      sms('ID', '11', 'failed', [[1.44, 120]]),
    ],
    120,
  ),
  d.case(
    'OtpSmsCarrierFailureRateHigh', 'low-volume', 'tiny-carrier-outage',
    'a carrier with 1 SMS/min (under the 20 SMS/10m guard) fails completely: no page',
    [
      sms('ID', '10', 'delivered', [[57, 120]]),
      sms('ID', '10', 'failed', [[3, 120]]),
      sms('ID', '11', 'delivered', [[1, 60], [0, 60]]),
      sms('ID', '11', 'failed', [[0, 60], [1, 60]]),
    ],
    120,
  ),

  // --- OtpCallFailureRateHigh -----------------------------------------------------------
  d.case(
    'OtpCallFailureRateHigh', 'fire', 'calls-stop-connecting',
    'voice OTP calls to NG (10/min, 25 % unanswered) stop being answered',
    [
      calls('NG', '0', 'success', [[7.5, 60], [0, 60]]),
      calls('NG', '100003', 'no_answer', [[2.5, 60], [10, 60]]),
    ],
    120, start=60, detect=25, match='country="NG"',
    alerts=[{
      eval_time: '110m',
      alertname: 'OtpCallFailureRateHigh',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, app_id: 'a1', country: 'NG' },
        exp_annotations: {
          summary: 'Voice OTP calls to NG fail (100%)',
          description: '100% of the voice OTP calls of app a1 to NG ended unanswered or failed over the last 30 minutes (threshold 60%; 15-30 % is normal). Voice fallback is not rescuing the users whose SMS failed.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpcallfailureratehigh',
        },
      }],
    }],
  ),
  d.case(
    'OtpCallFailureRateHigh', 'quiet', 'normal-unanswered-share',
    'calls to IN: 30 % busy, unanswered or rejected for 2 hours',
    [
      calls('IN', '0', 'success', [[7, 120]]),
      calls('IN', '100003', 'no_answer', [[2, 120]]),
      calls('IN', '100002', 'user_busy', [[1, 120]]),
    ],
    120,
  ),
  d.case(
    'OtpCallFailureRateHigh', 'low-volume', 'few-calls-all-fail',
    'DE gets a call every 5 minutes and none is answered (under the 10 calls/30m guard)',
    [calls('DE', '100003', 'no_answer', [[0.2, 120]])],
    120,
  ),

  // --- OtpDeliveryErrorBudgetBurn -------------------------------------------------------
  d.case(
    'OtpDeliveryErrorBudgetBurn', 'fire', 'mixed-flow-outage',
    'flow 2 (SMS then voice, objective 98 %) of 30 orders/min goes from 1 % to 100 % failed',
    [
      step('2', '1', 'sms', 'send_failure'),
      step('2', '2', 'call', 'send_failure'),
      orders('2', 'delivered', [[29.7, 60], [0, 60]]),
      orders('2', 'failed', [[0.3, 60], [30, 60]]),
    ],
    120, start=60, detect=19, match='flow_id="2", long_window="1h"',
    alerts=[{
      eval_time: '100m',
      alertname: 'OtpDeliveryErrorBudgetBurn',
      exp_alerts: [
        {
          exp_labels: { severity: 'critical', long_window: '1h', burn_rate: '14.4', job: d.job, app_id: 'a1', flow_id: '2' },
          exp_annotations: {
            summary: 'Flow 2 of app a1 burns its OTP delivery error budget 14.4x too fast',
            description: '67% of the orders of app a1, flow 2 failed over the last 1h (and the last 5m); its objective is 98% delivered. At this rate 2% of the 30-day error budget is gone in an hour.',
            runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpdeliveryerrorbudgetburn',
          },
        },
        {
          exp_labels: { severity: 'critical', long_window: '6h', burn_rate: '6', job: d.job, app_id: 'a1', flow_id: '2' },
          exp_annotations: {
            summary: 'Flow 2 of app a1 burns its OTP delivery error budget 6x too fast',
            description: '40.6% of the orders of app a1, flow 2 failed over the last 6h (and the last 30m); its objective is 98% delivered. At this rate 5% of the 30-day error budget is gone in 6 hours.',
            runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpdeliveryerrorbudgetburn',
          },
        },
      ],
    }],
  ),
  d.case(
    'OtpDeliveryErrorBudgetBurn', 'fire', 'sms-only-flow-outage',
    'flow 1 (SMS only, objective 92 %: 14.4x is capped at 30 %) of 30 orders/min fails completely',
    [
      step('1', '1', 'sms', 'unverified'),
      orders('1', 'delivered', [[28.5, 60], [0, 60]]),
      orders('1', 'failed', [[1.5, 60], [30, 60]]),
    ],
    120, start=60, detect=18, match='flow_id="1", long_window="1h"',
  ),
  d.case(
    'OtpDeliveryErrorBudgetBurn', 'quiet', 'sms-only-5-percent-mixed-1-percent',
    'four days: the SMS-only flow fails 5 %, the SMS-then-voice flow 1 %, orders without a flow 10 % (the 99 % objective paged on the first two)',
    [
      step('1', '1', 'sms', 'unverified'),
      step('2', '1', 'sms', 'send_failure'),
      step('2', '2', 'call', 'send_failure'),
      orders('1', 'delivered', [[19, 5760]]),
      orders('1', 'failed', [[1, 5760]]),
      orders('2', 'delivered', [[29.7, 5760]]),
      orders('2', 'failed', [[0.3, 5760]]),
      orders('none', 'delivered', [[18, 5760]]),
      orders('none', 'failed', [[2, 5760]]),
    ],
    5760, evalInterval='10m',
  ),
  d.case(
    'OtpDeliveryErrorBudgetBurn', 'low-volume', 'small-flow-outage',
    'flow 4 (SMS, SMS, voice) of 20 orders/h fails completely: the 6h window pages',
    [
      step('4', '1', 'sms', 'send_failure'),
      step('4', '2', 'sms', 'send_failure'),
      step('4', '3', 'call', 'unverified'),
      orders('4', 'delivered', [[0.33, 360], [0, 180]]),
      orders('4', 'failed', [[0.00333, 360], [0.33333, 180]]),
    ],
    540, start=360, detect=56, match='flow_id="4"',
  ),

  // --- OtpVerificationConversionLow -----------------------------------------------------
  d.case(
    'OtpVerificationConversionLow', 'fire', 'codes-stop-arriving',
    'conversion of 20 OTPs/min to PH falls from 85 % to 20 %',
    [
      verif('PH', 'verified', [[17, 60], [4, 90]]),
      verif('PH', 'not_verified', [[3, 60], [16, 90]]),
    ],
    150, start=60, detect=63, match='country="PH"',
    alerts=[{
      eval_time: '140m',
      alertname: 'OtpVerificationConversionLow',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, app_id: 'a1', country: 'PH' },
        exp_annotations: {
          summary: 'Only 20% of OTPs to PH are verified',
          description: 'Over the last hour only 20% of the finalised OTP orders of app a1 to PH were verified (threshold 50%). Codes are not arriving, arriving late, or going to numbers nobody reads (SMS pumping).',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpverificationconversionlow',
        },
      }],
    }],
  ),
  d.case(
    'OtpVerificationConversionLow', 'quiet', 'normal-conversion',
    'IN converts 72 % of 20 OTPs/min for 2 hours',
    [
      verif('IN', 'verified', [[14.4, 120]]),
      verif('IN', 'not_verified', [[5.6, 120]]),
    ],
    120,
  ),
  d.case(
    'OtpVerificationConversionLow', 'low-volume', 'small-country-low-conversion',
    'DE: 30 results an hour (under the 50/h guard) at 20 % conversion',
    [
      verif('DE', 'verified', [[0.1, 120]]),
      verif('DE', 'not_verified', [[0.4, 120]]),
    ],
    120,
  ),

  // --- OtpFallbackRateHigh --------------------------------------------------------------
  d.case(
    'OtpFallbackRateHigh', 'fire', 'first-attempts-failing',
    'flow 2 (20 orders/min) goes from 0.2 to 0.8 channel switches per order',
    [
      orders('2', 'delivered', [[20, 150]]),
      d.s('itniotech_otp_fallbacks_total', { app_id: 'a1', flow_id: '2', from_channel: 'sms', to_channel: 'call' }, ctr([[4, 60], [16, 90]])),
    ],
    150, start=60, detect=61, match='flow_id="2"',
    alerts=[{
      eval_time: '140m',
      alertname: 'OtpFallbackRateHigh',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, app_id: 'a1', flow_id: '2' },
        exp_annotations: {
          summary: 'Flow 2 of app a1 switches channel 0.80 times per order',
          description: 'Orders of app a1, flow 2 switched to a next attempt 0.80 times per finalised order over the last hour (threshold 0.5). First attempts are failing or going unverified; fallback calls cost more and reach users late.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpfallbackratehigh',
        },
      }],
    }],
  ),
  d.case(
    'OtpFallbackRateHigh', 'quiet', 'unverified-trigger-at-30-percent',
    'flow 3 (voice when unverified) switches on 30 % of 20 orders/min',
    [
      orders('3', 'delivered', [[20, 120]]),
      d.s('itniotech_otp_fallbacks_total', { app_id: 'a1', flow_id: '3', from_channel: 'sms', to_channel: 'call' }, ctr([[6, 120]])),
    ],
    120,
  ),
  d.case(
    'OtpFallbackRateHigh', 'low-volume', 'small-flow-always-falls-back',
    'flow 4 with 1 order/min (under the 100/h guard) falls back on every order',
    [
      orders('4', 'delivered', [[1, 120]]),
      d.s('itniotech_otp_fallbacks_total', { app_id: 'a1', flow_id: '4', from_channel: 'sms', to_channel: 'sms' }, ctr([[1, 120]])),
    ],
    120,
  ),

  // --- OtpSmsLatencyHigh ----------------------------------------------------------------
  d.case(
    'OtpSmsLatencyHigh', 'fire', 'slow-route',
    'SMS to VN (20/min, all within 10 s) start taking 2-5 minutes',
    latency('VN', [[20, [1, 0, 0, 0, 0, 0], 60], [20, [0, 0, 0, 0, 1, 0], 60]])
    + [sms('VN', '4', 'delivered', [[20, 120]])],
    120, start=60, detect=16, match='country="VN"',
    alerts=[{
      eval_time: '100m',
      alertname: 'OtpSmsLatencyHigh',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, app_id: 'a1', country: 'VN' },
        exp_annotations: {
          summary: 'OTP SMS to VN take 4m 51s (p95)',
          description: "The 95th percentile of submit-to-delivery time of app a1's delivered SMS to VN is 4m 51s over the last 10 minutes (threshold 1m). Codes arrive after users gave up or after the flow already fell back.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsmslatencyhigh',
        },
      }],
    }],
  ),
  d.case(
    'OtpSmsLatencyHigh', 'quiet', 'normal-latency',
    'MX: 80 % within 10 s, 18 % within 30 s, 2 % within 60 s',
    latency('MX', [[20, [0.8, 0.18, 0.02, 0, 0, 0], 120]])
    + [sms('MX', '20', 'delivered', [[20, 120]])],
    120,
  ),
  d.case(
    'OtpSmsLatencyHigh', 'quiet', 'three-slow-sms-in-forty',
    'PH: 4 SMS/min, 7.5 % of them over a minute: a p95 over 60 s from 3 slow SMS per 10 minutes',
    latency('PH', [[4, [0.7, 0.2, 0.025, 0.075, 0, 0], 120]])
    + [sms('PH', '3', 'delivered', [[4, 120]])],
    120,
    extra=[{
      // The case is what it claims: the p95 is over the threshold all along.
      expr: 'count(app_country:itniotech_otp_sms_delivery_seconds:p95_rate10m{country="PH"} > 60)',
      eval_time: '60m',
      exp_samples: [{ labels: '{}', value: 1 }],
    }],
  ),
  d.case(
    'OtpSmsLatencyHigh', 'low-volume', 'slow-but-rare',
    'DE: one SMS every 5 minutes, all slow (under the 20 SMS/10m guard)',
    latency('DE', [[0.2, [0, 0, 0, 0, 1, 0], 120]])
    + [sms('DE', '1', 'delivered', [[0.2, 120]])],
    120,
  ),

  // --- OtpOrdersNotFoundHigh ------------------------------------------------------------
  d.case(
    'OtpOrdersNotFoundHigh', 'fire', 'intake-posts-wrong-ids',
    'a deploy of app a1 posts wrong order ids: 10 of 40 orders/min are never found',
    [
      orders('none', 'delivered', [[30, 120]]),
      orders('none', 'not_found', [[0, 60], [10, 60]], country='unknown'),
    ],
    120, start=60, detect=26, match='app_id="a1"',
    alerts=[{
      eval_time: '110m',
      alertname: 'OtpOrdersNotFoundHigh',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, app_id: 'a1' },
        exp_annotations: {
          summary: 'The itniotech API does not know 25% of the orders of app a1',
          description: '25% of the orders of app a1 finalised over the last 30 minutes were never found by the API (threshold 10%). The application posts wrong order ids or app ids to the intake, or the vendor loses records; their delivery is not observed.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpordersnotfoundhigh',
        },
      }],
    }],
  ),
  d.case(
    'OtpOrdersNotFoundHigh', 'quiet', 'a-few-not-found',
    '1 % of 30 orders/min are never found (expired before the first poll)',
    [
      orders('none', 'delivered', [[29.7, 120]]),
      orders('none', 'not_found', [[0.3, 120]], country='unknown'),
    ],
    120,
  ),
  d.case(
    'OtpOrdersNotFoundHigh', 'low-volume', 'small-app',
    'an app with 0.5 orders/min loses 40 % (under the 10 per 30m guard)',
    [
      orders('none', 'delivered', [[0.3, 120]], app='small'),
      orders('none', 'not_found', [[0.2, 120]], app='small', country='unknown'),
    ],
    120,
  ),
]
