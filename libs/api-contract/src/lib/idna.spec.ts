import fc from 'fast-check';
import { isULabel, satisfiesBidiRule } from './idna';

/**
 * IDNA2008 on the U-label of an A-label in a device certificate (dNSName, rfc822Name domain, URI host): RFC 5892
 * DISALLOWED code points, CONTEXTJ and CONTEXTO rules, RFC 5891 4.2.3.1 hyphens, and RFC 5893's Bidi Rule over the
 * labels of a name (ADR 0010 addendum, session 26).
 */
describe(isULabel.name, () => {
  it.each([
    ['ok German', 'bücher'],
    ['ok sharp s (PVALID exception)', 'straße'],
    ['ok Greek with a final sigma (PVALID exception)', 'ελληνικός'],
    ['ok Chinese', '测试'],
    ['ok Japanese with a Katakana middle dot beside kana', 'デ・バイス'],
    ['ok Catalan middle dot between two l', 'col·lecció'],
    ['ok Greek lower numeral sign before a Greek letter', 'α͵β'],
    ['ok Hebrew gershayim after a Hebrew letter', 'צה״ל'],
    ['ok Arabic with Arabic-Indic digits', 'مثال١٢'],
    ['ok Persian with extended Arabic-Indic digits', 'مثال۱۲'],
    ['ok inner hyphen and ASCII digits', 'gerät-7'],
    ['ok Hangul syllables', '서울'],
    ['ok ideographic number zero (PVALID exception)', '〇一'],
  ])('%s', (_n, u) => {
    expect(isULabel(u)).toBe(true);
  });

  it.each([
    ['fail an upper-case letter (Unstable)', 'Bücher'],
    ['fail a title-case digraph', '\u01c5ab'],
    ['fail an emoji (symbol)', '\u{1f4a9}'],
    ['fail a check mark (symbol)', 'ok\u2713'],
    ['fail punctuation', 'a!b'],
    ['fail an underscore', 'a_b'],
    ['fail a space', 'a b'],
    ['fail a compatibility ligature', '\ufb01le'],
    ['fail full-width letters', '\uff41\uff42'],
    ['fail ZWJ (CONTEXTJ)', 'a\u200db'],
    ['fail ZWNJ after a virama (CONTEXTJ: never in a device name)', '\u0915\u094d\u200c\u0937'],
    ['fail a middle dot not between two l', 'a·b'],
    ['fail a middle dot first', '·l'],
    ['fail a middle dot last', 'l·'],
    ['fail a Greek lower numeral sign before a Latin letter', '͵a'],
    ['fail a Greek lower numeral sign last', 'α͵'],
    ['fail a Hebrew geresh first', '׳א'],
    ['fail a Hebrew gershayim after a Latin letter', 'a״'],
    ['fail a Katakana middle dot without kana or Han', 'a・b'],
    ['fail Arabic-Indic digits mixed with extended ones', 'مثال١۲'],
    ['fail a tatweel (DISALLOWED)', 'مـثال'],
    ['fail an N’Ko lajanyalan (DISALLOWED)', '\u07ca\u07fa\u07cb'],
    ['fail a vertical kana repeat mark (DISALLOWED)', 'あ\u3031'],
    ['fail an old Hangul jamo (DISALLOWED)', '\u1100\u1161'],
    ['fail a combining mark for symbols', 'a\u20dd'],
    ['fail a hyphen first', '-ab'],
    ['fail a hyphen last', 'ab-'],
    ['fail hyphens in the third and fourth positions', 'ab--ü'],
    ['fail a leading combining mark', '\u0301a'],
    ['fail a soft hyphen', 'ab\u00adc'],
    ['fail the empty label', ''],
  ])('%s', (_n, u) => {
    expect(isULabel(u)).toBe(false);
  });

  it('for any label u: isULabel(u) implies u is its own NFKC and lower-case form, holds no symbol (but the Greek keraia before a Greek letter), space, format or ASCII punctuation but the hyphen, and a middle dot only between two l (property)', () => {
    const part = fc.oneof(
      fc.constantFrom(...'abcl-0123'.split('')),
      fc.constantFrom('ü', 'Ü', 'ß', 'ς', 'Σ', 'l·l', '·', '͵', '׳', '״', '・', '١', '۱', 'א', 'ア', '東', 'α', 'ـ', '\u200c', '\u200d', '\u00ad', '\u2713', '\u{1f4a9}', '_', '.', ' ', '\ufb01', '\u1100'),
      fc.string({ unit: 'grapheme', maxLength: 2 }),
    );
    fc.assert(
      fc.property(fc.array(part, { minLength: 1, maxLength: 8 }).map((a) => a.join('')), (u) => {
        if (!isULabel(u)) return;
        expect(u.normalize('NFKC')).toBe(u);
        expect(u.toLowerCase()).toBe(u);
        expect(/[\p{S}\p{Z}\p{Cf}\p{Cc}]/u.test(u.replace(/\u0375(?=\p{sc=Greek})/gu, ''))).toBe(false);
        expect(/[\x20-\x2c\x2e\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]/.test(u)).toBe(false);
        for (const m of u.matchAll(/·/g)) expect([u[(m.index as number) - 1], u[(m.index as number) + 1]]).toEqual(['l', 'l']);
      }),
      { seed: 5892, numRuns: 3000 },
    );
  });
});

describe(satisfiesBidiRule.name, () => {
  it.each([
    ['ok no right-to-left label: the rule does not apply', ['1device', 'example']],
    ['ok Arabic labels', ['مثال', 'إختبار']],
    ['ok Hebrew label under Latin labels that start with a letter', ['שלום', 'devices', 'example']],
    ['ok Hebrew ending in ASCII digits', ['מבחן12']],
    ['ok Arabic ending in Arabic-Indic digits', ['مثال١٢']],
    ['ok Hebrew with an inner hyphen', ['אב-גד']],
    ['ok Hebrew ending in a point (NSM after R)', ['שָׁלוֹם']],
    ['ok Thaana', ['ދިވެހި']],
  ])('%s', (_n, labels) => {
    expect(satisfiesBidiRule(labels)).toBe(true);
  });

  it.each([
    ['fail Latin letters inside a Hebrew label', ['שלוםabc']],
    ['fail Hebrew letters inside a Latin label', ['abcשלום']],
    ['fail a right-to-left label that starts with a digit', ['1שלום']],
    ['fail a Latin label starting with a digit in a name with a right-to-left label', ['שלום', '1device']],
    ['fail a label of digits in a name with a right-to-left label', ['مثال', '123']],
    ['fail ASCII and Arabic-Indic digits in one right-to-left label', ['א1٢']],
    ['fail an Arabic-Indic digit in a Latin label', ['ab١']],
    ['fail an Arabic-Indic digit first', ['١مثال']],
    ['fail a right-to-left label ending in a hyphen', ['מבחן-']],
    ['fail a Latin label with a Hebrew gershayim', ['ab״']],
  ])('%s', (_n, labels) => {
    expect(satisfiesBidiRule(labels)).toBe(false);
  });

  it('a label holding both a Latin and a Hebrew or Arabic letter never satisfies the rule, whatever else it holds (property)', () => {
    const latin = fc.constantFrom(...'abcdefxyz'.split(''));
    const rtl = fc.constantFrom(...'אבגדשתابتثج'.split(''));
    const other = fc.constantFrom(...'0123-١٢'.split(''));
    fc.assert(
      fc.property(latin, rtl, fc.array(fc.oneof(latin, rtl, other), { maxLength: 8 }), fc.nat(), fc.nat(), (l, r, rest, i, j) => {
        const chars = [...rest];
        chars.splice(i % (chars.length + 1), 0, l);
        chars.splice(j % (chars.length + 1), 0, r);
        expect(satisfiesBidiRule([chars.join(''), 'example'])).toBe(false);
      }),
      { seed: 5893, numRuns: 1000 },
    );
  });
});
