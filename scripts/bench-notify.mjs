#!/usr/bin/env node
// Does a busy notification dispatcher slow the sign path? Sign orders measured idle, while the dispatcher drains
// a backlog, and idle again, in one run (docs/notifications.md "Not on the sign path").
// Usage: npm run bench:notify  (or: node scripts/bench-notify.mjs [--seconds 8] [--backlog 20000] [--concurrency 4])
// Needs the built apps (npm run build) and PostgreSQL on 127.0.0.1:5432.
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTsBench } from './bench/load-ts.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const work = mkdtempSync(join(tmpdir(), 'ks-bench-notify-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const { runNotifyBench } = await loadTsBench(root, 'scripts/bench/notify-sign-path.ts', work);
console.log(`machine: ${cpus().length} cores, load average ${loadavg().map((l) => l.toFixed(2)).join(' / ')}, node ${process.version}`);
const phases = await runNotifyBench({ seconds: arg('seconds', 8), backlog: arg('backlog', 20000), concurrency: arg('concurrency', 4) }, (m) => console.log(m));
const idle = (phases[0].perSecond + phases[2].perSecond) / 2;
console.log(`busy / idle sign orders per second: ${(phases[1].perSecond / idle).toFixed(2)} (p50 ${phases[1].p50ms.toFixed(1)} ms vs ${((phases[0].p50ms + phases[2].p50ms) / 2).toFixed(1)} ms); dispatcher ${phases[1].deliveriesPerSecond.toFixed(0)} deliveries/s meanwhile; load average now ${loadavg().map((l) => l.toFixed(2)).join(' / ')}`);
process.exit(0);
