#!/usr/bin/env node
// `npm run ha:up` / `npm run ha:down` / `node scripts/ha/ha.mjs status`: the HA test bed (scripts/ha/ha-bed.cjs).
// Ports: HA_BASE_PORT (default 26000) + fixed offsets, away from `npm start` (3000, 4011, 8080).
// Options: HA_API_REPLICAS (2), HA_NODES (3).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bedModule from './ha-bed.cjs';
import platform from '../platform.cjs';

const pointer = join(platform.root, '.keyserver', 'ha.json');
const [command = 'up'] = process.argv.slice(2);

function current() {
  if (!existsSync(pointer)) return undefined;
  const { dir } = JSON.parse(readFileSync(pointer, 'utf8'));
  return existsSync(join(dir, 'state.json')) ? bedModule.load(dir) : undefined;
}

if (command === 'up') {
  if (current()) {
    console.error('ha:up: a bed is already running (npm run ha:down first)');
    process.exit(1);
  }
  const started = Date.now();
  try {
    const bed = await bedModule.up({
      basePort: Number(process.env.HA_BASE_PORT ?? 26000),
      apiReplicas: Number(process.env.HA_API_REPLICAS ?? 2),
      nodes: Number(process.env.HA_NODES ?? 3),
      onStep: (s) => console.log(`- ${s}`),
    });
    mkdirSync(join(platform.root, '.keyserver'), { recursive: true });
    writeFileSync(pointer, JSON.stringify({ dir: bed.dir }));
    const u = bed.urls;
    console.log(`\nHA bed up in ${((Date.now() - started) / 1000).toFixed(0)} s (state and logs: ${bed.dir})
  API (HAProxy, ${u.apiReplicas.length} replicas)  ${u.api}
  keyclient (HAProxy)               ${u.keyclient}
  PostgreSQL primary (HAProxy)      ${u.database}
  PostgreSQL replicas (HAProxy)     ${u.databaseReplicas}
  HAProxy stats                     ${u.haproxyStats}
  Patroni REST                      ${bed.ports.patroniRest.map((p) => `http://127.0.0.1:${p}`).join(' ')}
  emulator                          ${u.emulator}
Stop with: npm run ha:down`);
  } catch (err) {
    console.error(`ha:up failed: ${err.message}`);
    process.exit(1);
  }
} else if (command === 'down') {
  const bed = current();
  if (!bed) {
    console.log('ha:down: no bed running');
  } else {
    await bed.down();
    console.log(`ha:down: stopped and removed ${bed.dir}`);
  }
  rmSync(pointer, { force: true });
} else if (command === 'status') {
  const bed = current();
  if (!bed) {
    console.log('no bed running');
  } else {
    const c = await bed.cluster();
    for (const m of c.members) console.log(`${m.name}\t${m.role}\t${m.state}\ttimeline ${m.timeline ?? '-'}\tlag ${m.lag ?? 0}`);
  }
} else {
  console.error('usage: ha.mjs up|down|status');
  process.exit(2);
}
