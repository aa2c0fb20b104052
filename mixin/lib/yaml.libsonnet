// A small YAML emitter: std.manifestYamlDoc sorts keys (a rule would read `expr:` before
// `alert:`) and double-quotes every string, which makes the rendered rule files hard to review.
// This one keeps a preferred key order, writes simple strings plain, other one-line strings in
// single quotes (PromQL is full of double quotes) and multi-line strings as literal blocks.
local keyOrder = [
  // rule groups and rules
  'name', 'interval', 'rule_files', 'evaluation_interval', 'group_eval_order', 'tests',
  'alert', 'record', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations', 'rules',
  // promtool tests
  'input_series', 'series', 'values', 'alert_rule_test', 'promql_expr_test', 'eval_time',
  'alertname', 'exp_alerts', 'exp_labels', 'exp_annotations', 'exp_samples', 'value',
  // alertmanager
  'route', 'receiver', 'group_by', 'group_wait', 'group_interval', 'repeat_interval',
  'matchers', 'routes', 'receivers', 'inhibit_rules', 'source_matchers', 'target_matchers',
  'equal',
  // annotations
  'summary', 'description', 'runbook_url',
];

local rank(k) =
  local i = std.find(k, keyOrder);
  if std.length(i) > 0 then i[0] else std.length(keyOrder);

local orderedFields(o) =
  std.sort(std.objectFields(o), function(k) [rank(k), k]);

// Character classes as objects: std.objectHas is a native lookup, std.setMember is not.
local charSet(chars) = { [ch]: true for ch in std.stringChars(chars) };
local plainChars = charSet('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./-:');
local digits = charSet('0123456789');
local durationChars = charSet('0123456789smhdwy');
local reserved = { 'true': true, 'false': true, yes: true, no: true, on: true, off: true, 'null': true, y: true, n: true };
local only(s, set) = std.length([ch for ch in std.stringChars(s) if !std.objectHas(set, ch)]) == 0;

// `5m`, `1h30m`: a Prometheus duration, never a YAML number.
local isDuration(s) =
  std.objectHas(digits, s[0]) && !std.objectHas(digits, s[std.length(s) - 1]) && only(s, durationChars);

// Names, label values, durations. Anything longer or fancier is quoted.
local isPlain(s) =
  s != '' && std.length(s) <= 64
  && only(s, plainChars)
  // `a:b:c` is plain YAML; a trailing colon is not.
  && s[std.length(s) - 1] != ':'
  && !std.objectHas(reserved, std.asciiLower(s))
  // A leading digit, dot, dash or colon could read as a number, a sequence entry or a key.
  && (isDuration(s) || !std.objectHas(charSet('0123456789.-:'), s[0]));

local quote(s) = "'" + std.strReplace(s, "'", "''") + "'";

local indentLines(s, pad) =
  std.join('\n', [if l == '' then '' else pad + l for l in std.split(s, '\n')]);

local scalar(v, pad) =
  if std.isString(v) then
    local lines = std.split(v, '\n');
    if std.length(lines) > 1 then
      local body = std.rstripChars(v, '\n');
      local trailing = std.length(v) - std.length(body);
      local chomp = if trailing == 0 then '|-' else if trailing == 1 then '|' else '|+';
      chomp + '\n' + indentLines(body, pad + '  ')
    else if isPlain(v) then v
    else quote(v)
  else if std.isBoolean(v) then (if v then 'true' else 'false')
  else if v == null then 'null'
  else std.toString(v);

local isCollection(v) = std.isObject(v) || std.isArray(v);
local isEmpty(v) = (std.isObject(v) && std.length(std.objectFields(v)) == 0) || (std.isArray(v) && std.length(v) == 0);

// `pad` is the indentation of the value's own lines.
local value(v, pad) =
  if std.isObject(v) && !isEmpty(v) then
    std.join('\n', [
      local x = v[k];
      if isCollection(x) && !isEmpty(x) then
        pad + k + ':\n' + value(x, pad + '  ')
      else
        pad + k + ': ' + (if isEmpty(x) then (if std.isArray(x) then '[]' else '{}') else scalar(x, pad))
      for k in orderedFields(v)
    ])
  else if std.isArray(v) && !isEmpty(v) then
    std.join('\n', [
      if isCollection(x) && !isEmpty(x) then
        // The first line of the item goes after the dash.
        local inner = value(x, pad + '  ');
        pad + '- ' + std.lstripChars(inner, ' ')
      else
        pad + '- ' + (if isEmpty(x) then (if std.isArray(x) then '[]' else '{}') else scalar(x, pad + '  '))
      for x in v
    ])
  else
    pad + scalar(v, pad);

{
  // The YAML document of `v` (an object), with an optional leading comment.
  manifest(v, header='')::
    (if header == '' then '' else std.join('\n', ['# ' + l for l in std.split(header, '\n')]) + '\n')
    + value(v, '') + '\n',
}
