#!/usr/bin/env node
// Lints the OpenAPI document with Redocly (redocly.yaml: the recommended ruleset). The bar is 0 errors and
// 0 warnings (redocly exits 0 on warnings, so the totals decide). Offline: no telemetry, no update check.
// Usage: node scripts/lint-openapi.mjs [file]   (default: docs/openapi.json, the `keyserver` api of redocly.yaml)
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' };
const target = process.argv[2] ?? 'keyserver';
const lint = (format) =>
  spawnSync('npx', ['--no-install', 'redocly', 'lint', '--config', 'redocly.yaml', '--format', format, '--max-problems', '500', target], { cwd: root, env, encoding: 'utf8' });

const r = lint('json');
let totals;
try {
  totals = JSON.parse(r.stdout).totals;
} catch {
  process.stderr.write(`${r.stdout ?? ''}${r.stderr ?? ''}`);
  console.error('OpenAPI lint: redocly gave no result');
  process.exit(1);
}
if (totals.errors > 0 || totals.warnings > 0) {
  process.stdout.write(lint('codeframe').stdout ?? '');
  console.error(`OpenAPI lint failed: ${totals.errors} error(s), ${totals.warnings} warning(s); the bar is 0 and 0`);
  process.exit(1);
}
console.log(`OpenAPI lint: ${target} valid, 0 errors, 0 warnings (${totals.ignored} ignored)`);
