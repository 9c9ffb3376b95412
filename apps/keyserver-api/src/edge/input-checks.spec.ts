import fc from 'fast-check';
import { EdgeRefusal } from '../common/api-error';
import { checkJsonValue, checkRequestTarget, isStorableText } from './input-checks';

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
