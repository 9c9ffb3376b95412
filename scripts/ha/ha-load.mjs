#!/usr/bin/env node
// Sign-order throughput through the running HA bed (npm run ha:up): HAProxy -> N API replicas -> Patroni primary
// with a synchronous standby. Cells: 1 or all API replicas (the others disabled in HAProxy through its runtime API)
// x orders on 1 operation or spread over 8 operations. Closed loop, `--concurrency` workers, `--seconds` per cell.
// Usage: node scripts/ha/ha-load.mjs [--seconds 8] [--concurrency 16]
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import bedModule from './ha-bed.cjs';
import platform from '../platform.cjs';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const seconds = arg('seconds', 8);
const concurrency = arg('concurrency', 16);
const bed = bedModule.load(JSON.parse(readFileSync(join(platform.root, '.keyserver', 'ha.json'), 'utf8')).dir);
const facts = bed.state.facts;
const ci = facts.ciClients.find((c) => c.name === 'demo-ci');
const tok = await fetch(facts.tokenEndpoint, {
  method: 'POST',
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
  body: new URLSearchParams({ grant_type: 'client_credentials', client_id: ci.clientId, client_secret: ci.clientSecret, scope: facts.defaultScope }),
});
const token = (await tok.json()).access_token;
const api = bed.urls.api;
const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

async function operation() {
  const now = Date.now();
  const r = await fetch(`${api}/api/v1/operations`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ description: 'HA bed load measurement', validFrom: new Date(now - 60_000).toISOString(), validTo: new Date(now + 3_600_000).toISOString(), keys: [{ keyid: 'demo-fw-dev', usages: 100_000 }] }),
  });
  if (r.status !== 201) throw new Error(`operation: ${r.status} ${await r.text()}`);
  return (await r.json()).id;
}

// user+system CPU ms of the API processes (/proc/<pid>/stat, clock ticks of 10 ms).
function apiCpuMs() {
  let ms = 0;
  for (let i = 0; i < bed.ports.apiReplicas.length; i++) {
    const stat = readFileSync(`/proc/${bed.state.pids[`api${i + 1}`]}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ms += (Number(f[11]) + Number(f[12])) * 10;
  }
  return ms;
}

async function cell(ops) {
  const cpu0 = apiCpuMs();
  let ok = 0;
  let errors = 0;
  let n = 0;
  const latencies = [];
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        const i = n++;
        const digest = createHash('sha256').update(`ha-load ${process.pid} ${i}`).digest('hex');
        const t = performance.now();
        const r = await fetch(`${api}/api/signorders`, {
          method: 'POST',
          headers,
          body: JSON.stringify({ operationid: ops[i % ops.length], keyid: 'demo-fw-dev', inputdata: digest, inputformat: 'hex', inputpadding: 'none', signatureformat: 'asn1', description: 'HA bed load measurement' }),
        }).catch(() => undefined);
        await r?.arrayBuffer();
        if (r?.status === 201) {
          ok++;
          latencies.push(performance.now() - t);
        } else {
          if (errors++ === 0 && r) console.error(`first error: ${r.status}`);
        }
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return { rate: ok / seconds, p50: latencies[Math.floor(latencies.length / 2)] ?? 0, errors, cpuPerOrder: ok ? (apiCpuMs() - cpu0) / ok : 0 };
}

const replicas = bed.ports.apiReplicas.length;
const setReplicas = async (count) => {
  for (let i = 0; i < replicas; i++) await bed.haproxyCommand(`${i < count ? 'enable' : 'disable'} server api/api${i + 1}`);
  await new Promise((r) => setTimeout(r, 1500));
};
console.log(`HA bed ${api}: ${replicas} API replicas, ${concurrency} workers, ${seconds} s per cell, load average ${loadavg().map((x) => x.toFixed(2)).join(' / ')}`);
console.log('| API replicas | operations | sign orders/s | p50 ms | API CPU ms/order | errors |\n| ---: | ---: | ---: | ---: | ---: | ---: |');
try {
  for (const count of [1, replicas]) {
    await setReplicas(count);
    for (const spread of [1, 8]) {
      const ops = await Promise.all(Array.from({ length: spread }, operation));
      const r = await cell(ops);
      console.log(`| ${count} | ${spread} | ${r.rate.toFixed(1)} | ${r.p50.toFixed(1)} | ${r.cpuPerOrder.toFixed(2)} | ${r.errors} |`);
    }
  }
} finally {
  await setReplicas(replicas);
}
