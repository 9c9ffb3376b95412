#!/usr/bin/env node
// The PostgreSQL limits a sign order meets (docs/scaling.md), measured with pgbench (a tool we did not write):
//   hot row      one counter row updated by every client (one operation's usage counter: operation_key.usagesUsed)
//   64 rows      the same update spread over 64 rows (usages spread over operations and keys)
//   global lock  transaction-scoped advisory lock + insert (the audit chain's append lock, keyserver_append_audit)
//   insert       plain insert, no shared row (the yardstick: commits/s of this server)
// Usage: node scripts/ha/pgbench-hot-row.mjs [--url postgresql://postgres@127.0.0.1:5432/postgres] [--seconds 10] [--clients 8]
// It creates and drops its own database on that server (the HA bed's primary port works too: npm run ha:up).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const url = new URL(arg('url', 'postgresql://postgres@127.0.0.1:5432/postgres'));
const seconds = Number(arg('seconds', 10));
const clients = Number(arg('clients', 8));
const pgbench = process.env.PGBENCH ?? '/usr/lib/postgresql/15/bin/pgbench';
const db = `ks_pgbench_${process.pid}`;

const admin = new pg.Client({ connectionString: url.toString() });
await admin.connect();
await admin.query(`CREATE DATABASE ${db}`);
const target = new URL(url);
target.pathname = `/${db}`;
const dir = mkdtempSync(join(tmpdir(), 'ks-pgbench-'));
try {
  const c = new pg.Client({ connectionString: target.toString() });
  await c.connect();
  await c.query('CREATE TABLE hot (id int PRIMARY KEY, n bigint NOT NULL DEFAULT 0)');
  await c.query('INSERT INTO hot (id) SELECT generate_series(1, 64)');
  await c.query('CREATE TABLE log (id bigserial PRIMARY KEY, v int, at timestamptz DEFAULT now())');
  const sync = (await c.query(`SELECT current_setting('synchronous_standby_names') AS s, current_setting('synchronous_commit') AS c`)).rows[0];
  await c.end();
  const scripts = {
    'hot row': 'UPDATE hot SET n = n + 1 WHERE id = 1;\n',
    '64 rows': '\\set id random(1, 64)\nUPDATE hot SET n = n + 1 WHERE id = :id;\n',
    'global lock': 'BEGIN;\nSELECT pg_advisory_xact_lock(4242);\nINSERT INTO log (v) VALUES (1);\nCOMMIT;\n',
    insert: 'INSERT INTO log (v) VALUES (1);\n',
  };
  const rows = [];
  for (const [name, sql] of Object.entries(scripts)) {
    const file = join(dir, `${name.replace(/\W/g, '_')}.sql`);
    writeFileSync(file, sql);
    const out = execFileSync(
      pgbench,
      ['-n', '-h', target.hostname, '-p', target.port || '5432', '-U', decodeURIComponent(target.username || 'postgres'), '-c', String(clients), '-j', '2', '-T', String(seconds), '-f', file, db],
      { encoding: 'utf8', env: { ...process.env, PGPASSWORD: decodeURIComponent(target.password) } },
    );
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
    const latency = Number(/latency average = ([\d.]+) ms/.exec(out)?.[1]);
    rows.push({ name, tps, latency });
  }
  console.log(`pgbench ${url.host}, ${clients} clients, ${seconds} s per script, synchronous_standby_names '${sync.s}', synchronous_commit ${sync.c}, load average ${loadavg().map((x) => x.toFixed(2)).join(' / ')}`);
  console.log('| script | transactions/s | average latency ms |\n| --- | ---: | ---: |');
  for (const r of rows) console.log(`| ${r.name} | ${r.tps.toFixed(0)} | ${r.latency.toFixed(2)} |`);
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await admin.end();
  rmSync(dir, { recursive: true, force: true });
}
