import { BootstrapErrorCode } from './bootstrap-error';
import { parseBootstrapAdmins } from './bootstrap';

const TID = '7d5c8c1e-3b0a-4c59-9d1e-2f6b8a4e1c01';
const A = 'a0000001-0000-4000-8000-000000000001';
const B = 'a0000001-0000-4000-8000-000000000002';
const C = 'a0000001-0000-4000-8000-000000000003';

describe(parseBootstrapAdmins.name, () => {
  it.each([
    ['ok two administrators with names', [`${TID}:${A}:Ada Admin`, `${TID}:${B}:Alan Admin`], 2, [A, B]],
    ['ok upper-case GUIDs are the same GUIDs, lower-cased', [`${TID.toUpperCase()}:${A.toUpperCase()}`, `${TID}:${B}`], 2, [A, B]],
    ['ok a name with colons keeps them', [`${TID}:${A}:Ada: PKI lead`, `${TID}:${B}`], 2, [A, B]],
    ['ok three when the sessions need three', [`${TID}:${A}`, `${TID}:${B}`, `${TID}:${C}`], 3, [A, B, C]],
  ])('%s', (_n, values, minimum, oids) => {
    expect(parseBootstrapAdmins(values, TID, minimum).map((a) => a.oid)).toEqual(oids);
  });

  it('ok a missing name becomes a readable default', () => {
    expect(parseBootstrapAdmins([`${TID}:${A}`, `${TID}:${B}`], TID, 2)[0].displayName).toBe('Administrator a0000001');
  });

  it.each([
    ['fail nothing', [], 2, BootstrapErrorCode.TooFewAdministrators],
    ['fail one administrator', [`${TID}:${A}`], 2, BootstrapErrorCode.TooFewAdministrators],
    ['fail the same administrator twice (case variant)', [`${TID}:${A}`, `${TID}:${A.toUpperCase()}`], 2, BootstrapErrorCode.TooFewAdministrators],
    ['fail two when the sessions need three', [`${TID}:${A}`, `${TID}:${B}`], 3, BootstrapErrorCode.TooFewAdministrators],
    ['fail another tenant', [`${TID}:${A}`, `00000000-0000-4000-8000-000000000000:${B}`], 2, BootstrapErrorCode.InvalidAdministrator],
    ['fail an oid that is not a GUID', [`${TID}:${A}`, `${TID}:bob`], 2, BootstrapErrorCode.InvalidAdministrator],
    ['fail a GUID with a trailing newline payload', [`${TID}:${A}`, `${TID}:${B}\nx`], 2, BootstrapErrorCode.InvalidAdministrator],
    ['fail a control character in the name', [`${TID}:${A}:Ada\u0007`, `${TID}:${B}`], 2, BootstrapErrorCode.InvalidAdministrator],
    ['fail a name over 128 characters', [`${TID}:${A}:${'x'.repeat(129)}`, `${TID}:${B}`], 2, BootstrapErrorCode.InvalidAdministrator],
    ['fail only a tenant', [TID, `${TID}:${B}`], 2, BootstrapErrorCode.InvalidAdministrator],
  ])('%s', (_n, values, minimum, code) => {
    expect(() => parseBootstrapAdmins(values, TID, minimum)).toThrow(expect.objectContaining({ code }));
  });
});
