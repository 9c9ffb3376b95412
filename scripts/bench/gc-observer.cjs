// Loaded into each API process by the benchmark (NODE_OPTIONS=--require): appends every garbage-collection pause of
// 1 ms or more and every 100 ms window whose event-loop delay exceeded 10 ms to $KEYSERVER_BENCH_GC_LOG.<pid> as
// JSON lines with wall-clock times, so the fixed-rate cell can say which of its slow answers were GC pauses.
'use strict';
const { appendFileSync } = require('node:fs');
const { PerformanceObserver, monitorEventLoopDelay, constants } = require('node:perf_hooks');

const file = `${process.env.KEYSERVER_BENCH_GC_LOG}.${process.pid}`;
const KIND = { [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor', [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major', [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental', [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb' };
const origin = Date.now() - performance.now();
new PerformanceObserver((list) => {
  const lines = [];
  for (const e of list.getEntries()) if (e.duration >= 1) lines.push(JSON.stringify({ at: Math.round(origin + e.startTime), gc: KIND[e.detail?.kind] ?? 'other', ms: Math.round(e.duration * 10) / 10 }));
  if (lines.length) appendFileSync(file, lines.join('\n') + '\n');
}).observe({ entryTypes: ['gc'] });
const delay = monitorEventLoopDelay({ resolution: 5 });
delay.enable();
setInterval(() => {
  const max = delay.max / 1e6;
  if (max > 10) appendFileSync(file, JSON.stringify({ at: Date.now(), loopMaxMs: Math.round(max * 10) / 10 }) + '\n');
  delay.reset();
}, 100).unref();
