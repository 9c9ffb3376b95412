import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Scratch, run } from '../testing/tools';

const script = resolve(__dirname, '../../../../scripts/softhsm-init.sh');

describe('scripts/softhsm-init.sh', () => {
  const scratch = new Scratch();
  const hsmDir = join(scratch.dir, '.hsm');
  const env = { ...process.env, KEYSERVER_HSM_DIR: hsmDir, PKCS11_TOKEN_LABEL: 'init-test', PKCS11_PIN: '', PKCS11_SO_PIN: '' };
  afterAll(() => scratch.remove());

  function snapshot(dir: string): string[] {
    return readdirSync(dir, { recursive: true, withFileTypes: true })
      .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
      .sort()
      .map((p) => `${p} ${statSync(p).mtimeMs} ${statSync(p).mode.toString(8)}`);
  }

  it('creates the token once, with 0600 PIN files, and changes nothing when run again', () => {
    const first = run('bash', [script], { env });
    expect(first.status).toBe(0);
    expect(first.stdout).toContain(`export SOFTHSM2_CONF=${hsmDir}/softhsm2.conf`);
    expect(first.stdout).toContain('export PKCS11_TOKEN_LABEL=init-test');
    expect(first.stdout).toContain(`export PKCS11_PIN_FILE=${hsmDir}/pin`);
    expect(first.stdout).toContain('export PKCS11_MODULE=');
    expect(statSync(join(hsmDir, 'pin')).mode & 0o777).toBe(0o600);
    expect(statSync(join(hsmDir, 'so-pin')).mode & 0o777).toBe(0o600);
    const before = snapshot(hsmDir);
    const second = run('bash', [script], { env });
    expect(second.status).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(snapshot(hsmDir)).toEqual(before);

    const pin = readFileSync(join(hsmDir, 'pin'), 'utf8');
    expect(pin).toMatch(/^[0-9a-f]{32}$/);
    const login = run('pkcs11-tool', ['--module', '/usr/lib/softhsm/libsofthsm2.so', '--token-label', 'init-test', '--login', '--pin', pin, '--list-objects'], {
      env: { ...process.env, SOFTHSM2_CONF: join(hsmDir, 'softhsm2.conf') },
    });
    expect(login.status).toBe(0);
    const slots = run('softhsm2-util', ['--show-slots'], { env: { ...process.env, SOFTHSM2_CONF: join(hsmDir, 'softhsm2.conf') } });
    expect(slots.stdout.match(/Label:\s+init-test\s*$/gm)).toHaveLength(1);
  });
});
