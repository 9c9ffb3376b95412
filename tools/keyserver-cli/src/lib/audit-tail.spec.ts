import type { AuditSealReport } from '@keyserver/audit-chain';
import { unsealedTail, unsealedTailWarning } from './audit-tail';

const seal = (s: Partial<AuditSealReport>): AuditSealReport => ({
  sealed: true, anchored: true, checkpoints: 1, lastSealedSeq: '5', lastSealedAt: '2026-12-01T08:00:05.500Z', unsealedEntries: 0, ...s,
});

describe(unsealedTail.name, () => {
  it.each([
    ['warn no checkpoint lines at all (no seal report)', { total: 7, seal: undefined }, { entries: 7, afterSeq: null }],
    ['warn checkpoints none of which verified', { total: 7, seal: seal({ sealed: false, lastSealedSeq: null, lastSealedAt: null, unsealedEntries: 7 }) }, { entries: 7, afterSeq: null }],
    ['warn an empty export', { total: 0, seal: undefined }, { entries: 0, afterSeq: null }],
    ['warn entries after the last verified checkpoint', { total: 8, seal: seal({ unsealedEntries: 3 }) }, { entries: 3, afterSeq: '5' }],
    ['ok the last entry covered by a verified checkpoint', { total: 5, seal: seal({}) }, null],
  ])('%s', (_name, report, expected) => {
    expect(unsealedTail(report)).toEqual(expected);
  });

  it('names the stable code and the last covered seq in the warning', () => {
    expect(unsealedTailWarning({ entries: 3, afterSeq: '5' })).toMatch(/^ksctl: warning: audit_tail_unsealed: .*after the last signed checkpoint \(seq 5\)/);
    expect(unsealedTailWarning({ entries: 7, afterSeq: null })).toMatch(/^ksctl: warning: audit_tail_unsealed: .*no entry is covered by a signed checkpoint/);
  });
});
