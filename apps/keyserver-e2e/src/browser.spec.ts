import { execFileSync } from 'node:child_process';
import { X509Certificate, createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { apiAs, auditOf, bffUserToken, userOid } from './admin-helpers';
import { launchChromium, listsLoaded, navigate, newSession, openedDialog, readableSecrets, screenshot, seriousAxeViolations, signIn, waitUntil, type UserSession } from './browser-support';
import { call, ciToken, run, signOrderBody } from './operations-support';

type AxeFinding = Awaited<ReturnType<typeof seriousAxeViolations>>[number];

interface KeyView {
  keyid: string;
  type: string;
  state: string;
  requiredApprovers: number;
  product: string | null;
  certificate: string;
  chain: string[];
}

describe('admin console in Chromium', () => {
  let p: RunningPlatform;
  let browser: Browser;
  let work: string;
  const sessions: UserSession[] = [];
  const axeFindings: AxeFinding[] = [];

  beforeAll(async () => {
    p = await startPlatform({ keyclient: true });
    browser = await launchChromium();
    work = mkdtempSync(join(tmpdir(), 'ks-browser-'));
  }, 180_000);

  afterAll(async () => {
    for (const s of sessions) await s.context.close().catch(() => undefined);
    await browser?.close();
    await p?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  }, 60_000);

  async function session(): Promise<UserSession> {
    const s = await newSession(browser, p);
    sessions.push(s);
    return s;
  }

  /** Screenshot and axe check of the screen the page shows now. */
  async function capture(page: Page, name: string): Promise<void> {
    await screenshot(page, name);
    axeFindings.push(...(await seriousAxeViolations(page)));
  }

  /** Nothing the page's script can read holds a credential; the session cookie exists but is HttpOnly. */
  async function expectNoReadableToken(s: UserSession): Promise<void> {
    expect(await readableSecrets(s.page)).toEqual({ localStorage: 0, sessionStorage: 0, documentCookie: '', jwtInDom: false });
    const cookies = await s.context.cookies(p.env.urls.keyclient);
    expect(cookies.map((c) => c.name)).toContain('__Host-keyclient-session');
    for (const c of cookies) expect(c).toMatchObject({ httpOnly: true, secure: true });
  }

  /** `fetch` from inside the page, with the page's cookies: what a script injected into the console could do. */
  function pageFetch(page: Page, path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<number> {
    return page.evaluate(`fetch(${JSON.stringify(path)}, ${JSON.stringify(init)}).then((r) => r.status)`) as Promise<number>;
  }

  const nav = navigate;

  /** Picks `option` of the Material select labelled `label` (its options live in an overlay outside the dialog). */
  async function choose(page: Page, scope: ReturnType<Page['getByRole']>, label: string, option: string): Promise<void> {
    await scope.getByRole('combobox', { name: label }).click();
    await page.getByRole('option', { name: option, exact: true }).click();
    await page.getByRole('listbox').waitFor({ state: 'detached' });
  }

  it('carries an operation from the create screen through two approvals in the console to a CI signature and the audit log', async () => {
    const description = `Browser e2e firmware 3.1.${Date.now()}`;

    // Otto orders two usages of the production firmware key.
    const otto = await session();
    await signIn(otto, p, 'otto.orderer@demo.test', (screen) => capture(otto.page, `01-${screen}`));
    await expectNoReadableToken(otto);
    await nav(otto.page, 'New operation', 'New operation');
    const form = otto.page.getByRole('form', { name: 'New operation' });
    await form.getByLabel('Description').fill(description);
    await form.getByLabel('Key id 1').fill('demo-fw-prod');
    await otto.page.keyboard.press('Escape');
    await form.getByLabel('Usages for key 1').fill('2');
    await capture(otto.page, '02-new-operation');
    await form.getByRole('button', { name: 'Create operation' }).click();
    await otto.page.waitForURL(/\/operations\/[0-9a-f-]{36}$/);
    const operationId = new URL(otto.page.url()).pathname.split('/').pop() ?? '';
    await otto.page.getByRole('heading', { level: 1, name: description }).waitFor();
    const state = otto.page.locator('.state');
    expect(await state.textContent()).toContain('REQUESTED');
    // An orderer cannot approve: the console offers no approval action to him.
    expect(await otto.page.getByRole('button', { name: 'Approve' }).count()).toBe(0);
    await capture(otto.page, '03-operation-requested');
    await expectNoReadableToken(otto);
    // A browser session never signs, even when its own page script asks.
    const signFromPage = await pageFetch(otto.page, '/api/signorders', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-keyserver-csrf': '1' },
      body: JSON.stringify(signOrderBody(operationId, 'demo-fw-prod', '00'.repeat(32))),
    });
    expect(signFromPage).toBe(403);

    // Ann and Arno each approve it from "My approvals", in their own browser contexts.
    for (const [i, username] of (['ann.approver@demo.test', 'arno.approver@demo.test'] as const).entries()) {
      const approver = await session();
      await signIn(approver, p, username);
      await expectNoReadableToken(approver);
      const me = approver.page;
      if (new URL(me.url()).pathname !== '/approvals') await nav(me, 'My approvals', 'My approvals');
      await me.getByRole('heading', { level: 1, name: 'My approvals' }).waitFor();
      const card = me.locator(`[aria-labelledby="op-${operationId}"]`);
      await card.getByRole('heading', { name: description }).waitFor();
      expect(await card.textContent()).toContain('Otto Orderer');
      if (i === 0) await capture(me, '05-my-approvals');
      await card.getByRole('button', { name: 'Approve' }).click();
      // The confirmation restates what is approved (browser-console.spec.ts checks its content).
      const confirm = await openedDialog(me.getByRole('dialog', { name: 'Approve this operation?' }));
      await confirm.getByRole('button', { name: 'Approve' }).click();
      await me.getByText(`Approved: ${description}`).waitFor();
      await card.waitFor({ state: 'detached' });
      await expectNoReadableToken(approver);
    }

    // Otto's open detail page re-reads the operation and shows it approved.
    await otto.page.locator('.state[data-state="APPROVED"]').waitFor();
    await capture(otto.page, '06-operation-approved');

    // The CI client signs a SHA-256 digest under the operation, straight against the API.
    const ci = await ciToken(p);
    const firmware = `production firmware ${description}`;
    const digest = createHash('sha256').update(firmware).digest('hex');
    const signed = await call<{ result: string; keyid: string }>(p.env.urls.api, ci, 'POST', '/api/signorders', signOrderBody(operationId, 'demo-fw-prod', digest));
    expect(signed.status).toBe(201);
    expect(signed.body.keyid).toBe('demo-fw-prod');
    const keys = await call<{ keyid: string; certificate: string }[]>(p.env.urls.api, ci, 'GET', '/api/keys');
    expect(keys.status).toBe(200);
    writeFileSync(join(work, 'prod.pem'), keys.body.find((k) => k.keyid === 'demo-fw-prod')?.certificate ?? '');
    writeFileSync(join(work, 'fw.bin'), firmware);
    writeFileSync(join(work, 'sig.bin'), Buffer.from(signed.body.result, 'hex'));
    run('openssl', ['x509', '-in', join(work, 'prod.pem'), '-pubkey', '-noout', '-out', join(work, 'pub.pem')]);
    expect(run('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', join(work, 'sig.bin'), join(work, 'fw.bin')])).toContain('Verified OK');
    // A different firmware does not verify against that signature.
    writeFileSync(join(work, 'other.bin'), `${firmware} tampered`);
    expect(() => run('openssl', ['dgst', '-sha256', '-verify', join(work, 'pub.pem'), '-signature', join(work, 'sig.bin'), join(work, 'other.bin')])).toThrow(/Verification failure/);

    // Otto's page counts the used usage.
    await otto.page.locator('.usages').filter({ hasText: '1 / 2' }).waitFor();

    // Aude reads the whole story of the operation in the audit log.
    const aude = await session();
    await signIn(aude, p, 'aude.auditor@demo.test');
    await expectNoReadableToken(aude);
    if (new URL(aude.page.url()).pathname !== '/audit') await nav(aude.page, 'Audit log', 'Audit log');
    await aude.page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await aude.page.getByRole('status').filter({ hasText: 'Intact:' }).waitFor();
    const filters = aude.page.getByRole('form', { name: 'Filter the audit log' });
    await filters.getByLabel('Operation id').fill(operationId);
    await filters.getByRole('button', { name: 'Search' }).click();
    const table = aude.page.getByRole('table', { name: 'Audit entries, newest first' });
    const readRows = () =>
      table
        .locator('tbody tr')
        .evaluateAll((trs) => trs.map((tr) => Array.from(tr.querySelectorAll(':scope > td')).map((td) => (td.textContent ?? '').trim())));
    const rows = await waitUntil(readRows, (r) => r.length === 4 && r.every((cells) => cells[5]?.includes(operationId)));
    // Newest first: action, outcome, actor.
    expect(rows.map((r) => [r[2], r[3]])).toEqual([
      ['signorder.create', 'SUCCESS'],
      ['operation.approve', 'SUCCESS'],
      ['operation.approve', 'SUCCESS'],
      ['operation.create', 'SUCCESS'],
    ]);
    expect(rows[0][4]).toBe('demo-ci');
    expect(rows[0][5]).toContain('demo-fw-prod');
    expect(rows.slice(1, 3).map((r) => r[4]).sort()).toEqual(['Ann Approver', 'Arno Approver']);
    expect(rows[3][4]).toBe('Otto Orderer');
    await capture(aude.page, '07-audit-operation');

    for (const s of sessions) expect(s.cspViolations).toEqual([]);
  });

  it('shows a user the Keyserver does not know no administration action, and the API refuses her page', async () => {
    const nora = await session();
    await signIn(nora, p, 'nora.nobody@demo.test');
    await expectNoReadableToken(nora);
    await nora.page.getByText('your account has no administration rights').waitFor();
    expect(await nora.page.getByRole('navigation', { name: 'Main' }).getByRole('link').count()).toBe(0);
    expect(await nora.page.getByRole('button', { name: /Approve|Reject|Create operation/ }).count()).toBe(0);
    await capture(nora.page, '08-no-rights');

    // Typing an address does not help: the console sends her to "Not allowed".
    await nora.page.goto(`${p.env.urls.keyclient}/audit`);
    await nora.page.waitForURL(/\/forbidden$/);
    await nora.page.getByRole('heading', { level: 1, name: 'Not allowed' }).waitFor();
    await capture(nora.page, '09-forbidden');

    // Her own page script, with her session cookie, is refused by the API.
    expect(await pageFetch(nora.page, '/api/v1/audit')).toBe(403);
    expect(await pageFetch(nora.page, '/api/keys')).toBe(403);
    const create = await pageFetch(nora.page, '/api/v1/operations', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-keyserver-csrf': '1' },
      body: JSON.stringify({ description: 'nora tries', validFrom: new Date().toISOString(), validTo: new Date(Date.now() + 3_600_000).toISOString(), keys: [{ keyid: 'demo-fw-dev', usages: 1 }] }),
    });
    expect(create).toBe(403);
    expect(nora.cspViolations).toEqual([]);
  });

  it('lets an administrator walk every main screen without a readable token', async () => {
    const ada = await session();
    await signIn(ada, p, 'ada.admin@demo.test');
    await expectNoReadableToken(ada);
    const screens: [label: string, heading: string, shot: string][] = [
      ['Operations', 'Operations', '10-operations'],
      ['Keys', 'Keys', '11-keys'],
      ['Device certificates', 'Device certificates', '12-certificates'],
      ['Admin sessions', 'Administrative sessions', '13-admin-sessions'],
      ['Subjects and roles', 'Subjects and roles', '14-subjects'],
      ['Audit log', 'Audit log', '15-audit'],
    ];
    for (const [label, heading, shot] of screens) {
      await nav(ada.page, label, heading);
      // Let the screen's first read settle before the picture and the checks (not networkidle: it fired once, on the
      // sign-in's page, and returns at once since, so the keys table could be read before its rows came).
      await listsLoaded(ada.page);
      await capture(ada.page, shot);
      await expectNoReadableToken(ada);
      if (label === 'Keys') {
        // Active keys only by default, the ROOT first, each with its type and state in a column of its own.
        expect(await ada.page.getByRole('checkbox', { name: 'Show revoked keys' }).isChecked()).toBe(false);
        const rows = await ada.page.getByRole('table', { name: 'Keys' }).locator('tbody tr').evaluateAll((trs) =>
          trs.map((tr) => Array.from(tr.querySelectorAll(':scope > td')).slice(0, 5).map((td) => (td.textContent ?? '').trim())),
        );
        expect(rows[0]).toEqual(['demo-root', 'ROOT', 'EC_P384 / SHA384', '2', 'ACTIVE']);
        expect(rows.filter((r) => r[0] === 'demo-fw-prod')).toEqual([['demo-fw-prod', 'FW', 'RSA_3072 / SHA256', '2', 'ACTIVE']]);
        expect(rows.every((r) => r[4] === 'ACTIVE')).toBe(true);
      }
    }
    expect(ada.cspViolations).toEqual([]);
  });

  it('creates a FW key in a session a second administrator authorized, changes its approvers, revokes it, and audits each step', async () => {
    const keyid = 'browser-fw-1';
    const description = 'Browser e2e: a firmware key for the gadget';
    const adaApi = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    const alanApi = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));

    const ada = await session();
    const { page } = ada;
    await signIn(ada, p, 'ada.admin@demo.test');

    // Without an ACTIVE session the key actions are there but disabled, with the reason next to them.
    await nav(page, 'Keys', 'Keys');
    await page.getByRole('row').filter({ hasText: 'demo-fw-dev' }).waitFor();
    await page.waitForLoadState('networkidle');
    await page.getByRole('note').filter({ hasText: 'open an administrative session' }).waitFor();
    expect(await page.getByRole('button', { name: 'New key' }).isDisabled()).toBe(true);
    expect(await page.getByRole('button', { name: 'Revoke demo-fw-dev' }).isDisabled()).toBe(true);
    // The ROOT is retired, never revoked: no revoke action for it.
    expect(await page.getByRole('button', { name: 'Change approvers of demo-root' }).count()).toBe(1);
    expect(await page.getByRole('button', { name: 'Revoke demo-root' }).count()).toBe(0);
    await capture(page, '20-keys-without-session');

    // Ada opens the session in the console; Alan authorizes it (four eyes) through the API.
    await nav(page, 'Admin sessions', 'Administrative sessions');
    const openForm = page.getByRole('form', { name: 'Open an administrative session' });
    await openForm.getByLabel('What is the session for?').fill(description);
    await openForm.getByRole('button', { name: 'Open session' }).click();
    const sessionRow = page.getByRole('row').filter({ hasText: description });
    await sessionRow.locator('.state[data-state="PENDING"]').waitFor();
    const listed = await adaApi<{ items: { id: string; description: string }[] }>('GET', '/api/v1/admin-sessions');
    const sessionId = listed.body.items.find((s) => s.description === description)?.id ?? '';
    expect(sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const authorized = await alanApi<{ state: string }>('POST', `/api/v1/admin-sessions/${sessionId}/authorizations`);
    expect([authorized.status, authorized.body.state]).toEqual([200, 'ACTIVE']);
    await page.getByRole('button', { name: 'Refresh' }).click();
    await sessionRow.locator('.state[data-state="ACTIVE"]').waitFor();
    await page.getByRole('status').filter({ hasText: 'Administrative session active' }).waitFor();

    // "New key": a FW key on P-256 for the gadget.
    await nav(page, 'Keys', 'Keys');
    await page.getByRole('button', { name: 'New key' }).click();
    const dialog = await openedDialog(page.getByRole('dialog', { name: 'New key' }));
    await dialog.getByLabel('Key id').fill(keyid);
    await choose(page, dialog, 'Type', 'FW: firmware signing');
    await choose(page, dialog, 'Algorithm', 'EC_P256');
    await dialog.getByLabel('Approvers required').fill('1');
    await dialog.getByLabel('Validity (days)').fill('365');
    await dialog.getByLabel('Product (optional)').fill('browser-gadget');
    await dialog.getByLabel('Common name').fill('Browser Gadget Firmware');
    await dialog.getByLabel('Organization (optional)').fill('Demo Devices Ltd');
    await dialog.getByLabel('Country (optional)').fill('dk');
    await capture(page, '21-new-key-dialog');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    await dialog.waitFor({ state: 'detached' });
    const keyRow = page.getByRole('row').filter({ hasText: keyid });
    await keyRow.waitFor();
    const rowCells = () => keyRow.locator(':scope > td').evaluateAll((tds) => tds.slice(0, 6).map((td) => (td.textContent ?? '').trim()));
    expect(await rowCells()).toEqual([keyid, 'FW', 'EC_P256 / SHA256', '1', 'ACTIVE', 'browser-gadget']);
    await page.getByRole('heading', { level: 2, name: `Key ${keyid}` }).waitFor();
    await capture(page, '22-key-created');

    // The certificate the console downloads verifies strictly against the ROOT's, with the names asked for.
    const root = (await adaApi<KeyView>('GET', '/api/v1/keys/demo-root')).body.certificate;
    writeFileSync(join(work, 'root.pem'), root);
    const [download] = await Promise.all([page.waitForEvent('download'), keyRow.getByRole('button', { name: `Download the certificate of ${keyid}` }).click()]);
    expect(download.suggestedFilename()).toBe(`${keyid}.pem`);
    const leaf = join(work, `${keyid}.pem`);
    await download.saveAs(leaf);
    expect(execFileSync('openssl', ['verify', '-x509_strict', '-CAfile', join(work, 'root.pem'), leaf]).toString().trim()).toBe(`${leaf}: OK`);
    const cert = new X509Certificate(readFileSync(leaf));
    expect(cert.subject.split('\n').sort()).toEqual(['C=DK', 'CN=Browser Gadget Firmware', 'O=Demo Devices Ltd']);
    expect(cert.ca).toBe(false);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkIssued(new X509Certificate(root))).toBe(true);
    const created = (await adaApi<KeyView>('GET', `/api/v1/keys/${keyid}`)).body;
    expect(created).toMatchObject({ type: 'FW', state: 'ACTIVE', requiredApprovers: 1, product: 'browser-gadget' });
    expect(new X509Certificate(created.certificate).fingerprint256).toBe(cert.fingerprint256);

    // The same keyid again: the API's refusal is shown in plain words with its code, nothing else changes.
    await page.getByRole('button', { name: 'New key' }).click();
    await openedDialog(dialog);
    await dialog.getByLabel('Key id').fill(keyid);
    await dialog.getByLabel('Common name').fill('Duplicate');
    await dialog.getByRole('button', { name: 'Create key' }).click();
    await dialog.waitFor({ state: 'detached' });
    const problem = page.locator('.problem[role="alert"]');
    await problem.waitFor();
    expect(await problem.getAttribute('data-code')).toBe('key_exists');
    expect(await problem.textContent()).toContain('A key with this id already exists.');

    // "Change approvers": 1 -> 3.
    await keyRow.getByRole('button', { name: `Change approvers of ${keyid}` }).click();
    const approvers = await openedDialog(page.getByRole('dialog', { name: `Change approvers of ${keyid}` }));
    expect(await approvers.getByLabel('Approvers required').inputValue()).toBe('1');
    await approvers.getByLabel('Approvers required').fill('3');
    await capture(page, '23-change-approvers-dialog');
    await approvers.getByRole('button', { name: 'Save' }).click();
    await approvers.waitFor({ state: 'detached' });
    await waitUntil(rowCells, (cells) => cells[3] === '3');
    expect(await problem.count()).toBe(0);
    expect((await adaApi<KeyView>('GET', `/api/v1/keys/${keyid}`)).body.requiredApprovers).toBe(3);

    // "Revoke" with a reason: the key leaves the list of active keys and focus goes to the heading.
    await keyRow.getByRole('button', { name: `Revoke ${keyid}` }).click();
    const revoke = await openedDialog(page.getByRole('dialog', { name: `Revoke key ${keyid}` }));
    await choose(page, revoke, 'Reason', 'superseded');
    await capture(page, '24-revoke-key-dialog');
    await revoke.getByRole('button', { name: 'Revoke', exact: true }).click();
    await revoke.waitFor({ state: 'detached' });
    await keyRow.waitFor({ state: 'detached' });
    await page.getByRole('heading', { level: 2, name: `Key ${keyid}` }).waitFor();
    expect(await page.locator('.panel .state').textContent()).toBe('REVOKED');
    expect(await page.evaluate('document.activeElement && document.activeElement.tagName')).toBe('H1');
    expect((await adaApi<KeyView>('GET', `/api/v1/keys/${keyid}`)).body.state).toBe('REVOKED');

    // With revoked keys shown it is back, as REVOKED and with nothing left to change; hidden again, it is gone.
    const showRevoked = page.getByRole('checkbox', { name: 'Show revoked keys' });
    await showRevoked.check();
    await keyRow.locator('.state[data-state="REVOKED"]').waitFor();
    expect(await rowCells()).toEqual([keyid, 'FW', 'EC_P256 / SHA256', '3', 'REVOKED', 'browser-gadget']);
    expect(await keyRow.getByRole('button', { name: `Revoke ${keyid}` }).count()).toBe(0);
    expect(await keyRow.getByRole('button', { name: `Change approvers of ${keyid}` }).count()).toBe(0);
    expect(await keyRow.getByRole('button', { name: `Download the certificate of ${keyid}` }).count()).toBe(1);
    expect(await page.getByRole('row').filter({ hasText: 'demo-fw-dev' }).locator('.state[data-state="ACTIVE"]').count()).toBe(1);
    await capture(page, '25-key-revoked');
    await showRevoked.uncheck();
    await keyRow.waitFor({ state: 'detached' });
    await page.getByRole('row').filter({ hasText: 'demo-fw-dev' }).waitFor();

    // The audit log ties each change to Ada and to the session Alan authorized.
    const audit = await waitUntil(
      () => auditOf(adaApi, `adminSessionId=${sessionId}&limit=50`),
      (rows) => rows.some((r) => r.action === 'key.revoke'),
    );
    const keyEvents = audit.filter((r) => r.action.startsWith('key.')).reverse();
    expect(keyEvents.map((r) => [r.action, r.outcome, r.errorCode, r.keyid])).toEqual([
      ['key.create', 'SUCCESS', null, keyid],
      ['key.create', 'DENIED', 'key_exists', keyid],
      ['key.update', 'SUCCESS', null, keyid],
      ['key.revoke', 'SUCCESS', null, keyid],
    ]);
    expect(keyEvents.every((r) => r.actorOid === userOid('ada.admin@demo.test') && r.adminSessionId === sessionId)).toBe(true);
    expect(keyEvents[0].details).toMatchObject({ type: 'FW', algorithm: 'EC_P256', issuer: 'demo-root', requiredApprovers: 1, product: 'browser-gadget' });
    expect(keyEvents[2].details).toEqual({ requiredApprovers: { before: 1, after: 3 } });
    expect(keyEvents[3].details).toEqual({ reason: 'superseded' });

    expect(ada.cspViolations).toEqual([]);
  }, 300_000);
  it('has checks that see a planted token and a planted accessibility fault', async () => {
    // The guards above must be able to fail: plant what they look for in a signed-in page.
    const s = await session();
    await signIn(s, p, 'aude.auditor@demo.test');
    await nav(s.page, 'Audit log', 'Audit log');
    expect(await seriousAxeViolations(s.page)).toEqual([]);
    await s.page.evaluate(`(() => {
      const img = document.createElement('img');
      img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw=';
      document.getElementById('main').appendChild(img);
      const code = document.createElement('code');
      code.textContent = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln';
      document.getElementById('main').appendChild(code);
      sessionStorage.setItem('planted', '1');
    })()`);
    expect((await seriousAxeViolations(s.page)).map((v) => v.id)).toContain('image-alt');
    expect(await readableSecrets(s.page)).toMatchObject({ sessionStorage: 1, jwtInDom: true });
  });

  it('finds no serious or critical accessibility violation on the screens above', () => {
    // Runs last: the screens were checked with axe-core while the tests above walked them.
    expect(axeFindings).toEqual([]);
  });
});
