import fc from 'fast-check';
import { AuditQuery } from './audit';
import { CreateOperationRequest, IsoDateTime } from './contract';

/** The instant the API reads (`new Date(s)` in the services), or the refusal. */
const reading = (v: unknown): string => {
  const r = IsoDateTime.safeParse(v);
  return r.success ? new Date(r.data).toISOString() : 'refused';
};

describe('IsoDateTime', () => {
  // Every value either is refused here (400 validation_failed) or is read as exactly the instant it names.
  it.each([
    ['fail 30 February', '2026-02-30T00:00:00Z', 'refused'],
    ['fail 29 February of a common year', '2026-02-29T00:00:00Z', 'refused'],
    ['ok 29 February of a leap year', '2028-02-29T00:00:00Z', '2028-02-29T00:00:00.000Z'],
    ['fail 24:00 (JavaScript would read the next day)', '2026-01-01T24:00:00Z', 'refused'],
    ['fail a leap second 23:59:60 (JavaScript cannot represent it)', '2026-12-31T23:59:60Z', 'refused'],
    ['ok +14:00, the earliest zone', '2026-01-01T00:00:00+14:00', '2025-12-31T10:00:00.000Z'],
    ['ok -12:00, the latest zone', '2026-01-01T00:00:00-12:00', '2026-01-01T12:00:00.000Z'],
    ['ok +23:59, the largest RFC 3339 offset', '2026-01-01T00:00:00+23:59', '2025-12-31T00:01:00.000Z'],
    ['ok -00:00 (UTC, local offset unknown)', '2026-01-01T00:00:00-00:00', '2026-01-01T00:00:00.000Z'],
    ['fail +24:00', '2026-01-01T00:00:00+24:00', 'refused'],
    ['fail an offset without a colon', '2026-01-01T00:00:00+0100', 'refused'],
    ['fail an hour-only offset', '2026-01-01T00:00:00+01', 'refused'],
    ['fail no offset (a local time: which zone?)', '2026-01-01T00:00:00', 'refused'],
    ['fail lower-case t and z', '2026-01-01t00:00:00z', 'refused'],
    ['fail lower-case z', '2026-01-01T00:00:00z', 'refused'],
    ['fail a space for T', '2026-01-01 00:00:00Z', 'refused'],
    ['fail no seconds', '2026-01-01T00:00Z', 'refused'],
    ['fail a decimal comma', '2026-01-01T00:00:00,5Z', 'refused'],
    ['fail an ordinal date', '2026-001T00:00:00Z', 'refused'],
    ['fail Arabic-Indic digits', '\u0662\u0660\u0662\u0666-01-01T00:00:00Z', 'refused'],
    ['fail year 0000 (PostgreSQL has none)', '0000-01-01T00:00:00Z', 'refused'],
    ['ok year 0001', '0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['fail year 0001 that is year 0000 in UTC', '0001-01-01T00:00:00+00:01', 'refused'],
    ['fail year 9999 that is year 10000 in UTC', '9999-12-31T23:59:59-00:01', 'refused'],
    ['ok the last millisecond of 9999', '9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
    ['fail year 10000', '10000-01-01T00:00:00Z', 'refused'],
    ['fail the expanded year +275760 (the end of JavaScript time)', '+275760-09-13T00:00:00Z', 'refused'],
    ['fail a negative year', '-000001-01-01T00:00:00Z', 'refused'],
    ['ok one fraction digit', '2026-01-01T00:00:00.5Z', '2026-01-01T00:00:00.500Z'],
    ['ok milliseconds', '2026-01-01T00:00:00.123Z', '2026-01-01T00:00:00.123Z'],
    ['ok ten fraction digits that are milliseconds and zeros', '2026-01-01T00:00:00.1230000000Z', '2026-01-01T00:00:00.123Z'],
    ['fail ten fraction digits below the millisecond (JavaScript would cut them off)', '2026-01-01T00:00:00.1234567890Z', 'refused'],
    ['fail microseconds (read as the millisecond before, a shifted window)', '2026-01-01T00:00:00.999999Z', 'refused'],
    ['fail a number of milliseconds instead of a string', 1_767_225_600_000, 'refused'],
    ['fail a number of seconds instead of a string', 1_767_225_600, 'refused'],
    ['fail null', null, 'refused'],
  ] as const)('%s', (_n, value, expected) => {
    expect(reading(value)).toBe(expected);
  });

  it('reads back exactly every millisecond of 0001-9999 it writes, in any offset (property)', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date('0001-01-02T00:00:00Z'), max: new Date('9999-12-30T23:59:59.999Z'), noInvalidDate: true }),
        fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 }),
        (d, offsetMinutes) => {
          const local = new Date(d.getTime() + offsetMinutes * 60_000).toISOString().slice(0, -1);
          const abs = Math.abs(offsetMinutes);
          const offset = `${offsetMinutes < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
          expect(reading(`${local}${offset}`)).toBe(d.toISOString());
        },
      ),
      { seed: 3339, numRuns: 1_000 },
    );
  });
});

describe('time fields of requests', () => {
  const operation = (validFrom: unknown, validTo: unknown) => ({ description: 'release 1.2.3', validFrom, validTo, keys: [{ keyid: 'fw', usages: 1 }] });

  it.each([
    ['ok a window of one millisecond', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.001Z', true],
    ['fail a window that ends when it starts, written in two offsets', '2026-01-01T01:00:00+01:00', '2026-01-01T00:00:00Z', false],
    ['fail a window that ends before it starts only once the offsets are applied', '2026-01-01T00:30:00-01:00', '2026-01-01T01:00:00+00:00', false],
    ['fail a window with a hostile end', '2026-01-01T00:00:00Z', '2026-12-31T23:59:60Z', false],
    ['fail a window given in epoch numbers', 1_767_225_600_000, 1_767_225_660_000, false],
  ] as const)('%s', (_n, from, to, ok) => {
    expect(CreateOperationRequest.safeParse(operation(from, to)).success).toBe(ok);
  });

  it.each([
    ['ok from and to with offsets', { from: '2026-01-01T00:00:00+14:00', to: '2026-01-01T00:00:00-12:00' }, true],
    ['fail a from that a query string turned + into a space', { from: '2026-01-01T00:00:00 14:00' }, false],
    ['fail a to below the millisecond', { to: '2026-01-01T00:00:00.0001Z' }, false],
    ['fail a from of year 0000', { from: '0000-01-01T00:00:00Z' }, false],
    ['ok a cursor of the largest seq PostgreSQL holds', { cursor: '9223372036854775807' }, true],
    ['fail a cursor past bigint (a 500 from the database before)', { cursor: '9223372036854775808' }, false],
    ['fail the largest 19-digit cursor', { cursor: '9999999999999999999' }, false],
    ['fail a cursor in other digits', { cursor: '\u0661\u0662' }, false],
  ] as const)('%s', (_n, query, ok) => {
    expect(AuditQuery.safeParse(query).success).toBe(ok);
  });
});

describe('AuditQuery (hostile query strings)', () => {
  const text = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 30 }),
    fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }).map(String),
    fc.array(fc.constantFrom('0', '9', '-', '+', 'e', '.', ' ', '\u0661', '\uff19', '\u0000', 'x'), { maxLength: 22 }).map((a) => a.join('')),
  );
  it('ok any cursor either is refused (400) or names a seq PostgreSQL can hold; nothing throws (property)', () => {
    fc.assert(
      fc.property(text, (cursor) => {
        const r = AuditQuery.safeParse({ cursor });
        expect(r.success).toBe(/^\d{1,19}$/.test(cursor) && BigInt(cursor) <= 2n ** 63n - 1n);
      }),
      { numRuns: 1000 },
    );
  });

  it('ok any query of strings (repeated parameters as arrays) parses or is refused without throwing (property)', () => {
    const key = fc.constantFrom('action', 'outcome', 'actor', 'keyid', 'operationId', 'adminSessionId', 'from', 'to', 'cursor', 'limit', '__proto__', 'constructor');
    fc.assert(
      fc.property(fc.dictionary(key, fc.oneof(text, fc.array(text, { maxLength: 3 }))), (q) => {
        expect(() => AuditQuery.safeParse(q)).not.toThrow();
      }),
      { numRuns: 500 },
    );
  });
});
