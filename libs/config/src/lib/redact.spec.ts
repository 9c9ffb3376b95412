import { redactHeaders, redactText, redactUrl } from './redact';

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
