// Everything a deployment may want to change, in one place. Override it the usual mixin way:
//
//   (import 'mixin/mixin.libsonnet') + { _config+:: { currency: 'EUR', groupLabels: ['cluster', 'job'] } }
//
// then render with `jsonnet -S -m out/ mixin/render.jsonnet` (or your own render file).
{
  _config+:: {
    // Matchers every rule and dashboard puts on the exporter's series. Under prometheus-operator
    // the job is the Service name, e.g. 'job="itniotech-exporter", namespace="otp"'.
    itniotechSelector: 'job=~".*itniotech.*"',

    // Labels that tell deployments apart. Every aggregation keeps them, so two exporters in one
    // Prometheus (two teams, two clusters) never mix, and alerts name the deployment. Add
    // 'cluster' / 'namespace' when one Prometheus sees several.
    groupLabels: ['job'],
    // Labels that tell the replicas (processes) of one deployment apart. OTP metrics are summed
    // over them (each replica owns the orders it captured); exporter-health alerts keep them.
    instanceLabels: ['instance'],

    // `%s` is the lower-cased alert name (the runbook's section anchor).
    runbookURLPattern: 'https://github.com/itniotech-exporter/itniotech-exporter/blob/main/docs/runbook.md#%s',

    // Account currency (the exporter's --api.currency). Money thresholds below are in it, and
    // the dashboards' money panels show it.
    currency: 'USD',

    // --- Order-delivery SLO ---------------------------------------------------------------
    slo: {
      // What a flow can achieve depends on its channel plan, read from the flow catalog
      // (itniotech_otp_flow_step_info): one channel (SMS only, or SMS then SMS again) fails as
      // often as that channel's route does (2-10 % for SMS by country); a flow that falls back
      // to another channel (SMS then voice) fails only when both do.
      objectives: {
        // Flows whose steps use two or more channels.
        multi_channel: 0.98,
        // Flows whose steps all use one channel.
        single_channel: 0.92,
        // Orders without a task flow (flow_id="none": a single SMS or voice attempt, no
        // fallback; voice calls go unanswered 15-30 % of the time) and flows the catalog does
        // not (yet) list.
        no_flow: 0.85,
      },
      // Per-flow objectives; the first matching entry wins over the plan default. `selector`
      // holds matchers on app_id / flow_id (and the group labels).
      overrides: [
        // { selector: 'app_id="payments", flow_id="7"', objective: 0.995 },
      ],
      // A burn-rate alert needs at least this many finalised orders in its long window.
      minEvents: 100,
      // A burn threshold never exceeds this error ratio, so a flow with a loose objective
      // (budget 8 %: 14.4x would be 115 %) still pages when a third of its orders fail.
      maxErrorRatio: 0.3,
    },

    // --- Delivery ---------------------------------------------------------------------------
    smsFailure: {
      ratio: 0.2,  // failed share of terminal SMS to a country over 10m
      minSms10m: 20,  // below this volume the 1h variant applies
      lowVolumeRatio: 0.3,  // failed share over 1h for countries under minSms10m
      lowVolumeMinFailed1h: 10,
    },
    carrierFailure: {
      ratio: 0.5,  // failed share of one carrier's (mnc) SMS over 10m
      minSms10m: 20,
    },
    callFailure: {
      ratio: 0.6,  // unanswered/failed share of voice OTP calls to a country over 30m
      minCalls30m: 10,
    },
    conversion: { ratio: 0.5, minResults1h: 50 },
    fallback: { perOrder: 0.5, minOrders1h: 100 },
    // p95Seconds must be a bucket bound of itniotech_otp_sms_delivery_seconds; at least
    // minSlow10m delivered SMS slower than it in 10m (a p95 of 40 SMS is two slow ones).
    latency: { p95Seconds: 60, minSms10m: 20, minSlow10m: 10 },
    notFound: { ratio: 0.1, min30m: 10 },

    // --- Money and fraud ----------------------------------------------------------------------
    costSpike: {
      // Spend of the last 30m and of the last 5m both above factor x baseline, where baseline
      // = max(same hour yesterday, same hour last week, last 24h average).
      factor: 3,
      minPerHour: 5,  // in `currency`
    },
    dailySpendCap: {
      // Rolling 24h spend per app, in `currency`; the first matching override wins.
      default: 20000,
      overrides: [
        // { selector: 'app_id="marketing"', cap: 500 },
      ],
    },
    unverifiedBudget: {
      // Unverified OTPs to a country in 1h may not exceed
      // max(floorPerHour, ratio x the largest verified count of any hour in the last `history`).
      // A country with a dozen OTPs an hour sees five unverified ones by chance (users who give
      // up): the demo's smallest countries went pending at 5.
      floorPerHour: 10,
      ratio: 0.5,
      history: '7d',
    },
    pumping: {
      conversion: 0.3,
      minSmsPerHour: 100,
      volumeFactor: 3,
      newCountryShare: 0.2,
    },
    // The vendor's per-app send limits, seen by the capture proxy (send calls by status).
    sendLimits: {
      // -28 (period same-number limit): bots or scripts requesting codes for the same numbers
      // over and over (SMS pumping, OTP bombing). Share of an app's sends to a country over
      // 15m, with at least minRejected15m of them.
      sameNumberRatio: 0.05,
      minRejected15m: 10,
      // -27 (period total limit): the app's whole quota is used up and every further OTP is
      // refused; at least this many in 15m pages.
      appTotalMin15m: 5,
    },
    balance: {
      low: 100,  // in `currency`
      // Hours of balance left at the higher of the last 15m and 1h spend.
      runwayCriticalHours: 12,
      forecastDays: 3,
    },

    // --- Vendor API and exporter ------------------------------------------------------------
    api: {
      errorRatio: 0.05,
      minCalls10m: 20,
      authFailures10m: 3,
      clockSkewSeconds: 30,
    },
    intake: {
      // Stopped: nothing for 15m after at least this many orders in the hour before.
      stoppedMinPerHour: 60,
      // Low: the last 30m under this share of the same 30m yesterday (and a week ago), when
      // yesterday had at least `lowMin30m` orders.
      lowRatio: 0.25,
      lowMin30m: 30,
      invalidRatio: 0.05,
      invalidMin15m: 10,
    },
    capture: {
      // Sends or verifies the capture proxy forwarded but could not record, in 30m. Never
      // normal (the store could not commit, or a send could not be read); a single unreadable
      // reply is tolerated.
      minFailures30m: 3,
    },
    freshness: {
      p90Seconds: 300,
      minAttempts10m: 20,
    },
    backlog: {
      pollLagSeconds: 120,
      // The default maximum tracking age (2h) + 1h.
      oldestPendingSeconds: 3 * 3600,
    },
    replicaDivergence: {
      // A replica diverges when its value exceeds factor x its peers' average and the peers'
      // average by at least minDiff (both, so idle replicas with 0 vs 3 pending are fine).
      signals: {
        orders_pending: { factor: 2, minDiff: 200 },
        oldest_pending_order_age: { factor: 2, minDiff: 900 },
        poll_lag: { factor: 3, minDiff: 60 },
        attempt_freshness_p90: { factor: 2, minDiff: 120 },
      },
    },

    // --- Dashboards -------------------------------------------------------------------------
    dashboardTags: ['itniotech', 'otp'],
    dashboardTimezone: 'utc',
    dashboardRefresh: '1m',
    dashboardPeriod: 'now-6h',
  },
}
