import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, auditOf, bffUserToken, sql, type Api } from './admin-helpers';
import { call, operationBody, userToken } from './operations-support';

// Approver notifications through the real API processes (two replicas on one database: two dispatchers), a local
// SMTP server (smtp-server) and a local HTTP webhook receiver. docs/notifications.md.

interface Mail {
  to: string[];
  raw: string;
}
interface Hook {
  headers: IncomingHttpHeaders;
  body: string;
}
interface Settings {
  email: string | null;
  emailEnabled: boolean;
  webhookEnabled: boolean;
  updatedAt: string | null;
}

const SECRET = randomBytes(32).toString('hex');
const unQp = (s: string) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));

async function until<T>(what: string, fn: () => T | undefined | false, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('approver notifications (email, webhooks, settings)', () => {
  let p: RunningPlatform;
  let smtp: SMTPServer;
  let http: Server;
  const mails: Mail[] = [];
  const hooks: Hook[] = [];
  let ada: Api;
  let alan: Api;
  let ann: Api;
  let arno: Api;
  let otto: string;
  let session: string;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, s, done) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({ to: s.envelope.rcptTo.map((r) => r.address), raw: unQp(Buffer.concat(chunks).toString('utf8')) });
          done();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        hooks.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    p = await startPlatform({
      replicas: 2,
      extraApiEnv: {
        SMTP_HOST: '127.0.0.1',
        SMTP_PORT: String((smtp.server.address() as AddressInfo).port),
        SMTP_TLS: 'none',
        SMTP_FROM: 'Keyserver <keyserver@demo.test>',
        NOTIFY_WEBHOOKS: JSON.stringify([{ name: 'approvers', url: `http://127.0.0.1:${(http.address() as AddressInfo).port}/hook`, secret: SECRET }]),
        NOTIFY_SPA_URL: 'http://localhost:8080',
        NOTIFY_POLL_MS: '100',
      },
    });
    ada = apiAs(p, await bffUserToken(p, 'ada.admin@demo.test'));
    alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    ann = apiAs(p, await bffUserToken(p, 'ann.approver@demo.test'));
    arno = apiAs(p, await bffUserToken(p, 'arno.approver@demo.test'));
    otto = await userToken(p, 'otto.orderer@demo.test');
    for (const [name, api] of [['ann', ann], ['arno', arno], ['otto', apiAs(p, otto)], ['alan', alan], ['ada', ada]] as const) {
      ids[name] = (await api<{ subjectId: string }>('GET', '/api/v1/me')).body.subjectId;
    }
    session = await activeSession(ada, alan, 'notification addresses e2e');
  });

  afterAll(async () => {
    await p?.stop();
    await new Promise<void>((resolve) => (smtp ? smtp.close(() => resolve()) : resolve()));
    http?.closeAllConnections();
    await new Promise<void>((resolve) => (http ? http.close(() => resolve()) : resolve()));
  });

  describe('PUT /api/v1/subjects/{id}/notification-address', () => {
    it.each([
      ['fail admin_session_required without a session', () => ada('PUT', `/api/v1/subjects/${ids['ann']}/notification-address`, { body: { email: 'ann@demo.test' } }), 403, 'admin_session_required'],
      ['fail permission_denied for a non-administrator', () => ann('PUT', `/api/v1/subjects/${ids['ann']}/notification-address`, { body: { email: 'evil@attacker.test' }, session }), 403, 'permission_denied'],
      ['fail validation_failed for a display-name address', () => ada('PUT', `/api/v1/subjects/${ids['ann']}/notification-address`, { body: { email: 'Ann <ann@demo.test>' }, session }), 400, 'validation_failed'],
      ['fail validation_failed for a header-injection address', () => ada('PUT', `/api/v1/subjects/${ids['ann']}/notification-address`, { body: { email: 'ann@demo.test\r\nBcc: x@attacker.test' }, session }), 400, 'validation_failed'],
      ['fail validation_failed for an unknown field', () => ada('PUT', `/api/v1/subjects/${ids['ann']}/notification-address`, { body: { email: 'ann@demo.test', verified: true }, session }), 400, 'validation_failed'],
      ['fail subject_not_found for an unknown subject', () => ada('PUT', '/api/v1/subjects/00000000-0000-4000-8000-000000000000/notification-address', { body: { email: 'x@demo.test' }, session }), 404, 'subject_not_found'],
    ] as const)('%s', async (_n, send, status, code) => {
      const r = await send();
      expect({ status: r.status, code: (r.body as { code?: string }).code, type: r.headers.get('content-type') }).toEqual({ status, code, type: expect.stringContaining('application/problem+json') });
    });

    it('ok sets each address in the session, audited with the session id', async () => {
      for (const name of ['ann', 'arno', 'otto', 'alan', 'ada']) {
        const r = await ada<Settings>('PUT', `/api/v1/subjects/${ids[name]}/notification-address`, { body: { email: `${name}@demo.test` }, session });
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ email: `${name}@demo.test`, emailEnabled: true, webhookEnabled: true });
      }
      const audit = (await auditOf(ada, 'action=notification.address_set')).filter((a) => a.outcome === 'SUCCESS');
      expect(audit.length).toBeGreaterThanOrEqual(5);
      expect(audit.every((a) => a.adminSessionId === session)).toBe(true);
    });
  });

  describe('GET|PUT /api/v1/me/notifications', () => {
    it.each([
      ['fail validation_failed for a missing field', { emailEnabled: false }],
      ['fail validation_failed for a string boolean', { emailEnabled: 'false', webhookEnabled: true }],
      ['fail validation_failed when trying to change the address', { emailEnabled: true, webhookEnabled: true, email: 'evil@attacker.test' }],
    ])('%s', async (_n, body) => {
      const r = await arno('PUT', '/api/v1/me/notifications', { body });
      expect({ status: r.status, code: (r.body as { code?: string }).code }).toEqual({ status: 400, code: 'validation_failed' });
    });

    it('ok lets a subject opt out of email for itself only', async () => {
      const r = await arno<Settings>('PUT', '/api/v1/me/notifications', { body: { emailEnabled: false, webhookEnabled: true } });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ email: 'arno@demo.test', emailEnabled: false, webhookEnabled: true });
      expect((await arno<Settings>('GET', '/api/v1/me/notifications')).body.emailEnabled).toBe(false);
      expect((await ann<Settings>('GET', '/api/v1/me/notifications')).body).toMatchObject({ email: 'ann@demo.test', emailEnabled: true });
      const anonymous = await fetch(`${p.env.urls.api}/api/v1/me/notifications`);
      expect(anonymous.status).toBe(401);
    });
  });

  describe('the dispatchers of two replicas', () => {
    it('email each approver who did not opt out once, call the webhook once with a signature openssl verifies, then tell the orderer', async () => {
      const created = await call<{ id: string }>(p.env.urls.api, otto, 'POST', '/api/v1/operations', operationBody('demo-fw-prod', 1));
      expect(created.status).toBe(201);
      const op = created.body.id;
      const forOp = (m: Mail) => m.raw.includes(op);
      await until('the approval request email', () => mails.some(forOp));
      await until('the approval request webhook', () => hooks.some((h) => h.body.includes(op)));
      await new Promise((r) => setTimeout(r, 1500)); // both replicas poll every 100 ms: any double send shows up by now
      const requestMails = mails.filter(forOp);
      expect(requestMails.map((m) => m.to)).toEqual([['ann@demo.test']]);
      expect(requestMails[0].raw).toContain(`http://localhost:8080/operations/${op}`);
      expect(requestMails[0].raw).not.toMatch(/access_token|Bearer |\/approvals/i);
      const requestHooks = hooks.filter((h) => h.body.includes(op));
      expect(requestHooks).toHaveLength(1);
      const [hook] = requestHooks;
      const ts = String(hook.headers['x-keyserver-timestamp']);
      const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', SECRET, '-r'], { input: `${ts}.${hook.body}` }).toString().split(' ')[0];
      expect(hook.headers['x-keyserver-signature']).toBe(`v1=${mac}`);
      const body = JSON.parse(hook.body) as { type: string; deliveryId: string; recipients: { subjectId: string }[] };
      expect(body.type).toBe('operation.approval_requested');
      expect(body.deliveryId).toBe(hook.headers['x-keyserver-delivery']);
      expect(body.recipients.map((r) => r.subjectId).sort()).toEqual([ids['ann'], ids['arno']].sort());

      for (const approver of [ann, arno]) expect((await approver('POST', `/api/v1/operations/${op}/approvals`, { body: {} })).status).toBe(201);
      await until('the orderer email', () => mails.some((m) => forOp(m) && m.to[0] === 'otto@demo.test'));
      await until('the orderer webhook', () => hooks.some((h) => h.body.includes(op) && h.body.includes('operation.approved')));
      await new Promise((r) => setTimeout(r, 1000));
      expect(mails.filter((m) => forOp(m) && m.to[0] === 'otto@demo.test')).toHaveLength(1);
      expect(hooks.filter((h) => h.body.includes(op))).toHaveLength(2);
      const rows = await sql<{ state: string; n: number }>(p, `SELECT d."state"::text AS "state", count(*)::int AS n FROM "notification_delivery" d JOIN "notification_outbox" o ON o."id" = d."outboxId" WHERE o."operationId" = $1 GROUP BY 1`, [op]);
      expect(rows).toEqual([{ state: 'SENT', n: 4 }]);
    });

    it('ask the other administrator to authorize a four-eyes session, once, never its creator', async () => {
      const opened = await ada<{ id: string; state: string }>('POST', '/api/v1/admin-sessions', { body: { description: 'notification e2e: second session' } });
      expect(opened.body.state).toBe('PENDING');
      const forSession = (m: Mail) => m.raw.includes('Administrative session needs your authorization');
      await until('the authorization request email', () => mails.some(forSession));
      await new Promise((r) => setTimeout(r, 1500));
      expect(mails.filter(forSession).map((m) => m.to)).toEqual([['alan@demo.test']]);
      expect(mails.filter(forSession)[0].raw).toContain('http://localhost:8080/admin-sessions');
      const hook = hooks.filter((h) => h.body.includes(opened.body.id));
      expect(hook).toHaveLength(1);
      expect(JSON.parse(hook[0].body)).toMatchObject({ type: 'admin_session.authorization_requested', recipients: [{ subjectId: ids['alan'] }] });
    });
  });
});
