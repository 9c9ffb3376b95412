import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs an external tool (openssl, certtool, pkcs11-tool) and returns its exit status and output. */
export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Uint8Array; cwd?: string } = {}): RunResult {
  const r = spawnSync(cmd, args, { env: opts.env ?? process.env, input: opts.input, cwd: opts.cwd, encoding: 'latin1', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** A scratch directory for files handed to external tools. */
export class Scratch {
  readonly dir = mkdtempSync(join(tmpdir(), 'ks-pki-'));
  write(name: string, data: string | Uint8Array): string {
    const p = join(this.dir, name);
    writeFileSync(p, data);
    return p;
  }
  path(name: string): string {
    return join(this.dir, name);
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
