// Renders the files this repository ships, from mixin.libsonnet with its default config:
//   jsonnet -S -m . mixin/render.jsonnet      (run from the repository root)
// tests/mixin.rs fails when a committed file differs from this output or a file under a
// rendered directory is not rendered any more.
local closure = import 'lib/closure.libsonnet';
local yaml = import 'lib/yaml.libsonnet';
local mixin = import 'mixin.libsonnet';
local tests = import 'tests/tests.libsonnet';
local rulesOf = closure.new(mixin.prometheusRules, mixin.prometheusAlerts);

local generated = 'Generated from mixin/ (jsonnet -S -m . mixin/render.jsonnet). Do not edit: change mixin/*.libsonnet and re-render.';
local groupNames(files) = [g.name for f in files for g in f.groups];

{
  'alerts/itniotech-recording.yml': yaml.manifest(mixin.prometheusRules, generated),
  'alerts/itniotech-alerts.yml': yaml.manifest(mixin.prometheusAlerts, generated + '\nNeeds alerts/itniotech-recording.yml loaded too.'),
  'alerts/alertmanager.example.yml': yaml.manifest(mixin.alertmanagerExample, generated + "\nExample Alertmanager routing: replace the receivers' URLs and keys, keep the inhibit rules."),
}
+ {
  // The rules of one alert (a subset of the two files above, same text).
  ['alerts/tests/drills/%s.rules.yml' % tests.slugs[a]]: yaml.manifest(
    rulesOf.forAlert(a),
    generated + '\nThe rules of alerts/itniotech-*.yml that ' + a + ' needs, for its drill.',
  )
  for a in std.set([c.alert for c in tests.cases])
}
+ {
  [f]: yaml.manifest(
    local d = tests.drillFiles[f];
    local rules = rulesOf.forAlert(d.alert);
    {
      rule_files: ['%s.rules.yml' % tests.slugs[d.alert]],
      evaluation_interval: d.interval,
      // Recording groups first, as listed: promtool otherwise orders groups at random, and a
      // detection time would move by one evaluation between runs.
      group_eval_order: groupNames([rules]),
      tests: [c.test for c in d.cases],
    },
    generated + '\nDrill of ' + tests.drillFiles[f].alert + ': promtool test rules ' + f + '\nCase names: alert | kind | id | what. See mixin/tests/drill.libsonnet.',
  )
  for f in std.objectFields(tests.drillFiles)
}
+ {
  'alerts/tests/normal-week.test.yml': yaml.manifest(
    {
      rule_files: ['../itniotech-recording.yml', '../itniotech-alerts.yml'],
      evaluation_interval: '10m',
      group_eval_order: groupNames([mixin.prometheusRules, mixin.prometheusAlerts]),
      tests: [(import 'tests/normal-week.libsonnet').test],
    },
    generated + '\npromtool test rules alerts/tests/normal-week.test.yml\nSee mixin/tests/normal-week.libsonnet.',
  ),
}
+ {
  local units = import 'tests/units.libsonnet',
  'alerts/tests/recording.test.yml': yaml.manifest(
    {
      rule_files: ['../itniotech-recording.yml', '../itniotech-alerts.yml'],
      evaluation_interval: '1m',
      group_eval_order: groupNames([mixin.prometheusRules, mixin.prometheusAlerts]),
      tests: units.recording,
    },
    generated + '\npromtool test rules alerts/tests/recording.test.yml\nSee mixin/tests/units.libsonnet.',
  ),
}
+ {
  // The same mixin with overrides, rendered for its own test: objectives and caps per app and
  // flow, and a `cluster` group label.
  local units = import 'tests/units.libsonnet',
  local custom = mixin { _config+:: units.overrideConfig },
  local note = '\nRendered with the overrides of mixin/tests/units.libsonnet (overrideConfig), for overrides.test.yml only.',
  'alerts/tests/overrides/itniotech-recording.yml': yaml.manifest(custom.prometheusRules, generated + note),
  'alerts/tests/overrides/itniotech-alerts.yml': yaml.manifest(custom.prometheusAlerts, generated + note),
  'alerts/tests/overrides/overrides.test.yml': yaml.manifest(
    {
      rule_files: ['itniotech-recording.yml', 'itniotech-alerts.yml'],
      evaluation_interval: '1m',
      group_eval_order: groupNames([custom.prometheusRules, custom.prometheusAlerts]),
      tests: units.overrides,
    },
    generated + '\npromtool test rules alerts/tests/overrides/overrides.test.yml',
  ),
}
+ {
  // Dashboards, and the dashboard-linter exceptions their panels declare.
  ['dashboards/' + f]: std.manifestJsonEx(mixin.grafanaDashboards[f], '  ') + '\n'
  for f in std.objectFields(mixin.grafanaDashboards)
}
+ {
  local flat(d) = [p for p in d.panels if p.type != 'row'],
  local entries = [
    { rule: rule, dashboard: d.title, panel: p.title, reason: p.lint[rule] }
    for d in std.objectValues(mixin.grafanaDashboards)
    for p in flat(d)
    for rule in std.objectFields(p.lint)
  ],
  'dashboards/.lint': yaml.manifest(
    {
      exclusions: {
        [rule]: {
          reason: 'Per panel, see entries.',
          entries: [{ dashboard: e.dashboard, panel: e.panel, reason: e.reason } for e in entries if e.rule == rule],
        }
        for rule in std.set([e.rule for e in entries])
      },
    },
    generated + '\ndashboard-linter exceptions (https://github.com/grafana/dashboard-linter), applied by tests/rules_lint.rs too.',
  ),
}
