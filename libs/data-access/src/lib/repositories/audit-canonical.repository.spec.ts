import fc from 'fast-check';
import { auditEventHash } from '@keyserver/audit-chain';
import { sql } from '../../spec/temp-database';
import { closeTwoReplicas, openTwoReplicas, type TwoReplicas } from '../../spec/fixtures';
import type { AuditInput } from '../types';
import { AuditRepository, appendAuditTx, toAuditEvent } from './audit.repository';

// Issue 13 item 1: whatever a (refused) request puts into an audit event, the stored entry verifies. Real PostgreSQL:
// the defects were in what uuid columns, text encoding and jsonb do to the values the application hashed.

const UPPER_ID = '0A1B2C3D-4E5F-4A6B-8C7D-9E0F1A2B3C4D';

/** Strings that PostgreSQL text, jsonb or JSON encoding handle differently from a JS string. */
const hostileChar = fc.constantFrom(
  '\u0000', '\ud800', '\udfff', '\udbff\udfff', '\u{1F50F}', '\u202e', '\u200b', '\ufeff', '\ufffd', '"', '\\', '\n', '\u001f', '\u007f',
  '\u2028', 'é', 'e\u0301', 'ß', 'İ', 'A', '"prevHash":"',
);
const hostileString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.array(hostileChar, { maxLength: 8 }).map((a) => a.join('')),
  fc.string({ unit: fc.constantFrom('\ud800', 'x', '\u0000'), minLength: 3000, maxLength: 3500 }),
);
const uuidLike = fc.oneof(
  fc.uuid().map((u) => u.toUpperCase()),
  fc.uuid(),
  fc.uuid().map((u) => u.replace(/[a-f]/g, (c, i: number) => (i % 2 ? c.toUpperCase() : c))),
  hostileString,
);
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    hostileString,
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(hostileString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const auditInput: fc.Arbitrary<AuditInput> = fc.record({
  action: hostileString,
  outcome: fc.constantFrom('SUCCESS' as const, 'DENIED' as const, 'FAILED' as const),
  errorCode: fc.option(hostileString),
  actorTid: fc.option(hostileString),
  actorOid: fc.option(hostileString),
  actorName: fc.option(hostileString),
  actorClient: fc.option(hostileString),
  actorSubjectId: fc.option(uuidLike),
  keyid: fc.option(hostileString),
  operationId: fc.option(uuidLike),
  adminSessionId: fc.option(uuidLike),
  digest: fc.option(hostileString),
  requestId: fc.option(hostileString),
  details: fc.dictionary(hostileString, jsonish, { maxKeys: 5 }),
});

describe(`${AuditRepository.name} canonical form`, () => {
  let r: TwoReplicas;

  beforeAll(async () => {
    r = await openTwoReplicas('audit_canon');
  });
  afterAll(() => closeTwoReplicas(r));

  async function storedRows() {
    return (await r.dbA.prisma.auditEvent.findMany({ orderBy: { seq: 'asc' } })).map(toAuditEvent);
  }

  it.each<[string, AuditInput]>([
    ['ok upper-case operationId', { action: 'operation.cancel', outcome: 'DENIED', operationId: UPPER_ID }],
    ['ok upper-case adminSessionId', { action: 'key.update', outcome: 'DENIED', adminSessionId: UPPER_ID }],
    ['ok upper-case actorSubjectId', { action: 'x', outcome: 'DENIED', actorSubjectId: UPPER_ID }],
    ['ok lone high surrogate in keyid', { action: 'signorder.create', outcome: 'DENIED', keyid: 'fw-\ud800' }],
    ['ok lone low surrogate in actorName', { action: 'x', outcome: 'DENIED', actorName: '\udc00Ada' }],
    ['ok NUL in keyid', { action: 'x', outcome: 'DENIED', keyid: 'fw\u0000dev' }],
    ['ok NUL and lone surrogates in details', { action: 'x', outcome: 'DENIED', details: { 'k\u0000': 'v\u0000', s: ['\ud83d'], '\udc00': 1 } }],
    ['ok not a UUID in a uuid field', { action: 'x', outcome: 'DENIED', operationId: 'nope', adminSessionId: '{0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d}' }],
    ['ok huge keyid', { action: 'x', outcome: 'DENIED', keyid: 'k'.repeat(100_000) }],
    ['ok numbers jsonb re-formats', { action: 'x', outcome: 'SUCCESS', details: { big: 1e21, tiny: 5e-324, neg: -0, frac: 0.1 + 0.2, exp: 1.5e300 } }],
  ])('%s: appends and verifies', async (_name, input) => {
    const appended = await r.a.audit.append(input);
    const [row] = (await storedRows()).filter((e) => e.id === appended.id);
    expect(auditEventHash(row)).toBe(row.hash);
    expect(row.hash).toBe(appended.hash);
    expect(await r.a.audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('ok any string in any field of any event appends (pool and Prisma transaction) and verifies', async () => {
    await fc.assert(
      fc.asyncProperty(auditInput, fc.boolean(), async (input, viaTx) => {
        const appended = viaTx ? await r.dbB.transaction((tx) => appendAuditTx(tx, input)) : await r.b.audit.append(input);
        const rows = await sql<{ hash: string }>(r.tmp.url, 'SELECT hash FROM audit_event WHERE id = $1', [appended.id]);
        // The hash the database finished equals the one the application computes from the row it reads back.
        const [row] = (await storedRows()).filter((e) => e.id === appended.id);
        expect(rows[0].hash).toBe(appended.hash);
        expect(auditEventHash(row)).toBe(row.hash);
        // The event the writer returns is the stored one.
        expect(appended).toEqual(row);
      }),
      { seed: 13_001, numRuns: 150 },
    );
    expect(await r.a.audit.verifyChain()).toMatchObject({ ok: true });
  });
});
