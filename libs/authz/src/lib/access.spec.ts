import type { KeyGrant, Nature } from '@keyserver/api-contract';
import { holds, isAdministrator, visibility } from './access';

const actor = (natures: Nature[] = [], grants: Record<string, KeyGrant[]> = {}) => ({
  subjectId: 'me',
  natures: new Set(natures),
  keyGrants: new Map(Object.entries(grants).map(([k, g]) => [k, new Set(g)])),
});

describe('visibility', () => {
  const op = { ordererId: 'someone', keys: [{ keyid: 'fw-1' }, { keyid: 'fw-2' }] };
  it.each([
    ['ok administrator sees any key', actor(['ADMINISTRATOR']), true],
    ['ok auditor sees any key', actor(['AUDITOR']), true],
    ['ok any grant on the key', actor([], { 'fw-1': ['SIGN'] }), true],
    ['fail a grant on another key', actor([], { 'fw-9': ['SIGN'] }), false],
    ['fail a nature alone', actor(['SIGNER', 'APPROVER', 'ORDERER', 'PROVISIONER']), false],
  ])('key: %s', (_n, a, seen) => {
    expect(visibility.key(a, 'fw-1')).toBe(seen);
    expect(visibility.certificate(a, { issuerKeyid: 'fw-1' })).toBe(seen);
  });
  it.each([
    ['ok its orderer', { ...actor(), subjectId: 'someone' }, true],
    ['ok administrator', actor(['ADMINISTRATOR']), true],
    ['ok auditor', actor(['AUDITOR']), true],
    ['ok APPROVE on one of its keys', actor([], { 'fw-2': ['APPROVE'] }), true],
    ['fail SIGN on its keys', actor([], { 'fw-1': ['SIGN', 'ORDER', 'ISSUE'] }), false],
    ['fail the approver nature alone', actor(['APPROVER']), false],
  ])('operation: %s', (_n, a, seen) => {
    expect(visibility.operation(a, op)).toBe(seen);
  });
});

describe(holds.name, () => {
  it.each([
    ['ok the grant on the key', actor([], { k: ['SIGN'] }), 'SIGN', true],
    ['fail another grant on the key', actor([], { k: ['ORDER'] }), 'SIGN', false],
    ['fail a nature', actor(['SIGNER', 'ADMINISTRATOR']), 'SIGN', false],
  ] as const)('%s', (_n, a, g, ok) => expect(holds(a, g, 'k')).toBe(ok));
});

describe(isAdministrator.name, () => {
  it.each([
    ['ok ADMINISTRATOR', ['ADMINISTRATOR'], true],
    ['fail AUDITOR', ['AUDITOR'], false],
  ] as const)('%s', (_n, natures, ok) => expect(isAdministrator(actor([...natures]))).toBe(ok));
});
