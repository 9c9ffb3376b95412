import fc from 'fast-check';
import { answerShape, boundedBody, jsonAnswer, MAX_DETAIL_CHARS, nestsDeeperThan, problemOf } from './answer';
import { CliError, Exit } from './errors';

// What ksctl takes from a Keyserver's answer when the Keyserver may be hostile (a compromised host, a proxy, a portal):
// Responses built in memory, the same objects fetch returns.

const answer = (body: string | Uint8Array<ArrayBuffer> | null, status: number, headers: Record<string, string> = {}) => new Response(body, { status, headers });
const JSON_HEADERS = { 'content-type': 'application/json' };

async function codeOf(p: Promise<unknown>): Promise<[Exit, string | undefined] | 'ok'> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  if (err === undefined) return 'ok';
  expect(err).toBeInstanceOf(CliError);
  return [(err as CliError).exit, (err as CliError).code];
}

describe(jsonAnswer.name, () => {
  it.each<[string, Response, [Exit, string] | 'ok']>([
    ['ok application/json', answer('[1]', 200, JSON_HEADERS), 'ok'],
    ['ok application/json; charset=utf-8', answer('[1]', 200, { 'content-type': 'application/json; charset=utf-8' }), 'ok'],
    ['ok an empty 204', answer(null, 204), 'ok'],
    ['fail text/html holding JSON', answer('[1]', 200, { 'content-type': 'text/html' }), [Exit.Failure, 'unexpected_answer']],
    ['fail application/jsonx', answer('[1]', 200, { 'content-type': 'application/jsonx' }), [Exit.Failure, 'unexpected_answer']],
    ['fail no content type', answer('[1]', 200, { 'content-type': '' }), [Exit.Failure, 'unexpected_answer']],
    ['fail invalid JSON', answer('{', 200, JSON_HEADERS), [Exit.Failure, 'unexpected_answer']],
    ['fail a declared length over 16 MiB', answer('[1]', 200, { ...JSON_HEADERS, 'content-length': String(17 << 20) }), [Exit.Failure, 'answer_too_large']],
  ])('%s', async (_name, r, expected) => {
    expect(await codeOf(jsonAnswer(r, 'GET /x'))).toEqual(expected);
  });
});

describe(boundedBody.name, () => {
  it('fail a stream growing past the bound: answer_too_large, the stream cancelled', async () => {
    let cancelled = false;
    const stream = new ReadableStream<Uint8Array>({
      pull: (c) => c.enqueue(new Uint8Array(1024)),
      cancel: () => {
        cancelled = true;
      },
    });
    expect(await codeOf(boundedBody(new Response(stream, { status: 200 }), 10_000))).toEqual([Exit.Failure, 'answer_too_large']);
    expect(cancelled).toBe(true);
  });

  it('ok a body of exactly the bound', async () => {
    expect((await boundedBody(answer(new Uint8Array(4096), 200), 4096)).length).toBe(4096);
  });
});

describe(problemOf.name, () => {
  it('ok a problem of the API: its code and detail', async () => {
    expect(await problemOf(answer(JSON.stringify({ code: 'usage_exhausted', detail: 'none left' }), 409, { 'content-type': 'application/problem+json' }))).toEqual({
      code: 'usage_exhausted',
      detail: 'none left',
    });
  });

  it.each<[string, Response]>([
    ['fail a body over 64 KiB', answer(JSON.stringify({ code: 'usage_exhausted', detail: 'x'.repeat(70_000) }), 409, { 'content-type': 'application/problem+json' })],
    ['fail text/plain', answer(JSON.stringify({ code: 'usage_exhausted' }), 409, { 'content-type': 'text/plain' })],
    ['fail not JSON', answer('<html>', 502, { 'content-type': 'application/problem+json' })],
    ['fail a JSON array', answer('["usage_exhausted"]', 409, JSON_HEADERS)],
  ])('%s: nothing taken', async (_name, r) => {
    expect(await problemOf(r)).toEqual({});
  });

  it('property: whatever the body holds, a code has the API shape and a detail is at most 500 characters (+ …)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything(), fc.anything(), async (code, detail) => {
        const p = await problemOf(answer(JSON.stringify({ code, detail }) ?? 'null', 400, { 'content-type': 'application/problem+json' }));
        if (p.code !== undefined) expect(p.code).toMatch(/^[a-z][a-z0-9_]{0,79}$/);
        if (p.detail !== undefined) expect(p.detail.length).toBeLessThanOrEqual(MAX_DETAIL_CHARS + 1);
      }),
      { numRuns: 300 },
    );
  });
});

describe('answerShape', () => {
  const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  it.each<[string, () => unknown, boolean]>([
    ['ok hex', () => answerShape.hex('00ff', 'signature'), true],
    ['fail hex of odd length', () => answerShape.hex('0ff', 'signature'), false],
    ['fail empty hex', () => answerShape.hex('', 'signature'), false],
    ['fail hex that is not a string', () => answerShape.hex(12, 'signature'), false],
    ['ok one PEM certificate', () => answerShape.pem(PEM, 'certificate'), true],
    ['fail two PEM certificates as one', () => answerShape.pem(PEM + PEM, 'certificate'), false],
    ['fail text around the PEM', () => answerShape.pem(`\u001b[2J${PEM}`, 'certificate'), false],
    ['fail a CSR where a certificate belongs', () => answerShape.pem(PEM.replace(/CERTIFICATE/g, 'CERTIFICATE REQUEST'), 'certificate'), false],
    ['ok a list of PEM certificates', () => answerShape.pemList([PEM, PEM], 'chain'), true],
    ['fail a list holding an object', () => answerShape.pemList([PEM, {}], 'chain'), false],
  ])('%s', (_name, fn, ok) => {
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err === undefined ? 'ok' : [(err as CliError).exit, (err as CliError).code]).toEqual(ok ? 'ok' : [Exit.Failure, 'unexpected_answer']);
  });
});

describe(nestsDeeperThan.name, () => {
  const depth = (v: unknown): number => (v !== null && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0);

  it('property: it tells the nesting of any JSON text, brackets inside strings and escaped quotes included', () => {
    const tricky = fc.constantFrom('[', ']', '{', '}', '"', '\\', '\\"', '[[{"');
    const value = fc.letrec((tie) => ({
      v: fc.oneof({ depthSize: 'small' }, fc.array(fc.oneof(tricky, fc.string()), { maxLength: 4 }).map((xs) => xs.join('')), fc.integer(), fc.array(tie('v'), { maxLength: 3 }), fc.dictionary(fc.string(), tie('v'), { maxKeys: 3 })),
    })).v;
    fc.assert(
      fc.property(value, fc.integer({ min: 0, max: 8 }), (v, max) => {
        expect(nestsDeeperThan(JSON.stringify(v), max)).toBe(depth(v) > max);
      }),
    );
  });

  it.each<[string, string, Exit | 'ok']>([
    ['fail a million levels: unexpected_answer, not parsed', `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`, Exit.Failure],
    ['ok 64 levels', `${'['.repeat(64)}${']'.repeat(64)}`, 'ok'],
  ])('%s', async (_name, body, expected) => {
    const got = await codeOf(jsonAnswer(answer(body, 200, JSON_HEADERS), 'GET /api/keys'));
    expect(got).toEqual(expected === 'ok' ? 'ok' : [expected, 'unexpected_answer']);
  });
});
