#!/usr/bin/env node
// `npm test`: every check and every test, in the order a failure is cheapest to find.
// generate Prisma client -> lint (ESLint, tsc on the specs, then Redocly on docs/openapi.json) -> build -> unit/integration tests per project -> end-to-end tests.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(root);
const env = { ...process.env, NX_NO_CLOUD: 'true', NX_DAEMON: 'false', NX_TUI: 'false', FORCE_COLOR: '0' };
const summaryFile = join(root, 'test-artifacts', 'jest-summary.jsonl');
rmSync(summaryFile, { force: true });

function step(title, cmd, args) {
  const started = Date.now();
  console.log(`\n=== ${title}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { stdio: 'inherit', env });
  const secs = ((Date.now() - started) / 1000).toFixed(0);
  if (r.status !== 0) {
    console.error(`=== ${title} FAILED after ${secs}s (exit ${r.status ?? r.signal})`);
    summary();
    process.exit(r.status || 1);
  }
  console.log(`=== ${title} ok (${secs}s)`);
}

function summary() {
  if (!existsSync(summaryFile)) return;
  let passed = 0;
  let failed = 0;
  for (const line of readFileSync(summaryFile, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line);
    passed += r.passed;
    failed += r.failed;
  }
  console.log(`\n${passed} passed, ${failed} failed`);
}

const only = process.argv.slice(2);
const want = (name) => only.length === 0 || only.includes(name);

if (want('generate')) step('prisma client', 'npm', ['run', '-s', 'db:generate']);
if (want('lint')) step('lint', 'npx', ['nx', 'run-many', '-t', 'lint', '--parallel=2']);
if (want('lint')) step('types of specs, e2e and bench (tsc --noEmit)', 'node', ['scripts/typecheck.mjs']);
if (want('lint')) step('OpenAPI lint (Redocly, 0 errors and 0 warnings)', 'node', ['scripts/lint-openapi.mjs']);
if (want('build')) step('build', 'npx', ['nx', 'run-many', '-t', 'build', '--parallel=2']);
// Test results are never taken from the Nx cache: a test run must run the tests.
if (want('unit')) step('tests', 'npx', ['nx', 'run-many', '-t', 'test', '--parallel=2', '--exclude=keyserver-e2e', '--skip-nx-cache']);
if (want('e2e')) step('end-to-end tests', 'npx', ['nx', 'run', 'keyserver-e2e:e2e']);
summary();
