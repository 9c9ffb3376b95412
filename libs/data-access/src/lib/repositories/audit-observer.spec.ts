import { twoReplicas } from '../../spec/fixtures';
import type { AuditInput } from '../types';
import { observeAuditAppends, type AuditAppendPath } from './audit-observer';
import { appendAuditTx } from './audit.repository';

describe(observeAuditAppends.name, () => {
  const { dbA, a } = twoReplicas('audit_observer');
  const seen: { input: AuditInput; seconds: number; path: AuditAppendPath; written: boolean }[] = [];

  beforeAll(async () => {
    observeAuditAppends((input, seconds, path, written) => seen.push({ input, seconds, path, written }));
    await a.audit.append({ action: 'observed.statement', outcome: 'DENIED', errorCode: 'key_not_found', keyid: 'k1' });
    await dbA.transaction((tx) => appendAuditTx(tx, { action: 'observed.transaction', outcome: 'SUCCESS' }));
    await a.audit.append({ action: 'observed.broken', outcome: 'NOT_AN_OUTCOME' as never }).catch(() => undefined);
    observeAuditAppends(undefined);
    await a.audit.append({ action: 'not.observed', outcome: 'SUCCESS' });
  });

  it.each([
    ['ok a single append', 'observed.statement', 'statement', true],
    ['ok an append in a Prisma transaction', 'observed.transaction', 'transaction', true],
    ['fail an append the database refuses', 'observed.broken', 'statement', false],
  ])('%s is reported with its duration, path and whether it was written', (_name, action, path, written) => {
    const hit = seen.find((s) => s.input.action === action);
    expect(hit).toMatchObject({ path, written });
    expect(hit?.seconds).toBeGreaterThan(0);
    expect(hit?.seconds).toBeLessThan(30);
  });

  it('reports nothing once the observer is cleared', () => {
    expect(seen.map((s) => s.input.action)).not.toContain('not.observed');
  });
});
