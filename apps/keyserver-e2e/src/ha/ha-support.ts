import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CookieJar, signInAt } from '@keyserver/entra-emulator';
import { demoTenant, repoRoot, type RunningPlatform } from '@keyserver/testing';
import { signOrderBody } from '../operations-support';

// Helpers of the HA suites (npm run test:ha): the bed of scripts/ha/ha-bed.cjs (the same code `npm run ha:up` runs),
// seen through the e2e helpers' RunningPlatform shape, and the two kinds of clients the issue names: plain ones
// (each answer recorded as it is) and idempotent ones (retry with the same Idempotency-Key until a final answer).

export interface HaBed {
  dir: string;
  state: { pids: Record<string, number>; apiEnv: Record<string, string>; facts: RunningPlatform['facts']; nodes: number };
  ports: { patroniRest: number[]; postgres: number[]; apiReplicas: number[]; pgPrimary: number; api: number; keyclient: number };
  urls: { api: string; keyclient: string; emulator: string; database: string; databaseReplicas: string; apiReplicas: string[] };
  log(name: string): string;
  nodeName(i: number): string;
  startNode(i: number): number;
  killNode(i: number): number[];
  ensureNodes(): number[];
  postmaster(i: number): number | undefined;
  killPostmaster(i: number): number[];
  cluster(): Promise<{ members: { name: string; role: string; state: string; timeline?: number; lag?: number | string }[] }>;
  leader(): Promise<number>;
  waitHealthy(timeoutMs?: number, replicas?: number): Promise<unknown>;
  switchover(candidate?: number): Promise<{ from: number; text: string }>;
  startApi(i: number): number;
  stopApi(i: number, signal?: NodeJS.Signals, timeoutMs?: number): Promise<void>;
  waitApiReady(i: number, timeoutMs?: number): Promise<void>;
  haproxyCommand(command: string): Promise<string>;
  down(o?: { keepDir?: boolean }): Promise<void>;
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bedModule = require(join(repoRoot, 'scripts', 'ha', 'ha-bed.cjs')) as {
  up(o: Record<string, unknown>): Promise<HaBed>;
  PATRONI_TIMING: { ttl: number; loop_wait: number; retry_timeout: number };
};

export const PATRONI_TIMING = bedModule.PATRONI_TIMING;

/** Starts the bed on free ports (HA_TEST_BASE_PORT pins them). A short usage lease so reservations of a dead replica come back within the test. */
export async function startBed(o: { apiReplicas?: number; keyclient?: boolean; apiEnv?: Record<string, string> } = {}): Promise<HaBed> {
  const basePort = process.env['HA_TEST_BASE_PORT'] ? Number(process.env['HA_TEST_BASE_PORT']) : undefined;
  return bedModule.up({ basePort, apiReplicas: o.apiReplicas ?? 2, keyclient: o.keyclient ?? true, apiEnv: { USAGE_LEASE_SECONDS: '5', ...o.apiEnv } });
}

/** The bed as the e2e helpers (ciToken, operationRows, apiAs, bffUserToken) expect a platform: clients use HAProxy. */
export function asPlatform(bed: HaBed): RunningPlatform {
  const facts = bed.state.facts;
  return {
    env: {
      urls: { api: bed.urls.api, emulator: bed.urls.emulator, keyclient: bed.urls.keyclient },
      emulator: {},
      api: bed.state.apiEnv,
      keyclient: { REDIRECT_URI: `${bed.urls.keyclient}/login/oauth2/code/keyserver-client` },
    },
    facts,
    hsmDir: join(bed.dir, 'hsm'),
    databaseUrl: bed.urls.database,
  } as unknown as RunningPlatform;
}

/** Upper bound of one request's wait during a failover (docs/scaling.md): connect timeout x DB round trips + margin. */
export const REQUEST_BOUND_MS = 20_000;

export interface Answer {
  /** HTTP status; 0 = connection failed; -1 = no answer within REQUEST_BOUND_MS (a hang). */
  status: number;
  code?: string;
  result?: string;
  retryAfter: string | null;
  digest: string;
  sentAt: number;
  at: number;
}

async function post(url: string, token: string, body: unknown, idempotencyKey?: string): Promise<Omit<Answer, 'digest'>> {
  const sentAt = Date.now();
  try {
    const r = await fetch(`${url}/api/signorders`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(REQUEST_BOUND_MS),
    });
    const text = await r.text();
    let parsed: { code?: string; result?: string } = {};
    try {
      parsed = JSON.parse(text) as typeof parsed;
    } catch {
      // HAProxy's own error pages are HTML
    }
    return { status: r.status, code: parsed.code, result: parsed.result, retryAfter: r.headers.get('retry-after'), sentAt, at: Date.now() };
  } catch (err) {
    const hang = (err as Error).name === 'TimeoutError';
    return { status: hang ? -1 : 0, retryAfter: null, sentAt, at: Date.now() };
  }
}

/** One plain sign order (no Idempotency-Key, no retry). */
export async function plainSignOrder(url: string, token: string, operationId: string, tag: string): Promise<Answer> {
  const digest = digestOf(tag, 0);
  return { ...(await post(url, token, signOrderBody(operationId, 'demo-fw-dev', digest))), digest };
}

const digestOf = (tag: string, i: number) => createHash('sha256').update(`ha ${tag} ${i} ${randomUUID()}`).digest('hex');

/** Closed-loop plain clients (no Idempotency-Key, no retry): every answer as the client saw it. */
export async function plainLoad(url: string, token: string, operationId: string, workers: number, stop: () => boolean, tag: string): Promise<Answer[]> {
  const answers: Answer[] = [];
  let n = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (!stop()) {
        const digest = digestOf(tag, n++);
        const a = await post(url, token, signOrderBody(operationId, 'demo-fw-dev', digest));
        answers.push({ ...a, digest });
        if (a.status !== 201) await sleep(50);
      }
    }),
  );
  return answers;
}

/** One logical request of an idempotent client: every attempt, and the final answer. */
export interface IdempotentRequest {
  key: string;
  digest: string;
  attempts: Answer[];
  final: Answer;
}

/** Answers an idempotent client retries (same key, same body): the request may not have been carried out. */
export function retryable(a: Pick<Answer, 'status' | 'code'>): boolean {
  // 0: connection cut; 502/503/504: proxy or API says retry; 409 conflict: the same key is still in flight elsewhere.
  return a.status === 0 || a.status === 502 || a.status === 503 || a.status === 504 || (a.status === 409 && a.code === 'conflict');
}

/** Sends one sign order with an Idempotency-Key and retries it (Retry-After honoured, at most `deadlineMs`). */
export async function idempotentSignOrder(url: string, token: string, operationId: string, key: string, digest: string, deadlineMs = 60_000): Promise<IdempotentRequest> {
  const attempts: Answer[] = [];
  const until = Date.now() + deadlineMs;
  for (;;) {
    const a = { ...(await post(url, token, signOrderBody(operationId, 'demo-fw-dev', digest), key)), digest };
    attempts.push(a);
    if (!retryable(a) || Date.now() > until) return { key, digest, attempts, final: a };
    const wait = a.retryAfter && /^\d+$/.test(a.retryAfter) ? Math.min(Number(a.retryAfter) * 1000, 2_000) : 250;
    await sleep(wait);
  }
}

/** Closed-loop idempotent clients until `stop()`. */
export async function idempotentLoad(url: string, token: string, operationId: string, workers: number, stop: () => boolean, tag: string): Promise<IdempotentRequest[]> {
  const done: IdempotentRequest[] = [];
  let n = 0;
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (!stop()) {
        const i = n++;
        done.push(await idempotentSignOrder(url, token, operationId, `ha-${tag}-${i}-${randomUUID()}`, digestOf(tag, i)));
      }
    }),
  );
  return done;
}

/** One device-certificate request (openssl CSR) and its answer. */
export interface CertificateAnswer {
  status: number;
  code?: string;
  serial?: string;
  certificate?: string;
  retryAfter: string | null;
  sentAt: number;
  at: number;
}

/**
 * Closed-loop certificate issuance from prepared CSRs (one per request, made by openssl) until `stop()` or the CSRs
 * run out; plain clients, every answer recorded.
 */
export async function certificateLoad(url: string, token: string, operationId: string, csrs: string[], stop: () => boolean): Promise<CertificateAnswer[]> {
  const answers: CertificateAnswer[] = [];
  for (const csr of csrs) {
    if (stop()) break;
    const sentAt = Date.now();
    try {
      const r = await fetch(`${url}/api/v1/certificates`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ operationid: operationId, keyid: 'demo-ca-dev', csr }),
        signal: AbortSignal.timeout(REQUEST_BOUND_MS),
      });
      const body = (await r.json().catch(() => ({}))) as { code?: string; serial?: string; certificate?: string };
      answers.push({ status: r.status, code: body.code, serial: body.serial, certificate: body.certificate, retryAfter: r.headers.get('retry-after'), sentAt, at: Date.now() });
      // Spread the CSRs over the outage and the recovery.
      if (r.status !== 201) await sleep(400);
    } catch (err) {
      answers.push({ status: (err as Error).name === 'TimeoutError' ? -1 : 0, retryAfter: null, sentAt, at: Date.now() });
    }
  }
  return answers;
}

/** A browser's view of the keyclient through HAProxy: cookies kept, redirects followed by hand. */
export class KeyclientBrowser {
  readonly jar = new CookieJar();
  constructor(private readonly bed: HaBed) {}

  async fetch(path: string): Promise<Response> {
    const r = await fetch(new URL(path, this.bed.urls.keyclient), { redirect: 'manual', headers: { cookie: this.jar.header() } });
    this.jar.store(r);
    return r;
  }

  /** The OIDC code flow of a demo user: keyclient /login, the emulator's sign-in form, the callback. */
  async login(username: string): Promise<void> {
    const start = await this.fetch('/login?returnTo=/approvals');
    if (start.status !== 302) throw new Error(`/login answered ${start.status}`);
    const password = demoTenant.users.find((u) => u.username === username)?.password ?? '';
    const emulator = { baseUrl: this.bed.urls.emulator, tokenEndpoint: this.bed.state.facts.tokenEndpoint, authorizationEndpoint: '' };
    const { callbackUrl } = await signInAt(emulator, { authorizationUrl: start.headers.get('location') ?? '', username, password });
    const back = await this.fetch(callbackUrl.replace(new URL(callbackUrl).origin, ''));
    if (back.status !== 302) throw new Error(`callback answered ${back.status}: ${await back.text()}`);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for `fn` to hold (polling), returns when it did or throws after `timeoutMs`. */
export async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await fn().catch(() => false)) return Date.now();
    await sleep(100);
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** Appends one measurement to tmp/ha-results.json (docs/scaling.md quotes them). */
export function recordMeasurement(name: string, values: Record<string, unknown>): void {
  const dir = join(repoRoot, 'tmp');
  mkdirSync(dir, { recursive: true });
  const line = { name, at: new Date().toISOString(), ...values };
  writeFileSync(join(dir, 'ha-results.jsonl'), `${JSON.stringify(line)}\n`, { flag: 'a' });
  console.log(`HA measurement ${JSON.stringify(line)}`);
}
