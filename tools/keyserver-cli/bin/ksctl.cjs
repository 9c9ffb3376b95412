#!/usr/bin/env node
// npm bin entry of the workspace package @keyserver/ksctl (`npx ksctl` from the repository after `npm ci`).
// Runs the built CLI (dist/tools/keyserver-cli/main.js, `npx nx build keyserver-cli`); when that file is
// missing or older than ksctl's sources or the root package.json (the version it prints), it is built first
// with esbuild (under a second, same bundle options as the Nx target), so `npx ksctl` works without a separate
// build step.
'use strict';
const { existsSync, mkdirSync, readdirSync, renameSync, statSync } = require('node:fs');
const { dirname, join } = require('node:path');

const root = join(__dirname, '..', '..', '..');
const project = join(root, 'tools', 'keyserver-cli');
const out = join(root, 'dist', 'tools', 'keyserver-cli', 'main.js');

/**
 * The newest modification time under the given directories (ksctl and the libraries it bundles) and of the root
 * package.json, whose "version" (the product version) the build inlines for `ksctl --version`.
 */
function newest(dirs) {
  let t = Math.max(statSync(join(project, 'package.json')).mtimeMs, statSync(join(root, 'package.json')).mtimeMs);
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.spec.ts')) t = Math.max(t, statSync(p).mtimeMs);
    }
  };
  for (const d of dirs) if (existsSync(d)) walk(d);
  return t;
}

function stale() {
  if (process.env.KSCTL_NO_BUILD === '1') return false;
  if (!existsSync(out)) return true;
  // Without the sources (an installed copy of dist only) there is nothing to rebuild from.
  if (!existsSync(join(project, 'src', 'main.ts'))) return false;
  return statSync(out).mtimeMs < newest([join(project, 'src'), ...['audit-chain', 'timestamp-token', 'errors'].map((lib) => join(root, 'libs', lib, 'src'))]);
}

if (stale()) {
  let esbuild;
  try {
    esbuild = require('esbuild');
  } catch {
    process.stderr.write('ksctl: not built and esbuild is not installed: run `npm ci` then `npx nx build keyserver-cli`\n');
    process.exit(1);
  }
  mkdirSync(dirname(out), { recursive: true });
  // Built next to the target and renamed: a concurrent ksctl never runs a half-written file.
  const tmp = `${out}.${process.pid}.tmp`;
  const r = esbuild.buildSync({
    absWorkingDir: root,
    entryPoints: [join(project, 'src', 'main.ts')],
    outfile: tmp,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    tsconfig: join(project, 'tsconfig.app.json'),
    logLevel: 'error',
  });
  if (r.errors.length > 0) process.exit(1);
  renameSync(tmp, out);
}
require(out);
