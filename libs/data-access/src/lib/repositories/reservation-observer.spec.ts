import { outcome, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { observeReservations, releaseUsage, reserveUsage, type ReservationKind } from './usage';

describe(observeReservations.name, () => {
  const seen: { kind: ReservationKind; seconds: number; outcome: string }[] = [];

  const r = twoReplicas('reservation_observer');
  beforeAll(async () => {
    const subject = await seedSubject(r.a);
    const key = await seedKey(r.a);
    const op = await r.a.operations.create({ description: 'observed', ordererId: (await seedSubject(r.a)).id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 1 }] });
    const req = { operationId: op.id, keyid: key.keyid, subjectId: subject.id, digest: null };
    observeReservations((kind, seconds, outcome) => seen.push({ kind, seconds, outcome }));
    const taken = await reserveUsage(r.dbA, { ...req, kind: 'signorder' });
    expect(await outcome(reserveUsage(r.dbB, { ...req, kind: 'certificate' }))).toBe('usage_exhausted');
    expect(await outcome(reserveUsage(r.dbA, { ...req, operationId: 'not-a-uuid', kind: 'signorder' }))).toBe('not_found');
    await releaseUsage(r.dbA, taken);
    observeReservations(undefined);
    await reserveUsage(r.dbA, { ...req, kind: 'certificate' });
  });

  it.each([
    ['ok a usage taken', 'signorder', 'reserved'],
    ['fail a usage already taken by another replica', 'certificate', 'usage_exhausted'],
    ['fail an operation id that is no UUID', 'signorder', 'not_found'],
  ] as const)('%s is reported with its kind, duration and outcome', (_name, kind, result) => {
    const hit = seen.find((s) => s.outcome === result);
    expect(hit?.kind).toBe(kind);
    expect(hit?.seconds).toBeGreaterThanOrEqual(0);
    expect(hit?.seconds).toBeLessThan(30);
  });

  it('reports each reservation once, and nothing once the observer is cleared', () => {
    expect(seen.map((s) => s.outcome)).toEqual(['reserved', 'usage_exhausted', 'not_found']);
  });

  it('a throwing observer does not break the reservation it reports', async () => {
    observeReservations(() => {
      throw new Error('metrics broke');
    });
    try {
      const subject = await seedSubject(r.a);
      const key = await seedKey(r.a);
      const op = await r.a.operations.create({ description: 'throwing observer', ordererId: subject.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 2 }] });
      const req = { operationId: op.id, keyid: key.keyid, subjectId: subject.id, digest: null, kind: 'signorder' as const };
      expect((await reserveUsage(r.dbA, req)).usagesUsed).toBe(1);
      expect(await outcome(reserveUsage(r.dbA, { ...req, keyid: 'no-such-key' }))).toBe('key_not_in_operation');
    } finally {
      observeReservations(undefined);
    }
  });
});
