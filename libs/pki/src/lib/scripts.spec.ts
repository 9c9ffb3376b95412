import * as fc from 'fast-check';
import { isHighlyRestrictive, resolvedScripts, SCRIPTS } from './scripts';

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
