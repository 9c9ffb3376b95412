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
    ['fail too long', `/keys/${'a'.repeat(600)}`, '/'],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    expect(safeReturnPath(input)).toBe(expected);
  });
});
