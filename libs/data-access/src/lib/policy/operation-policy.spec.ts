import { approvalComplete, certificateCoversWindow, effectiveState, isUsable, needsApproval, stateAfterWithdrawal, usability, type PolicyOperation } from './operation-policy';

const NOW = new Date('2026-06-01T12:00:00.000Z');
const at = (ms: number) => new Date(NOW.getTime() + ms);
const op = (o: Partial<PolicyOperation> = {}): PolicyOperation => ({
  state: 'APPROVED',
  validFrom: at(-60_000),
  validTo: at(60_000),
  digests: [],
  keys: [{ keyid: 'fw', keyState: 'ACTIVE', usagesAllowed: 2, usagesUsed: 0, requiredApprovers: 1, approvals: 1 }],
  ...o,
});
const key = (o: Partial<PolicyOperation['keys'][number]>) => [{ ...op().keys[0], ...o }];

describe(effectiveState.name, () => {
  it.each([
    ['ok REQUESTED in its window', 'REQUESTED', at(1), 'REQUESTED'],
    ['ok APPROVED past its window is EXPIRED', 'APPROVED', at(-1), 'EXPIRED'],
    ['ok a window ending now is EXPIRED', 'REQUESTED', NOW, 'EXPIRED'],
    ['ok EXHAUSTED stays EXHAUSTED', 'EXHAUSTED', at(-1), 'EXHAUSTED'],
    ['ok CANCELLED stays CANCELLED', 'CANCELLED', at(-1), 'CANCELLED'],
  ] as const)('%s', (_n, state, validTo, expected) => expect(effectiveState({ state, validTo }, NOW)).toBe(expected));
});

describe(approvalComplete.name, () => {
  it.each([
    ['ok no key needs approvers', [{ requiredApprovers: 0, approvals: 0 }], true],
    ['ok every key has its approvers', [{ requiredApprovers: 2, approvals: 2 }, { requiredApprovers: 1, approvals: 1 }], true],
    ['ok more approvals than required', [{ requiredApprovers: 1, approvals: 3 }], true],
    ['fail one key short', [{ requiredApprovers: 2, approvals: 2 }, { requiredApprovers: 1, approvals: 0 }], false],
  ])('%s', (_n, keys, expected) => expect(approvalComplete(keys)).toBe(expected));
});

describe(needsApproval.name, () => {
  it.each([
    ['ok no approvers anywhere', [{ requiredApprovers: 0 }], false],
    ['ok one key needs one', [{ requiredApprovers: 0 }, { requiredApprovers: 1 }], true],
  ])('%s', (_n, keys, expected) => expect(needsApproval(keys)).toBe(expected));
});

describe(usability.name, () => {
  it.each([
    ['ok APPROVED in window with usages left', op(), 'fw', null, null],
    ['ok REQUESTED when no key needs approvers', op({ state: 'REQUESTED', keys: key({ requiredApprovers: 0, approvals: 0 }) }), 'fw', null, null],
    ['ok an allowed digest', op({ digests: ['ab'] }), 'fw', 'ab', null],
    ['fail a key not in the operation', op(), 'other', null, 'key_not_in_operation'],
    ['fail a revoked key (before any state)', op({ state: 'CANCELLED', keys: key({ keyState: 'REVOKED' }) }), 'fw', null, 'key_revoked'],
    ['fail EXHAUSTED', op({ state: 'EXHAUSTED' }), 'fw', null, 'usage_exhausted'],
    ['fail REQUESTED when a key needs approvers', op({ state: 'REQUESTED' }), 'fw', null, 'operation_not_usable'],
    ['fail REJECTED', op({ state: 'REJECTED' }), 'fw', null, 'operation_not_usable'],
    ['fail stored EXPIRED', op({ state: 'EXPIRED' }), 'fw', null, 'operation_not_usable'],
    ['fail before the window', op({ validFrom: at(1) }), 'fw', null, 'outside_window'],
    ['fail at the end of the window', op({ validTo: NOW }), 'fw', null, 'outside_window'],
    ['ok at the start of the window', op({ validFrom: NOW }), 'fw', null, null],
    ['fail no digest when digests are listed', op({ digests: ['ab'] }), 'fw', null, 'digest_not_allowed'],
    ['fail another digest', op({ digests: ['ab'] }), 'fw', 'cd', 'digest_not_allowed'],
    ['fail every usage taken', op({ keys: key({ usagesUsed: 2 }) }), 'fw', null, 'usage_exhausted'],
  ] as const)('%s', (_n, o, keyid, digest, expected) => {
    expect(usability(o, keyid, digest, NOW)).toBe(expected);
    expect(isUsable(o, keyid, digest, NOW)).toBe(expected === null);
  });
});

describe(stateAfterWithdrawal.name, () => {
  it.each([
    ['fail APPROVED no longer complete: REQUESTED again, not usable', 'APPROVED', false, 'REQUESTED'],
    ['ok APPROVED still complete (more approvers than required) stays APPROVED', 'APPROVED', true, 'APPROVED'],
    ['ok REQUESTED stays REQUESTED', 'REQUESTED', false, 'REQUESTED'],
  ] as const)('%s', (_n, state, complete, expected) => {
    expect(stateAfterWithdrawal(state, complete)).toBe(expected);
    if (expected === 'REQUESTED') expect(usability(op({ state: expected }), 'fw', null, NOW)).toBe('operation_not_usable');
  });
});

describe(certificateCoversWindow.name, () => {
  const cert = { notBefore: at(-3_600_000), notAfter: at(3_600_000) };
  it.each([
    ['ok a window inside the certificate', at(-60_000), at(60_000), cert, true],
    ['ok validTo exactly notAfter (both ends exclusive)', at(0), at(3_600_000), cert, true],
    ['fail validTo 1 ms after notAfter', at(0), at(3_600_001), cert, false],
    ['ok validFrom exactly notBefore, in the future', at(3_600_000), at(7_200_000), { notBefore: at(3_600_000), notAfter: at(9_000_000) }, true],
    ['fail validFrom 1 ms before a future notBefore', at(3_599_999), at(7_200_000), { notBefore: at(3_600_000), notAfter: at(9_000_000) }, false],
    ['fail a window starting now on a certificate valid only from later', at(0), at(60_000), { notBefore: at(1), notAfter: at(9_000_000) }, false],
    ['ok a backdated validFrom before a notBefore already passed: only the window still ahead counts', at(-300_000), at(60_000), { notBefore: at(-10_000), notAfter: at(9_000_000) }, true],
    ['ok a notBefore exactly now', at(-300_000), at(60_000), { notBefore: at(0), notAfter: at(9_000_000) }, true],
    ['fail a certificate that already expired', at(-300_000), at(60_000), { notBefore: at(-9_000_000), notAfter: at(-1) }, false],
  ] as const)('%s', (_n, validFrom, validTo, validity, expected) => expect(certificateCoversWindow({ validFrom, validTo }, validity, NOW)).toBe(expected));
});
