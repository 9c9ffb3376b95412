import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { composeCommand, demoTenant, freePort, platformEnv, startService, waitForOk, type Service } from '@keyserver/testing';
import { logLines } from './metrics-support';

// The emulator logs like the servers: JSON lines (pino) for its start, each request (path only) and its shutdown.

describe('entra-emulator logs', () => {
  let emulator: Service;
  let dir: string;
  let base: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ks-emu-logs-'));
    const env = platformEnv({ emulatorPort: await freePort(), apiPort: await freePort(), hsmDir: dir, sessionKey: 'x' });
    emulator = startService('entra-emulator', composeCommand('entra-emulator'), { ...env.emulator, LOG_LEVEL: 'info' });
    await waitForOk(env.api['OPENID_CONNECT_METADATA_DOCUMENT']);
    base = env.urls.emulator;
  });

  afterAll(async () => {
    await emulator?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes only JSON lines: start, requests by path without their query, refusals, and the shutdown with signal and uptime', async () => {
    const tid = demoTenant.tenant.id;
    const secret = 'state-that-must-not-be-logged';
    await fetch(`${base}/${tid}/oauth2/v2.0/authorize?client_id=${demoTenant.keyserverApp.clientId}&response_type=code&state=${secret}`, { redirect: 'manual' });
    await fetch(`${base}/${tid}/oauth2/v2.0/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `grant_type=client_credentials&client_secret=${secret}` });
    await fetch(`${base}/no/such/path?code=${secret}`);
    expect(await emulator.stop('SIGTERM')).toBe(0);

    const out = emulator.output();
    const { json, other } = logLines(out);
    // Only Node's own runtime warnings may be plain text.
    expect(other.filter((l) => !/^\(node:\d+\)|--trace-warnings/.test(l))).toEqual([]);
    expect(out).not.toContain(secret);
    for (const line of json) expect(line).toMatchObject({ service: 'entra-emulator', level: expect.any(Number), time: expect.any(Number), msg: expect.any(String) });
    expect(json.find((l) => l['event'] === 'listening')).toMatchObject({ tenantId: tid, url: base });
    const requests = json.filter((l) => l['event'] === 'request');
    expect(requests).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ method: 'GET', path: `/${tid}/oauth2/v2.0/authorize` }),
        expect.objectContaining({ method: 'POST', path: `/${tid}/oauth2/v2.0/token` }),
        expect.objectContaining({ method: 'GET', path: '/no/such/path', status: 404 }),
      ]),
    );
    expect(json.find((l) => l['event'] === 'shutdown')).toMatchObject({ signal: 'SIGTERM', uptimeSeconds: expect.any(Number) });
    expect(json.find((l) => l['event'] === 'stopped')).toMatchObject({ signal: 'SIGTERM' });
  });
});
