// A small Grafana dashboard builder (no grafonnet: nothing to vendor, and the JSON stays
// readable). Dashboards follow the dashboard-linter's rules, which tests/rules_lint.rs applies:
// a `datasource` variable used by every panel and target; `job` and `instance` variables
// (multi, allValue .+, refreshed on time change) used by every selector; rate() over
// $__rate_interval; a unit, a description and a title on every panel.
function(config) {
  local ds = { type: 'prometheus', uid: '${datasource}' },
  local extraGroup = [l for l in config.groupLabels if l != 'job'],

  // Matchers every selector carries: the deployment and exporter variables.
  baseMatchers::
    std.join(', ', ['%s=~"$%s"' % [l, l] for l in extraGroup] + ['job=~"$job"', 'instance=~"$instance"']),
  // The same without instance, for recording rules (they sum the replicas).
  groupMatchers::
    std.join(', ', ['%s=~"$%s"' % [l, l] for l in extraGroup] + ['job=~"$job"']),

  // A raw exporter series with the variables' matchers and `extra`.
  m(metric, extra='')::
    metric + '{' + self.baseMatchers + (if extra == '' then '' else ', ' + extra) + '}',
  // A recording-rule series (no instance label).
  r(metric, extra='')::
    metric + '{' + self.groupMatchers + (if extra == '' then '' else ', ' + extra) + '}',

  target(expr, legend='', instant=false, format='')::
    { expr: std.rstripChars(expr, '\n'), legendFormat: legend, datasource: ds }
    + (if instant then { instant: true, range: false } else {})
    + (if format != '' then { format: format } else {}),

  // A panel. `lint`: { rule: reason } exceptions this panel needs (rendered to dashboards/.lint).
  panel(type, title, description, unit, targets, width=12, height=8, options={}, fieldConfig={}, lint={})::
    {
      type: type,
      title: title,
      description: description,
      datasource: ds,
      targets: [targets[i] { refId: std.char(65 + i) } for i in std.range(0, std.length(targets) - 1)],
      fieldConfig: { defaults: { unit: unit } + fieldConfig, overrides: [] },
      options: options,
      gridPos: { w: width, h: height },
      lint:: lint,
    },
  timeseries(title, description, unit, targets, width=12, height=8, lint={}, stack=false, min=null)::
    self.panel('timeseries', title, description, unit, targets, width, height,
               options={ legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull', 'max'] }, tooltip: { mode: 'multi', sort: 'desc' } },
               fieldConfig={ custom: { fillOpacity: if stack then 30 else 10, stacking: { mode: if stack then 'normal' else 'none' } } } + (if min != null then { min: min } else {}),
               lint=lint),
  stat(title, description, unit, targets, width=6, height=4, lint={}, thresholds=null)::
    self.panel('stat', title, description, unit, targets, width, height,
               options={ reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'value_and_name' },
               fieldConfig=if thresholds == null then {} else { thresholds: { mode: 'absolute', steps: thresholds } },
               lint=lint),
  heatmap(title, description, unit, expr, width=12, height=8)::
    self.panel('heatmap', title, description, unit, [self.target(expr, '{{le}}', format='heatmap')], width, height,
               options={ calculate: false, yAxis: { unit: unit }, cellGap: 1, color: { scheme: 'Oranges', mode: 'scheme' } }),
  bargauge(title, description, unit, targets, width=12, height=8, lint={})::
    self.panel('bargauge', title, description, unit, targets, width, height,
               options={ orientation: 'horizontal', displayMode: 'gradient', reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false } },
               lint=lint),
  table(title, description, unit, targets, width=12, height=6, lint={})::
    self.panel('table', title, description, unit, targets, width, height, options={ showHeader: true }, lint=lint),

  row(title):: { type: 'row', title: title, collapsed: false, panels: [], gridPos: { w: 24, h: 1 } },

  // Lays panels out left to right, wrapping at 24 columns; a row starts a new line.
  layout(panels)::
    local step(acc, p) =
      local w = p.gridPos.w, h = p.gridPos.h;
      local wrap = p.type == 'row' || acc.x + w > 24;
      local x = if wrap then 0 else acc.x;
      local y = if wrap then acc.y + acc.lineH else acc.y;
      {
        x: if p.type == 'row' then 24 else x + w,
        y: y,
        lineH: if wrap then h else std.max(acc.lineH, h),
        out: acc.out + [p { id: std.length(acc.out) + 1, gridPos: { x: x, y: y, w: w, h: h } }],
      };
    std.foldl(step, panels, { x: 0, y: 0, lineH: 0, out: [] }).out,

  local variable(name, label, query, allValue='.*', multi=true) = {
    name: name,
    label: label,
    type: 'query',
    datasource: ds,
    definition: query,
    query: { query: query, refId: 'StandardVariableQuery' },
    refresh: 2,
    sort: 1,
    multi: multi,
    includeAll: true,
    allValue: allValue,
    current: { selected: true, text: ['All'], value: ['$__all'] },
    hide: 0,
    regex: '',
    options: [],
  },

  // Template variables: datasource, the group labels, job, instance, then `extra`.
  variables(extra=[])::
    local sel = config.itniotechSelector;
    [
      {
        name: 'datasource',
        label: 'Data source',
        type: 'datasource',
        query: 'prometheus',
        current: {},
        hide: 0,
        refresh: 1,
        regex: '',
        options: [],
      },
    ] + [
      variable(l, std.asciiUpper(l[0]) + l[1:], 'label_values(itniotech_exporter_build_info{%s}, %s)' % [sel, l], allValue='.+')
      for l in extraGroup
    ] + [
      variable('job', 'Job', 'label_values(itniotech_exporter_build_info{%s}, job)' % std.join(', ', [sel] + ['%s=~"$%s"' % [l, l] for l in extraGroup]), allValue='.+'),
      variable('instance', 'Instance', 'label_values(itniotech_exporter_build_info{%s}, instance)' % self.groupMatchers, allValue='.+'),
    ] + [
      // [name, label, query] is a query variable; an object is a variable as is.
      if std.isArray(v) then variable(v[0], v[1], v[2]) else v
      for v in extra
    ],

  dashboard(uid, title, description, panels, variables, alertNames)::
    {
      uid: uid,
      title: title,
      description: description,
      tags: config.dashboardTags,
      timezone: config.dashboardTimezone,
      refresh: config.dashboardRefresh,
      time: { from: config.dashboardPeriod, to: 'now' },
      schemaVersion: 39,
      version: 1,
      editable: false,
      graphTooltip: 1,
      links: [{ title: 'itniotech dashboards', type: 'dashboards', tags: config.dashboardTags, asDropdown: true, includeVars: true, keepTime: true }],
      annotations: {
        list: [
          {
            builtIn: 1,
            datasource: { type: 'grafana', uid: '-- Grafana --' },
            enable: true,
            hide: true,
            iconColor: 'rgba(0, 211, 255, 1)',
            name: 'Annotations & Alerts',
            type: 'dashboard',
          },
          {
            name: 'itniotech alerts',
            datasource: ds,
            enable: true,
            iconColor: 'red',
            expr: 'ALERTS{alertstate="firing", alertname=~"%s", %s}' % [std.join('|', alertNames), $.groupMatchers],
            step: '60s',
            titleFormat: '{{alertname}}',
            textFormat: '{{severity}} {{app_id}} {{country}} {{flow_id}} {{instance}}',
            tagKeys: 'severity',
            useValueForTime: false,
          },
        ],
      },
      templating: { list: variables },
      panels: $.layout(panels),
    },
}
