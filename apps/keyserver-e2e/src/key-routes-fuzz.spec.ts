import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { Client } from 'pg';
import { repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, type Api } from './admin-helpers';

// Property over the key routes (POST /api/v1/keys, the ROOT ceremony (its fields and its subject's), the external chain, the lifecycle and
// revocation routes, ADR 0020 addendum "serial
// numbers per issuer"): an administrator in an ACTIVE session sends bodies that are valid but for hostile field
// values (unicode edges, wrong types, huge and deep values, extra fields) to real and hostile key ids. Never a 5xx;
// every 4xx problem+json with a code docs/openapi.json lists for the operation and status; a refused request leaves
// no HSM object and no key row behind (counted on the SoftHSM token and in the key table before and after) and is
// audited under its request id; the audit chain verifies afterwards. `npm test` runs KEY_FUZZ_RUNS (default 150)
// cases with a fixed seed.

const RUNS = Number(process.env['KEY_FUZZ_RUNS'] ?? 150);
const SEED = Number(process.env['KEY_FUZZ_SEED'] ?? 20261214);

const EDGES = ['', ' ', '\u0000', '\ud800', '\u202e', '\u200b', '\ufeff', '\u{10ffff}', 'İ', 'e\u0301', '\r\n', '../', '%00', "'; --", '<script>', 'a'.repeat(300), 'x'.repeat(20_000), '-1', '1e309', 'NaN', 'null'];
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(...EDGES),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.constantFrom<unknown>(null, true, 0, -1, 1.5, 2 ** 31, 2 ** 53 + 2, 1e308, [], {}, ['FW'], { $gt: '' }),
  fc.jsonValue({ maxDepth: 3 }),
);

/** Values of the right type that the service, not the schema, must refuse (or accept): they reach the HSM step. */
const plausible: fc.Arbitrary<unknown> = fc.constantFrom<unknown>(
  'fz-ca', 'fz-fw', 'fz-tsa', 'demo-root', 'FZ-CA', 'demo-fw-dev', 'CA', 'TSA', 'ROOT', 'ED25519', 'RSA_2048', 'EC_P384', 'SHA512', 'SHA256', 1, 0, 5, 8, 9, 3650,
  36_500, 100_000, 'keyCompromise', 'cACompromise', 'removeFromCRL', 'fz-new-1', 'fz-root-1', 'self-signed', 'external', 'DE', 'D', 'DEU', 'de',
);

/** A PEM armour around bytes that are no certificate (DER of a SEQUENCE holding a short INTEGER). */
const FAKE_PEM = `-----BEGIN CERTIFICATE-----\n${Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05]).toString('base64')}\n-----END CERTIFICATE-----\n`;

/** Ids a path takes: the keys made for the test (states change as cases succeed), the ROOT, hostile strings. */
const PATH_IDS = ['fz-ca', 'fz-fw', 'fz-tsa', 'demo-root', 'FZ-CA', 'fz-ca\u200b', 'nope', '...', '%2e%2e', 'a'.repeat(200)];

interface KeyRoute {
  method: string;
  template: string;
  /** The valid body, or (with `wrap`) the fields the case edits. */
  base: (n: number) => Record<string, unknown>;
  /** Builds the body around the edited fields (a nested object such as the ceremony's subject). */
  wrap?: (edited: Record<string, unknown>, n: number) => Record<string, unknown>;
}

/** The ROOT ceremony (ADR 0020): a self-signed ROOT or a pending key awaiting its external certificate. */
const ceremonySubject = (n: number) => ({ commonName: `Fuzz Root ${n}`, organization: 'Fuzz', organizationalUnit: 'Keys', country: 'DE' });
const ceremony = (n: number) => ({ keyid: `fz-root-${n}`, algorithm: 'EC_P256', subject: ceremonySubject(n), validityDays: 3650, pathLen: 1, requiredApprovers: 2, mode: n % 2 ? 'self-signed' : 'external' });
const ROUTES: KeyRoute[] = [
  {
    method: 'POST',
    template: '/api/v1/keys',
    base: (n) => ({ keyid: `fz-new-${n}`, type: 'FW', algorithm: 'EC_P256', requiredApprovers: 0, validityDays: 30, commonName: `Fuzz ${n}`, organization: 'Fuzz', country: 'DE', product: 'fuzz', issuer: 'fz-ca' }),
  },
  { method: 'PATCH', template: '/api/v1/keys/{keyid}', base: () => ({ requiredApprovers: 1 }) },
  { method: 'POST', template: '/api/v1/keys/{keyid}/renewal', base: () => ({ validityDays: 20 }) },
  { method: 'POST', template: '/api/v1/keys/{keyid}/rotation', base: () => ({ validityDays: 20 }) },
  { method: 'POST', template: '/api/v1/keys/{keyid}/retirement', base: () => ({}) },
  { method: 'POST', template: '/api/v1/keys/{keyid}/revocation', base: () => ({ reason: 'keyCompromise' }) },
  { method: 'POST', template: '/api/v1/keys/{keyid}/destruction', base: () => ({}) },
  // The renewed external chain (ADR 0020 addendum): PEM-shaped text the verifier must refuse, never a 5xx.
  { method: 'POST', template: '/api/v1/keys/{keyid}/external-chain', base: () => ({ certificate: FAKE_PEM, chain: [FAKE_PEM, FAKE_PEM] }) },
  { method: 'POST', template: '/api/v1/keys/root-ceremony', base: ceremony },
  { method: 'POST', template: '/api/v1/keys/root-ceremony', base: ceremonySubject, wrap: (subject, n) => ({ ...ceremony(n), subject }) },
];

describe('fuzz: the key routes', () => {
  let p: RunningPlatform;
  let admin: Api;
  let session: string;
  let db: Client;
  let token: string;

  /** Objects on the API's SoftHSM token (public and private keys of every HSM key pair). */
  const hsmObjects = (): number => {
    const api = p.env.api;
    const out = execFileSync('pkcs11-tool', ['--module', api['PKCS11_MODULE'], '--token-label', api['PKCS11_TOKEN_LABEL'], '--login', '--pin', readFileSync(api['PKCS11_PIN_FILE'], 'utf8').trim(), '--list-objects'], {
      env: { ...process.env, SOFTHSM2_CONF: api['SOFTHSM2_CONF'] },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
    return (out.match(/^(Private|Public) Key Object/gm) ?? []).length;
  };
  const keyRows = async (): Promise<number> => Number((await db.query<{ n: string }>(`SELECT (SELECT count(*) FROM "key") + (SELECT count(*) FROM "pending_key") AS n`)).rows[0].n);

  beforeAll(async () => {
    p = await startPlatform();
    token = await bffUserToken(p, 'ada.admin@demo.test');
    admin = apiAs(p, token);
    session = await activeSession(admin, apiAs(p, await bffUserToken(p, 'alan.admin@demo.test')), 'key route fuzzing');
    const make = async (keyid: string, type: string, issuer?: string) => {
      const r = await admin('POST', '/api/v1/keys', { session, body: { keyid, type, algorithm: 'EC_P256', requiredApprovers: 0, validityDays: issuer ? 60 : 120, commonName: keyid, ...(issuer ? { issuer } : {}), ...(type === 'FW' ? { product: 'fuzz' } : {}) } });
      if (r.status !== 201) throw new Error(`create ${keyid}: ${r.status} ${r.text}`);
    };
    await make('fz-ca', 'CA');
    await make('fz-fw', 'FW', 'fz-ca');
    await make('fz-tsa', 'TSA', 'fz-ca');
    db = new Client({ connectionString: p.databaseUrl });
    await db.connect();
  });

  afterAll(async () => {
    await db?.end();
    await p?.stop();
  });

  it(`sends ${RUNS} hostile key requests (seed ${SEED}): no 5xx, documented problem codes, nothing left behind by a refusal, each refusal audited, audit valid after`, async () => {
    const doc = JSON.parse(readFileSync(join(repoRoot, 'docs/openapi.json'), 'utf8'));
    type ProblemResponse = { content?: Record<string, { schema?: { allOf?: { properties?: { code?: { enum?: string[] } } }[] } }> };
    const documented = (method: string, template: string, status: number): string[] | undefined =>
      (doc.paths[template]?.[method.toLowerCase()]?.responses as Record<string, ProblemResponse> | undefined)?.[String(status)]?.content?.['application/problem+json']?.schema?.allOf?.[1]?.properties?.code?.enum;

    const caseArb = fc.record({
      route: fc.constantFrom(...ROUTES),
      // Non-empty and not a dot segment: the request must reach a key route (fetch resolves "..", "" matches none).
      keyid: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...PATH_IDS) }, { weight: 1, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((k) => k !== '.' && k !== '..') }),
      // Per field of the valid body: keep it, drop it or make it hostile; plus hostile extra fields now and then.
      edits: fc.array(fc.tuple(fc.nat(), fc.oneof({ weight: 1, arbitrary: fc.constant<'drop'>('drop') }, { weight: 3, arbitrary: hostile.map((v) => ({ v })) }, { weight: 3, arbitrary: plausible.map((v) => ({ v })) })), { minLength: 0, maxLength: 3 }),
      extra: fc.option(fc.dictionary(fc.oneof(fc.constantFrom('extractable', '__proto__', 'constructor', 'hsmKeyId', 'state'), fc.string({ maxLength: 8 })), hostile, { maxKeys: 2 }), { freq: 4 }),
      session: fc.oneof({ weight: 8, arbitrary: fc.constant('ok') }, { weight: 1, arbitrary: fc.constantFrom('none', 'upper', 'hostile') }),
    });

    let n = 0;
    let hsm = hsmObjects();
    let rows = await keyRows();
    const violations: string[] = [];
    const refusals: { requestId: string; code: string; where: string }[] = [];
    const statuses = new Map<number, number>();
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(caseArb, async (c) => {
        n++;
        const edited: Record<string, unknown> = c.route.base(n);
        const fields = Object.keys(edited);
        for (const [i, e] of c.edits) {
          const field = fields.length ? fields[i % fields.length] : 'x';
          if (e === 'drop') delete edited[field];
          else edited[field] = e.v;
        }
        const body = c.route.wrap ? c.route.wrap(edited, n) : edited;
        // Extra fields spliced into the JSON text, so that "__proto__" arrives as a field of its own.
        const extra = c.extra && Object.keys(c.extra).length ? JSON.stringify(c.extra).slice(1, -1) : '';
        const raw = extra ? `${JSON.stringify(body).slice(0, -1)}${Object.keys(body).length ? ',' : ''}${extra}}` : JSON.stringify(body);
        const path = c.route.template.replace('{keyid}', encodeURIComponent(c.keyid));
        const headers: Record<string, string> = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
        if (c.session === 'ok') headers['x-admin-session'] = session;
        else if (c.session === 'upper') headers['x-admin-session'] = session.toUpperCase();
        else if (c.session === 'hostile') headers['x-admin-session'] = '00000000-0000-0000-0000-000000000000';
        const r = await fetch(`${p.env.urls.api}${path}`, { method: c.route.method, headers, body: raw });
        const text = await r.text();
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        const where = `${c.route.method} ${path.slice(0, 80)} ${raw.slice(0, 160)}`;
        const [hsmAfter, rowsAfter] = [hsmObjects(), await keyRows()];
        if (r.status >= 500) violations.push(`${where}: ${r.status} ${text.slice(0, 200)}`);
        if (r.status >= 400) {
          let code: unknown;
          try {
            code = (JSON.parse(text) as { code?: unknown }).code;
          } catch {
            code = undefined;
          }
          if (!String(r.headers.get('content-type')).startsWith('application/problem+json') || typeof code !== 'string') violations.push(`${where}: ${r.status} not problem+json: ${text.slice(0, 200)}`);
          else if (!documented(c.route.method, c.route.template, r.status)?.includes(code)) violations.push(`${where}: ${r.status} ${code} not in openapi.json`);
          if (hsmAfter !== hsm) violations.push(`${where}: ${r.status} ${String(code)} left ${hsmAfter - hsm} HSM objects`);
          if (rowsAfter !== rows) violations.push(`${where}: ${r.status} ${String(code)} left ${rowsAfter - rows} key rows`);
          refusals.push({ requestId: String(r.headers.get('x-request-id')), code: String(code), where });
        }
        // A success changes what there is (a created or rotated key, a destroyed one): the next case compares to it.
        hsm = hsmAfter;
        rows = rowsAfter;
      }),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    // Every refusal has a DENIED or FAILED event under its request id with its code; one at the edge (the body
    // parser) is written just after the answer, so the events are read once, when the writes have settled.
    const missing = async () => {
      const rows = (await db.query<{ requestId: string; errorCode: string }>(`SELECT "requestId", "errorCode" FROM "audit_event" WHERE "outcome" <> 'SUCCESS' AND "requestId" = ANY($1::text[])`, [refusals.map((x) => x.requestId)])).rows;
      const seen = new Set(rows.map((x) => `${x.requestId} ${x.errorCode}`));
      return refusals.filter((x) => !seen.has(`${x.requestId} ${x.code}`));
    };
    let unaudited = await missing();
    for (let i = 0; i < 40 && unaudited.length; i++) {
      await new Promise((res) => setTimeout(res, 250));
      unaudited = await missing();
    }
    violations.push(...unaudited.map((x) => `${x.where}: ${x.code} not audited`));
    const verify = await admin<{ ok: boolean }>('GET', '/api/v1/audit/verify');
    console.log(`key fuzz: ${n} cases in ${((Date.now() - started) / 1000).toFixed(1)} s, seed ${SEED}; statuses ${[...statuses].sort((a, b) => a[0] - b[0]).map(([s, k]) => `${s}:${k}`).join(' ')}; audit verify ${JSON.stringify(verify.body)}`);
    expect(violations.slice(0, 20)).toEqual([]);
    expect(verify.body.ok).toBe(true);
  }, 120_000);
});
