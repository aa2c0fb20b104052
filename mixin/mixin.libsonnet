// The itniotech-exporter monitoring mixin: recording rules, alerts, dashboards, and the
// Alertmanager example, all from one configuration (config.libsonnet). Standard mixin fields:
// prometheusRules, prometheusAlerts, grafanaDashboards.
(import 'config.libsonnet')
+ (import 'rules.libsonnet')
+ (import 'alerts.libsonnet')
+ (import 'alertmanager.libsonnet')
+ (import 'dashboards/dashboards.libsonnet')
