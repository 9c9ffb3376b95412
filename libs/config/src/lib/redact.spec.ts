import fc from 'fast-check';
import { maskSecrets } from './config';
import { logTarget, LOG_TARGET_MAX, maskUrlCredentials, redactHeaders, redactText, redactUrl } from './redact';

const JWT = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';

describe('redactUrl', () => {
  it.each([
    ['ok a plain target is unchanged', '/api/v1/keys?state=ACTIVE', '/api/v1/keys?state=ACTIVE'],
    ['redacts access_token', `/api/keys?access_token=${JWT}&x=1`, '/api/keys?access_token=***&x=1'],
    ['redacts OAuth parameters whatever their case or encoding', '/cb?Code=abc&client%5Fsecret=s&state=ACTIVE&id_token=t', '/cb?Code=***&client%5Fsecret=***&state=ACTIVE&id_token=***'],
    ['redacts client_assertion and refresh_token', '/t?client_assertion=a&refresh_token=r', '/t?client_assertion=***&refresh_token=***'],
    ['redacts a JWT in the path', `/api/v1/crl/${JWT}`, '/api/v1/crl/***'],
    ['redacts a JWT in any other parameter', `/x?foo=${JWT}`, '/x?foo=***'],
    ['keeps a malformed parameter name', '/x?%zz=1', '/x?%zz=1'],
  ])('%s', (_n, url, expected) => {
    expect(redactUrl(url)).toBe(expected);
  });
});

describe(logTarget.name, () => {
  it.each([
    ['ok a short target is only redacted', `/x?code=1&y=${JWT}`, '/x?code=***&y=***'],
    ['ok a target of exactly the limit is kept', `/${'a'.repeat(LOG_TARGET_MAX - 1)}`, `/${'a'.repeat(LOG_TARGET_MAX - 1)}`],
    ['fail a longer target is cut, with the length it had', `/${'a'.repeat(LOG_TARGET_MAX + 99)}`, `/${'a'.repeat(LOG_TARGET_MAX - 1)}…(+100)`],
  ])('%s', (_n, url, expected) => {
    expect(logTarget(url)).toBe(expected);
  });

  it.each([
    ['ok a parameter the server defines keeps its value', '/a?state=ACTIVE&limit=5', '/a?state=ACTIVE&limit=5'],
    ['fail any other parameter is masked', '/a?state=ACTIVE&pin=1234&api_key=k&Secret=s', '/a?state=ACTIVE&pin=***&api_key=***&Secret=***'],
    ['fail a defined name spelt otherwise is another name', '/a?STATE=x&st%61te=y', '/a?STATE=***&st%61te=y'],
    ['fail a credential parameter stays masked even if defined', '/a?code=c', '/a?code=***'],
    ['fail a bare word is masked unless it is a defined name', '/a?s3cr3t&limit&state=x', '/a?***&limit&state=x'],
  ])('with the defined names: %s', (_n, url, expected) => {
    expect(logTarget(url, new Set(['state', 'limit', 'code']))).toBe(expected);
  });

  it('never holds a credential cut in half nor exceeds its bound, whatever precedes it (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 3000 }), fc.string({ minLength: 8, maxLength: 40, unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789') }), (pad, secret) => {
        const jwt = `eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.${secret}`;
        fc.pre(!`/${encodeURIComponent(pad)}?a=1&client_secret=&t=eyJhbGciOiJub25lIn0.eyJ4IjoxfQ.`.includes(secret));
        const out = logTarget(`/${encodeURIComponent(pad)}?a=1&client_secret=${secret}&t=${jwt}`);
        expect(out.length).toBeLessThanOrEqual(LOG_TARGET_MAX + 16);
        expect(out).not.toContain(secret);
      }),
    );
  });
});

describe('redactHeaders', () => {
  it('masks credential headers and JWT-shaped values in the others', () => {
    expect(redactHeaders({ authorization: `Bearer ${JWT}`, Cookie: 'a=b', 'x-forwarded-access-token': JWT, accept: 'application/json', 'x-list': [JWT, 'b'] })).toEqual({
      authorization: '***',
      Cookie: '***',
      'x-forwarded-access-token': '***',
      accept: 'application/json',
      'x-list': ['***', 'b'],
    });
  });
});

describe('redactText', () => {
  it('masks every JWT in a log message', () => {
    expect(redactText(`GET /api/v1/crl/${JWT} refused: 401 (${JWT})`)).toBe('GET /api/v1/crl/*** refused: 401 (***)');
  });
});

describe(maskUrlCredentials.name, () => {
  it.each([
    ['fail a password in the user-info', 'postgresql://user:pw@host/db', 'postgresql://***@host/db'],
    ['fail an @ inside the password (the last @ ends the user-info)', 'postgresql://user:p@ss@host/db', 'postgresql://***@host/db'],
    ['fail a password in the query', 'postgresql://host/db?password=pw&sslmode=require', 'postgresql://host/db?password=***&sslmode=require'],
    ['fail an sslpassword in the query', 'postgresql://host/db?sslmode=verify-full&sslpassword=pw', 'postgresql://host/db?sslmode=verify-full&sslpassword=***'],
    ['fail a percent-encoded parameter name', 'postgresql://host/db?pass%77ord=pw', 'postgresql://host/db?pass%77ord=***'],
    ['fail an upper-case name, and both places at once', 'postgresql://u:pw@host/db?PASSWORD=pw', 'postgresql://***@host/db?PASSWORD=***'],
    ['ok nothing secret: unchanged', 'postgresql://host:5432/db?sslmode=require&application_name=api', 'postgresql://host:5432/db?sslmode=require&application_name=api'],
    ['ok an @ in the path is not user-info', 'https://host/a@b?x=1', 'https://host/a@b?x=1'],
  ])('%s', (_n, url, expected) => {
    expect(maskUrlCredentials(url)).toBe(expected);
  });

  it('never prints a value it was given as a password, whatever the URL around it (property)', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[A-Za-z0-9._~-]{0,20}$/), fc.constantFrom('password', 'sslpassword', 'PassWord', 'pass%77ord'), (tail, name) => {
        // A prefix found nowhere else in the URL, so the secret can only appear by leaking.
        const secret = `Zq9${tail}`;
        const masked = maskSecrets({ DATABASE_URL: `postgresql://u:${secret}@h/db?a=1&${name}=${secret}` })['DATABASE_URL'] as string;
        expect(masked.includes(secret)).toBe(false);
      }),
    );
  });
});
