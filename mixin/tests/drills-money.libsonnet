// Drill cases of the cost, fraud and balance alerts.
local d = import 'drill.libsonnet';
local series = import 'series.libsonnet';
local ctr = series.counter;

local cost(app, segs, channel='sms', country='ID', instance=d.instance, job=d.job) =
  d.s('itniotech_otp_cost_total', { app_id: app, channel: channel, country: country, currency: 'USD' }, ctr(segs), job=job, instance=instance);
local balance(values, instance=d.instance, job=d.job, currency='USD') =
  d.s('itniotech_account_balance', { kind: 'balance', currency: currency }, values, job=job, instance=instance);
local sms(country, status, segs, app='a1', mnc='4') =
  d.s('itniotech_otp_sms_total', { app_id: app, country: country, mnc: mnc, status: status }, ctr(segs));
local verif(country, result, segs, app='a1', values=null) =
  d.s('itniotech_otp_verifications_total', { app_id: app, flow_id: '1', country: country, channel: 'sms', result: result },
      if values != null then values else ctr(segs));

local sends(status, segs, app='a1', country='ID') =
  d.s('itniotech_otp_send_requests_total', { app_id: app, channel: 'sms', country: country, status: status }, ctr(segs));

// A day and an hour of history, then the incident.
local H = 1500;
// Spend per minute of a week (minute 0 = Monday 00:00): business hours (08-20) at 2.5x the
// night, weekends at half the weekdays.
local weekly(days, perMin) = [
  local m = h * 60;
  [perMin * (if std.floor(m / 1440) % 7 >= 5 then 0.5 else 1) * (if m % 1440 >= 480 && m % 1440 < 1200 then 2.5 else 1), 60]
  for h in std.range(0, days * 24 - 1)
];

[
  // --- OtpCostSpike ---------------------------------------------------------------------
  d.case(
    'OtpCostSpike', 'fire', '5x-step',
    'spend of app a1 steps from 30 to 150 USD/h after a day of history',
    [cost('a1', [[0.5, H], [2.5, 60]])],
    H + 60, start=H, detect=19, match='app_id="a1"',
    extra=[
      // An hour into the spike the live baseline has risen (the 24h average took in the
      // spike's first half hour); the held one is still the pre-spike 30 USD/h.
      {
        expr: 'app:itniotech_otp_cost:rate_baseline_held * 3600',
        eval_time: '%dm' % (H + 60),
        exp_samples: [{ labels: '{job="itniotech-exporter", app_id="a1", currency="USD"}', value: 30 }],
      },
      {
        expr: 'app:itniotech_otp_cost:rate_baseline * 3600 > bool 30',
        eval_time: '%dm' % (H + 60),
        exp_samples: [{ labels: '{job="itniotech-exporter", app_id="a1", currency="USD"}', value: 1 }],
      },
    ],
    alerts=[{
      eval_time: '%dm' % (H + 40),
      alertname: 'OtpCostSpike',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, app_id: 'a1', currency: 'USD' },
        exp_annotations: {
          summary: 'OTP spend of app a1 is 5.0x its baseline',
          description: 'App a1 spends 5.0x its baseline over the last 30 minutes (and the last 5), now 150 USD/h. The baseline is the largest of the same hour yesterday, the same hour last week and the last 24h average, held from the start of the spike. Check the spend by country and channel for SMS pumping or a fallback storm.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpcostspike',
        },
      }],
    }],
  ),
  d.case(
    'OtpCostSpike', 'fire', '10x-step',
    'spend of app a1 steps from 30 to 300 USD/h after a day of history',
    [cost('a1', [[0.5, H], [5, 60]])],
    H + 60, start=H, detect=10, match='app_id="a1"',
  ),
  d.case(
    'OtpCostSpike', 'fire', 'sustained-5x',
    'a 5x spend that lasts 30 hours keeps firing (the baseline is held from the start)',
    [cost('a1', [[0.5, H], [2.5, 1800]])],
    H + 1800, firingAt=[H + 1500, H + 1800], match='app_id="a1"', evalInterval='5m',
  ),
  d.case(
    'OtpCostSpike', 'quiet', '2x-step',
    'spend doubles from 30 to 60 USD/h and stays there',
    [cost('a1', [[0.5, H], [1, 180]])],
    H + 180,
  ),
  d.case(
    'OtpCostSpike', 'quiet', 'short-burst',
    'a 5-minute burst at 10x (a batch job, a retry storm that stopped)',
    [cost('a1', [[0.5, H], [5, 5], [0.5, 120]])],
    H + 125,
  ),
  d.case(
    'OtpCostSpike', 'quiet', 'weekly-seasonality',
    'business hours at 2.5x the night, weekends at half: Monday morning after a weekend',
    [cost('a1', weekly(8, 0.5))],
    8 * 1440, quietFrom=7 * 1440 - 360, evalInterval='5m',
  ),
  d.case(
    'OtpCostSpike', 'low-volume', 'small-app-5x',
    'an app spending 0.6 USD/h goes to 3 USD/h (under the 5/h minimum)',
    [cost('small', [[0.01, H], [0.05, 120]])],
    H + 120,
  ),

  // --- OtpDailySpendCapExceeded ---------------------------------------------------------
  d.case(
    'OtpDailySpendCapExceeded', 'fire', 'runaway-spend',
    'app a1 spends 12 000 USD a day, then 5 000 USD/h: over the 20 000 cap',
    [cost('a1', [[500 / 60, H], [5000 / 60, 150]])],
    H + 150, start=H, detect=112, match='app_id="a1"',
    alerts=[{
      eval_time: '%dm' % (H + 150),
      alertname: 'OtpDailySpendCapExceeded',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, app_id: 'a1', currency: 'USD' },
        exp_annotations: {
          summary: 'App a1 spent 23.25k USD in 24h, over its cap',
          description: 'App a1 spent 23.25k USD on OTPs over the last 24 hours, more than its daily cap of 20k USD. Find what drives the spend before it continues.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpdailyspendcapexceeded',
        },
      }],
    }],
  ),
  d.case(
    'OtpDailySpendCapExceeded', 'quiet', 'steady-spend-under-cap',
    'app a1 spends 12 000 USD a day, every day',
    [cost('a1', [[500 / 60, H + 300]])],
    H + 300,
  ),
  d.case(
    'OtpDailySpendCapExceeded', 'low-volume', 'small-app-10x',
    'an app spending 50 USD a day goes 10x: far under the cap (OtpCostSpike covers it)',
    [cost('small', [[50 / 1440, H], [500 / 1440, 300]])],
    H + 300,
  ),

  // --- OtpUnverifiedBudgetExceeded ------------------------------------------------------
  d.case(
    'OtpUnverifiedBudgetExceeded', 'fire', 'pumping-1-sms-per-min',
    'UZ gets 1 SMS/min, 87.5 % verified; pumping adds 2 unverified OTPs/min',
    [
      verif('UZ', 'verified', [[0.875, 240]]),
      verif('UZ', 'not_verified', [[0.125, 180], [2.125, 60]]),
    ],
    240, start=180, detect=15, match='country="UZ"',
    alerts=[{
      eval_time: '230m',
      alertname: 'OtpUnverifiedBudgetExceeded',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, app_id: 'a1', country: 'UZ' },
        exp_annotations: {
          summary: '108 unverified OTPs to UZ in an hour, over budget',
          description: "108 OTPs of app a1 to UZ went unverified over the last hour, more than the country's budget of 26 (max(10, 0.5 x the most codes verified there in one hour of the last 7d)). Pumped numbers never verify: this is the low-volume SMS-pumping signal.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpunverifiedbudgetexceeded',
        },
      }],
    }],
  ),
  d.case(
    'OtpUnverifiedBudgetExceeded', 'quiet', 'legit-traffic-doubles',
    'IN doubles from 20 to 40 OTPs/min (a campaign) at its usual 80 % conversion',
    [
      verif('IN', 'verified', [[16, 180], [32, 120]]),
      verif('IN', 'not_verified', [[4, 180], [8, 120]]),
    ],
    300,
  ),
  d.case(
    'OtpUnverifiedBudgetExceeded', 'low-volume', 'new-country-14-percent',
    'a new country gets 14 % of the app\'s SMS, none verified: the 10/h floor pages',
    [
      verif('IN', 'verified', [[14.6, 120]]),
      verif('IN', 'not_verified', [[2.6, 120]]),
      verif('UZ', 'verified', null, values=series.absent(60) + ' ' + ctr([[0, 60]])),
      verif('UZ', 'not_verified', null, values=series.absent(60) + ' ' + ctr([[2.8, 60]])),
    ],
    120, start=60, detect=9, match='country="UZ"',
  ),

  // --- OtpSendLimitRejections -----------------------------------------------------------
  d.case(
    'OtpSendLimitRejections', 'fire', 'same-numbers-hammered',
    'a bot re-requests codes for the same numbers: 4 of 34 sends/min to ID answered -28',
    [
      sends('0', [[30, 90]]),
      sends('-28', [[0.1, 30], [4, 60]]),
    ],
    90, start=30, detect=11, match='limit="same_number"',
    alerts=[{
      eval_time: '80m',
      alertname: 'OtpSendLimitRejections',
      exp_alerts: [{
        exp_labels: { severity: 'warning', limit: 'same_number', job: d.job, app_id: 'a1', country: 'ID', status: '-28' },
        exp_annotations: {
          summary: 'itniotech refuses 11.76% of the OTPs of app a1 to ID: same number too often (-28)',
          description: "11.76% of the OTP sends of app a1 to ID over the last 15 minutes were refused with -28, the vendor's per-number send limit (threshold 5%). Someone requests codes for the same numbers over and over: SMS pumping or OTP bombing, usually before volume or cost moves. The limit absorbs it for now; find the source before it moves to new numbers.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsendlimitrejections',
        },
      }],
    }],
  ),
  d.case(
    'OtpSendLimitRejections', 'fire', 'app-quota-used-up',
    "app a1's period send quota runs out: every send (20/min) is answered -27",
    [
      sends('0', [[20, 30], [0, 60]]),
      sends('-27', [[0, 30], [20, 60]]),
    ],
    90, start=30, detect=6, match='limit="app_total"',
  ),
  d.case(
    'OtpSendLimitRejections', 'quiet', 'users-retry-and-a-brief-quota-hit',
    'users re-request codes (1 % of 30 sends/min answered -28); 3 sends hit the quota (-27) at a period end',
    [
      sends('0', [[30, 120]]),
      sends('-28', [[0.3, 120]]),
      sends('-27', [[0, 60], [1, 3], [0, 57]]),
    ],
    120,
  ),
  d.case(
    'OtpSendLimitRejections', 'low-volume', 'small-app-same-number',
    'an app sending 1 OTP/min gets a third of them refused with -28 (under 10 in 15m)',
    [
      sends('0', [[1, 120]]),
      sends('-28', [[0, 30], [0.5, 90]]),
    ],
    120,
  ),

  // --- OtpSmsPumpingSuspected -----------------------------------------------------------
  d.case(
    'OtpSmsPumpingSuspected', 'fire', 'fresh-server-40-percent-to-UZ',
    'on a fresh Prometheus, 40 % of the SMS go to UZ and 1.25 % of them are verified',
    [
      sms('UZ', 'delivered', [[40, 60]]),
      verif('UZ', 'verified', [[0.5, 60]]),
      verif('UZ', 'not_verified', [[39.5, 60]]),
      sms('IN', 'delivered', [[60, 60]], mnc='45'),
      verif('IN', 'verified', [[50, 60]]),
      verif('IN', 'not_verified', [[10, 60]]),
    ],
    60, detect=16, match='country="UZ"',
    alerts=[{
      eval_time: '30m',
      alertname: 'OtpSmsPumpingSuspected',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, app_id: 'a1', country: 'UZ' },
        exp_annotations: {
          summary: 'SMS pumping suspected: traffic to UZ spiked, only 1.25% verified',
          description: "App a1 sends unusually many OTP SMS to UZ (3x its usual volume, or over 20% of the app's SMS) and only 1.25% of them are verified over the last hour. This is the SMS-pumping (artificially inflated traffic) pattern: every SMS is billed.",
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsmspumpingsuspected',
        },
      }],
    }],
  ),
  d.case(
    'OtpSmsPumpingSuspected', 'fire', 'spike-against-yesterday',
    'UZ goes from 1 to 40 SMS/min that nobody verifies, after a day of history',
    [
      sms('UZ', 'delivered', [[1, H], [40, 120]]),
      verif('UZ', 'verified', [[0.5, H + 120]]),
      verif('UZ', 'not_verified', [[0.5, H], [40, 120]]),
      sms('IN', 'delivered', [[60, H + 120]], mnc='45'),
    ],
    H + 120, start=H, detect=21, match='country="UZ"',
  ),
  d.case(
    'OtpSmsPumpingSuspected', 'quiet', 'carrier-outage-is-not-pumping',
    'conversion in ID falls from 83 % to 17 % at its usual volume (a delivery problem)',
    [
      sms('ID', 'failed', [[30, H + 120]], mnc='10'),
      verif('ID', 'verified', [[25, H], [5, 120]]),
      verif('ID', 'not_verified', [[5, H], [25, 120]]),
      sms('IN', 'delivered', [[60, H + 120]], mnc='45'),
    ],
    H + 120,
  ),
  d.case(
    'OtpSmsPumpingSuspected', 'low-volume', 'pumping-at-1-sms-per-min',
    'UZ at 1 SMS/min gets 2 more unverified SMS/min (under 100 SMS/h: OtpUnverifiedBudgetExceeded pages)',
    [
      sms('UZ', 'delivered', [[1, 120], [3, 60]]),
      verif('UZ', 'verified', [[0.85, 180]]),
      verif('UZ', 'not_verified', [[0.15, 120], [2.15, 60]]),
      sms('IN', 'delivered', [[60, 180]], mnc='45'),
    ],
    180,
  ),

  // --- OtpSmsNewCountry -----------------------------------------------------------------
  d.case(
    'OtpSmsNewCountry', 'fire', 'first-sms-to-a-country',
    'after a day of SMS to ID only, app a1 starts sending to UZ',
    [
      sms('ID', 'delivered', [[10, H + 60]], mnc='10'),
      d.s('itniotech_otp_sms_total', { app_id: 'a1', country: 'UZ', mnc: '4', status: 'delivered' }, series.absent(H) + ' ' + ctr([[0.5, 60]])),
    ],
    H + 60, start=H, detect=1, match='country="UZ"',
    alerts=[{
      eval_time: '%dm' % (H + 30),
      alertname: 'OtpSmsNewCountry',
      exp_alerts: [{
        exp_labels: { severity: 'info', job: d.job, app_id: 'a1', country: 'UZ' },
        exp_annotations: {
          summary: 'App a1 sends OTP SMS to UZ, a country without SMS in the last week',
          description: 'App a1 started sending OTP SMS to UZ (8.333m/s) after at least a week without any. A new market is fine; an unexpected one is how SMS pumping starts: check its conversion.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#otpsmsnewcountry',
        },
      }],
    }],
  ),
  d.case(
    'OtpSmsNewCountry', 'quiet', 'fresh-prometheus',
    'a Prometheus with two hours of data sees every country for the first time',
    [
      sms('ID', 'delivered', [[10, 120]], mnc='10'),
      sms('UZ', 'delivered', [[0.5, 120]]),
    ],
    120,
  ),
  d.case(
    'OtpSmsNewCountry', 'quiet', 'country-seen-three-days-ago',
    'UZ had SMS on day 1; it gets SMS again on day 4',
    [
      sms('ID', 'delivered', [[10, 4 * 1440 + 120]], mnc='10'),
      sms('UZ', 'delivered', [[0, 1440], [0.5, 60], [0, 3 * 1440 - 60], [0.5, 120]]),
    ],
    // Day 1 is UZ's first SMS in a week: that one is new (and flagged); day 4's is not.
    4 * 1440 + 120, quietFrom=4 * 1440 - 60, evalInterval='5m',
  ),
  d.case(
    'OtpSmsNewCountry', 'low-volume', 'a-single-sms',
    'after a day of SMS to ID only, one SMS goes to UZ',
    [
      sms('ID', 'delivered', [[10, H + 60]], mnc='10'),
      d.s('itniotech_otp_sms_total', { app_id: 'a1', country: 'UZ', mnc: '4', status: 'delivered' }, series.absent(H) + ' ' + ctr([[0, 1], [1, 1], [0, 58]])),
    ],
    H + 60, start=H, detect=2, match='country="UZ"',
  ),

  // --- ItniotechBalanceRunwayLow --------------------------------------------------------
  d.case(
    'ItniotechBalanceRunwayLow', 'fire', '10h-drain',
    'two replicas; spend jumps from 200 USD/h to what empties the 49 600 USD balance in 10 h',
    [
      cost('a1', [[100 / 60, 120], [2480 / 60, 60]]),
      cost('a1', [[100 / 60, 120], [2480 / 60, 60]], instance='exp-1:9867'),
      balance(series.ramp(50000, -200 / 60, 121) + ' ' + series.ramp(49600 - 4960 / 60, -4960 / 60, 60)),
      balance(series.ramp(50000, -200 / 60, 121) + ' ' + series.ramp(49600 - 4960 / 60, -4960 / 60, 60), instance='exp-1:9867'),
    ],
    180, start=120, detect=25,
    alerts=[{
      eval_time: '170m',
      alertname: 'ItniotechBalanceRunwayLow',
      exp_alerts: [{
        exp_labels: { severity: 'critical', job: d.job, currency: 'USD' },
        exp_annotations: {
          summary: 'The itniotech balance lasts 9.167 more hours at the current spend',
          description: 'At the spend of the last 15 minutes to 1 hour, the USD balance of the itniotech account (itniotech-exporter) runs out in 9.167 hours (threshold 12 h). At 0 every OTP send fails with status -10: top up now, or stop what drives the spend.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechbalancerunwaylow',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechBalanceRunwayLow', 'quiet', '2x-step-and-short-burst',
    'one account doubles its 200 USD/h spend; another has a 5-minute 10x burst',
    [
      cost('a1', [[200 / 60, 120], [400 / 60, 120]]),
      balance(series.ramp(50000, -200 / 60, 121) + ' ' + series.ramp(49600 - 400 / 60, -400 / 60, 119)),
      cost('a1', [[200 / 60, 120], [2000 / 60, 5], [200 / 60, 115]], job='itniotech-eu'),
      balance(series.ramp(50000, -200 / 60, 121) + ' ' + series.ramp(49600 - 2000 / 60, -2000 / 60, 5) + ' ' + series.ramp(49433.33 - 200 / 60, -200 / 60, 114), job='itniotech-eu'),
    ],
    240,
  ),
  d.case(
    'ItniotechBalanceRunwayLow', 'low-volume', 'small-account-long-runway',
    'an account with 60 USD spending 1 USD/h: 60 hours left (ItniotechBalanceLow warns)',
    [
      cost('a1', [[1 / 60, 120]]),
      balance(series.ramp(60, -1 / 60, 121)),
    ],
    120,
  ),

  // --- ItniotechBalanceLow --------------------------------------------------------------
  d.case(
    'ItniotechBalanceLow', 'fire', 'balance-falls-below-threshold',
    'the balance falls by 1 USD/min through 100',
    [balance(series.ramp(130, -1, 91)), balance(series.ramp(130, -1, 91), instance='exp-1:9867')],
    90, start=31, detect=10,
    alerts=[{
      eval_time: '60m',
      alertname: 'ItniotechBalanceLow',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, currency: 'USD' },
        exp_annotations: {
          summary: 'itniotech account balance is 70 USD',
          description: 'The itniotech account balance is 70 USD, below the 100 USD threshold. At 0 every OTP send fails with status -10. Top up the account.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechbalancelow',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechBalanceLow', 'quiet', 'healthy-balance',
    'a 5 000 USD balance spending 100 USD/h',
    [balance(series.ramp(5000, -100 / 60, 121))],
    120,
  ),
  d.case(
    'ItniotechBalanceLow', 'low-volume', 'idle-account-below-threshold',
    'an account nobody spends from holds 50 USD',
    [balance(series.gauge([[50, 61]]))],
    60, detect=10,
  ),

  // --- ItniotechBalanceExhaustionForecast -----------------------------------------------
  d.case(
    'ItniotechBalanceExhaustionForecast', 'fire', 'steady-drain',
    '120 USD/h from 5 000 USD: empty in under 2 days',
    [balance(series.ramp(5000, -2, 601))],
    600, detect=390,
    alerts=[{
      eval_time: '600m',
      alertname: 'ItniotechBalanceExhaustionForecast',
      exp_alerts: [{
        exp_labels: { severity: 'warning', job: d.job, currency: 'USD' },
        exp_annotations: {
          summary: 'itniotech balance runs out within 3 days at the current spend',
          description: 'At the spend rate of the last 6 hours the USD balance of the itniotech account (itniotech-exporter) reaches 0 within 3 days (linear forecast: -4.84k USD). Top up or find what drives the spend.',
          runbook_url: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#itniotechbalanceexhaustionforecast',
        },
      }],
    }],
  ),
  d.case(
    'ItniotechBalanceExhaustionForecast', 'quiet', 'fresh-series-and-top-up',
    'a series 10 minutes old falling fast; an account topped up after 5 hours of decline',
    [
      balance(series.absent(590) + ' ' + series.ramp(5000, -5, 11), instance='fresh:9867'),
      balance(series.ramp(3000, -2, 300) + ' ' + series.ramp(8000, -2, 301), job='itniotech-eu'),
    ],
    600,
  ),
  d.case(
    'ItniotechBalanceExhaustionForecast', 'low-volume', 'small-account-drain',
    'a 100 USD account spending 2 USD/h: empty in 50 hours',
    [balance(series.ramp(100, -2 / 60, 601))],
    600, detect=390,
  ),
]
