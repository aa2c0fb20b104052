// Builders of promtool input series. Time is in samples of the test's interval (1 minute
// unless a test says otherwise); a "segment" is [per-sample change or value, samples].
//
// Every value is snapped to a multiple of 1/1024, which binary floating point holds exactly:
// with 29.7 per minute, promtool's sums drift by 1e-12, a segment that starts at the exact
// decimal value then reads as a counter reset, and rate() counts the whole counter again.
local snap(x) = std.floor(x * 1024 + 0.5) / 1024;
// std.toString prints the shortest exact form of a snapped value, and unlike std.format (a
// few milliseconds a call in go-jsonnet) it is native: a week of series renders in a second.
local num(x) = if x == 0 then '0' else std.toString(x);  // not "-0"

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
          else num(acc.v + inc) + (if inc < 0 then '-' else '+') + num(std.abs(inc)) + 'x' + num(n - 1),
        ],
      };
    std.join(' ', std.foldl(step, segments, { v: snap(start), tokens: [num(snap(start))] }).tokens),

  // A gauge: segments [[value, samples], ...] held constant, starting at t=0.
  gauge(segments)::
    std.join(' ', [
      if s[1] == 1 then num(snap(s[0])) else num(snap(s[0])) + 'x' + num(s[1] - 1)
      for s in segments
      if s[1] > 0
    ]),

  // A gauge moving linearly by `delta` per sample from `from`, for `samples` samples.
  ramp(from, delta, samples)::
    num(snap(from)) + (if delta < 0 then '-' else '+') + num(std.abs(snap(delta))) + 'x' + num(samples - 1),

  // Nothing for `samples` samples (the series does not exist yet).
  absent(samples):: '_x' + num(samples),

  // A label set in PromQL series notation.
  labels(name, ls)::
    name + '{' + std.join(',', [k + '="' + ls[k] + '"' for k in std.objectFields(ls)]) + '}',
}
