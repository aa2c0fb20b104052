// PromQL building blocks that apply the configuration: the exporter selector on every raw
// series, and the group (and instance) labels in every `by` and `on`.
function(config) {
  local join(ls) = std.join(', ', ls),

  // The configuration with every number as PromQL text: 0.98, not 0.97999999999999998.
  text(v)::
    if std.isNumber(v) then (if std.floor(v) == v && std.abs(v) < 1e15 then '%d' % v else '%g' % v)
    else if std.isObject(v) then { [k]: $.text(v[k]) for k in std.objectFields(v) }
    else if std.isArray(v) then [$.text(x) for x in v]
    else v,

  groupLabels:: config.groupLabels,
  instanceLabels:: config.groupLabels + config.instanceLabels,

  // `by (<group labels>, extra...)`
  by(extra=[]):: 'by (' + join(config.groupLabels + extra) + ')',
  // `by (<group labels>, <instance labels>, extra...)`
  byInstance(extra=[]):: self.by(config.instanceLabels + extra),
  on(extra=[]):: 'on (' + join(config.groupLabels + extra) + ')',
  onInstance(extra=[]):: self.on(config.instanceLabels + extra),

  // A raw exporter series with the configured selector and extra matchers.
  m(metric, matchers='')::
    metric + '{' + config.itniotechSelector + (if matchers == '' then '' else ', ' + matchers) + '}',

  // Indents every line but the first of a multi-line expression, for nesting.
  indent(expr, n=2)::
    local pad = std.join('', [' ' for _ in std.range(1, n)]);
    std.join('\n' + pad, std.split(std.rstripChars(expr, '\n'), '\n')),

  // Template that reads one recorded value for the alert's own group labels and extra labels,
  // for annotations, e.g. the objective of the flow that burns its budget.
  queryValue(metric, extra=[], format='humanizePercentage')::
    local ls = config.groupLabels + extra;
    local fmt = metric + '{' + std.join(',', ['%s=%%q' % l for l in ls]) + '}';
    '{{ with printf `%s` %s | query }}{{ . | first | value | %s }}{{ end }}' % [
      fmt,
      std.join(' ', ['$labels.' + l for l in ls]),
      format,
    ],
}
