// The rules an alert needs: its alerting rules and, transitively, every recording rule their
// expressions or annotation queries name. The drill suite loads only these, which makes a
// promtool evaluation of one alert's drill ~10x cheaper than loading all rule groups.
// Characters that end a metric name in PromQL and in annotation templates.
local delimiters = std.stringChars('(){}[],"\'`*/+-<>=!~^%|$.#@?&;\n\t');

// The metric-name-like words of a text. (std.strReplace is native in go-jsonnet; a per-character
// comprehension is ~20x slower.)
local words(text) =
  std.set(std.split(std.foldl(function(s, ch) std.strReplace(s, ch, ' '), delimiters, text), ' '));

local ruleText(r) = r.expr + ' ' + std.join(' ', std.objectValues(std.get(r, 'annotations', {})));

{
  // An index of the recording rules' dependencies (computed once; object fields are cached),
  // with forAlert(alert): the groups of `recording` and `alerting` restricted to the alerting
  // rules named `alert` and the recording rules they depend on, in file order.
  new(recording, alerting):: {
    local recRules = std.flattenArrays([g.rules for g in recording.groups]),
    local recNames = std.set([r.record for r in recRules]),
    deps:: { [r.record]: std.setInter(words(ruleText(r)), recNames) for r in recRules },
    local deps = self.deps,

    forAlert(alert)::
      local alertRules = [r for g in alerting.groups for r in g.rules if r.alert == alert];
      assert std.length(alertRules) > 0 : 'no alerting rule named ' + alert;
      local direct = std.foldl(std.setUnion, [std.setInter(words(ruleText(r)), recNames) for r in alertRules], []);
      local fix(names, depth) =
        local next = std.foldl(std.setUnion, [deps[n] for n in names], names);
        if next == names || depth > 20 then names else fix(next, depth + 1);
      local needed = fix(direct, 0);
      {
        groups: [
          g { rules: [r for r in g.rules if std.setMember(r.record, needed)] }
          for g in recording.groups
          if std.length([r for r in g.rules if std.setMember(r.record, needed)]) > 0
        ] + [
          g { rules: [r for r in g.rules if r.alert == alert] }
          for g in alerting.groups
          if std.length([r for r in g.rules if r.alert == alert]) > 0
        ],
      },
  },

  // OtpSmsDeliveryFailureRateHigh -> otp-sms-delivery-failure-rate-high
  slug(name)::
    std.join('', [
      local ch = name[i];
      if ch != std.asciiLower(ch) then (if i == 0 then '' else '-') + std.asciiLower(ch) else ch
      for i in std.range(0, std.length(name) - 1)
    ]),
}
