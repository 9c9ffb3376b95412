import type { Browser } from 'playwright-core';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { apiAs, bffUserToken } from './admin-helpers';
import { launchChromium, navigate, newSession, openActiveSessionInConsole, screenshot, seriousAxeViolations, signIn, waitUntil, type UserSession } from './browser-support';

// Issue 15 item 5 for the administrative screen: the key detail's versions and lifecycle actions in Chromium,
// through the keyclient (its proxy allow-list included) to the real API and SoftHSM.

describe('key lifecycle in the admin console (Chromium)', () => {
  let p: RunningPlatform;
  let browser: Browser;
  let ada: UserSession;

  beforeAll(async () => {
    p = await startPlatform({ keyclient: true });
    browser = await launchChromium();
  }, 180_000);
  afterAll(async () => {
    await ada?.context.close().catch(() => undefined);
    await browser?.close();
    await p?.stop();
  }, 60_000);

  it('ok an administrator sees the versions, rotates, retires and destroys a key in an ACTIVE session; every screen passes axe', async () => {
    const adaApi = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alanApi = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    ada = await newSession(browser, p);
    const { page } = ada;
    page.on('dialog', (d) => void d.accept());
    await signIn(ada, p, 'ada.admin@demo.test');
    const nav = (label: string, heading: string) => navigate(page, label, heading);

    // Without a session: the versions are shown, no lifecycle action is offered.
    await nav('Keys', 'Keys');
    await page.getByRole('button', { name: 'Details of demo-fw-dev' }).click();
    const versions = page.getByRole('table', { name: 'Versions of demo-fw-dev' });
    await versions.locator('tbody tr').first().waitFor();
    expect(await versions.locator('tbody tr').count()).toBe(1);
    expect(await page.getByRole('group', { name: 'Key lifecycle' }).count()).toBe(0);

    // Ada opens a session, Alan authorizes it (four eyes).
    await nav('Admin sessions', 'Administrative sessions');
    const description = 'rotate demo-fw-dev from the console';
    await openActiveSessionInConsole(page, description, adaApi, alanApi);

    await nav('Keys', 'Keys');
    await page.getByRole('button', { name: 'Details of demo-fw-dev' }).click();
    const group = page.getByRole('group', { name: 'Key lifecycle' });
    await group.getByLabel('Validity in days').fill('120');
    await group.getByRole('button', { name: 'Rotate' }).click();
    await versions.locator('tbody tr').nth(1).waitFor();
    expect(await versions.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => (tr.querySelector('td')?.textContent ?? '').trim()))).toEqual(['1', '2 (current)']);
    await screenshot(page, '40-key-versions-rotated');
    const axeAfterRotation = await seriousAxeViolations(page);
    const api = await adaApi<{ currentVersion: number; items: { version: number; state: string; notBefore: string; notAfter: string }[] }>('GET', '/api/v1/keys/demo-fw-dev/versions');
    expect(api.body.currentVersion).toBe(2);
    expect(Math.round((Date.parse(api.body.items[1].notAfter) - Date.parse(api.body.items[1].notBefore)) / 86_400_000)).toBe(120);

    await group.getByRole('button', { name: 'Retire' }).click();
    await group.getByRole('button', { name: 'Destroy in the HSM' }).waitFor();
    expect((await adaApi<{ state: string }>('GET', '/api/v1/keys/demo-fw-dev')).body.state).toBe('RETIRED');
    await group.getByRole('button', { name: 'Destroy in the HSM' }).click();
    await waitUntil(
      async () => (await adaApi<{ destroyedAt: string | null }>('GET', '/api/v1/keys/demo-fw-dev/versions')).body.destroyedAt,
      (d) => d !== null,
    );
    await group.waitFor({ state: 'detached' });
    await screenshot(page, '41-key-destroyed');
    expect([...axeAfterRotation, ...(await seriousAxeViolations(page))]).toEqual([]);
    expect(ada.cspViolations).toEqual([]);
  });
});
