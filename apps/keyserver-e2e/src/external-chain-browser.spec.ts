import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, sql, type Api } from './admin-helpers';
import { launchChromium, navigate, newSession, openActiveSessionInConsole, screenshot, allAxeViolations, signIn, waitUntil, type UserSession } from './browser-support';
import { offlineRoot, run } from './operations-support';

// The renewed external chain of an imported ROOT (ADR 0020 addendum "the renewed external chain") in the admin
// console, in Chromium, through the keyclient (its proxy allow-list included) to the real API and SoftHSM. The offline
// CA is openssl, as at a customer; the fingerprints the console shows and the chain the API stores are checked with
// openssl and Node's X509Certificate, not with our code.

interface Detail {
  certificate: string;
  chain: string[];
}

describe('replacing the external chain of an imported ROOT in the admin console (Chromium)', () => {
  let p: RunningPlatform;
  let browser: Browser;
  let work: string;
  let adaApi: Api;
  let alanApi: Api;
  let ada: UserSession;
  const f = (name: string) => join(work, name);
  const pem = (name: string) => readFileSync(f(name), 'utf8');
  /** openssl's SHA-256 fingerprint of a certificate file, as `AB:CD:…`. */
  const fingerprint = (name: string) => run('openssl', ['x509', '-in', f(name), '-noout', '-fingerprint', '-sha256']).trim().split('=')[1];
  const intermediate = (out: string, days: number) =>
    run('openssl', ['x509', '-req', '-in', f('int.csr'), '-CA', f('offline.pem'), '-CAkey', f('offline.key'), '-CAcreateserial', '-out', f(out), '-days', String(days), '-extfile', f('int.cnf')]);
  const byIntermediate = (out: string, days: number) =>
    run('openssl', ['x509', '-req', '-in', f('root.csr'), '-CA', f('int.pem'), '-CAkey', f('int.key'), '-CAcreateserial', '-out', f(out), '-days', String(days), '-extfile', f('ext.cnf')]);

  beforeAll(async () => {
    p = await startPlatform({ keyclient: true });
    browser = await launchChromium();
    work = mkdtempSync(join(tmpdir(), 'ks-ext-chain-browser-'));
    adaApi = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alanApi = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    // An imported ROOT as in external-chain-replacement.spec.ts: offline root -> offline intermediate (30 days) -> ext-root.
    const session = await activeSession(adaApi, alanApi, 'import ext-root');
    offlineRoot(f);
    writeFileSync(f('int.cnf'), 'basicConstraints=critical,CA:true,pathlen:2\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n');
    run('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('int.key'), '-out', f('int.csr'), '-subj', '/C=DK/O=Acme/CN=Acme Offline Intermediate']);
    intermediate('int.pem', 30);
    const c = await adaApi<{ csr: string }>('POST', '/api/v1/keys/root-ceremony', {
      body: { keyid: 'ext-root', algorithm: 'EC_P256', subject: { commonName: 'Acme Online Root', organization: 'Acme', country: 'DK' }, validityDays: 1000, requiredApprovers: 0, mode: 'external' },
      session,
    });
    expect(c.status).toBe(201);
    writeFileSync(f('root.csr'), c.body.csr);
    byIntermediate('root-v1.pem', 1000);
    const imported = await adaApi('POST', '/api/v1/keys/ext-root/certificate', { body: { certificate: pem('root-v1.pem'), chain: [pem('int.pem'), pem('offline.pem')] }, session });
    expect(imported.status).toBe(200);
    await adaApi('POST', `/api/v1/admin-sessions/${session}/closure`);
  }, 180_000);
  afterAll(async () => {
    await ada?.context.close().catch(() => undefined);
    await browser?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  it('ok two administrators install the renewed intermediate and the re-issued ROOT certificate from the console: the review shows openssl\'s fingerprints of what changes, the detail and versions refresh, openssl verifies the stored chain; the same again is refused in words; no axe finding', async () => {
    ada = await newSession(browser, p);
    const { page } = ada;
    await signIn(ada, p, 'ada.admin@demo.test');

    // Without a session: the section is there, the review cannot start.
    await navigate(page, 'Keys', 'Keys');
    await page.getByRole('button', { name: 'Details of ext-root' }).click();
    const section = page.getByRole('region', { name: 'External chain' });
    await section.waitFor();
    await section.getByRole('note').filter({ hasText: 'two administrators opened and authorized' }).waitFor();
    expect(await section.getByRole('button', { name: 'Review the change' }).isDisabled()).toBe(true);

    await navigate(page, 'Admin sessions', 'Administrative sessions');
    const sessionId = await openActiveSessionInConsole(page, 'the offline CA renewed', adaApi, alanApi);

    // The offline CA renews its intermediate (same key pair) and re-issues the ROOT's certificate under it.
    intermediate('int-v2.pem', 400);
    writeFileSync(f('int-v1.pem'), pem('int.pem'));
    writeFileSync(f('int.pem'), pem('int-v2.pem'));
    byIntermediate('root-v2.pem', 900);

    await navigate(page, 'Keys', 'Keys');
    await page.getByRole('button', { name: 'Details of ext-root' }).click();
    const form = section.getByRole('form', { name: 'Replace the external chain' });
    await form.getByLabel('New chain (PEM)').fill(`subject=CN=Acme Offline Intermediate\n${pem('int-v2.pem')}${pem('offline.pem')}`);
    await form.getByLabel('Re-issued certificate file').setInputFiles(f('root-v2.pem'));
    // The console reads the chosen file asynchronously: wait for the text, then review (CI once read it too early).
    const reissued = form.getByLabel('Re-issued ROOT certificate (PEM, optional)');
    expect(await waitUntil(() => reissued.inputValue(), (v) => v !== '')).toBe(pem('root-v2.pem'));
    await form.getByRole('button', { name: 'Review the change' }).click();

    const changes = section.getByRole('table', { name: 'What the replacement changes' });
    await changes.locator('tbody tr').nth(2).waitFor();
    const rows = await changes.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll('th, td')).map((c) => (c.textContent ?? '').trim())));
    expect(rows).toEqual([
      ['ROOT certificate', fingerprint('root-v1.pem'), fingerprint('root-v2.pem'), 'replaced'],
      ['Issuer of the ROOT', fingerprint('int-v1.pem'), fingerprint('int-v2.pem'), 'replaced'],
      ['Anchor (self-signed root)', fingerprint('offline.pem'), fingerprint('offline.pem'), 'unchanged'],
    ]);
    expect(await section.innerText()).toContain('Two administrators are required.');
    await screenshot(page, '45-external-chain-review');
    const axeReview = await allAxeViolations(page, 'external-chain-review');

    await section.getByRole('button', { name: 'Replace the chain' }).click();
    await section.getByRole('status').filter({ hasText: 'External chain of ext-root replaced' }).waitFor();
    // The key detail and its versions refreshed: the re-issued certificate is version 2, the first RETIRED.
    const versions = page.getByRole('table', { name: 'Versions of ext-root' });
    await versions.locator('tbody tr').nth(1).waitFor();
    expect(await versions.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => (tr.querySelector('td')?.textContent ?? '').trim()))).toEqual(['1', '2 (current)']);

    const stored = (await adaApi<Detail>('GET', '/api/v1/keys/ext-root')).body;
    expect(stored.certificate).toBe(pem('root-v2.pem'));
    expect(stored.chain.map((c) => new X509Certificate(c).fingerprint256)).toEqual([fingerprint('root-v2.pem'), fingerprint('int-v2.pem'), fingerprint('offline.pem')]);
    writeFileSync(f('stored-root.pem'), stored.chain[0]);
    writeFileSync(f('stored-int.pem'), stored.chain[1]);
    expect(spawnSync('openssl', ['verify', '-x509_strict', '-CAfile', f('offline.pem'), '-untrusted', f('stored-int.pem'), f('stored-root.pem')], { encoding: 'utf8' })).toMatchObject({ status: 0 });
    const [event] = await sql<{ details: { reissued: boolean; administrators: unknown[] }; adminSessionId: string }>(
      p,
      `SELECT "details", "adminSessionId" FROM "audit_event" WHERE "action" = 'key.external_chain_replace' AND "keyid" = 'ext-root' AND "outcome" = 'SUCCESS'`,
    );
    expect({ reissued: event.details.reissued, administrators: event.details.administrators.length, session: event.adminSessionId }).toEqual({ reissued: true, administrators: 2, session: sessionId });

    // The same chain again: 409 external_chain_unchanged, in words, and nothing changes.
    await form.getByLabel('New chain (PEM)').fill(pem('int-v2.pem') + pem('offline.pem'));
    await form.getByRole('button', { name: 'Review the change' }).click();
    await changes.waitFor();
    await section.getByRole('button', { name: 'Replace the chain' }).click();
    const problem = section.locator('.problem[data-code="external_chain_unchanged"]');
    await problem.waitFor();
    expect(await problem.locator('.problem-text').innerText()).toBe('The root already has this certificate and chain: nothing was changed.');
    expect((await adaApi<Detail>('GET', '/api/v1/keys/ext-root')).body).toEqual(stored);
    await screenshot(page, '46-external-chain-unchanged');
    expect([...axeReview, ...(await allAxeViolations(page, 'external-chain-refused'))]).toEqual([]);
    expect(ada.cspViolations).toEqual([]);
  });

  it('fail hostile text in the form (8 MiB pasted, not PEM, unicode in the armour) is refused under the field without freezing the page, and nothing is sent', async () => {
    const { page } = ada;
    const section = page.getByRole('region', { name: 'External chain' });
    await section.getByRole('button', { name: 'Back to the form' }).click();
    const form = section.getByRole('form', { name: 'Replace the external chain' });
    const sent: string[] = [];
    page.on('request', (r) => {
      if (r.url().includes('/external-chain')) sent.push(r.method());
    });
    // [name, text, times it is repeated, words]: the text is repeated inside the page, so the clock below measures
    // the console, not 8 MiB crossing from the test to Chromium (which took seconds on a loaded CI machine).
    const cases: Array<[string, string, number, string]> = [
      ['8 MiB of BEGIN lines', '-----BEGIN CERTIFICATE-----\n', 300_000, 'too large'],
      ['text that is not PEM', 'ceci n\'est pas un certificat \u{1f600}', 1, 'No PEM certificate'],
      ['unicode inside the armour', pem('int-v2.pem').replace('MII', 'MI\u202e\u200bI') + pem('offline.pem'), 1, 'not base64'],
    ];
    for (const [name, text, times, words] of cases) {
      const started = Date.now();
      // Set as a paste would (one input event), then review; a paste over the largest chain is emptied at once.
      await form.getByLabel('New chain (PEM)').evaluate((el, [t, n]) => {
        (el as HTMLTextAreaElement).value = t.repeat(n);
        el.dispatchEvent(new Event('input', { bubbles: true }));
      }, [text, times] as const);
      if (words !== 'too large') await form.getByRole('button', { name: 'Review the change' }).click();
      await form.locator('mat-error').filter({ hasText: words }).waitFor({ timeout: 5_000 });
      // The page still answers at once: the main thread was not held.
      expect({ name, answered: await page.evaluate(() => 1 + 1), fast: Date.now() - started < 5_000 }).toEqual({ name, answered: 2, fast: true });
    }
    expect(sent).toEqual([]);
    expect(ada.cspViolations).toEqual([]);
  });
});
