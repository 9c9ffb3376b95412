import { request as httpRequest } from 'node:http';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { clientCredentialsToken, demoTenant, repoRoot, startPlatform, type RunningPlatform } from '@keyserver/testing';
import { activeSession, apiAs, bffUserToken, type Api } from './admin-helpers';

// Property-based fuzzing of every route of docs/openapi.json (issue 13): generated hostile requests (random JSON
// shapes, unicode edge cases, case variants of real ids, huge and deep values, wrong content types and encodings)
// with valid and invalid tokens. Never a 5xx, every 4xx is problem+json with a code docs/openapi.json lists for that
// operation and status (issue 14), and the audit chain verifies afterwards. `npm test` runs FUZZ_RUNS (default 300)
// cases with a fixed seed; `npm run test:fuzz` runs many more.

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 300);
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261205);

type Schema = {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  enum?: unknown[];
  format?: string;
  anyOf?: Schema[];
  oneOf?: Schema[];
  required?: string[];
  $ref?: string;
};
interface Param {
  name: string;
  in: 'path' | 'query' | 'header';
  schema?: Schema;
}
interface Route {
  method: string;
  template: string;
  params: Param[];
  body?: { type: string; schema?: Schema };
}

/** Every operation of the OpenAPI document. */
function routesOf(doc: { paths: Record<string, Record<string, { parameters?: Param[]; requestBody?: { content: Record<string, { schema?: Schema }> } }>> }): Route[] {
  const out: Route[] = [];
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const content = op.requestBody?.content ?? {};
      const type = Object.keys(content)[0];
      out.push({ method: method.toUpperCase(), template, params: op.parameters ?? [], body: type ? { type, schema: content[type].schema } : undefined });
    }
  }
  return out;
}

interface Answer {
  status: number;
  type: string;
  body: string;
}

/** One request on the wire as generated (node:http, no normalisation of the target). */
function send(base: string, method: string, target: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    let req;
    try {
      req = httpRequest({ host: url.hostname, port: url.port, method, path: target, headers, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
    } catch (e) {
      reject(e);
      return;
    }
    req.on('timeout', () => req.destroy(new Error('timeout: no answer in 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Percent-encodes every byte of the UTF-8 of `s` that is not unreserved (lone surrogates become U+FFFD, as on any wire). */
const pct = (s: string): string =>
  [...Buffer.from(s, 'utf8')].map((b) => (/[A-Za-z0-9._~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`)).join('');

/** `arb` in one case out of `1 + nilWeight`, otherwise null. */
const maybe = <T>(arb: fc.Arbitrary<T>, nilWeight: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: nilWeight, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });

const caseVariants = (id: string): string[] => [id, id.toUpperCase(), id.toLowerCase(), id.replace(/^./, (c) => c.toUpperCase()), ` ${id}`, `${id}\u200b`, id.normalize('NFD')];

const UNICODE_EDGES = ['\u0000', '\ud800', '\udfff', '\ud83d', '\u202e', '\u2066', '\u200b', '\u200d', '\ufeff', '\uffff', '\u{10ffff}', '𝔘', '👩‍👩‍👧', 'ǅ', 'ß', 'İ', 'e\u0301', '\r\n', '\t', '\u0085', '\u2028', '%00', '%ff', '../', '..%2f', '\\', "'; --", '${jndi:x}', '<script>'];

const hostileString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom(...UNICODE_EDGES),
  fc.array(fc.constantFrom(...UNICODE_EDGES, 'a', 'Z', '0', '-'), { maxLength: 12 }).map((a) => a.join('')),
  fc.constantFrom('', ' ', 'a'.repeat(300), 'x'.repeat(70_000), '0'.repeat(40), '-1', '1e309', 'NaN', 'null', 'true'),
);

describe('fuzz: every route of the OpenAPI document', () => {
  let p: RunningPlatform;
  let tokens: Record<string, string | undefined>;
  let ids: string[];
  let admin: Api;

  beforeAll(async () => {
    p = await startPlatform();
    const ci = demoTenant.ciClients.find((c) => c.name === 'demo-ci');
    const ciToken = await clientCredentialsToken(p.facts, ci?.clientId ?? '', ci?.clientSecret ?? '');
    const adaToken = await bffUserToken(p, 'ada.admin@demo.test');
    admin = apiAs(p, adaToken);
    const alan = apiAs(p, await bffUserToken(p, 'alan.admin@demo.test'));
    const [h, pl] = ciToken.split('.');
    tokens = {
      none: undefined,
      ci: `Bearer ${ciToken}`,
      admin: `Bearer ${adaToken}`,
      auditor: `Bearer ${await bffUserToken(p, 'aude.auditor@demo.test')}`,
      forgedSignature: `Bearer ${h}.${pl}.${'A'.repeat(342)}`,
      garbage: 'Bearer not-a-token',
      basic: 'Basic YWRhOmRlbW8tcGFzc3dvcmQ=',
      lowerCaseScheme: `bearer ${ciToken}`,
      huge: `Bearer ${'eyJ'.padEnd(13_000, 'A')}`,
    };
    // Real ids to mutate: keys, an operation, an administrative session (ACTIVE), subjects, roles.
    const op = await apiAs(p, ciToken)<{ id: string }>('POST', '/api/v1/operations', {
      body: { description: 'fuzz operation', validFrom: new Date(Date.now() - 60_000).toISOString(), validTo: new Date(Date.now() + 3_600_000).toISOString(), keys: [{ keyid: 'demo-fw-dev', usages: 5 }] },
    });
    const session = await activeSession(admin, alan, 'fuzz administrative session');
    const subjects = await admin<{ items: { id: string }[] }>('GET', '/api/v1/subjects');
    ids = ['demo-fw-dev', 'demo-ca-dev', 'demo-root', 'demo-fw-prod', op.body.id, session, ...subjects.body.items.slice(0, 3).map((s) => s.id), 'administrator', 'auditor'];
  });

  afterAll(async () => {
    await p?.stop();
  });

  it(`throws ${RUNS} generated hostile requests (seed ${SEED}) at every route: never a 5xx, always problem+json with a status and code the OpenAPI document lists, audit valid after`, async () => {
    const doc = JSON.parse(readFileSync(join(repoRoot, 'docs/openapi.json'), 'utf8'));
    const routes = routesOf(doc);
    expect(routes.length).toBeGreaterThan(30);

    const idLike = fc.oneof(fc.constantFrom(...ids.flatMap(caseVariants)), hostileString);
    const value = (schema: Schema | undefined, depth: number): fc.Arbitrary<unknown> => {
      if (!schema || depth > 4) return fc.jsonValue({ maxDepth: 2 });
      const alt = schema.anyOf ?? schema.oneOf;
      if (alt?.length) return fc.oneof(...alt.map((s) => value(s, depth + 1)));
      if (schema.enum) return fc.oneof(fc.constantFrom(...schema.enum), fc.constantFrom(...schema.enum.map((e) => String(e).toLowerCase())), hostileString);
      const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
      const hostile = fc.oneof(hostileString, fc.jsonValue({ maxDepth: 3 }), fc.constant(null));
      switch (type) {
        case 'object': {
          const props = Object.entries(schema.properties ?? {});
          const rec = fc.record(Object.fromEntries(props.map(([k, s]) => [k, fc.oneof({ weight: 3, arbitrary: value(s, depth + 1) }, { weight: 1, arbitrary: hostile })])), { requiredKeys: [] });
          return fc.oneof(
            { weight: 4, arbitrary: rec },
            { weight: 1, arbitrary: fc.tuple(rec, fc.dictionary(hostileString, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })).map(([a, b]) => ({ ...b, ...a })) },
          );
        }
        case 'array':
          return fc.oneof(fc.array(value(schema.items, depth + 1), { maxLength: 4 }), fc.array(fc.constant(1), { minLength: 33, maxLength: 2000 }));
        case 'string':
          if (schema.format === 'date-time') {
            return fc.oneof(
              fc.date({ min: new Date('0001-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }).map((d) => d.toISOString()),
              fc.constantFrom('0000-01-01T00:00:00Z', '0001-01-01T00:00:00+01:00', '9999-12-31T23:59:59-01:00', '2026-02-30T00:00:00Z', '2026-12-05T08:00:00', '+275760-09-13T00:00:00Z'),
              hostileString,
            );
          }
          return fc.oneof(idLike, hostileString, fc.string({ minLength: 8, maxLength: 60 }));
        case 'integer':
        case 'number':
          return fc.oneof(fc.integer(), fc.constantFrom(0, -1, 1, 2 ** 31, 2 ** 53, -(2 ** 53), 1e308), fc.double(), fc.constant('1'));
        case 'boolean':
          return fc.oneof(fc.boolean(), fc.constantFrom('true', 0, 1, null));
        default:
          return fc.jsonValue({ maxDepth: 3 });
      }
    };

    const deep = fc.integer({ min: 30, max: 20_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`);
    type Body = { bytes?: Buffer; type?: string };
    const noBody: Body = {};
    const bodyFor = (route: Route): fc.Arbitrary<Body> => {
      const json = (v: unknown) => Buffer.from(JSON.stringify(v) ?? 'null');
      const shaped = value(route.body?.schema, 0).map((v) => ({ bytes: json(v), type: 'application/json' }));
      return fc.oneof(
        { weight: 5, arbitrary: shaped },
        { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 6 }).map((v) => ({ bytes: json(v), type: 'application/json' })) },
        { weight: 1, arbitrary: deep.map((s) => ({ bytes: Buffer.from(s), type: 'application/json' })) },
        { weight: 1, arbitrary: fc.uint8Array({ maxLength: 256 }).map((b) => ({ bytes: Buffer.from(b), type: 'application/json' })) },
        { weight: 1, arbitrary: shaped.map((b) => ({ bytes: Buffer.from(b.bytes.toString('utf8'), 'utf16le'), type: 'application/json; charset=utf-16' })) },
        {
          weight: 1,
          arbitrary: fc.tuple(fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/xml', ''), fc.uint8Array({ maxLength: 512 })).map(([type, b]) => ({ bytes: Buffer.from(b), type })),
        },
        { weight: 1, arbitrary: fc.constant({ bytes: Buffer.alloc(70 * 1024, 0x20), type: 'application/json' }) },
        { weight: 1, arbitrary: fc.constant(noBody) },
      );
    };

    const headerValue = fc.string({ unit: fc.constantFrom(...'abcXYZ019-_.:/ =;,\t\u00e9\u00ff'.split('')), maxLength: 80 });
    const requestFor = (route: Route) =>
      fc.record({
        route: fc.constant(route),
        pathValues: fc.array(fc.tuple(idLike, fc.constantFrom('pct', 'pct', 'raw-ascii')), { minLength: 4, maxLength: 4 }),
        query: fc.array(
          fc.tuple(
            fc.oneof(fc.constantFrom(...route.params.filter((x) => x.in === 'query').map((x) => x.name), 'access_token', 'limit', 'cursor'), hostileString),
            fc.oneof(idLike, hostileString, fc.constantFrom('ACTIVE', 'FW', '10', '0', '-1', '999999999999999999999', '2026-12-05T00:00:00Z', '0000-01-01T00:00:00Z')),
          ),
          { maxLength: 4 },
        ),
        token: fc.constantFrom(...Object.keys(tokens)),
        body: route.body || route.method !== 'GET' ? bodyFor(route) : fc.oneof(fc.constant(noBody), bodyFor(route)),
        contentEncoding: maybe(fc.constantFrom('gzip', 'deflate', 'br', 'identity', 'x-hostile'), 10),
        adminSession: maybe(fc.oneof(fc.constantFrom(...ids.flatMap(caseVariants).filter((s) => /^[\x20-\x7e]*$/.test(s))), headerValue), 2),
        idempotencyKey: maybe(headerValue, 4),
        accept: maybe(fc.constantFrom('application/xml', '*/*', 'text/html', 'application/json;q=0'), 3),
      });

    // What docs/openapi.json promises per operation: each error status and the problem codes it may carry.
    type ProblemResponse = { content?: Record<string, { schema?: { allOf?: { properties?: { code?: { enum?: string[] } } }[] } }> };
    const documentedCodes = (method: string, template: string, status: number): string[] | undefined => {
      const r = (doc.paths[template]?.[method.toLowerCase()]?.responses as Record<string, ProblemResponse> | undefined)?.[String(status)];
      return r?.content?.['application/problem+json']?.schema?.allOf?.[1]?.properties?.code?.enum;
    };
    const undocumented = new Set<string>();
    const violations: string[] = [];
    let cases = 0;
    let skipped = 0;
    const byStatus = new Map<number, number>();
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...routes).chain((r) => requestFor(r)),
        async (c) => {
          let i = 0;
          const path = c.route.template.replace(/\{[^}]+\}/g, () => {
            const [v, how] = c.pathValues[i++ % c.pathValues.length];
            return how === 'raw-ascii' && /^[\x21-\x7e]+$/.test(v) && !/[/?#%]/.test(v) ? v : pct(v);
          });
          const query = c.query.map(([k, v]) => `${pct(k)}=${pct(v)}`).join('&');
          const target = query ? `${path}?${query}` : path;
          const headers: Record<string, string> = {};
          const token = tokens[c.token];
          if (token) headers['authorization'] = token;
          if (c.body.type) headers['content-type'] = c.body.type;
          if (c.contentEncoding) headers['content-encoding'] = c.contentEncoding;
          if (c.adminSession) headers['x-admin-session'] = c.adminSession;
          if (c.idempotencyKey) headers['idempotency-key'] = c.idempotencyKey;
          if (c.accept) headers['accept'] = c.accept;
          let r: Answer;
          try {
            r = await send(p.env.urls.api, c.route.method, target, headers, c.body.bytes);
          } catch (e) {
            const msg = (e as Error).message;
            // The client refused to send it (an invalid header or target for node:http): not a server answer.
            if (/ERR_INVALID_CHAR|ERR_UNESCAPED_CHARACTERS|Invalid character|contains unescaped|socket hang up|ECONNRESET|EPIPE/i.test(`${(e as { code?: string }).code} ${msg}`)) {
              skipped++;
              return;
            }
            violations.push(`${c.route.method} ${target.slice(0, 200)}: ${msg}`);
            return;
          }
          cases++;
          byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
          const where = `${c.route.method} ${target.slice(0, 200)} [${c.token}, ${c.body.type ?? 'no body'}${c.contentEncoding ? `, ${c.contentEncoding}` : ''}]`;
          if (process.env['FUZZ_DEBUG'] && r.status === Number(process.env['FUZZ_DEBUG'])) console.log(where, r.body.slice(0, 160));
          if (r.status >= 500) violations.push(`${where}: ${r.status} ${r.body.slice(0, 200)}`);
          else if (r.status >= 400) {
            let code: unknown;
            try {
              code = (JSON.parse(r.body) as { code?: unknown }).code;
            } catch {
              code = undefined;
            }
            if (!r.type.startsWith('application/problem+json') || typeof code !== 'string' || !/^[a-z0-9_]+$/.test(code)) {
              violations.push(`${where}: ${r.status} ${r.type} ${r.body.slice(0, 200)}`);
            } else if (!documentedCodes(c.route.method, c.route.template, r.status)?.includes(code)) {
              undocumented.add(`${c.route.method} ${c.route.template}: ${r.status} ${code}`);
            }
          }
        },
      ),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    const statuses = [...byStatus.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ');
    const verify = await admin<{ ok: boolean; checked: number; firstBadSeq?: string }>('GET', '/api/v1/audit/verify');
    // The figure docs/security-fuzz.md records.
    console.log(
      `fuzz: ${cases} cases answered (+${skipped} the client could not send) on ${routes.length} routes in ${secs} s, seed ${SEED}: ${violations.length} failures; ` +
        `statuses ${statuses}; audit verify ${JSON.stringify(verify.body)}`,
    );
    if (verify.body.firstBadSeq) {
      const bad = await admin<{ items: unknown[] }>('GET', `/api/v1/audit?cursor=${BigInt(verify.body.firstBadSeq) + 1n}&limit=1`);
      console.log(`first audit event that does not verify: ${JSON.stringify(bad.body.items[0])}`);
    }
    expect(violations.slice(0, 20)).toEqual([]);
    // Every answer is one the OpenAPI document lists for that operation, status and code (issue 14, item 4).
    expect([...undocumented].sort()).toEqual([]);
    expect(verify.status).toBe(200);
    expect(verify.body.ok).toBe(true);
  }, Math.max(120_000, RUNS * 200));
});
