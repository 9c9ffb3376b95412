import fc from 'fast-check';
import { decodeInput } from './sign-order.service';

// One text per input: a digest or message has exactly one accepted spelling in base64 (RFC 4648 3.5, canonical: the
// pad bits zero), so two different requests never stand for the same signed bytes.
describe(decodeInput.name, () => {
  it.each([
    ['fail base64 whose last character before == carries set pad bits', 'AB=='],
    ['fail base64 whose last character before = carries set pad bits', 'AAB='],
    ['fail base64 without its padding', 'AA'],
    ['fail base64 with a URL-safe character', 'A-=='],
    ['fail empty base64', ''],
    ['fail hex of odd length', 'abc'],
    ['fail hex with a non-hex character', 'zz'],
  ])('%s', (_n, text) => {
    expect(decodeInput(text, text.length % 2 === 1 || text === 'zz' ? 'hex' : 'base64')).toBeUndefined();
  });

  it.each([
    ['ok canonical base64 of one byte', 'AA==', 'base64', '00'],
    ['ok canonical base64 of two bytes', 'AAE=', 'base64', '0001'],
    ['ok upper-case hex', 'ABCD', 'hex', 'abcd'],
  ] as const)('%s', (_n, text, format, hex) => {
    expect(Buffer.from(decodeInput(text, format) as Uint8Array).toString('hex')).toBe(hex);
  });

  it('ok any byte string round-trips through its base64, and every accepted base64 text is the encoding of what it decodes to', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 80 }), (bytes) => {
        expect(Buffer.from(decodeInput(Buffer.from(bytes).toString('base64'), 'base64') as Uint8Array)).toEqual(Buffer.from(bytes));
      }),
    );
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/='.split('')), minLength: 1, maxLength: 12 }), (text) => {
        const bytes = decodeInput(text, 'base64');
        if (bytes) expect(Buffer.from(bytes).toString('base64')).toBe(text);
      }),
      { numRuns: 2000 },
    );
  });
});
