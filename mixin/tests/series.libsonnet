// Builders of promtool input series. Time is in samples of the test's interval (1 minute
// unless a test says otherwise); a "segment" is [per-sample change or value, samples].
//
// Every value is snapped to a multiple of 1/1024, which binary floating point holds exactly:
// with 29.7 per minute, promtool's sums drift by 1e-12, a segment that starts at the exact
// decimal value then reads as a counter reset, and rate() counts the whole counter again.
local snap(x) = std.floor(x * 1024 + 0.5) / 1024;
local num(x) =
  if std.floor(x) == x && std.abs(x) < 1e15 then '%d' % x
  else std.rstripChars(std.rstripChars('%.10f' % x, '0'), '.');

{
  num:: num,

  // A counter starting at 0 that grows by segments [[increment per sample, samples], ...].
  // 'samples' values follow the first (t=0) sample.
  counter(segments, start=0)::
    local step(acc, seg) =
      local inc = snap(seg[0]), n = seg[1];
      if n <= 0 then acc
      else {
        v: acc.v + inc * n,
        tokens: acc.tokens + [
          if n == 1 then num(acc.v + inc)
          else '%s%s%sx%d' % [num(acc.v + inc), if inc < 0 then '-' else '+', num(std.abs(inc)), n - 1],
        ],
      };
    std.join(' ', std.foldl(step, segments, { v: snap(start), tokens: [num(snap(start))] }).tokens),

  // A gauge: segments [[value, samples], ...] held constant, starting at t=0.
  gauge(segments)::
    std.join(' ', [
      if s[1] == 1 then num(snap(s[0])) else '%sx%d' % [num(snap(s[0])), s[1] - 1]
      for s in segments
      if s[1] > 0
    ]),

  // A gauge moving linearly by `delta` per sample from `from`, for `samples` samples.
  ramp(from, delta, samples)::
    '%s%s%sx%d' % [num(snap(from)), if delta < 0 then '-' else '+', num(std.abs(snap(delta))), samples - 1],

  // Nothing for `samples` samples (the series does not exist yet).
  absent(samples):: '_x%d' % samples,

  // A label set in PromQL series notation.
  labels(name, ls)::
    name + '{' + std.join(',', ['%s="%s"' % [k, ls[k]] for k in std.objectFields(ls)]) + '}',
}
