import * as fc from 'fast-check';
import { CONFUSABLES_VERSION, LATIN_LOOKALIKES } from './latin-lookalikes.generated';
import { decimalZero, hasMixedNumbers, isHighlyRestrictive, isWholeScriptConfusable, resolvedScripts, SCRIPTS } from './scripts';

/** Letters of one script only: Script_Extensions holds it and none of the other scripts of these tests. */
const RANGES: Record<string, [number, number]> = {
  Latin: [0x41, 0x24f],
  Cyrillic: [0x400, 0x4ff],
  Greek: [0x370, 0x3ff],
  Arabic: [0x620, 0x64a],
  Hebrew: [0x5d0, 0x5ea],
  Armenian: [0x531, 0x587],
  Georgian: [0x10d0, 0x10fa],
  Thai: [0xe01, 0xe30],
  Devanagari: [0x904, 0x939],
  Hangul: [0xac00, 0xd7a3],
  Han: [0x4e00, 0x9fff],
  Hiragana: [0x3041, 0x3096],
  Katakana: [0x30a1, 0x30fa],
};
const NAMES = Object.keys(RANGES);
const only = (script: string) => (c: string) => /^\p{L}$/u.test(c) && new RegExp(`\\p{scx=${script}}`, 'u').test(c) && NAMES.every((o) => o === script || !new RegExp(`\\p{scx=${o}}`, 'u').test(c));
const letter = (script: string) =>
  fc
    .integer({ min: RANGES[script][0], max: RANGES[script][1] })
    .map((cp) => String.fromCodePoint(cp))
    .filter(only(script));
/** Script_Extensions {Common} or {Inherited} alone: every script's (digits, punctuation, symbols, space). */
const common = fc.oneof(
  fc.constantFrom(...'0123456789 -.,:/()#_+=@!?'.split('')),
  fc
    .integer({ min: 0x2000, max: 0x2bff })
    .map((cp) => String.fromCodePoint(cp))
    .filter((c) => /^[\p{scx=Zyyy}\p{scx=Zinh}]$/u.test(c) && /^[\p{P}\p{S}\p{N}]$/u.test(c)),
);
// Pairs no restriction level joins: neither a single script (after UTS #39's augmentation) nor one of the three
// covers (Latin + Han + Hiragana + Katakana, Latin + Han + Bopomofo, Latin + Han + Hangul).
const COVERS = [
  ['Latin', 'Han', 'Hiragana', 'Katakana'],
  ['Latin', 'Han', 'Bopomofo'],
  ['Latin', 'Han', 'Hangul'],
];
const INCOMPATIBLE = NAMES.flatMap((a) => NAMES.filter((b) => a < b && !COVERS.some((c) => c.includes(a) && c.includes(b))).map((b) => [a, b] as const));

describe(isHighlyRestrictive.name, () => {
  it.each([
    ['fail mixed Latin+Cyrillic (a Cyrillic е U+0435 in a Latin CA name)', 'T\u0435st Device CA', false],
    ['fail mixed Latin+Greek (a Greek omicron in Latin text)', 'R\u03bfot', false],
    ['fail mixed Cyrillic+Greek', 'С\u03a1', false],
    ['fail Hangul+Hiragana (Korean and Japanese covers are apart)', '한あ', false],
    ['fail Latin+Cyrillic with digits and punctuation between', 'device-7 / устройство', false],
    ['ok all-Cyrillic', 'Устройство 7', true],
    ['ok all-Greek', 'Συσκευή', true],
    ['ok Latin+Han+Katakana', 'Device 装置 デバイス', true],
    ['ok Latin+Han+Hiragana+Katakana', 'Acme 東京 ひらがな カタカナ', true],
    ['ok Latin+Han+Bopomofo', 'Acme 中文 ㄅㄆ', true],
    ['ok Latin+Han+Hangul', 'Acme 漢字 한국어', true],
    ['ok Han+Hiragana (one script after augmentation: Japanese)', '東京ひらがな', true],
    ['ok digits and punctuation with any one script: Latin', 'device-0001 (line 7)', true],
    ['ok digits and punctuation with any one script: Arabic', 'جهاز-0001 (7)', true],
    ['ok digits and punctuation with any one script: Thai', 'อุปกรณ์ #7', true],
    ['ok digits and punctuation alone', '0001-07/2026', true],
    ['ok Latin with accents and Common symbols', 'Gerät ✓ 🔐 ñ', true],
    ['ok a combining mark (Inherited) on a Cyrillic letter', 'Й\u0301ка', true],
    ['ok Arabic comma (Common, Script_Extensions Arabic and others) with Arabic', 'جهاز\u060cجهاز', true],
    ['fail Arabic comma (Script_Extensions without Latin) with Latin', 'device\u060cx', false],
  ])('%s', (_n, s, ok) => {
    expect(isHighlyRestrictive(s)).toBe(ok);
  });

  it('resolves Common and Inherited to every script and augments Han, kana, Hangul and Bopomofo (UTS #39 5.1)', () => {
    expect(resolvedScripts('123 -')).toBe('ALL');
    expect([...(resolvedScripts('Ab1') as Set<string>)]).toEqual(['Latin']);
    expect(resolvedScripts('Aб')).toEqual(new Set());
    expect(resolvedScripts('東ひ')).toEqual(new Set(['Jpan']));
    expect(resolvedScripts('東한')).toEqual(new Set(['Kore']));
    expect(resolvedScripts('東ㄅ')).toEqual(new Set(['Hanb']));
  });

  it('knows a script for every assigned code point of this runtime that is not Common, Inherited or private use (script Unknown; refused as private use) (a Node upgrade with new scripts fails here)', () => {
    const any = new RegExp(`[\\p{scx=Zyyy}\\p{scx=Zinh}${SCRIPTS.map((s) => `\\p{scx=${s}}`).join('')}]`, 'u');
    const missing: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if (!/[\p{Cn}\p{Co}]/u.test(c) && !any.test(c)) missing.push(cp.toString(16));
    }
    expect(missing).toEqual([]);
  });

  it('random strings drawn from two incompatible scripts are refused, whatever Common characters lie between (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...INCOMPATIBLE).chain(([a, b]) => fc.tuple(letter(a), letter(b), fc.array(fc.oneof(letter(a), letter(b), common), { maxLength: 20 }))),
        fc.integer({ min: 0, max: 1000 }),
        ([x, y, rest], at) => {
          const chars = [...rest];
          chars.splice(at % (chars.length + 1), 0, x);
          chars.splice((at * 7) % (chars.length + 1), 0, y);
          expect(isHighlyRestrictive(chars.join(''))).toBe(false);
        },
      ),
      { seed: 1305, numRuns: 500 },
    );
  });

  it('single-script strings plus Common characters pass (property)', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...NAMES).chain((s) => fc.array(fc.oneof(letter(s), common), { minLength: 1, maxLength: 30 })),
        (chars) => {
          expect(isHighlyRestrictive(chars.join(''))).toBe(true);
        },
      ),
      { seed: 1305, numRuns: 500 },
    );
  });
});

describe('LATIN_LOOKALIKES (generated from confusables.txt)', () => {
  it.each([
    ['Cyrillic а', 0x430, 'a'],
    ['Cyrillic е', 0x435, 'e'],
    ['Cyrillic о', 0x43e, 'o'],
    ['Cyrillic р', 0x440, 'p'],
    ['Cyrillic с', 0x441, 'c'],
    ['Cyrillic х', 0x445, 'x'],
    ['Cyrillic capital С', 0x421, 'C'],
    ['Cyrillic capital А', 0x410, 'A'],
    ['Greek ο', 0x3bf, 'o'],
    ['Greek capital Α', 0x391, 'A'],
    ['Armenian օ', 0x585, 'o'],
    ['Cherokee Ꭺ', 0x13aa, 'A'],
  ])('maps %s to its ASCII prototype', (_n, cp, proto) => {
    expect(LATIN_LOOKALIKES.get(cp)).toBe(proto);
  });

  it('holds no Latin, Common or Inherited code point and only ASCII prototypes, from a named confusables version', () => {
    expect(CONFUSABLES_VERSION).toMatch(/^\d+\.\d+\.\d+$/);
    expect(LATIN_LOOKALIKES.size).toBeGreaterThan(400);
    for (const [cp, proto] of LATIN_LOOKALIKES) {
      expect(/[\p{scx=Latn}\p{scx=Zyyy}\p{scx=Zinh}]/u.test(String.fromCodePoint(cp))).toBe(false);
      expect(proto).toMatch(/^\p{ASCII}+$/u);
    }
  });

  it.each([
    ['Cyrillic к (prototype ĸ, Latin but not ASCII)', 0x43a],
    ['Cyrillic в (prototype ʙ)', 0x432],
    ['Cyrillic т (prototype ᴛ)', 0x442],
    ['Greek Σ (prototype Ʃ)', 0x3a3],
    ['Cyrillic ж (no prototype)', 0x436],
  ])('leaves out %s', (_n, cp) => {
    expect(LATIN_LOOKALIKES.has(cp)).toBe(false);
  });
});

describe(isWholeScriptConfusable.name, () => {
  it.each([
    ['fail an all-Cyrillic СА', '\u0421\u0410', true],
    ['fail an all-Cyrillic рауре', '\u0440\u0430\u0443\u0440\u0435', true],
    ['fail ТЕЅТ in Cyrillic capitals with digits and punctuation', '\u0422\u0415\u0405\u0422-01 (7)', true],
    ['fail an all-Greek ΑΒΕ', '\u0391\u0392\u0395', true],
    ['fail an all-Greek ορια (every letter drawn as ASCII)', '\u03bf\u03c1\u03b9\u03b1', true],
    ['fail an all-Armenian օս (ou)', '\u0585\u057d', true],
    ['fail an all-Cherokee ᎪᏴᏟ (ABC)', '\u13aa\u13f4\u13df', true],
    ['fail a look-alike with a combining mark (NFD ё: е + U+0308)', '\u0435\u0308\u0441', true],
    ['fail a look-alike in NFC with an accented letter whose base looks Latin (ё)', '\u0451\u0441', true],
    ['ok Москва (к and в have no ASCII look-alike)', 'Москва', false],
    ['ok Устройство 7', 'Устройство 7', false],
    ['ok Συσκευή', 'Συσκευή', false],
    ['ok пример', 'пример', false],
    ['ok Latin text (not another script)', 'Acme Device CA', false],
    ['ok Latin with a Cyrillic look-alike (mixed: the Highly Restrictive rule refuses it, not this one)', 'T\u0435st', false],
    ['ok digits and punctuation alone', '0001-07', false],
    ['ok Arabic-Indic digits alone (no letter)', '\u0661\u0665', false],
    ['ok a Katakana ノ alone (its prototype / is no letter)', '\u30ce', false],
    ['ok the empty string', '', false],
  ])('%s', (_n, s, confusable) => {
    expect(isWholeScriptConfusable(s)).toBe(confusable);
  });

  // Independent of the table: letters every font draws as the ASCII letter.
  const LOOKALIKES = {
    Cyrillic: 'аеорсхуіјѕԁһАВЕКМНОРСТХЅІЈ',
    Greek: 'αοιρνΑΒΕΖΗΙΚΜΝΟΡΤΥΧ',
    Armenian: 'օսոհցզՕՍ',
    Cherokee: 'ᎪᏴᏟᎠᎬᎻᏦᎷᏢᏚᎢᏙᎳᎩᏃ',
  } as const;
  const spelling = fc.constantFrom(...Object.values(LOOKALIKES)).chain((set) =>
    fc.tuple(
      fc.array(fc.oneof(fc.constantFrom(...set), fc.constantFrom(...set.toUpperCase()), fc.constantFrom(...set.toLowerCase())), { minLength: 1, maxLength: 12 }),
      fc.array(fc.constantFrom(...'0123456789 -._'), { maxLength: 4 }),
      fc.constantFrom('NFC', 'NFD'),
    ),
  );

  it('a value of one script\'s ASCII look-alikes, in any case, NFC or NFD, with digits and punctuation, is confusable (property)', () => {
    fc.assert(
      fc.property(spelling, ([letters, common, form]) => {
        const s = [...letters, ...common].join('').normalize(form as 'NFC' | 'NFD');
        // Case mapping may leave the look-alikes (e.g. a lower case with no ASCII twin): then it is no longer confusable.
        const expected = [...s.normalize('NFD')].every((c) => /[\p{scx=Zyyy}\p{scx=Zinh}]/u.test(c) || LATIN_LOOKALIKES.has(c.codePointAt(0) as number));
        expect(isWholeScriptConfusable(s)).toBe(expected);
      }),
      { seed: 1305, numRuns: 500 },
    );
  });

  it('a look-alike value with one letter that has no ASCII look-alike is not confusable (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...LOOKALIKES.Cyrillic), { minLength: 1, maxLength: 12 }), fc.constantFrom(...'жзлфцчшщэюя'), fc.nat(), (letters, other, at) => {
        letters.splice(at % (letters.length + 1), 0, other);
        expect(isWholeScriptConfusable(letters.join(''))).toBe(false);
      }),
      { seed: 1305, numRuns: 300 },
    );
  });
});

describe(hasMixedNumbers.name, () => {
  it.each([
    ['fail ASCII 0 with Arabic-Indic ٣', '0\u0663', true],
    ['fail ASCII digits with a fullwidth digit', '12\uff13', true],
    ['fail ASCII digits with a Devanagari digit', 'line 7\u0967', true],
    ['fail Arabic-Indic with Extended Arabic-Indic (both Arabic script)', '\u0661\u06f2', true],
    ['fail ASCII with a mathematical bold digit', '1\u{1d7cf}', true],
    ['fail two sets of mathematical digits', '\u{1d7ce}\u{1d7d8}', true],
    ['ok ASCII digits', 'device-2026-0001', false],
    ['ok Arabic-Indic digits only', 'جهاز \u0661\u0662\u0663', false],
    ['ok fullwidth digits only', '\uff11\uff12', false],
    ['ok no digits', 'Acme', false],
    ['ok superscripts are not decimal digits (No, not Nd)', '1\u00b2', false],
  ])('%s', (_n, s, mixed) => {
    expect(hasMixedNumbers(s)).toBe(mixed);
  });

  it('finds the zero of every decimal digit of this runtime: ten Nd code points in a row starting at it', () => {
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const c = String.fromCodePoint(cp);
      if (!/\p{Nd}/u.test(c)) continue;
      const z = decimalZero(cp);
      expect(cp - z).toBeGreaterThanOrEqual(0);
      expect(cp - z).toBeLessThan(10);
      for (let d = 0; d < 10; d++) expect(/\p{Nd}/u.test(String.fromCodePoint(z + d))).toBe(true);
    }
  });

  it.each(['latn', 'arab', 'arabext', 'deva', 'beng', 'thai', 'fullwide', 'mathbold', 'tibt'])('agrees with Intl on the zero of numbering system %s', (nu) => {
    const digits = [...new Intl.NumberFormat(`en-u-nu-${nu}`, { useGrouping: false }).format(9876543210)];
    const zero = digits[digits.length - 1].codePointAt(0) as number;
    for (const d of digits) expect(decimalZero(d.codePointAt(0) as number)).toBe(zero);
  });

  it('digits of two systems in one value are mixed, however they are interleaved (property)', () => {
    const zeros = [0x30, 0x660, 0x6f0, 0x966, 0x9e6, 0xe50, 0xff10, 0x1d7ce, 0x1d7d8];
    fc.assert(
      fc.property(fc.shuffledSubarray(zeros, { minLength: 2, maxLength: 2 }), fc.array(fc.nat(9), { minLength: 2, maxLength: 10 }), fc.nat(), ([a, b], ds, at) => {
        const chars = ds.map((d) => String.fromCodePoint(a + d));
        chars.splice(at % (chars.length + 1), 0, String.fromCodePoint(b + (at % 10)));
        expect(hasMixedNumbers(chars.join(''))).toBe(true);
      }),
      { seed: 1305, numRuns: 300 },
    );
  });
});
