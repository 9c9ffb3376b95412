#!/usr/bin/env node
// What the HTTP adapter alone costs: a bare node:http server, a one-route Nest app on Express and the same app on
// Fastify (@nestjs/platform-fastify, installed to measure), each driven by wrk (1 thread, 8 connections) in
// interleaved rounds; reports requests/s and server CPU ms per request (from /proc) for each.
// Usage: node scripts/bench/adapters.cjs [--seconds 4] [--rounds 3] [--port-base 28700]   (docs/benchmarks.md, issue 20)
'use strict';
const { execFileSync, spawn } = require('node:child_process');
const { readFileSync, writeFileSync, mkdtempSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};

if (process.argv[2] === 'serve') {
  // Child: one server on the given port.
  const [, , , kind, port] = process.argv;
  if (kind === 'bare') {
    require('node:http')
      .createServer((q, s) => {
        s.setHeader('content-type', 'application/json');
        s.end('{"status":"ok"}');
      })
      .listen(Number(port), '127.0.0.1');
  } else {
    require('reflect-metadata');
    const { Controller, Get, Module } = require('@nestjs/common');
    const { NestFactory } = require('@nestjs/core');
    class Health {
      healthz() {
        return { status: 'ok' };
      }
    }
    Get('healthz')(Health.prototype, 'healthz', Object.getOwnPropertyDescriptor(Health.prototype, 'healthz'));
    Controller()(Health);
    class App {}
    Module({ controllers: [Health] })(App);
    (async () => {
      const app =
        kind === 'fastify'
          ? await NestFactory.create(App, new (require('@nestjs/platform-fastify').FastifyAdapter)(), { logger: false })
          : await NestFactory.create(App, { logger: false });
      await app.listen(Number(port), '127.0.0.1');
    })();
  }
  return;
}

const SECONDS = arg('seconds', 4);
const ROUNDS = arg('rounds', 3);
const dir = mkdtempSync(join(tmpdir(), 'ks-adapters-'));
const script = join(dir, 'get.lua');
writeFileSync(
  script,
  `wrk.path = "/healthz"\ndone = function(s, l) io.write(string.format('WRKJSON {"requests":%d,"us":%d,"status":%d}\\n', s.requests, s.duration, s.errors.status)) end\n`,
);
const cpuMs = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const r = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(r[11]) + Number(r[12])) * 10;
};
const kinds = ['bare', 'express', 'fastify'];
const BASE = arg('port-base', 28700);
const servers = kinds.map((kind, i) => ({ kind, port: BASE + i, child: spawn(process.execPath, [__filename, 'serve', kind, String(BASE + i)], { stdio: 'inherit' }) }));
const wait = (ms) => new Promise((r) => setTimeout(r, ms));
(async () => {
  try {
    await wait(3000);
    const best = {};
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of round % 2 ? [...servers].reverse() : servers) {
        const c0 = cpuMs(s.child.pid);
        const out = execFileSync('wrk', ['-t1', '-c8', `-d${SECONDS}s`, '-s', script, `http://127.0.0.1:${s.port}`], { encoding: 'utf8' });
        const c1 = cpuMs(s.child.pid);
        const j = JSON.parse(out.split('\n').find((l) => l.startsWith('WRKJSON ')).slice(8));
        const ok = j.requests - j.status;
        const cell = { perSecond: ok / (j.us / 1e6), cpuMsPerRequest: (c1 - c0) / ok, errors: j.status };
        console.log(`round ${round + 1} ${s.kind}: ${cell.perSecond.toFixed(0)}/s, ${cell.cpuMsPerRequest.toFixed(4)} ms CPU/request, ${cell.errors} errors`);
        if (!best[s.kind] || cell.perSecond > best[s.kind].perSecond) best[s.kind] = cell;
      }
    }
    console.log(JSON.stringify(best));
  } finally {
    for (const s of servers) s.child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
})();
