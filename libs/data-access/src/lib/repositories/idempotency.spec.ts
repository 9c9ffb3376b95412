import fc from 'fast-check';
import { hex, outcome, seedKey, seedSubject, window, twoReplicas } from '../../spec/fixtures';
import { requestFingerprint } from './idempotency';
import { SignOrderRepository, type SignRequest } from './sign-order.repository';

// Fixed seed: the normal test run is reproducible; change it locally to explore.
const FC = { seed: 1305, numRuns: 200 } as const;

/** Every field of a sign-order body, including hostile text (lone surrogates, NUL, bidi, zero-width, non-BMP). */
const FIELDS = ['operationid', 'keyid', 'inputdata', 'inputformat', 'inputpadding', 'signatureformat', 'description'] as const;
const hostileText = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('\ud800', '\udc00x', 'a\u0000b', '\u202eabc', 'a\u200bb', '\u{1F600}', 'A', 'a', 'a ', ' a', ''),
);
const body = fc.record(Object.fromEntries(FIELDS.map((f) => [f, hostileText])) as Record<(typeof FIELDS)[number], fc.Arbitrary<string>>);

describe(requestFingerprint.name, () => {
  it('differs when any single field of the body changes, whatever the values', () => {
    fc.assert(
      fc.property(body, fc.constantFrom(...FIELDS), hostileText, (b, field, value) => {
        fc.pre(b[field] !== value);
        expect(requestFingerprint('POST /api/signorders', 'k1', { ...b, [field]: value })).not.toBe(requestFingerprint('POST /api/signorders', 'k1', b));
      }),
      FC,
    );
  });

  it('does not depend on the order of the members, and depends on the route and the key', () => {
    fc.assert(
      fc.property(body, (b) => {
        const reversed = Object.fromEntries(Object.entries(b).reverse());
        const h = requestFingerprint('POST /api/signorders', 'k1', b);
        expect(requestFingerprint('POST /api/signorders', 'k1', reversed)).toBe(h);
        expect(requestFingerprint('POST /api/v1/certificates', 'k1', b)).not.toBe(h);
        expect(requestFingerprint('POST /api/signorders', 'k2', b)).not.toBe(h);
      }),
      FC,
    );
  });

  it.each([
    ['fail a field added', { a: '1' }, { a: '1', b: '2' }],
    ['fail a field dropped', { a: '1', b: null }, { a: '1' }],
    ['fail a number as text', { a: 1 }, { a: '1' }],
    ['fail case of a value', { a: 'asn1' }, { a: 'ASN1' }],
    ['fail a NUL appended', { a: 'x' }, { a: 'x\u0000' }],
  ] as const)('%s', (_n, one, other) => {
    expect(requestFingerprint('r', 'k', one)).not.toBe(requestFingerprint('r', 'k', other));
  });
});

describe(`${SignOrderRepository.name} Idempotency-Key`, () => {
  const r = twoReplicas('idem', 4);

  it('answers a retry that differs in any single field with idempotency_key_reused and uses nothing', async () => {
    const orderer = await seedSubject(r.a);
    const key = await seedKey(r.a);
    const op = await r.a.operations.create({ description: 'release', ordererId: orderer.id, ...window(), keys: [{ keyid: key.keyid, usagesAllowed: 5 }] });
    const first = { operationid: op.id, keyid: key.keyid, inputdata: 'ab'.repeat(32), inputformat: 'hex', inputpadding: 'none', signatureformat: 'p1363', description: 'firmware 1.0' };
    const idempotencyKey = `build-${hex(3)}`;
    const request = (b: Record<string, string>): SignRequest => ({
      operationId: op.id,
      keyid: key.keyid,
      subjectId: orderer.id,
      description: first.description,
      inputdata: first.inputdata,
      inputformat: first.inputformat,
      inputpadding: first.inputpadding,
      signatureformat: first.signatureformat,
      digest: first.inputdata,
      idempotencyKey,
      requestHash: requestFingerprint('POST /api/signorders', idempotencyKey, b),
      audit: { action: 'signorder.create', outcome: 'SUCCESS' },
    });
    const stored = await r.a.signOrders.recordWithUsage(request(first), async () => 'beef');
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...FIELDS), hostileText, async (field, value) => {
        fc.pre(first[field] !== value);
        expect(await outcome(r.b.signOrders.recordWithUsage(request({ ...first, [field]: value }), () => Promise.reject(new Error('must not sign'))))).toBe(
          'idempotency_key_reused',
        );
      }),
      { ...FC, numRuns: 40 },
    );
    const again = await r.b.signOrders.recordWithUsage(request({ ...first }), () => Promise.reject(new Error('must not sign')));
    expect(again).toMatchObject({ replayed: true, signOrder: { id: stored.signOrder.id, result: 'beef' } });
    expect((await r.a.operations.get(op.id)).keys[0].usagesUsed).toBe(1);
  });
});
