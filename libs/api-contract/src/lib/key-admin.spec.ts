import fc from 'fast-check';
import { CreateKeyRequest } from './key-admin';
import { RootCeremonyRequest } from './key-lifecycle';
import { isHighlyRestrictive } from './scripts';

const KEY = { keyid: 'fw-2026', type: 'FW', algorithm: 'EC_P256', requiredApprovers: 2, validityDays: 365 } as const;
const CEREMONY = { keyid: 'root-2026', algorithm: 'EC_P256', validityDays: 3650, mode: 'self-signed' } as const;

/**
 * A key's common name, organization and organizational unit become its certificate's subject: the name relying
 * parties and approvers read (ADR 0047), and a name reserved against device CSRs (ADR 0010). They follow the rule of
 * a device subject value (api-contract `name-text`): each case is checked on the key request and the ceremony.
 */
describe('CertificateNameText', () => {
  const accepted = (name: string) => {
    const key = CreateKeyRequest.safeParse({ ...KEY, commonName: name, organization: name }).success;
    const ceremony = RootCeremonyRequest.safeParse({ ...CEREMONY, subject: { commonName: name, organization: name, organizationalUnit: name } }).success;
    expect(ceremony).toBe(key);
    return key;
  };

  it.each([
    ['ok ASCII', 'Firmware 2026'],
    ['ok accented Latin and a dash', 'Ærø Firmware – 2026'],
    ['ok Cyrillic (Москва)', 'Москва'],
    ['ok Greek (Συσκευή)', 'Συσκευή'],
    ['ok Japanese (東京)', '東京'],
    ['ok Korean (서울)', '서울'],
    ['ok Latin with Han and Katakana', 'Acme 装置 デバイス'],
    ['ok blanks around it (trimmed)', '  Firmware  '],
  ])('%s', (_n, name) => {
    expect(accepted(name)).toBe(true);
  });

  it.each([
    ['fail a control character', 'Bad\u0007'],
    ['fail a right-to-left override', 'Firmware \u202egpj.exe'],
    ['fail a zero-width space', 'Firm\u200bware'],
    ['fail a soft hyphen', 'Firm\u00adware'],
    ['fail not NFC', 'Cafe\u0301'],
    ['fail mixed Latin+Cyrillic (Tеst with a Cyrillic е)', 'T\u0435st Root'],
    ['fail a whole-script look-alike (all-Cyrillic СА)', '\u0421\u0410'],
    ['fail mixed digit systems', 'Firmware 1\uff12'],
    ['fail mathematical bold letters (𝐓𝐞𝐬𝐭)', '\u{1d413}\u{1d41e}\u{1d42c}\u{1d42d} Root'],
    ['fail mathematical monospace letters (𝙳𝚎𝚟)', '\u{1d673}\u{1d68e}\u{1d69f}'],
    ['fail full-width letters', '\uff34\uff45\uff53\uff54'],
    ['fail circled letters', '\u24d3\u24d4\u24e5'],
    ['fail a ligature (ﬁrmware)', '\ufb01rmware'],
    ['fail a roman numeral (Ⅸ)', 'Root \u2168'],
    ['fail a long s (ſ)', '\u017ftore'],
    ['fail a no-break space', 'Test\u00a0Root'],
    ['fail a value that starts with a combining mark', '\u0338x'],
  ])('%s', (_n, name) => {
    expect(accepted(name)).toBe(false);
  });

  it('for any name s: accepted(s) implies trim(s) is its own NFKC form and single-script (Highly Restrictive; no Latin letter beside a Cyrillic or Greek one) (property)', () => {
    const part = fc.oneof(
      fc.constantFrom(...'Root CA 7-'.split('')),
      fc.constantFrom('\u0435', '\u0410', '\u03bf', 'Σ', 'ж', '東', '서'),
      fc.integer({ min: 0x1d400, max: 0x1d7ff }).map((cp) => String.fromCodePoint(cp)),
      fc.integer({ min: 0xff01, max: 0xff5e }).map((cp) => String.fromCodePoint(cp)),
      fc.constantFrom('\ufb01', '\u2168', '\u212a', '\u017f', '\u00a0', '\u00b2', '\u24d3'),
      fc.string({ unit: 'grapheme', maxLength: 2 }),
    );
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 10 }).map((a) => a.join('')), (s) => {
        if (!accepted(s)) return;
        const v = s.trim();
        expect(v.normalize('NFKC')).toBe(v);
        expect(isHighlyRestrictive(v)).toBe(true);
        expect(/\p{scx=Latin}/u.test(v) && /[\p{scx=Cyrillic}\p{scx=Greek}]/u.test(v)).toBe(false);
      }),
      { seed: 1305, numRuns: 400 },
    );
  });
});
