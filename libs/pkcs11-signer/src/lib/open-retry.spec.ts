import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { createTempToken, SOFTHSM_MODULE, type TempToken } from '../testing/temp-token';
import { Pkcs11Signer } from './pkcs11-signer';

const CHILD = join(__dirname, '../testing/open-signer.child.cjs');

interface Opened {
  ok: boolean;
  code?: string;
  ms: number;
}

/** Opens a signer in a process of its own: a fresh module, as each API replica has. */
function openInChild(env: NodeJS.ProcessEnv, opts: Record<string, unknown>, startAt = 0): Promise<Opened> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CHILD, JSON.stringify({ module: SOFTHSM_MODULE, poolSize: 2, signWorkers: 0, ...opts }), String(startAt)], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line) as Opened);
      } catch {
        reject(new Error(`child printed no result (${err?.message ?? ''}): ${stdout}${stderr}`));
      }
    });
  });
}

// API replicas start at once on one SoftHSM token (the HA bed, `docker-compose up --scale`). SoftHSM's C_Login
// rewrites the token's file (its PIN-count flags); a process that reads the token directory at that moment finds the
// token missing or unreadable: C_GetSlotList without it (token_not_found), C_Login with CKR_GENERAL_ERROR or
// CKR_USER_PIN_NOT_INITIALIZED. Seen as an HA-bed replica that did not start. open() now tries again for a while.
describe(`${Pkcs11Signer.name} open`, () => {
  let token: TempToken;

  beforeAll(async () => {
    token = createTempToken('open');
    // Compiles the child once (jiti caches it), so that the rounds below start at once.
    await openInChild(token.env, { tokenLabel: token.label, pin: token.pin });
  });

  it('ok opens in 4 processes at once, 12 rounds', async () => {
    const failures: string[] = [];
    for (let round = 0; round < 12; round++) {
      const startAt = Date.now() + 1_000;
      const results = await Promise.all(Array.from({ length: 4 }, () => openInChild(token.env, { tokenLabel: token.label, pin: token.pin }, startAt)));
      for (const r of results) if (!r.ok) failures.push(`round ${round}: ${r.code}`);
    }
    expect(failures).toEqual([]);
  });

  it('ok finds a token initialised while it tries again', async () => {
    const label = `late-${randomBytes(4).toString('hex')}`;
    const pin = randomBytes(8).toString('hex');
    const opening = openInChild(token.env, { tokenLabel: label, pin, openRetryMs: 10_000 });
    await new Promise((r) => setTimeout(r, 1_500));
    execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', randomBytes(8).toString('hex')], { env: token.env, stdio: 'pipe' });
    expect(await opening).toMatchObject({ ok: true });
  });

  it.each([
    ['fail token_not_found once the retry window has passed', { tokenLabel: 'never-there', openRetryMs: 800 }, 'token_not_found', 800, 60_000],
    // A wrong PIN is never tried again: each try would count against the token's PIN tries.
    ['fail hsm_login_failed at once with a wrong PIN', { pin: 'wrong-pin', openRetryMs: 20_000 }, 'hsm_login_failed', 0, 5_000],
  ])('%s', async (_name, opts, code, atLeastMs, belowMs) => {
    const r = await openInChild(token.env, { tokenLabel: token.label, pin: token.pin, ...opts });
    expect(r).toMatchObject({ ok: false, code });
    expect(r.ms).toBeGreaterThanOrEqual(atLeastMs);
    expect(r.ms).toBeLessThan(belowMs);
  });
});
