import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(__dirname, '../../../..');

/**
 * Bundles a TypeScript probe (tsconfig paths, packages from the repository's node_modules) with esbuild and runs it
 * with `--expose-gc` in a process of its own; returns what it printed as JSON. The GC guard tests of ADR 0035 measure
 * there: in a test runner's worker its own work is counted too, and `--expose-gc` would leak into later test files.
 * A probe that writes to stderr fails the run.
 */
export async function runProbe<T>(entry: string, args: string[]): Promise<T> {
  const work = mkdtempSync(join(tmpdir(), 'ks-probe-'));
  try {
    const bundle = join(work, 'probe.cjs');
    await (require('esbuild') as typeof import('esbuild')).build({
      entryPoints: [entry],
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node24',
      outfile: bundle,
      tsconfig: join(ROOT, 'tsconfig.base.json'),
      packages: 'external',
      logLevel: 'error',
    });
    const r = spawnSync(process.execPath, ['--expose-gc', bundle, ...args], { env: { ...process.env, NODE_PATH: join(ROOT, 'node_modules') }, encoding: 'utf8', timeout: 120_000 });
    if (r.status !== 0 || r.stderr) throw new Error(`probe ${entry} failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
