import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';

const KSCTL = join(repoRoot, 'dist', 'tools', 'keyserver-cli', 'main.js');

describe('ksctl', () => {
  let p: RunningPlatform;
  let work: string;
  let demoFile: string;

  const ksctl = (...args: string[]) => {
    const r = spawnSync(process.execPath, [KSCTL, '--demo', demoFile, '--json', ...args], {
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '', KSCTL_CACHE_DIR: join(work, 'cache') },
      timeout: 60_000,
    });
    return { status: r.status, json: r.stdout.trim() ? JSON.parse(r.stdout) : undefined, stderr: r.stderr };
  };

  beforeAll(async () => {
    p = await startPlatform();
    work = mkdtempSync(join(tmpdir(), 'ks-cli-'));
    demoFile = join(work, 'demo.json');
    writeFileSync(demoFile, JSON.stringify(p.facts));
  });

  afterAll(async () => {
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('lists keys with a cached client-credentials token in a 0600 file', () => {
    const r = ksctl('keys', 'list');
    expect(r.status).toBe(0);
    expect((r.json as { keyid: string }[]).map((k) => k.keyid)).toContain('demo-fw-dev');
    const cache = execFileSync('find', [join(work, 'cache'), '-type', 'f']).toString().trim().split('\n');
    expect(cache).toHaveLength(1);
    expect(statSync(cache[0]).mode & 0o777).toBe(0o600);
  });

  it('creates an operation, signs a file hashed locally and the signature verifies with openssl', () => {
    const image = join(work, 'firmware.bin');
    writeFileSync(image, Buffer.alloc(3 * 1024 * 1024 + 17, 7));
    const op = ksctl('operations', 'create', '--key', 'demo-fw-dev=2', '--description', 'cli release 1.2.3');
    expect(op.status).toBe(0);
    const id = (op.json as { id: string }).id;
    expect(ksctl('operations', 'wait', id, '--timeout', '5').status).toBe(0);

    const sig = join(work, 'firmware.sig');
    const r = ksctl('sign', '--operation', id, '--key', 'demo-fw-dev', '--file', image, '--out', sig, '--description', 'cli sign test');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const chain = join(work, 'chain.pem');
    expect(ksctl('keys', 'show', 'demo-fw-dev', '--chain', chain).status).toBe(0);
    const leaf = readFileSync(chain, 'utf8').split(/(?<=-----END CERTIFICATE-----\n?)/)[0];
    writeFileSync(join(work, 'leaf.pem'), leaf);
    execFileSync('openssl', ['x509', '-in', join(work, 'leaf.pem'), '-pubkey', '-noout', '-out', join(work, 'pub.pem')]);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', sig, image]).toString();
    expect(out).toContain('Verified OK');
  });

  it.each([
    ['fail unknown key', ['keys', 'show', 'no-such-key'], 4, 'key_not_found'],
    ['fail bad digest length', ['sign', '--operation', '00000000-0000-4000-8000-000000000000', '--key', 'demo-fw-dev', '--digest', 'abcd'], 4, undefined],
    ['fail unknown command', ['frobnicate'], 2, undefined],
  ])('%s: exit %s with the problem code', (_n, args, exit, code) => {
    const r = ksctl(...(args as string[]));
    expect(r.status).toBe(exit);
    if (code) expect((r.json as { code: string }).code).toBe(code);
    expect(r.stderr).toMatch(/^ksctl: /);
  });
});
