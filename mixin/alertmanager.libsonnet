// Example Alertmanager routing for the itniotech alerts (amtool check-config accepts it).
// Every inhibition is scoped to one deployment (the group labels), so one broken exporter never
// silences the pages of another.
{
  local c = $._config,
  local g = c.groupLabels,
  local gi = c.groupLabels + c.instanceLabels,

  alertmanagerExample:: {
    route: {
      receiver: 'chat',
      group_by: ['alertname'] + g + ['app_id', 'country', 'flow_id'],
      group_wait: '30s',
      group_interval: '5m',
      repeat_interval: '4h',
      routes: [
        { matchers: ['severity="critical"'], receiver: 'page', repeat_interval: '1h' },
        { matchers: ['severity="warning"'], receiver: 'chat', repeat_interval: '12h' },
        { matchers: ['severity="info"'], receiver: 'null' },
      ],
    },
    receivers: [
      {
        name: 'page',
        pagerduty_configs: [{
          routing_key: 'REPLACE_WITH_PAGERDUTY_ROUTING_KEY',
          description: '{{ .CommonAnnotations.summary }}',
          links: [{ href: '{{ .CommonAnnotations.runbook_url }}', text: 'runbook' }],
        }],
      },
      {
        name: 'chat',
        slack_configs: [{
          api_url: 'https://hooks.slack.com/services/REPLACE/ME/PLEASE',
          channel: '#otp-alerts',
          send_resolved: true,
          title: '{{ .CommonAnnotations.summary }}',
          text: '{{ range .Alerts }}{{ .Annotations.description }} <{{ .Annotations.runbook_url }}|runbook>{{ "\\n" }}{{ end }}',
        }],
      },
      { name: 'null' },
    ],
    inhibit_rules: [
      // A dead exporter process explains its own API and backlog alerts; the OTP alerts of the
      // deployment keep working from the other replicas and are not silenced.
      {
        source_matchers: ['alertname="ItniotechExporterDown"'],
        target_matchers: ['alertname=~"Itniotech(Api.*|Exporter.*)"', 'alertname!="ItniotechExporterDown"'],
        equal: gi,
      },
      // Rejected credentials or a dead API explain that exporter's error ratio and lateness.
      {
        source_matchers: ['alertname=~"ItniotechApiAuthFailing|ItniotechApiDown"'],
        target_matchers: ['alertname=~"ItniotechApiErrorsHigh|ItniotechExporterBacklog|ItniotechExporterMetricsStale"'],
        equal: gi,
      },
      // A country-wide SMS failure page covers its carriers.
      {
        source_matchers: ['alertname="OtpSmsDeliveryFailureRateHigh"'],
        target_matchers: ['alertname="OtpSmsCarrierFailureRateHigh"'],
        equal: g + ['app_id', 'country'],
      },
      // A critical for an app and country (SMS failures, pumping, unverified budget) silences
      // its warnings (conversion, latency, calls). The country=~".+" matchers keep alerts
      // without these labels out.
      {
        source_matchers: ['severity="critical"', 'country=~".+"'],
        target_matchers: ['severity="warning"', 'country=~".+"'],
        equal: g + ['app_id', 'country'],
      },
      // The fast-burn page silences the slow-burn ticket of the same flow.
      {
        source_matchers: ['alertname="OtpDeliveryErrorBudgetBurn"', 'severity="critical"'],
        target_matchers: ['alertname="OtpDeliveryErrorBudgetBurn"', 'severity="warning"'],
        equal: g + ['app_id', 'flow_id'],
      },
      // The runway page covers the low-balance and forecast warnings of the same account.
      {
        source_matchers: ['alertname="ItniotechBalanceRunwayLow"'],
        target_matchers: ['alertname=~"ItniotechBalanceLow|ItniotechBalanceExhaustionForecast"'],
        equal: g + ['currency'],
      },
      // A stopped intake covers the "far below yesterday" warning.
      {
        source_matchers: ['alertname="ItniotechIntakeStopped"'],
        target_matchers: ['alertname="ItniotechIntakeLow"'],
        equal: g,
      },
    ],
  },
}
