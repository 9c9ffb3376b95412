import { execFileSync } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, sql, userOid, type Api } from './admin-helpers';
import { horizontalOverflow, launchChromium, navigate, newSession, openActiveSessionInConsole, screenshot, allAxeViolations, signIn, type UserSession } from './browser-support';

// Issue 15 item 2 for the administrative screen: the ROOT key ceremony (self-signed and external root) in Chromium,
// through the keyclient (its proxy allow-list included) to the real API and SoftHSM; the certificates are checked
// with openssl, not with our code.

const openssl = (dir: string, args: string[]): string => execFileSync('openssl', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const spkiSha256 = (pem: string): string => createHash('sha256').update(new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' })).digest('hex');

describe('ROOT key ceremony in the admin console (Chromium)', () => {
  let p: RunningPlatform;
  let browser: Browser;
  let dir: string;
  const sessions: UserSession[] = [];
  let adaApi: Api;
  let alanApi: Api;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'root-ceremony-browser-'));
    p = await startPlatform({ keyclient: true });
    browser = await launchChromium();
    adaApi = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alanApi = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
  }, 180_000);
  afterAll(async () => {
    for (const s of sessions) await s.context.close().catch(() => undefined);
    await browser?.close();
    await p?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  const nav = navigate;

  async function fillCeremony(page: Page, keyid: string, external = false): Promise<void> {
    const form = page.getByRole('form', { name: 'ROOT key ceremony' });
    if (external) await form.getByLabel('Certified by an existing offline root', { exact: false }).check();
    await form.getByLabel('Key id').fill(keyid);
    await form.getByLabel('Algorithm').selectOption('EC_P384');
    await form.getByLabel('Common name (CN)').fill(external ? 'Acme Online Root' : 'Console Root CA');
    await form.getByLabel('Organization (O, optional)').fill('Acme Devices');
    await form.getByLabel('Country (C, optional)').fill('dk');
    await form.getByLabel('Validity in days').fill('3650');
    await form.getByLabel('Path length (optional)').fill(external ? '1' : '2');
    await form.getByRole('button', { name: 'Review the ceremony' }).click();
    await page.getByRole('heading', { level: 2, name: 'Confirm the ROOT key ceremony' }).waitFor();
  }

  it('ok two administrators run the self-signed ceremony in the console; openssl verifies the ROOT, the audit shows it; a duplicate keyid is refused in plain words; axe finds nothing', async () => {
    const ada = await newSession(browser, p);
    sessions.push(ada);
    const { page } = ada;
    await signIn(ada, p, 'ada.admin@demo.test');

    // Without a session the form is there but the ceremony cannot start.
    await nav(page, 'ROOT ceremony', 'ROOT key ceremony');
    await page.getByRole('note').filter({ hasText: 'needs an active administrative session' }).waitFor();
    expect(await page.getByRole('button', { name: 'Review the ceremony' }).isDisabled()).toBe(true);
    // The console's bar: no axe finding of any impact (browser-console.spec.ts).
    expect(await allAxeViolations(page, 'root-ceremony')).toEqual([]);

    // Ada opens a session in the console, Alan authorizes it (four eyes).
    await nav(page, 'Admin sessions', 'Administrative sessions');
    const description = 'ROOT key ceremony from the console';
    const sessionId = await openActiveSessionInConsole(page, description, adaApi, alanApi);

    await nav(page, 'ROOT ceremony', 'ROOT key ceremony');
    await fillCeremony(page, 'console-root');
    // The confirmation restates the ceremony and says two administrators are required.
    const review = page.getByRole('region', { name: 'Confirm the ROOT key ceremony' });
    const reviewText = (await review.innerText()).replace(/\s+/g, ' ');
    for (const fact of ['Two administrators are required.', description, 'Mode Self-signed ROOT', 'Key id console-root', 'Algorithm EC_P384', 'Subject CN=Console Root CA, O=Acme Devices, C=DK', 'Validity 3650 days', 'Path length 2', 'Approvers required 2']) {
      expect(reviewText).toContain(fact);
    }
    await screenshot(page, '50-root-ceremony-confirm');
    const axe = await allAxeViolations(page, 'root-ceremony');
    await review.getByRole('button', { name: 'Generate and self-sign the ROOT' }).click();
    await page.getByRole('heading', { level: 2, name: 'ROOT key console-root is active' }).waitFor();

    // The certificate shown is the ROOT's, self-signed, as asked: checked with openssl.
    const pem = ((await page.getByLabel('Certificate PEM').textContent()) ?? '').trim() + '\n';
    writeFileSync(join(dir, 'console-root.pem'), pem);
    expect(openssl(dir, ['verify', '-x509_strict', '-CAfile', 'console-root.pem', 'console-root.pem'])).toContain('console-root.pem: OK');
    const text = openssl(dir, ['x509', '-in', 'console-root.pem', '-noout', '-text']);
    expect(text).toMatch(/CA:TRUE, pathlen:2/);
    expect(text).toMatch(/Subject: C ?= ?DK, O ?= ?Acme Devices, CN ?= ?Console Root CA/);
    expect(text).toMatch(/NIST CURVE: P-384|secp384r1/);
    const fingerprint = spkiSha256(pem);
    expect(await page.getByTestId('spki-sha256').textContent()).toBe(fingerprint.toUpperCase().match(/../g)?.join(':'));
    expect(await page.getByRole('button', { name: 'Copy certificate PEM' }).count()).toBe(1);
    await screenshot(page, '51-root-ceremony-done');
    axe.push(...(await allAxeViolations(page, 'root-ceremony')));

    // The audit log holds the ceremony, both administrators, the fingerprint and the certificate.
    const [entry] = await auditOf(adaApi, 'action=key.root_ceremony&outcome=SUCCESS');
    expect(entry).toMatchObject({ keyid: 'console-root', adminSessionId: sessionId, details: { spkiSha256: fingerprint, certificate: pem, mode: 'self-signed' } });
    expect((entry.details['administrators'] as { displayName: string }[]).map((a) => a.displayName).sort()).toEqual(['Ada Admin', 'Alan Admin']);

    // The same keyid again: refused, said in plain words, nothing generated.
    await page.getByRole('button', { name: 'New ceremony' }).click();
    await fillCeremony(page, 'console-root');
    await page.getByRole('button', { name: 'Generate and self-sign the ROOT' }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'A key with this id already exists.' });
    await alert.waitFor();
    expect(await alert.getAttribute('data-code')).toBe('key_exists');
    await screenshot(page, '52-root-ceremony-refused');
    axe.push(...(await allAxeViolations(page, 'root-ceremony')));
    const [denied] = await auditOf(adaApi, 'action=key.root_ceremony&outcome=DENIED');
    expect(denied?.errorCode).toBe('key_exists');
    expect(axe).toEqual([]);
    expect(ada.cspViolations).toEqual([]);
  });

  it('ok at 360 px: the external mode shows the CSR, the certificate an offline root issued (openssl) is imported and the key becomes ACTIVE; nothing wider than the screen, no axe finding', async () => {
    // Ada and Alan open and authorize the session over the API this time (the console flow is shown above).
    await activeSession(adaApi, alanApi, 'External ROOT from the console');
    const ada = await newSession(browser, p, { viewport: { width: 360, height: 780 }, isMobile: true });
    sessions.push(ada);
    const { page } = ada;
    await signIn(ada, p, 'ada.admin@demo.test');
    await page.getByRole('status').filter({ hasText: 'Administrative session active' }).waitFor();
    await nav(page, 'ROOT ceremony', 'ROOT key ceremony');
    expect(await horizontalOverflow(page)).toEqual({ overflow: 0, culprits: [] });
    await screenshot(page, '53-root-ceremony-form-360');
    const axe = await allAxeViolations(page, 'root-ceremony');
    await fillCeremony(page, 'console-online-root', true);
    expect(await horizontalOverflow(page)).toEqual({ overflow: 0, culprits: [] });
    await page.getByRole('button', { name: 'Generate the key and its CSR' }).click();
    await page.getByRole('heading', { level: 2, name: 'Key console-online-root awaits its certificate' }).waitFor();
    await page.getByRole('heading', { level: 2, name: 'Import the certificate of console-online-root' }).waitFor();
    expect((await adaApi<{ state: string }>('GET', '/api/v1/keys/console-online-root/csr')).status).toBe(200);
    axe.push(...(await allAxeViolations(page, 'root-ceremony')));
    expect(await horizontalOverflow(page)).toEqual({ overflow: 0, culprits: [] });
    await screenshot(page, '54-root-ceremony-csr-360');

    // The offline root (openssl) signs the CSR shown on the screen.
    writeFileSync(join(dir, 'online.csr'), ((await page.getByLabel('CSR PEM').textContent()) ?? '').trim() + '\n');
    expect(openssl(dir, ['req', '-in', 'online.csr', '-noout', '-verify', '-subject'])).toMatch(/CN ?= ?Acme Online Root/);
    openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384', '-nodes', '-keyout', 'offline.key', '-out', 'offline.pem', '-days', '30', '-subj', '/CN=Offline Root', '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
    writeFileSync(join(dir, 'ext.cnf'), 'basicConstraints=critical,CA:true,pathlen:1\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n');
    openssl(dir, ['x509', '-req', '-in', 'online.csr', '-CA', 'offline.pem', '-CAkey', 'offline.key', '-CAcreateserial', '-days', '20', '-extfile', 'ext.cnf', '-out', 'online.pem']);
    const importForm = page.getByRole('form', { name: 'Import the external certificate' });
    await importForm.getByLabel('Certificate (PEM)').fill(openssl(dir, ['x509', '-in', 'online.pem']));
    await importForm.getByLabel('Chain (PEM)').fill(openssl(dir, ['x509', '-in', 'offline.pem']));
    await importForm.getByRole('button', { name: 'Verify and import' }).click();
    await page.locator('[role="alert"], p.ok[role="status"]').first().waitFor();
    expect(await page.getByRole('alert').allTextContents()).toEqual([]);
    await page.getByRole('status').filter({ hasText: 'Certificate imported: key console-online-root is active.' }).waitFor();
    expect((await adaApi<{ state: string }>('GET', '/api/v1/keys/console-online-root')).body.state).toBe('ACTIVE');
    axe.push(...(await allAxeViolations(page, 'root-ceremony')));
    expect(await horizontalOverflow(page)).toEqual({ overflow: 0, culprits: [] });
    await screenshot(page, '55-root-ceremony-imported-360');
    expect(axe).toEqual([]);
    expect(ada.cspViolations).toEqual([]);
  });

  it('ok a rotation of the external ROOT is continued in the console: the pending version\'s CSR, the offline root\'s certificate imported, version 2 current (ADR 0029)', async () => {
    const session = await activeSession(adaApi, alanApi, 'Rotate the external ROOT');
    const rotated = await adaApi('POST', '/api/v1/keys/console-online-root/rotation', { body: { validityDays: 10 }, session });
    expect(rotated.status).toBe(200);
    const ada = await newSession(browser, p);
    sessions.push(ada);
    const { page } = ada;
    await signIn(ada, p, 'ada.admin@demo.test');
    await page.getByRole('status').filter({ hasText: 'Administrative session active' }).waitFor();
    await nav(page, 'ROOT ceremony', 'ROOT key ceremony');
    const resume = page.getByRole('form', { name: 'Find a key awaiting its certificate' });
    await resume.getByLabel('Key id').fill('console-online-root');
    await resume.getByRole('button', { name: 'Show its CSR' }).click();
    await page.getByRole('heading', { level: 2, name: 'Import the certificate of console-online-root' }).waitFor();
    await page.getByText('A rotation: version 2 (a new key pair)').waitFor();
    writeFileSync(join(dir, 'online-v2.csr'), ((await page.getByLabel('CSR PEM').textContent()) ?? '').trim() + '\n');
    expect(openssl(dir, ['req', '-in', 'online-v2.csr', '-noout', '-verify', '-subject'])).toMatch(/CN ?= ?Acme Online Root/);
    openssl(dir, ['x509', '-req', '-in', 'online-v2.csr', '-CA', 'offline.pem', '-CAkey', 'offline.key', '-CAcreateserial', '-days', '20', '-extfile', 'ext.cnf', '-out', 'online-v2.pem']);
    const importForm = page.getByRole('form', { name: 'Import the external certificate' });
    await importForm.getByLabel('Certificate (PEM)').fill(openssl(dir, ['x509', '-in', 'online-v2.pem']));
    await importForm.getByLabel('Chain (PEM)').fill(openssl(dir, ['x509', '-in', 'offline.pem']));
    await importForm.getByRole('button', { name: 'Verify and import' }).click();
    await page.getByRole('status').filter({ hasText: 'Certificate imported: key console-online-root is active.' }).waitFor();
    const v = (await adaApi<{ currentVersion: number; pendingVersion: number | null; items: { certificate: string }[] }>('GET', '/api/v1/keys/console-online-root/versions')).body;
    expect({ current: v.currentVersion, pending: v.pendingVersion }).toEqual({ current: 2, pending: null });
    expect(spkiSha256(v.items[1].certificate)).not.toBe(spkiSha256(v.items[0].certificate));
    expect(openssl(dir, ['verify', '-CAfile', 'offline.pem', 'online-v2.pem'])).toContain('OK');
    expect(await allAxeViolations(page, 'root-ceremony')).toEqual([]);
    expect(ada.cspViolations).toEqual([]);
  });

  it('fail a session only one administrator took part in (ACTIVE through a test-style configuration): the console says two administrators are needed, nothing is generated', async () => {
    // As a configuration with requiredApprovals 0 would make it: ACTIVE with Ada alone (go-live.spec.ts does the same).
    await sql(
      p,
      `INSERT INTO "admin_session" ("id", "description", "creatorId", "state", "requiredApprovals", "expiresAt", "activatedAt")
       SELECT gen_random_uuid(), 'one-administrator session', "id", 'ACTIVE', 0, now() + interval '1 hour', now() FROM "subject" WHERE "oid" = $1`,
      [userOid('ada.admin@demo.test')],
    );
    const ada = await newSession(browser, p);
    sessions.push(ada);
    const { page } = ada;
    await signIn(ada, p, 'ada.admin@demo.test');
    await page.getByRole('status').filter({ hasText: 'one-administrator session' }).waitFor();
    await nav(page, 'ROOT ceremony', 'ROOT key ceremony');
    await fillCeremony(page, 'console-lonely-root');
    await page.getByRole('button', { name: 'Generate and self-sign the ROOT' }).click();
    const alert = page.getByRole('alert').filter({ hasText: 'needs an active administrative session that two different administrators opened and authorized' });
    await alert.waitFor();
    expect(await alert.getAttribute('data-code')).toBe('ceremony_needs_two_administrators');
    expect((await adaApi('GET', '/api/v1/keys/console-lonely-root')).status).toBe(404);
    await screenshot(page, '56-root-ceremony-one-admin-refused');
    expect(await allAxeViolations(page, 'root-ceremony')).toEqual([]);
  });
});
