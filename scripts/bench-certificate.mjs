#!/usr/bin/env node
// In-process CPU per device certificate in @keyserver/pki, by stage (parse, PoP, policy+profile+TBS, assembly
// around a fixed signature; no HSM, HTTP or database). Usage: node scripts/bench-certificate.mjs [--runs 2000] [--rounds 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadTsBench } from './bench/load-ts.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const work = mkdtempSync(join(tmpdir(), 'ks-certbench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));
const { runCertificatePath } = await loadTsBench(root, 'scripts/bench/certificate-path.ts', work);
console.log(`load average ${loadavg().map((l) => l.toFixed(2)).join(' / ')}`);
const best = await runCertificatePath({ runs: arg('runs', 2000), rounds: arg('rounds', 3) }, (m) => console.log(m));
console.log(`best of rounds (ms/certificate): ${JSON.stringify(Object.fromEntries(Object.entries(best).map(([k, v]) => [k, Number(v.toFixed(4))])))}`);
