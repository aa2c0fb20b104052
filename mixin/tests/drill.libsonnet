// The drill suite: one scenario per alert with a fire case, a quiet case and a low-volume case,
// rendered as promtool unit tests. Each case measures when its alert first fires, exactly:
//
//   min(min_over_time(timestamp(ALERTS{alertname="X", alertstate="firing", ...})[T:1m])) - start
//
// is the minute of the first firing evaluation after the incident started (promtool writes
// ALERTS into its storage like Prometheus does), and promtool compares it with `detect`. A
// quiet case asserts that no ALERTS{alertstate="firing"} sample of the alert exists at all.
// tests/drill.rs prints every case's detection time and checks the runbook states the same.
local series = import 'series.libsonnet';

{
  job:: 'itniotech-exporter',
  instance:: 'exp-0:9867',

  // A series of the exporter with the default target labels and `ls`.
  s(name, ls, values, job=self.job, instance=self.instance)::
    { series: series.labels(name, { job: job, instance: instance } + ls), values: values },

  // kind: 'fire', 'quiet' or 'low-volume'. `detect` (minutes after `start`) for a case that
  // fires, null for one that must stay quiet. `match` narrows the ALERTS series (labels of the
  // alert instance the case is about). `quietFrom` (minutes) limits a quiet check to the end of
  // the run, for cases whose first days build history the check is not about. `firingAt`:
  // minutes at which the alert must (still) be firing. `extra`: more promql_expr_test items.
  // `evalInterval`: 1m (detection times to the minute) unless a case simulates days of history
  // only to assert quiet or still-firing states.
  case(alert, kind, id, what, input, minutes, start=0, detect=null, match='', quietFrom=0, firingAt=[], extra=[], alerts=[], evalInterval='1m')::
    assert std.member(['fire', 'quiet', 'low-volume'], kind) : 'kind ' + kind;
    assert kind != 'fire' || detect != null || firingAt != [] : alert + '/' + id + ': a fire case needs `detect` or `firingAt`';
    assert kind != 'quiet' || detect == null : alert + '/' + id + ': a quiet case cannot detect';
    local sel = 'ALERTS{alertname="%s", alertstate="firing"%s}' % [alert, if match == '' then '' else ', ' + match];
    {
      alert: alert,
      kind: kind,
      id: id,
      minutes: minutes,
      detect: detect,
      evalInterval: evalInterval,
      test: {
        name: '%s | %s | %s | %s' % [alert, kind, id, what],
        interval: '1m',
        input_series: input,
        promql_expr_test: [x for x in [
          // The case id as a label, so that promtool's "got" names the case.
          if detect == null && firingAt != [] then null
          else if detect != null then {
            expr: 'label_replace(min(min_over_time(timestamp(%s)[%dm:1m])) - %d, "case", "%s", "", "")' % [sel, minutes, start * 60, id],
            eval_time: '%dm' % minutes,
            exp_samples: [{ labels: '{case="%s"}' % id, value: detect * 60 }],
          } else {
            expr: 'label_replace(count(max_over_time(%s[%dm])), "case", "%s", "", "")' % [sel, minutes - quietFrom, id],
            eval_time: '%dm' % minutes,
            exp_samples: [],
          },
        ] + [
          {
            expr: 'label_replace(count(%s), "case", "%s", "", "")' % [sel, id],
            eval_time: '%dm' % t,
            exp_samples: [{ labels: '{case="%s"}' % id, value: 1 }],
          }
          for t in firingAt
        ] + extra if x != null],
      } + (if alerts == [] then {} else { alert_rule_test: alerts }),
    },
}
