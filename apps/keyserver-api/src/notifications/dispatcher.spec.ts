import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import pino from 'pino';
import { SMTPServer } from 'smtp-server';
import { createDb, createRepositories, NotificationRepository, type Db, type Repositories } from '@keyserver/data-access';
import { createTestDatabase, type TempDatabase } from '@keyserver/data-access/testing';
import { ApiMetrics } from '../metrics/api-metrics';
import { NotificationDispatcher, backoffMs } from './dispatcher';
import type { NotifyConfig, WebhookEndpoint } from './notify-config';

// Real PostgreSQL, a real SMTP server (smtp-server) and a real HTTP receiver; only the clock of retries is shortened.

const SECRET = randomBytes(32).toString('hex');
const AUDIT = { action: 'test.notifications', outcome: 'SUCCESS' as const };
const hex = (n: number) => randomBytes(n).toString('hex');
const quiet = pino({ level: 'silent' });

interface Mail {
  to: string[];
  raw: string;
}
interface Call {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** Quoted-printable soft breaks and escapes undone (nodemailer wraps long text lines). */
const unQp = (s: string) => s.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));

describe(NotificationDispatcher.name, () => {
  let tmp: TempDatabase;
  let url: string;
  let db: Db;
  let db2: Db;
  let repos: Repositories;
  let smtp: SMTPServer;
  let smtpPort: number;
  let http: Server;
  let httpPort: number;
  const mails: Mail[] = [];
  const calls: Call[] = [];
  /** Per path: the statuses to answer in turn (the last one repeats), and an optional delay. */
  const script = new Map<string, { statuses: number[]; delayMs?: number }>();

  beforeAll(async () => {
    tmp = await createTestDatabase('ks_api_notify');
    url = tmp.url;
    db = createDb(url, { poolSize: 2 });
    db2 = createDb(url, { poolSize: 2 });
    repos = createRepositories(db);
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, done) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: unQp(Buffer.concat(chunks).toString('utf8')) });
          done();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    smtpPort = (smtp.server.address() as AddressInfo).port;
    http = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        calls.push({ path, headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
        const s = script.get(path) ?? { statuses: [204] };
        const status = s.statuses.length > 1 ? (s.statuses.shift() as number) : s.statuses[0];
        setTimeout(() => res.writeHead(status, status >= 300 && status < 400 ? { location: `http://127.0.0.1:${httpPort}/elsewhere` } : {}).end(), s.delayMs ?? 0);
      });
    });
    await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
    httpPort = (http.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await db?.close();
    await db2?.close();
    await new Promise<void>((resolve) => smtp?.close(() => resolve()));
    http?.closeAllConnections();
    await new Promise<void>((resolve) => http?.close(() => resolve()));
    await tmp?.drop();
  });

  beforeEach(async () => {
    // Each case starts with nothing due: earlier events expanded, their deliveries done.
    await new NotificationDispatcherFor([], db).pass();
    await db.pool.query(`UPDATE "notification_delivery" SET "state" = 'SENT' WHERE "state" = 'PENDING'`);
    mails.length = 0;
    calls.length = 0;
    script.clear();
  });

  const hook = (name: string, extra: Partial<WebhookEndpoint> = {}): WebhookEndpoint => ({
    name,
    url: `http://127.0.0.1:${httpPort}/${name}`,
    format: 'keyserver',
    secret: SECRET,
    ...extra,
  });

  function config(webhooks: WebhookEndpoint[], over: Partial<NotifyConfig> = {}): NotifyConfig {
    return {
      spaUrl: 'https://keyserver.example.test',
      smtp: { host: '127.0.0.1', port: smtpPort, tls: 'none', ca: null, user: null, password: null, from: 'Keyserver <keyserver@example.test>' },
      webhooks,
      maxAttempts: 3,
      retryBaseMs: 20,
      retryMaxMs: 100,
      pollMs: 50,
      sendTimeoutMs: 2_000,
      leaseMs: 60_000,
      dbPoolSize: 2,
      retentionDays: 90,
      recipientHourlyMax: 20,
      webhookHourlyMax: 60,
      ...over,
    };
  }

  // A dispatcher whose passes run until nothing is due (retries included).
  class NotificationDispatcherFor extends NotificationDispatcher {
    constructor(webhooks: WebhookEndpoint[], on: Db, over: Partial<NotifyConfig> = {}) {
      super(new NotificationRepository(on), quiet, config(webhooks, over));
    }
    async drain(maxMs = 10_000) {
      const total = { sent: 0, skipped: 0, retried: 0, dead: 0, lost: 0 };
      const until = Date.now() + maxMs;
      while (Date.now() < until) {
        const p = await this.pass();
        total.sent += p.sent;
        total.skipped += p.skipped;
        total.retried += p.retried;
        total.dead += p.dead;
        total.lost += p.lost;
        const due = await db.pool.query(`SELECT 1 FROM "notification_delivery" WHERE "state" = 'PENDING'`);
        if (due.rowCount === 0) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      return total;
    }
  }

  /** A key needing one approval, approvers holding APPROVE on it with addresses on file, and an orderer with one. */
  async function scene(n = 3) {
    const key = await repos.keys.create({
      keyid: `fw-${hex(4)}`,
      type: 'FW',
      algorithm: 'EC_P256',
      hash: 'SHA256',
      requiredApprovers: 1,
      hsmKeyId: hex(8),
      certificatePem: '-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n',
      certificateSerial: hex(8),
      notBefore: new Date(Date.now() - 86_400_000),
      notAfter: new Date(Date.now() + 86_400_000),
      product: 'demo',
      profile: {},
    });
    const role = `approvers-${hex(3)}`;
    await repos.subjects.createRole({ name: role, natures: ['APPROVER'], keys: [{ keyid: key.keyid, permissions: ['APPROVE'] }] });
    const approvers = [];
    for (let i = 0; i < n; i++) {
      const s = await repos.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: `Approver ${i}`, roles: [role] });
      // Signed in once with a member token (ADR 0040): approval requests go to proven members only.
      await repos.subjects.recordAccount(s.id, 'MEMBER', new Date(), { action: 'subject.account', outcome: 'SUCCESS' });
      await repos.notifications.setAddress(s.id, `approver${i}.${hex(3)}@example.test`, AUDIT);
      approvers.push({ ...s, email: (await repos.notifications.settings(s.id)).email as string });
    }
    const orderer = await repos.subjects.create({ kind: 'USER', tid: 'tenant-1', oid: hex(16), displayName: 'Orderer' });
    await repos.notifications.setAddress(orderer.id, `orderer.${hex(3)}@example.test`, AUDIT);
    const order = (description = 'Release 4.2 <b>[click](https://evil.example)</b>') =>
      repos.operations.create({
        description,
        ordererId: orderer.id,
        validFrom: new Date(Date.now() - 60_000),
        validTo: new Date(Date.now() + 3_600_000),
        keys: [{ keyid: key.keyid, usagesAllowed: 2 }],
      });
    return { key, approvers, orderer, order };
  }

  it('sends one email per approver with an address who did not opt out, and one signed call per webhook that openssl verifies', async () => {
    const s = await scene(3);
    await repos.notifications.setOptOuts(s.approvers[1].id, { emailEnabled: false }, AUDIT);
    await repos.notifications.setOptOuts(s.approvers[2].id, { webhookEnabled: false }, AUDIT);
    const op = await s.order();
    const d = new NotificationDispatcherFor([hook('ok')], db);
    expect(await d.drain()).toMatchObject({ sent: 3, dead: 0 });

    expect(mails.map((m) => m.to).sort()).toEqual([[s.approvers[0].email], [s.approvers[2].email]].sort());
    const deliveries = await repos.notifications.deliveriesOf(op.id);
    for (const m of mails) {
      const delivery = deliveries.find((x) => x.address === m.to[0]);
      expect(m.raw).toContain(`Message-ID: <${delivery?.id}@example.test>`);
      expect(m.raw).toContain(`X-Keyserver-Event: operation.approval_requested`);
      expect(m.raw).toContain(`https://keyserver.example.test/operations/${op.id}`);
      expect(m.raw).toMatch(/Content-Type: text\/plain/);
      expect(m.raw).not.toMatch(/text\/html|approvals|token/i);
    }

    expect(calls).toHaveLength(1);
    const [call] = calls;
    const ts = Number(call.headers['x-keyserver-timestamp']);
    expect(Math.abs(ts - Date.now() / 1000)).toBeLessThan(30);
    // HMAC-SHA256 over "timestamp.body", recomputed by openssl.
    const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', SECRET, '-r'], { input: `${ts}.${call.body}` }).toString().split(' ')[0];
    expect(call.headers['x-keyserver-signature']).toBe(`v1=${mac}`);
    const body = JSON.parse(call.body) as { deliveryId: string; type: string; recipients: { subjectId: string }[]; url: string };
    expect(body.deliveryId).toBe(call.headers['x-keyserver-delivery']);
    expect(body.deliveryId).toBe(call.headers['idempotency-key']);
    expect(body.type).toBe('operation.approval_requested');
    expect(body.url).toBe(`https://keyserver.example.test/operations/${op.id}`);
    expect(body.recipients.map((r) => r.subjectId).sort()).toEqual([s.approvers[0].id, s.approvers[1].id].sort());
  });

  it('tells the orderer by email and webhook when the operation becomes usable', async () => {
    const s = await scene(1);
    const op = await s.order();
    const d = new NotificationDispatcherFor([hook('ok')], db);
    await d.drain();
    mails.length = 0;
    calls.length = 0;
    await repos.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    expect(await d.drain()).toMatchObject({ sent: 2 });
    expect(mails.map((m) => m.to)).toEqual([[(await repos.notifications.settings(s.orderer.id)).email]]);
    expect(mails[0].raw).toContain('can be used now');
    expect(JSON.parse(calls[0].body)).toMatchObject({ type: 'operation.approved', recipients: [{ subjectId: s.orderer.id, displayName: 'Orderer' }] });
  });

  it('retries after a 500 with backoff and sends the same delivery id and body once the receiver answers 2xx', async () => {
    const s = await scene(1);
    await repos.notifications.setOptOuts(s.approvers[0].id, { emailEnabled: false }, AUDIT);
    script.set('/flaky', { statuses: [500, 503, 200] });
    await s.order();
    const d = new NotificationDispatcherFor([hook('flaky')], db);
    expect(await d.drain()).toMatchObject({ sent: 1, retried: 2, dead: 0 });
    expect(calls).toHaveLength(3);
    expect(new Set(calls.map((c) => c.headers['x-keyserver-delivery'])).size).toBe(1);
    expect(new Set(calls.map((c) => c.body)).size).toBe(1);
  });

  it.each([
    ['fail DEAD after NOTIFY_MAX_ATTEMPTS 5xx answers', [500], 0, 3, 'webhook HTTP 500'],
    ['fail DEAD at once on a permanent 4xx (bad signature, gone)', [410], 0, 1, 'webhook HTTP 410'],
    ['fail DEAD at once on a redirect, never followed', [307], 0, 1, 'webhook HTTP 307'],
    ['fail DEAD after NOTIFY_MAX_ATTEMPTS timeouts', [204], 1_500, 3, 'webhook timeout'],
  ])('%s', async (_n, statuses, delayMs, attempts, lastError) => {
    const s = await scene(1);
    await repos.notifications.setOptOuts(s.approvers[0].id, { emailEnabled: false }, AUDIT);
    script.set('/down', { statuses, delayMs });
    const op = await s.order();
    const d = new NotificationDispatcherFor([hook('down')], db, { sendTimeoutMs: 300 });
    expect(await d.drain()).toMatchObject({ sent: 0, dead: 1 });
    expect(calls.map((c) => c.path)).toEqual(Array.from({ length: attempts }, () => '/down'));
    expect((await repos.notifications.deliveriesOf(op.id))[0]).toMatchObject({ state: 'DEAD', attempts, lastError });
  });

  it('skips an approval request still being retried once the operation no longer awaits approval', async () => {
    const s = await scene(1);
    await repos.notifications.setOptOuts(s.approvers[0].id, { emailEnabled: false }, AUDIT);
    script.set('/late', { statuses: [503, 204] });
    const op = await s.order();
    const d = new NotificationDispatcherFor([hook('late')], db, { retryBaseMs: 200, retryMaxMs: 200 });
    expect(await d.pass()).toMatchObject({ retried: 1 });
    await repos.operations.reject(op.id, 'wrong build', AUDIT);
    // The orderer hears of the rejection (email and webhook); the stale request is not sent again.
    expect(await d.drain()).toMatchObject({ skipped: 1, sent: 2 });
    const rows = await repos.notifications.deliveriesOf(op.id);
    expect(rows.map((r) => [r.event, r.channel, r.state, r.attempts]).sort()).toEqual([
      ['operation.approval_requested', 'WEBHOOK', 'SKIPPED', 2],
      ['operation.rejected', 'EMAIL', 'SENT', 1],
      ['operation.rejected', 'WEBHOOK', 'SENT', 1],
    ]);
    expect(calls.filter((c) => JSON.parse(c.body).type === 'operation.approval_requested')).toHaveLength(1);
  });

  it('never sends a delivery twice when two dispatchers on two pools race', async () => {
    const s = await scene(3);
    script.set('/race', { statuses: [200], delayMs: 30 });
    for (let i = 0; i < 8; i++) await s.order(`race ${i}`);
    // Both start with every delivery due (expansion has its own exactly-once test in data-access).
    while ((await repos.notifications.expand({ email: true, webhooks: ['race'] })).length > 0);
    const one = new NotificationDispatcherFor([hook('race')], db);
    const two = new NotificationDispatcherFor([hook('race')], db2);
    const [a, b] = await Promise.all([one.drain(), two.drain()]);
    expect(a.sent + b.sent).toBe(8 * 3 + 8);
    expect(a.sent).toBeGreaterThan(0);
    expect(b.sent).toBeGreaterThan(0);
    const ids = mails.map((m) => /Message-ID: <([^@]+)@/.exec(m.raw)?.[1]);
    expect(ids).toHaveLength(24);
    expect(new Set(ids).size).toBe(24);
    const hookIds = calls.map((c) => c.headers['x-keyserver-delivery']);
    expect(hookIds).toHaveLength(8);
    expect(new Set(hookIds).size).toBe(8);
  });

  it('holds a flood of approval requests to one approver at the hourly cap, sends one short notice instead, and still tells the orderer', async () => {
    // The attack: an orderer allowed on the key creates operations in a loop; each asks the approver again.
    const s = await scene(1);
    const flood = [];
    for (let i = 0; i < 6; i++) flood.push(await s.order(`flood ${i} <b>[click](https://evil.example)</b>`));
    const d = new NotificationDispatcherFor([], db, { recipientHourlyMax: 2 });
    expect(await d.drain()).toMatchObject({ sent: 3, skipped: 3, dead: 0 });
    const toApprover = mails.filter((m) => m.to[0] === s.approvers[0].email);
    expect(toApprover).toHaveLength(3);
    const notice = toApprover.filter((m) => m.raw.includes('Subject: [Keyserver] Further approval requests held back'));
    expect(notice).toHaveLength(1);
    expect(notice[0].raw).toContain('https://keyserver.example.test/operations');
    expect(notice[0].raw).not.toMatch(/flood|evil|click/);
    const rows = (await Promise.all(flood.map((op) => repos.notifications.deliveriesOf(op.id)))).flat();
    expect(rows.filter((r) => r.state === 'SKIPPED').map((r) => r.lastError)).toEqual(['recipient_hourly_limit', 'recipient_hourly_limit', 'recipient_hourly_limit']);
    // Another kind of notice is not capped: the orderer hears that an operation became usable.
    mails.length = 0;
    await repos.operations.addApproval(flood[0].id, s.key.keyid, s.approvers[0].id);
    expect(await d.drain()).toMatchObject({ sent: 1 });
    expect(mails.map((m) => m.to)).toEqual([[(await repos.notifications.settings(s.orderer.id)).email]]);
    // The metric counts what was held back in the last hour (the same on every replica).
    const m = new ApiMetrics();
    m.attach({ db, logger: quiet });
    expect(await m.registry.metrics()).toMatch(/^keyserver_notification_held_last_hour [1-9]\d*$/m);
  });

  it('caps webhook calls per endpoint URL, not per name: two names configured with spellings of one URL share one cap across two dispatchers', async () => {
    // The same receiver under two names (scheme and host case, the default port spelled out, hex IPv4, an encoded
    // unreserved character, a fragment) got the cap twice.
    const s = await scene(1);
    await repos.notifications.setOptOuts(s.approvers[0].id, { emailEnabled: false }, AUDIT);
    const flood = [];
    for (let i = 0; i < 4; i++) flood.push((await s.order(`flood ${i}`)).id);
    const hooks = [
      hook('same-a', { url: `http://127.0.0.1:${httpPort}/same` }),
      hook('same-b', { url: `HTTP://0x7F.0.0.1:${httpPort}/%73ame#chat` }),
      hook('other', { url: `http://127.0.0.1:${httpPort}/other` }),
    ];
    while ((await repos.notifications.expand({ email: true, webhooks: hooks.map((h) => h.name) })).length > 0);
    const one = new NotificationDispatcherFor(hooks, db, { webhookHourlyMax: 2 });
    const two = new NotificationDispatcherFor(hooks, db2, { webhookHourlyMax: 2 });
    const [x, y] = await Promise.all([one.drain(), two.drain()]);
    expect({ sent: x.sent + y.sent, dead: x.dead + y.dead }).toEqual({ sent: 6, dead: 0 });
    const at = (path: string[]) => calls.filter((c) => path.includes(c.path)).map((c) => c.headers['x-keyserver-event']);
    // Eight requests to one receiver: two posted, one summary, five held. The other endpoint keeps its own cap.
    expect(at(['/same', '/%73ame']).sort()).toEqual(['notification.approval_requests_held', 'operation.approval_requested', 'operation.approval_requested']);
    expect(at(['/other']).sort()).toEqual(['notification.approval_requests_held', 'operation.approval_requested', 'operation.approval_requested']);
    // The metrics case below counts every held call in the table: this case's go.
    await db.pool.query(`DELETE FROM "notification_outbox" WHERE "operationId" = ANY($1::uuid[])`, [flood]);
  });

  it('asks the approvers who may still approve again when a withdrawal sends an approved operation back to REQUESTED, once across two dispatchers', async () => {
    const s = await scene(3);
    const op = await s.order('Release 4.3');
    const hooks = [hook('again')];
    expect(await new NotificationDispatcherFor(hooks, db).drain()).toMatchObject({ sent: 4, dead: 0 });
    await repos.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    expect(await new NotificationDispatcherFor(hooks, db).drain()).toMatchObject({ sent: 2, dead: 0 });
    mails.length = 0;
    calls.length = 0;
    // Approver 0 leaves: his approval is withdrawn, the operation awaits one approval again.
    await repos.subjects.update(s.approvers[0].id, { enabled: false });
    const [x, y] = await Promise.all([new NotificationDispatcherFor(hooks, db).drain(), new NotificationDispatcherFor(hooks, db2).drain()]);
    // Two emails and one call asking again; the orderer's notice of the fall back (email, call: the case below).
    expect({ sent: x.sent + y.sent, dead: x.dead + y.dead }).toEqual({ sent: 5, dead: 0 });
    const requests = mails.filter((m) => m.raw.includes('Approval requested again'));
    expect(requests.map((m) => m.to).flat().sort()).toEqual([s.approvers[1].email, s.approvers[2].email].sort());
    for (const m of requests) {
      expect(m.raw).toContain('withdrawn');
      expect(m.raw).toContain(`https://keyserver.example.test/operations/${op.id}`);
    }
    // Not the approver who left; the channel gets the new round, signed.
    expect(mails.filter((m) => m.raw.includes('X-Keyserver-Event: operation.approval_requested')).length).toBe(2);
    const [call] = calls.filter((c) => c.headers['x-keyserver-event'] === 'operation.approval_requested');
    const body = JSON.parse(call.body);
    expect([body.round, body.operation.id, body.recipients.map((r: { subjectId: string }) => r.subjectId).sort()]).toEqual([2, op.id, [s.approvers[1].id, s.approvers[2].id].sort()]);
    const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', SECRET, '-r'], { input: `${call.headers['x-keyserver-timestamp']}.${call.body}` }).toString().split(' ')[0];
    expect(call.headers['x-keyserver-signature']).toBe(`v1=${mac}`);
    // Approved again: the orderer is told again (round 2).
    await repos.operations.addApproval(op.id, s.key.keyid, s.approvers[1].id);
    mails.length = 0;
    await new NotificationDispatcherFor(hooks, db).drain();
    expect(mails.map((m) => m.to).flat()).toEqual([(await repos.notifications.settings(s.orderer.id)).email]);
  });

  it('tells the orderer once per fall back, by email and by webhook, when a withdrawal sends his approved operation back to REQUESTED, across two dispatchers', async () => {
    const s = await scene(3);
    const op = await s.order('Release 4.4');
    const hooks = [hook('reopened'), hook('reopened-slack', { format: 'slack', secret: undefined })];
    const one = new NotificationDispatcherFor(hooks, db);
    const two = new NotificationDispatcherFor(hooks, db2);
    await one.drain();
    await repos.operations.addApproval(op.id, s.key.keyid, s.approvers[0].id);
    await one.drain();
    const ordererEmail = (await repos.notifications.settings(s.orderer.id)).email as string;
    for (const [round, leaving] of [[2, s.approvers[0]], [3, s.approvers[1]]] as const) {
      mails.length = 0;
      calls.length = 0;
      // The approver leaves: his approval is withdrawn and the operation the orderer may be waiting to use is REQUESTED again.
      await repos.subjects.update(leaving.id, { enabled: false });
      const [x, y] = await Promise.all([one.drain(), two.drain()]);
      expect(x.dead + y.dead).toBe(0);
      const toOrderer = mails.filter((m) => m.to[0] === ordererEmail);
      expect(toOrderer).toHaveLength(1);
      expect(toOrderer[0].raw).toContain('Subject: [Keyserver] Operation needs approval again: Release 4.4');
      expect(toOrderer[0].raw).toContain('X-Keyserver-Event: operation.reopened');
      expect(toOrderer[0].raw).toContain('withdrawn');
      expect(toOrderer[0].raw).toContain(`https://keyserver.example.test/operations/${op.id}`);
      // Each endpoint gets one call of its own event type, which a receiver can route; the keyserver body is signed.
      const reopened = calls.filter((c) => c.headers['x-keyserver-event'] === 'operation.reopened');
      expect(reopened.map((c) => c.path).sort()).toEqual(['/reopened', '/reopened-slack']);
      const ks = reopened.find((c) => c.path === '/reopened') as Call;
      const body = JSON.parse(ks.body);
      expect([body.type, body.round, body.operation.id, body.operation.state, body.recipients.map((r: { subjectId: string }) => r.subjectId)]).toEqual([
        'operation.reopened',
        round,
        op.id,
        'REQUESTED',
        [s.orderer.id],
      ]);
      const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', SECRET, '-r'], { input: `${ks.headers['x-keyserver-timestamp']}.${ks.body}` }).toString().split(' ')[0];
      expect(ks.headers['x-keyserver-signature']).toBe(`v1=${mac}`);
      expect(JSON.parse((reopened.find((c) => c.path === '/reopened-slack') as Call).body).text).toContain('[Keyserver] Operation needs approval again: Release 4.4');
      // Approved again by the next approver: the orderer hears it is usable (and of the next fall back, next turn).
      if (round === 2) {
        await repos.operations.addApproval(op.id, s.key.keyid, s.approvers[1].id);
        await one.drain();
      }
    }
    // Once per fall back: one event per round, each delivery SENT once.
    const events = (await repos.notifications.eventsOf(op.id)).filter((e) => e.event === 'operation.reopened');
    expect(events.map((e) => [e.round, e.recipientIds])).toEqual([
      [2, [s.orderer.id]],
      [3, [s.orderer.id]],
    ]);
    const rows = (await repos.notifications.deliveriesOf(op.id)).filter((r) => r.event === 'operation.reopened');
    expect(rows.map((r) => [r.channel, r.target, r.state, r.attempts]).sort()).toEqual(
      [...[1, 2].flatMap(() => [['EMAIL', s.orderer.id, 'SENT', 1], ['WEBHOOK', 'reopened', 'SENT', 1], ['WEBHOOK', 'reopened-slack', 'SENT', 1]])].sort(),
    );
  });

  it('holds a flood of approval requests to each webhook endpoint at its hourly cap across two dispatchers, posts one signed summary instead, and still posts the outcome', async () => {
    // The attack through a chat channel: one call per event and endpoint, so every operation the orderer creates
    // in a loop lands in the channel, whoever the approvers are (their own email cap does not apply to it).
    const s = await scene(2);
    for (const p of s.approvers) await repos.notifications.setOptOuts(p.id, { emailEnabled: false }, AUDIT);
    const flood = [];
    for (let i = 0; i < 6; i++) flood.push(await s.order(`flood ${i} <!channel> [click](https://evil.example)`));
    const hooks = [hook('capped-ks'), hook('capped-slack', { format: 'slack', secret: undefined })];
    while ((await repos.notifications.expand({ email: true, webhooks: hooks.map((h) => h.name) })).length > 0);
    const one = new NotificationDispatcherFor(hooks, db, { webhookHourlyMax: 2 });
    const two = new NotificationDispatcherFor(hooks, db2, { webhookHourlyMax: 2 });
    const [x, y] = await Promise.all([one.drain(), two.drain()]);
    expect({ sent: x.sent + y.sent, skipped: x.skipped + y.skipped, dead: x.dead + y.dead }).toEqual({ sent: 6, skipped: 6, dead: 0 });
    for (const h of hooks) {
      const got = calls.filter((c) => c.path === `/${h.name}`);
      expect(got).toHaveLength(3);
      const summaries = got.filter((c) => c.headers['x-keyserver-event'] === 'notification.approval_requests_held');
      expect(summaries).toHaveLength(1);
      // The summary names no operation and carries nothing the orderer wrote: the cap and the console's page.
      expect(summaries[0].body).toContain('https://keyserver.example.test/operations');
      expect(summaries[0].body).not.toMatch(/flood|evil|click|channel>|operations\/[0-9a-f]/);
    }
    const [ks] = calls.filter((c) => c.path === '/capped-ks' && c.headers['x-keyserver-event'] === 'notification.approval_requests_held');
    const ts = Number(ks.headers['x-keyserver-timestamp']);
    const mac = execFileSync('openssl', ['dgst', '-sha256', '-hmac', SECRET, '-r'], { input: `${ts}.${ks.body}` }).toString().split(' ')[0];
    expect(ks.headers['x-keyserver-signature']).toBe(`v1=${mac}`);
    expect(JSON.parse(ks.body)).toEqual({
      deliveryId: ks.headers['x-keyserver-delivery'],
      hourlyMax: 2,
      occurredAt: expect.any(String),
      type: 'notification.approval_requests_held',
      url: 'https://keyserver.example.test/operations',
      version: 1,
    });
    const rows = (await Promise.all(flood.map((op) => repos.notifications.deliveriesOf(op.id)))).flat();
    expect(rows.filter((r) => r.state === 'SKIPPED').map((r) => [r.target, r.lastError]).sort()).toEqual(
      [...Array.from({ length: 3 }, () => ['capped-ks', 'endpoint_hourly_limit']), ...Array.from({ length: 3 }, () => ['capped-slack', 'endpoint_hourly_limit'])].sort(),
    );
    // The outcome is not capped: the channel hears that an operation became usable (and the orderer by email).
    calls.length = 0;
    await repos.operations.addApproval(flood[0].id, s.key.keyid, s.approvers[0].id);
    expect(await one.drain()).toMatchObject({ sent: 3, skipped: 0 });
    expect(calls.map((c) => [c.path, c.headers['x-keyserver-event']]).sort()).toEqual([
      ['/capped-ks', 'operation.approved'],
      ['/capped-slack', 'operation.approved'],
    ]);
    // A sibling gauge counts the calls held back in the last hour (the same on every replica).
    const m = new ApiMetrics();
    m.attach({ db, logger: quiet });
    const [held] = (await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "notification_delivery" WHERE "channel" = 'WEBHOOK' AND "lastError" = 'endpoint_hourly_limit'`)).rows;
    expect(held.n).toBe(6);
    expect(await m.registry.metrics()).toContain(`keyserver_notification_webhook_held_last_hour ${held.n}`);
  });

  it('caps approval-request emails per mailbox whatever the case of the addresses on file, with one notice to that mailbox', async () => {
    // One mailbox on file for three approvers under three spellings: before, each spelling had its own cap.
    const s = await scene(3);
    const mailbox = `ada.${hex(3)}@example.test`;
    const spellings = [mailbox, mailbox.toUpperCase(), `${mailbox.split('@')[0]}@EXAMPLE.test`];
    for (const [i, p] of s.approvers.entries()) await repos.notifications.setAddress(p.id, spellings[i], AUDIT);
    for (let i = 0; i < 2; i++) await s.order(`flood ${i}`);
    const d = new NotificationDispatcherFor([], db, { recipientHourlyMax: 2 });
    expect(await d.drain()).toMatchObject({ sent: 3, skipped: 3, dead: 0 });
    const toMailbox = mails.filter((m) => m.to[0].toLowerCase() === mailbox);
    expect(toMailbox).toHaveLength(3);
    expect(toMailbox.filter((m) => m.raw.includes('Subject: [Keyserver] Further approval requests held back'))).toHaveLength(1);
  });

  it('reports pending and dead deliveries to a metrics scrape', async () => {
    const s = await scene(2);
    await s.order();
    await repos.notifications.expand({ email: true, webhooks: ['metrics'] });
    await db.pool.query(`UPDATE "notification_delivery" SET "state" = 'DEAD' WHERE "target" = 'metrics'`);
    const m = new ApiMetrics();
    m.attach({ db, logger: quiet });
    const text = await m.registry.metrics();
    const [count] = (await db.pool.query<{ pending: number; dead: number }>(`SELECT count(*) FILTER (WHERE "state" = 'PENDING')::int AS "pending", count(*) FILTER (WHERE "state" = 'DEAD')::int AS "dead" FROM "notification_delivery"`)).rows;
    expect(count.pending).toBe(2);
    expect(count.dead).toBeGreaterThan(0);
    expect(text).toContain(`keyserver_notification_deliveries{state="pending"} ${count.pending}`);
    expect(text).toContain(`keyserver_notification_deliveries{state="dead"} ${count.dead}`);
    expect(text).toMatch(/keyserver_notification_oldest_pending_seconds \d/);
  });

  it('holds no database connection while a receiver is slow to answer', async () => {
    const s = await scene(1);
    await repos.notifications.setOptOuts(s.approvers[0].id, { emailEnabled: false }, AUDIT);
    script.set('/slow', { statuses: [200], delayMs: 800 });
    await s.order();
    const own = createDb(url, { poolSize: 2 });
    try {
      const d = new NotificationDispatcherFor([hook('slow')], own);
      const pass = d.pass();
      while (calls.length === 0) await new Promise((r) => setTimeout(r, 10));
      // The receiver holds the request now: every connection of the dispatcher's pool is back and idle.
      expect(own.pool.totalCount - own.pool.idleCount).toBe(0);
      expect(await pass).toMatchObject({ sent: 1 });
    } finally {
      await own.close();
    }
  });

  it('gives up on a relay that trickles its answers (no idle timeout fires) within the send deadline, hangs up, and still sends the webhooks', async () => {
    // A tarpit: greets, then answers EHLO with a continuation line every 200 ms, forever (under the 1 s idle timeout).
    const sockets: Socket[] = [];
    let closed = 0;
    const tarpit = createTcpServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => (closed += 1));
      socket.write('220 tarpit ESMTP\r\n');
      let timer: NodeJS.Timeout | undefined;
      socket.on('data', () => {
        timer ??= setInterval(() => socket.writable && socket.write('250-still thinking\r\n'), 200);
      });
      socket.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((resolve) => tarpit.listen(0, '127.0.0.1', resolve));
    try {
      const s = await scene(1);
      const op = await s.order();
      const port = (tarpit.address() as AddressInfo).port;
      const d = new NotificationDispatcherFor([hook('beside-tarpit')], db, {
        sendTimeoutMs: 1_000,
        retryBaseMs: 60_000,
        smtp: { host: '127.0.0.1', port, tls: 'none', ca: null, user: null, password: null, from: 'keyserver@example.test' },
      });
      const started = Date.now();
      let watchdog: NodeJS.Timeout | undefined;
      const pass = await Promise.race([d.pass(), new Promise<'stalled'>((r) => (watchdog = setTimeout(() => r('stalled'), 8_000)))]);
      clearTimeout(watchdog);
      expect(pass).toMatchObject({ sent: 1, retried: 1 });
      expect(Date.now() - started).toBeLessThan(6_000);
      expect(calls.map((c) => c.path)).toEqual(['/beside-tarpit']);
      const email = (await repos.notifications.deliveriesOf(op.id)).find((x) => x.channel === 'EMAIL');
      expect(email).toMatchObject({ state: 'PENDING', attempts: 1 });
      // The Keyserver hung up: no socket to the tarpit is left open.
      const until = Date.now() + 3_000;
      while (closed < sockets.length && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect([sockets.length, closed]).toEqual([1, 1]);
      await d.stop();
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => tarpit.close(() => resolve()));
    }
  }, 20_000);

  describe('SMTP transport security', () => {
    let dir: string;
    let tlsSmtp: SMTPServer;
    let tlsPort: number;
    let cert: string;
    const tlsMails: Mail[] = [];

    beforeAll(async () => {
      // A relay offering STARTTLS with a certificate for 127.0.0.1 that openssl made (trusted through SMTP_TLS_CA_FILE).
      dir = mkdtempSync(join(tmpdir(), 'ks-notify-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=relay',
        '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
      tlsSmtp = new SMTPServer({
        authOptional: true,
        logger: false,
        key: readFileSync(join(dir, 'key.pem')),
        cert,
        onData(stream, session, done) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            tlsMails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: session.secure ? 'over TLS' : 'PLAINTEXT' });
            done();
          });
        },
      });
      await new Promise<void>((resolve) => tlsSmtp.listen(0, '127.0.0.1', resolve));
      tlsPort = (tlsSmtp.server.address() as AddressInfo).port;
    });
    afterAll(async () => {
      await new Promise<void>((resolve) => tlsSmtp?.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    });

    it('sends over STARTTLS to a relay whose certificate the configured CA vouches for', async () => {
      const s = await scene(1);
      await s.order();
      const d = new NotificationDispatcherFor([], db, { smtp: { host: '127.0.0.1', port: tlsPort, tls: 'starttls', ca: cert, user: null, password: null, from: 'keyserver@example.test' } });
      expect(await d.drain()).toMatchObject({ sent: 1, dead: 0 });
      expect(tlsMails).toEqual([{ to: [s.approvers[0].email], raw: 'over TLS' }]);
    });

    it.each([
      // The relay answers STARTTLS with a 5xx: permanent, DEAD at once.
      ['fail never falls back to plaintext when the relay offers no STARTTLS', () => smtpPort, 1],
      // A certificate failure may be a relay being fixed: retried, then DEAD.
      ['fail refuses a relay certificate no configured CA vouches for', () => tlsPort, 3],
    ])('%s', async (_n, port, attempts) => {
      const s = await scene(1);
      const op = await s.order();
      const before = tlsMails.length;
      const d = new NotificationDispatcherFor([], db, { smtp: { host: '127.0.0.1', port: port(), tls: 'starttls', ca: null, user: null, password: null, from: 'keyserver@example.test' } });
      expect(await d.drain()).toMatchObject({ sent: 0, dead: 1 });
      expect(mails).toEqual([]);
      expect(tlsMails.length).toBe(before);
      expect((await repos.notifications.deliveriesOf(op.id))[0]).toMatchObject({ state: 'DEAD', attempts });
    });
  });

  it.each([
    ['ok first retry is about the base', 1, 20],
    ['ok doubles each attempt', 3, 80],
    ['ok capped at the maximum', 10, 100],
  ])('%s', (_n, attempt, expected) => {
    expect(backoffMs(attempt, 20, 100, () => 0.5)).toBe(expected);
  });
});
