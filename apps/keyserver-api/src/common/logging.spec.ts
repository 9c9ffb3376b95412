import type { IncomingMessage, ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import pino from 'pino';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LOGGED_QUERY_PARAMS, logRequest, requestId } from './logging';

function capture(level: string) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}

const req = (url: string) => ({ method: 'GET', url, headers: {} }) as unknown as IncomingMessage;
const res = (statusCode: number, finished = true) => ({ statusCode, writableFinished: finished }) as unknown as ServerResponse;

describe(logRequest.name, () => {
  it.each([
    ['ok a success at info', '/api/v1/me', 200, true, 'info', 30, 'request completed'],
    ['ok a refusal at warn', '/api/v1/me', 403, true, 'info', 40, 'request completed'],
    ['ok a fault at error', '/api/v1/me', 500, true, 'info', 50, 'request completed'],
    ['ok an abandoned response at warn', '/api/v1/me', 200, false, 'info', 40, 'request aborted'],
    ['ok a successful probe at debug', '/healthz', 200, true, 'debug', 20, 'request completed'],
    ['ok a failing probe at error', '/readyz', 503, true, 'info', 50, 'request completed'],
    ['fail a successful probe at info: not logged', '/healthz', 200, true, 'info', undefined, undefined],
  ])('%s', async (_name, route, status, finished, level, expectedLevel, msg) => {
    const { logger, lines } = capture(level);
    logRequest(logger, 'rid-1', req(route), res(status, finished), 0, route);
    await new Promise((r) => setImmediate(r));
    expect([lines[0]?.['level'], lines[0]?.['msg']]).toEqual([expectedLevel, msg]);
    if (lines[0]) expect(lines[0]).toMatchObject({ req: { id: 'rid-1', method: 'GET', url: route }, res: { statusCode: status } });
  });

  it('never logs a credential from the query string', async () => {
    const { logger, lines } = capture('info');
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXZhbHVl';
    logRequest(logger, 'rid-2', req(`/api/keys?access_token=${jwt}&code=secretcode123`), res(401), 0, '/api/keys');
    await new Promise((r) => setImmediate(r));
    expect(JSON.stringify(lines)).not.toMatch(/secretcode123|c2lnbmF0dXJlLXZhbHVl/);
  });

  it('masks the value of a query parameter no route defines (a client that puts a secret there)', async () => {
    const { logger, lines } = capture('info');
    logRequest(logger, 'rid-4', req('/api/v1/keys?state=ACTIVE&pin=123456&api_key=k-secret'), res(200), 0, '/api/v1/keys');
    await new Promise((r) => setImmediate(r));
    expect((lines[0]['req'] as { url: string }).url).toBe('/api/v1/keys?state=ACTIVE&pin=***&api_key=***');
  });

  it('shows the values of every query parameter the OpenAPI description defines', () => {
    const doc = JSON.parse(readFileSync(join(__dirname, '../../../../docs/openapi.json'), 'utf8')) as { paths: Record<string, Record<string, { parameters?: { in: string; name: string }[] }>> };
    const defined = Object.values(doc.paths).flatMap((ops) => Object.values(ops).flatMap((op) => (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name)));
    expect(defined.length).toBeGreaterThan(5);
    expect(defined.filter((n) => !LOGGED_QUERY_PARAMS.has(n))).toEqual([]);
  });

  it('writes a bounded line for a 16 KiB request target (no line a log shipper splits)', async () => {
    const { logger, lines } = capture('info');
    logRequest(logger, 'rid-3', req(`/${'a'.repeat(16_000)}?code=x`), res(404), 0, '(unmatched)');
    await new Promise((r) => setImmediate(r));
    expect(JSON.stringify(lines[0]).length).toBeLessThan(1300);
    expect((lines[0]['req'] as { url: string }).url).toMatch(/…\(\+14986\)$/);
  });
});

describe(requestId.name, () => {
  it.each([
    ['ok a well-formed caller id is kept', 'build-42.step_7', 'build-42.step_7'],
    ['fail an id with a space is replaced', 'a b', undefined],
    ['fail an id of 65 characters is replaced', 'a'.repeat(65), undefined],
  ])('%s', (_name, incoming, kept) => {
    const id = requestId({ headers: { 'x-request-id': incoming } } as unknown as IncomingMessage);
    if (kept) expect(id).toBe(kept);
    else expect(id).toMatch(/^[0-9a-f-]{36}$/);
  });
});
