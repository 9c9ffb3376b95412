import fc from 'fast-check';
import { safeReturnPath } from './return-path';

describe(safeReturnPath.name, () => {
  const cases: Array<[string, unknown, string]> = [
    ['ok root', '/', '/'],
    ['ok allow-listed route', '/operations/42', '/operations/42'],
    ['ok allow-listed route with query', '/keys?page=2', '/keys?page=2'],
    ['ok the ROOT ceremony screen', '/root-ceremony', '/root-ceremony'],
    ['fail a look-alike of the ceremony screen', '/root-ceremony-evil', '/'],
    ['fail scheme-relative', '//evil.example', '/'],
    ['fail backslash', '/\\evil.example', '/'],
    ['fail absolute https', 'https://evil.example', '/'],
    ['fail javascript scheme', 'javascript:alert(1)', '/'],
    ['fail data scheme', 'data:text/html,x', '/'],
    ['fail relative without slash', 'keys', '/'],
    ['fail dot segments', '/keys/../../evil', '/'],
    ['fail encoded slash', '/keys/%2f%2fevil', '/'],
    ['fail encoded backslash', '/keys%5cevil', '/'],
    ['fail not allow-listed', '/api/v1/keys', '/'],
    ['fail login loop', '/login', '/'],
    ['fail whitespace and control', '/keys\n/evil', '/'],
    ['fail non-string', 42, '/'],
    ['fail an escape that decodes to nothing (the path guard would answer 400 after the login)', '/keys/%zz', '/'],
    ['fail half an escape', '/keys/a%4', '/'],
    ['fail an escape that is not UTF-8', '/keys/%c0%af', '/'],
    ['fail too long', `/keys/${'a'.repeat(600)}`, '/'],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(safeReturnPath(input)).toBe(expected);
  });
});

describe(`${safeReturnPath.name} (property)`, () => {
  const ORIGIN = 'https://keyclient.example';
  // The characters open redirects are made of, spelled every way a browser or a decoder might read them.
  const piece = fc.constantFrom(
    '/', '//', '\\', '.', '..', '%2f', '%2F', '%5c', '%2e', '%252f', '%00', '%09', '?', '#', '@', ':', ';', '&', '=',
    'evil.example', 'javascript:', 'keys', 'approvals', 'audit', 'login', 'api', ' ', '\t', '\n', '\u2215', '\uff0f',
    '\u3002', 'é', '+', '~', '%', 'a', '1',
  );
  const candidate = fc.oneof(
    fc.array(piece, { maxLength: 8 }).map((p) => p.join('')),
    fc.array(piece, { maxLength: 8 }).map((p) => `/${p.join('')}`),
    fc.string({ maxLength: 40 }),
  );

  it('every return path is "/" or stays on this origin, in an allow-listed console route, however a browser resolves it', () => {
    fc.assert(
      fc.property(candidate, (input) => {
        const out = safeReturnPath(input);
        if (out === '/') return;
        expect(out).toBe(input);
        const resolved = new URL(out, ORIGIN);
        expect(resolved.origin).toBe(ORIGIN);
        // Decoded, as the keyclient's path guard and the console's router read it: no hidden separator or dot segment.
        const decoded = decodeURIComponent(resolved.pathname);
        expect(decoded).not.toMatch(/\/\/|\\/);
        expect(decoded.split('/').filter((s) => s === '..' || s === '.')).toEqual([]);
        expect(/^\/(approvals|operations|keys|certificates|admin-sessions|root-ceremony|subjects|audit)?(\/|$)/.test(resolved.pathname)).toBe(true);
      }),
      { numRuns: 3000 },
    );
  });
});
