import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SOFTHSM_MODULE = process.env['PKCS11_MODULE'] ?? '/usr/lib/softhsm/libsofthsm2.so';

/** A throwaway SoftHSM token with its own label. */
export interface TempToken {
  conf: string;
  label: string;
  pin: string;
  module: string;
  /** Environment for child processes (pkcs11-tool, openssl) that must see the same token directory. */
  env: NodeJS.ProcessEnv;
}

/**
 * Creates a token in the directory SOFTHSM2_CONF points at. Under jest the global setup sets it; in a plain
 * Node process (bench) a temp directory is created and SOFTHSM2_CONF set here, before any C_Initialize.
 */
export function createTempToken(prefix = 'ks-test'): TempToken {
  let conf = process.env['SOFTHSM2_CONF'];
  if (!conf || !existsSync(conf)) {
    const dir = mkdtempSync(join(tmpdir(), 'ks-hsm-'));
    mkdirSync(join(dir, 'tokens'));
    conf = join(dir, 'softhsm2.conf');
    writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
    process.env['SOFTHSM2_CONF'] = conf;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  const label = `${prefix}-${randomBytes(4).toString('hex')}`;
  const pin = randomBytes(8).toString('hex');
  const env = { ...process.env, SOFTHSM2_CONF: conf };
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', randomBytes(8).toString('hex')], {
    env,
    stdio: 'pipe',
  });
  return { conf, label, pin, module: SOFTHSM_MODULE, env };
}
