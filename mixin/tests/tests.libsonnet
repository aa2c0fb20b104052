// Every drill case, and the promtool test files they render to: one file per alert and
// evaluation interval, loading only the rules that alert needs (lib/closure.libsonnet).
local closure = import '../lib/closure.libsonnet';

local cases =
  (import 'drills-delivery.libsonnet')
  + (import 'drills-money.libsonnet')
  + (import 'drills-exporter.libsonnet');

local slugs = { [a]: closure.slug(a) for a in std.set([c.alert for c in cases]) };
local key(c) = slugs[c.alert] + (if c.evalInterval == '1m' then '' else '.' + c.evalInterval);
local keyed = [{ key: key(c), case: c } for c in cases];

{
  cases:: cases,
  slugs:: slugs,

  // { path: {interval, alert, cases} }
  drillFiles:: {
    ['alerts/tests/drills/%s.test.yml' % k]: {
      local mine = [x.case for x in keyed if x.key == k],
      alert: mine[0].alert,
      interval: mine[0].evalInterval,
      cases: mine,
    }
    for k in std.set([x.key for x in keyed])
  },
}
