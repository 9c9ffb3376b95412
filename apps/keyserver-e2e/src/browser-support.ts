import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Locator, type Page } from 'playwright-core';
import { demoTenant, type RunningPlatform } from '@keyserver/testing';
import type { Api } from './admin-helpers';

// Helpers of browser.spec.ts: Debian's Chromium driven by playwright-core against the real platform.

/** Long enough for a busy 2-core machine: lazy Angular chunks, the emulator round trip, the API. */
export const UI_TIMEOUT = 30_000;

/** Where the screenshots go (git-ignored `/test-artifacts` at the repository root). */
export const SCREENSHOT_DIR = resolve(__dirname, '../../../test-artifacts/screenshots');

const JWT = /eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+/;
const PASSWORD_OF = new Map(demoTenant.users.map((u) => [u.username, u.password]));
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
}

export interface UserSession {
  context: BrowserContext;
  page: Page;
  /** Console messages of keyclient pages that report a Content Security Policy violation. */
  cspViolations: string[];
}

/** Viewport, language and time zone of a browser context (the console follows the browser's locale and zone). */
export interface DeviceOptions {
  viewport?: { width: number; height: number };
  locale?: string;
  timezoneId?: string;
  /** A phone: touch, mobile viewport meta honoured. */
  isMobile?: boolean;
}

/** A fresh browser context (own cookies) for one user, 1280x800 en-US unless `device` says otherwise. */
export async function newSession(browser: Browser, p: RunningPlatform, device: DeviceOptions = {}): Promise<UserSession> {
  const context = await browser.newContext({
    viewport: device.viewport ?? { width: 1280, height: 800 },
    locale: device.locale ?? 'en-US',
    timezoneId: device.timezoneId,
    isMobile: device.isMobile,
    hasTouch: device.isMobile,
  });
  context.setDefaultTimeout(UI_TIMEOUT);
  context.setDefaultNavigationTimeout(UI_TIMEOUT);
  const page = await context.newPage();
  const cspViolations: string[] = [];
  const origin = new URL(p.env.urls.keyclient).origin;
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/i.test(m.text()) && page.url().startsWith(origin)) cspViolations.push(m.text());
  });
  return { context, page, cspViolations };
}

/**
 * Signs `username` in the way a person does: the landing page's button, the emulator's sign-in form
 * (found by its labels), back to the console with the user's name in the toolbar. `onScreen` is called on the
 * landing page and on the sign-in form (screenshots, checks).
 */
export async function signIn(s: UserSession, p: RunningPlatform, username: string, onScreen?: (name: string) => Promise<void>): Promise<void> {
  const password = PASSWORD_OF.get(username);
  if (!password) throw new Error(`no demo user ${username}`);
  const { page } = s;
  await page.goto(`${p.env.urls.keyclient}/`);
  const button = page.getByRole('button', { name: 'Sign in with Microsoft Entra ID' });
  await button.waitFor();
  if (onScreen) await onScreen('landing');
  await button.click();
  const emulatorOrigin = new URL(p.env.urls.emulator).origin;
  await page.waitForURL((u) => u.origin === emulatorOrigin);
  await page.getByLabel('Email, phone, or Skype').fill(username);
  await page.getByLabel('Password').fill(password);
  if (onScreen) await onScreen('emulator-sign-in');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const keyclientOrigin = new URL(p.env.urls.keyclient).origin;
  await page.waitForURL((u) => u.origin === keyclientOrigin);
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** Saves a 1280x800 screenshot of the viewport under test-artifacts/screenshots/<name>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}.png`) });
}

/**
 * Runs axe-core on the page and returns the serious and critical violations. The source is evaluated
 * through the DevTools protocol rather than a `<script>` tag so the keyclient's CSP (script-src 'self')
 * stays in force for the page.
 */
export async function seriousAxeViolations(page: Page): Promise<{ screen: string; id: string; help: string; targets: string[] }[]> {
  await page.evaluate(AXE_SOURCE);
  // A string, not a function: the test compiler must not rewrite code that runs in the page.
  const violations = (await page.evaluate(
    `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => JSON.stringify(n.target)) })))`,
  )) as { id: string; impact: string | null; help: string; targets: string[] }[];
  const screen = new URL(page.url()).pathname;
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => ({ screen, id: v.id, help: v.help, targets: v.targets }));
}

/**
 * Every axe-core violation on the page, whatever its impact (the console's bar: none at all). Same evaluation
 * through the DevTools protocol as {@link seriousAxeViolations}.
 */
export async function allAxeViolations(page: Page, screen: string): Promise<{ screen: string; id: string; impact: string | null; help: string; targets: string[] }[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(
    `axe.run(document, { resultTypes: ['violations'] }).then((r) => r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => JSON.stringify(n.target)) })))`,
  )) as { id: string; impact: string | null; help: string; targets: string[] }[];
  return violations.map((v) => ({ screen, ...v }));
}

/** How far the page scrolls sideways (0 when nothing is wider than the viewport), and the widest culprits. */
export async function horizontalOverflow(page: Page): Promise<{ overflow: number; culprits: string[] }> {
  return (await page.evaluate(`(() => {
    const doc = document.documentElement;
    const overflow = doc.scrollWidth - doc.clientWidth;
    const culprits = overflow <= 0 ? [] : Array.from(document.querySelectorAll('body *'))
      .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
      .slice(0, 5)
      .map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\\s+/).join('.') : ''));
    return { overflow, culprits };
  })()`)) as { overflow: number; culprits: string[] };
}

/** What the page's own script can read of its credentials: web storage, `document.cookie`, the DOM. */
export async function readableSecrets(page: Page): Promise<{ localStorage: number; sessionStorage: number; documentCookie: string; jwtInDom: boolean }> {
  const fromPage = await page.evaluate(() => ({ localStorage: localStorage.length, sessionStorage: sessionStorage.length, documentCookie: document.cookie }));
  return { ...fromPage, jwtInDom: JWT.test(await page.content()) };
}

export { JWT };

/**
 * Waits until the lists of the screen shown have answered: each shows a progress bar while it loads
 * (ListStateComponent), rendered with the screen's heading. `waitForLoadState('networkidle')` cannot say this in the
 * console: Playwright fires networkidle once per document, so after the sign-in's page it returns at once.
 */
export async function listsLoaded(page: Page): Promise<void> {
  // A locator, not waitForFunction: the console's CSP (no unsafe-eval) refuses a polled string predicate.
  await page.locator('mat-progress-bar').first().waitFor({ state: 'detached' });
}

/** Polls `read` until `ok` holds of its value (or the timeout passes), then returns the last value. */
export async function waitUntil<T>(read: () => Promise<T>, ok: (v: T) => boolean, timeoutMs = UI_TIMEOUT): Promise<T> {
  const end = Date.now() + timeoutMs;
  let v = await read();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 250));
    v = await read();
  }
  return v;
}

/**
 * Waits until a Material dialog has finished opening, which is when it moves focus into itself (delayFocusTrap).
 * Typing earlier races that focus move: the rest of a `fill` lands in the field that receives the initial focus.
 */
export async function openedDialog(dialog: Locator): Promise<Locator> {
  await dialog.waitFor();
  await dialog.evaluate(
    (el) =>
      new Promise<void>((resolve) => {
        const check = () => (!el.classList.contains('mdc-dialog--opening') && el.contains(document.activeElement) ? resolve() : setTimeout(check, 20));
        check();
      }),
  );
  return dialog;
}

/**
 * On the Admin sessions page: the signed-in administrator opens a session in the console, `authorizer` authorizes it
 * over the API (the second pair of eyes), and the console shows it ACTIVE. Returns the session id.
 */
export async function openActiveSessionInConsole(page: Page, description: string, opener: Api, authorizer: Api): Promise<string> {
  const openForm = page.getByRole('form', { name: 'Open an administrative session' });
  await openForm.getByLabel('What is the session for?').fill(description);
  await openForm.getByRole('button', { name: 'Open session' }).click();
  await page.getByRole('row').filter({ hasText: description }).locator('.state[data-state="PENDING"]').waitFor();
  const listed = await opener<{ items: { id: string; description: string }[] }>('GET', '/api/v1/admin-sessions');
  const sessionId = listed.body.items.find((s) => s.description === description)?.id ?? '';
  const authorized = await authorizer<{ state: string }>('POST', `/api/v1/admin-sessions/${sessionId}/authorizations`);
  if (authorized.body.state !== 'ACTIVE') throw new Error(`session ${sessionId} not ACTIVE after the second authorization: ${authorized.status}`);
  await page.getByRole('button', { name: 'Refresh' }).click();
  await page.getByRole('status').filter({ hasText: 'Administrative session active' }).waitFor();
  return sessionId;
}

/**
 * Opens a screen from the main navigation: on a phone (≤ 768 px) through the Menu button first. The console closes
 * the menu on every NavigationEnd, so a click that lands before a late navigation (the sign-in redirect, a lazy
 * chunk) is undone by it: open the menu and click the link again until the link was clicked, within UI_TIMEOUT.
 * `label` matches the link's text up to a space or its end (the approvals link carries a badge: "My approvals (2 waiting)").
 */
export async function navigate(page: Page, label: string, heading: string): Promise<void> {
  const toggle = page.locator('button.menu-toggle');
  const escaped = label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const link = page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: new RegExp(`^${escaped}( |$)`) });
  const end = Date.now() + UI_TIMEOUT;
  for (;;) {
    try {
      if ((await toggle.isVisible()) && (await toggle.getAttribute('aria-expanded')) !== 'true') await toggle.click({ timeout: 2_000 });
      await link.click({ timeout: 2_000 });
      break;
    } catch (e) {
      if (Date.now() > end) throw e;
    }
  }
  await page.getByRole('heading', { level: 1, name: heading, exact: true }).waitFor();
}
