import type { AuditSealReport } from './audit-checkpoints';
import { auditVerifyStatus, unsealedTail, unsealedTailWarning } from './audit-tail';

const seal = (s: Partial<AuditSealReport>): AuditSealReport => ({
  sealed: true, anchored: true, checkpoints: 1, lastSealedSeq: '5', lastSealedAt: '2026-12-01T08:00:05.500Z', unsealedEntries: 0, ...s,
});

describe(unsealedTail.name, () => {
  it.each([
    ['warn no checkpoint lines at all (no seal report)', { total: 7, seal: undefined }, { entries: 7, afterSeq: null }, 'valid_unsealed_tail'],
    ['warn checkpoints none of which verified', { total: 7, seal: seal({ sealed: false, lastSealedSeq: null, lastSealedAt: null, unsealedEntries: 7 }) }, { entries: 7, afterSeq: null }, 'valid_unsealed_tail'],
    ['warn an empty export', { total: 0, seal: undefined }, { entries: 0, afterSeq: null }, 'valid_unsealed_tail'],
    ['warn entries after the last verified checkpoint', { total: 8, seal: seal({ unsealedEntries: 3 }) }, { entries: 3, afterSeq: '5' }, 'valid_unsealed_tail'],
    ['ok the last entry covered by a verified checkpoint', { total: 5, seal: seal({}) }, null, 'valid_sealed'],
  ])('%s', (_name, report, expected, status) => {
    expect(unsealedTail(report)).toEqual(expected);
    expect(auditVerifyStatus(unsealedTail(report))).toBe(status);
  });

  it('names the tool, the stable code and the last covered seq in the warning', () => {
    expect(unsealedTailWarning('ksctl', { entries: 3, afterSeq: '5' })).toMatch(/^ksctl: warning: audit_tail_unsealed: .*after the last signed checkpoint \(seq 5\)/);
    expect(unsealedTailWarning('audit-verify', { entries: 7, afterSeq: null })).toMatch(/^audit-verify: warning: audit_tail_unsealed: .*no entry is covered by a signed checkpoint/);
  });
});
