#!/usr/bin/env node
// Type-checks what the builds do not: every project's specs (jest compiles them without type checks), the
// end-to-end suite and the benchmark. Two tsc at a time (2 cores). Exit 1 with tsc's own output if any fails.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const configs = ['apps', 'libs', 'tools']
  .flatMap((dir) => readdirSync(join(root, dir)).map((p) => join(dir, p, 'tsconfig.spec.json')))
  .concat(['apps/keyserver-e2e/tsconfig.json', 'scripts/bench/tsconfig.json'])
  .filter((p) => existsSync(join(root, p)));

const tsc = join(root, 'node_modules/typescript/bin/tsc');
const failed = [];
async function check(config) {
  const out = await new Promise((resolve) => {
    const child = spawn(process.execPath, [tsc, '--noEmit', '-p', config], { cwd: root });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('close', (code) => resolve({ code, text }));
  });
  console.log(`${out.code === 0 ? 'ok  ' : 'FAIL'} ${config}`);
  if (out.code !== 0) failed.push({ config, text: out.text });
}
const queue = [...configs];
await Promise.all([0, 1].map(async () => { while (queue.length) await check(queue.shift()); }));
for (const f of failed) console.error(`\n--- ${f.config}\n${f.text}`);
process.exit(failed.length ? 1 : 0);
