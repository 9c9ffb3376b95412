import fc from 'fast-check';
import { EdgeRefusal } from '../common/api-error';
import { checkHeaderSection, checkIdempotencyKeyRoute, checkJsonValue, checkRequestTarget, isStorableText } from './input-checks';

const codeOf = (fn: () => void): string => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof EdgeRefusal) return e.code;
    throw e;
  }
};

describe('checkRequestTarget', () => {
  it.each([
    ['ok a plain path', '/api/v1/keys/demo-fw-dev', 'ok'],
    ['ok escaped UTF-8 and a query', '/api/v1/keys/caf%C3%A9?state=ACTIVE&x=a+b%20c', 'ok'],
    ['ok an empty query', '/api/keys?', 'ok'],
    ['fail NUL in a segment', '/api/v1/crl/a%00b', 'invalid_input_encoding'],
    ['fail a control character in a segment', '/api/v1/keys/a%1Fb', 'invalid_input_encoding'],
    ['fail DEL in a segment', '/api/v1/keys/a%7F', 'invalid_input_encoding'],
    ['fail invalid UTF-8 in a segment', '/api/v1/keys/%ff%fe', 'invalid_input_encoding'],
    ['fail an encoded surrogate', '/api/v1/keys/%ED%A0%80', 'invalid_input_encoding'],
    ['fail a broken escape', '/api/v1/crl/%zz', 'invalid_input_encoding'],
    ['fail NUL in a query value', '/api/v1/certificates?subject=a%00b', 'invalid_input_encoding'],
    ['fail NUL in a query name', '/api/v1/certificates?a%00=1', 'invalid_input_encoding'],
    ['fail invalid UTF-8 in a query value', '/api/v1/certificates?subject=%c3%28', 'invalid_input_encoding'],
    ['fail a raw control character in a segment (no escape at all)', '/api/v1/keys/a\u0001b', 'invalid_input_encoding'],
    ['fail a raw DEL in a query value (no escape at all)', '/api/v1/certificates?subject=a\u007f+b', 'invalid_input_encoding'],
    ['ok a plus sign without any escape', '/api/v1/certificates?subject=a+b', 'ok'],
  ])('%s', (_n, target, code) => {
    expect(codeOf(() => checkRequestTarget(target))).toBe(code);
  });

  it('never throws anything but an EdgeRefusal, whatever the target', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        codeOf(() => checkRequestTarget(`/${encodeURI(s.replace(/[\uD800-\uDFFF]/g, ''))}`));
        codeOf(() => checkRequestTarget(`/${s}`));
        // The escape-free fast path decides like the decoding path.
        const plain = s.replace(/%/g, '');
        expect(codeOf(() => checkRequestTarget(`/${plain}`))).toBe(codeOf(() => checkRequestTarget(`/${plain}%41`)));
      }),
      { seed: 13, numRuns: 500 },
    );
  });
});

describe('checkJsonValue', () => {
  const nest = (levels: number): unknown => {
    let v: unknown = 'leaf';
    for (let i = 0; i < levels; i++) v = i % 2 ? { k: v } : [v];
    return v;
  };

  it.each([
    ['ok a flat body', { description: 'build 42', keys: [{ keyid: 'a', usages: 1 }] }, 'ok'],
    ['ok non-BMP, bidi and zero-width text', { d: '𝔘\u202e\u200b👍' }, 'ok'],
    ['ok exactly the maximum depth', nest(32), 'ok'],
    ['fail one level too deep', nest(33), 'json_too_deep'],
    ['fail NUL in a string', { d: 'a\u0000b' }, 'invalid_input_encoding'],
    ['fail a lone high surrogate', { d: 'a\ud800' }, 'invalid_input_encoding'],
    ['fail a lone low surrogate in an array', ['\udc00'], 'invalid_input_encoding'],
    ['fail NUL in a key', { 'a\u0000': 1 }, 'invalid_input_encoding'],
    ['fail __proto__ deep inside', JSON.parse('{"a":[{"__proto__":{}}]}'), 'validation_failed'],
    ['fail constructor', { constructor: {} }, 'validation_failed'],
  ])('%s', (_n, value, code) => {
    expect(codeOf(() => checkJsonValue(value, 32))).toBe(code);
  });

  it('checks a value nested 100000 levels without recursion, in linear time', () => {
    const started = Date.now();
    expect(codeOf(() => checkJsonValue(nest(100_000), 32))).toBe('json_too_deep');
    expect(codeOf(() => checkJsonValue(nest(100_000), 200_000))).toBe('ok');
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('accepts exactly the values whose strings are storable text and whose depth is within the cap', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.string({ unit: 'binary' }), (v, s) => {
        expect(codeOf(() => checkJsonValue(v, 64))).toBe('ok');
        expect(codeOf(() => checkJsonValue({ s }, 64))).toBe(isStorableText(s) ? 'ok' : 'invalid_input_encoding');
      }),
      { seed: 13, numRuns: 300 },
    );
  });
});

describe(checkHeaderSection.name, () => {
  const req = (raw: string[], minor = 1) => {
    const headers: { host?: string } = {};
    for (let i = 0; i < raw.length; i += 2) if (raw[i].toLowerCase() === 'host' && headers.host === undefined) headers.host = raw[i + 1];
    return { httpVersionMajor: 1, httpVersionMinor: minor, headers, rawHeaders: raw };
  };

  it.each([
    ['ok one of each', ['Host', 'a', 'Authorization', 'Bearer x', 'Content-Type', 'application/json', 'Idempotency-Key', 'k'], 1, 'ok'],
    ['ok repeated headers that may repeat', ['Host', 'a', 'Accept', 'a', 'accept', 'b', 'X-Forwarded-For', '1', 'X-Forwarded-For', '2'], 1, 'ok'],
    ['ok HTTP/1.0 without Host', [], 0, 'ok'],
    ['fail HTTP/1.1 without Host', ['Authorization', 'Bearer x'], 1, 'malformed_request'],
    ['fail two Host headers', ['Host', 'a', 'host', 'b'], 1, 'malformed_request'],
    ['fail two Authorization headers in different case', ['Host', 'a', 'Authorization', 'Bearer x', 'AUTHORIZATION', 'Bearer y'], 1, 'malformed_request'],
    ['fail two Content-Type headers', ['Host', 'a', 'Content-Type', 'application/json', 'content-type', 'text/plain'], 1, 'malformed_request'],
    ['fail two Idempotency-Key headers', ['Host', 'a', 'Idempotency-Key', 'a', 'Idempotency-Key', 'a'], 1, 'malformed_request'],
  ])('%s', (_n, raw, minor, code) => {
    expect(codeOf(() => checkHeaderSection(req(raw, minor)))).toBe(code);
  });

  it('refuses exactly the sections that repeat a single header, whatever else they hold', () => {
    const single = ['Host', 'Authorization', 'Content-Type', 'Idempotency-Key'];
    const name = fc.oneof(fc.constantFrom(...single, ...single.map((s) => s.toUpperCase()), 'Accept', 'Hosts', 'X-Host'), fc.stringMatching(/^[A-Za-z-]{1,16}$/));
    fc.assert(
      fc.property(fc.array(name, { maxLength: 12 }), (names) => {
        const raw = ['Host', 'h', ...names.flatMap((n) => [n, 'v'])];
        const counts = new Map<string, number>();
        for (let i = 0; i < raw.length; i += 2) counts.set(raw[i].toLowerCase(), (counts.get(raw[i].toLowerCase()) ?? 0) + 1);
        const repeated = single.some((s) => (counts.get(s.toLowerCase()) ?? 0) > 1);
        expect(codeOf(() => checkHeaderSection(req(raw)))).toBe(repeated ? 'malformed_request' : 'ok');
      }),
      { seed: 7, numRuns: 500 },
    );
  });
});

describe(checkIdempotencyKeyRoute.name, () => {
  const withKey = { 'idempotency-key': 'k-1' };

  it.each([
    ['ok a sign order with a key', 'POST', '/api/signorders', withKey, 'ok'],
    ['ok a sign order with a key and a query', 'POST', '/api/signorders?x=1', withKey, 'ok'],
    ['ok a certificate without a key', 'POST', '/api/v1/certificates', {}, 'ok'],
    ['ok a read with a key (safe to repeat anyway)', 'GET', '/api/v1/operations', withKey, 'ok'],
    ['ok HEAD with a key', 'HEAD', '/api/v1/operations', withKey, 'ok'],
    ['ok a certificate with a key', 'POST', '/api/v1/certificates', withKey, 'ok'],
    ['ok an empty key on a certificate (the service answers idempotency_key_invalid)', 'POST', '/api/v1/certificates', { 'idempotency-key': '' }, 'ok'],
    ['fail a certificate revocation with a key', 'POST', '/api/v1/certificates/1/revocation', withKey, 'idempotency_key_not_supported'],
    ['fail a certificate look-alike path', 'POST', '/api/v1/certificates/', withKey, 'idempotency_key_not_supported'],
    ['fail a firmware signature with a key', 'POST', '/api/v1/firmware/signatures?operationid=x', withKey, 'idempotency_key_not_supported'],
    ['fail an approval with a key', 'POST', '/api/v1/operations/1/approvals', withKey, 'idempotency_key_not_supported'],
    ['ok an operation with a key', 'POST', '/api/v1/operations', withKey, 'ok'],
    ['ok an empty key on an operation (the service answers idempotency_key_invalid)', 'POST', '/api/v1/operations', { 'idempotency-key': '' }, 'ok'],
    ['fail an operation look-alike path', 'POST', '/api/v1/operations/', withKey, 'idempotency_key_not_supported'],
    ['fail an operation cancellation with a key', 'POST', '/api/v1/operations/1/cancellation', withKey, 'idempotency_key_not_supported'],
    ['fail an admin change with a key', 'PATCH', '/api/v1/subjects/1', withKey, 'idempotency_key_not_supported'],
    ['fail PUT with a key', 'PUT', '/api/v1/keys/k/limits', withKey, 'idempotency_key_not_supported'],
    ['fail DELETE with a key', 'DELETE', '/api/signorders', withKey, 'idempotency_key_not_supported'],
    ['fail an empty key on another route', 'POST', '/api/v1/operations/1/rejection', { 'idempotency-key': '' }, 'idempotency_key_not_supported'],
    ['fail a sign-order look-alike path', 'POST', '/api/signorders/', withKey, 'idempotency_key_not_supported'],
    ['fail a sign-order path in another case', 'POST', '/API/signorders', withKey, 'idempotency_key_not_supported'],
  ] as const)('%s', (_n, method, url, headers, code) => {
    expect(codeOf(() => checkIdempotencyKeyRoute(method, url, headers))).toBe(code);
  });
});
