import fc from 'fast-check';
import { readsAsItself } from './name-text';

/**
 * Letters that are their own NFKC form yet are drawn as other, ordinary letters (UTS #39 Identifier_Type Technical,
 * Obsolete, Uncommon_Use or Not_XID; scripts outside UAX #31 Table 4's Recommended ones): refused by the one rule,
 * while the letters of real names of every recommended script keep passing (ADR 0010 addendum, session 26).
 */
describe(readsAsItself.name, () => {
  it.each([
    ['ok Danish', 'Ærø Øresund Ålborg æøå'],
    ['ok German', 'Straße Gerät Öl'],
    ['ok German capital sharp s', 'STRAẞE'],
    ['ok Japanese (kanji, kana, a prolonged sound mark)', 'サーバー 東京 ひらがな 人々'],
    ['ok Chinese', '设备 北京 〇'],
    ['ok Korean', '서울 장치'],
    ['ok Arabic', 'جهاز الرياض ٣'],
    ['ok Persian digits', 'دستگاه ۳'],
    ['ok Hebrew', 'מכשיר שלום'],
    ['ok Hebrew gershayim', 'צה״ל'],
    ['ok Greek', 'Συσκευή Ελλάδα'],
    ['ok Cyrillic', 'Москва Устройство'],
    ['ok Vietnamese', 'Thiết bị Đà Nẵng'],
    ['ok Azerbaijani (ə)', 'Azərbaycan'],
    ['ok Ewe and Hausa letters (ɛ ɔ ɖ ƙ ŋ)', 'Ɛʋɛ ɔŋɖ ƙasa'],
    ['ok Romanian', 'Ștefan Țară'],
    ['ok Thai', 'อุปกรณ์'],
    ['ok Hindi', 'उपकरण ७'],
    ['ok Amharic', 'መሣሪያ'],
    ['ok Catalan middle dot', 'col·lecció'],
    ['ok symbols and emoji between words', 'Gerät 🔐 ✓ 5°C → 7'],
    ['ok apostrophes', "O'Brien Hawai‘i"],
  ])('%s', (_n, name) => {
    expect(readsAsItself(name)).toBe(true);
  });

  it.each([
    ['fail Latin small capitals (ᴅᴇᴠɪᴄᴇ)', '\u1d05\u1d07\u1d20\u026a\u1d04\u1d07'],
    ['fail a small capital in a word (ʀoot)', 'Test \u0280oot'],
    ['fail a small capital S from Latin Extended-D (ꜱerver)', '\ua731erver'],
    ['fail IPA script a (ɑcme)', '\u0251cme'],
    ['fail IPA script g (ɡateway)', '\u0261ateway'],
    ['fail IPA small capital Y (ʏes)', '\u028fes'],
    ['fail IPA turned letters (ɐ ɹ)', 'Fi\u0250\u0279'],
    ['fail a phonetic extension letter (ᵫ)', 'Devi\u1d6bce'],
    ['fail a Latin Extended-E letter (ꭰ)', 'Device \uab30'],
    ['fail a turned capital F (Ⅎ)', '\u2132irmware'],
    ['fail dental click (ǀnternal)', '\u01c0nternal'],
    ['fail retroflex click as an exclamation mark', 'Alert\u01c3'],
    ['fail a modifier letter apostrophe (ʼ)', 'O\u02bcBrien'],
    ['fail an okina (ʻ; write ‘)', 'Hawai\u02bbi'],
    ['fail a modifier letter vertical line (ˈ)', 'device\u02c87'],
    ['fail a modifier letter in a Cyrillic word (ꚜ)', 'Москва\ua69c'],
    ['fail Greek small capitals (ᴦᴨ)', '\u1d26\u1d28'],
    ['fail an obsolete Cyrillic letter (ꙮ)', 'Мос\ua66eва'],
    ['fail a Cyrillic Extended-C variant of в (ᲀ)', '\u1c80ода'],
    ['fail an estimated sign as e (℮)', 'D\u212evice'],
    ['fail a union as u (∪)', '\u222anit'],
    ['fail a logical or as v (∨)', 'De\u2228ice'],
    ['fail an APL alpha (⍺)', '\u237alpha'],
    ['fail a turned sans-serif capital G (⅁)', '\u2141ateway'],
    ['fail an n-ary summation as Σ', '\u2211'],
    ['fail an increment sign as Δ', 'Device \u2206'],
    ['fail Cherokee (a Limited_Use script)', '\u13e3\u13b3\u13a9'],
    ['fail Runic (an Excluded script)', '\u16a0\u16a2\u16a6'],
    ['fail Gothic (an Excluded script)', '\u{10330}\u{10331}'],
    ['fail Lisu look-alikes (a Limited_Use script)', '\ua4d3\ua4f0'],
    ['fail Canadian syllabics (a Limited_Use script)', '\u1403\u14c4\u1483\u144e\u1450\u1466'],
    ['fail Cyrillic mixed into Latin (unchanged)', 'T\u0435st Root'],
    ['fail Greek mixed into Latin (unchanged)', 'R\u03bfot'],
  ])('%s', (_n, name) => {
    expect(readsAsItself(name)).toBe(false);
  });

  /** Letters of everyday alphabets (the ok rows' scripts), with Common characters between them. */
  const REAL = {
    Latin: 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZæøåÆØÅßäöüÄÖÜéèêçñłőűșțđăơưəɛɔ',
    Greek: 'αβγδεζηθικλμνξπρστυφχψωάέήίόύώ',
    Cyrillic: 'абвгдежзийклмнпрстуфхцчшщъыьэюяё',
    Japanese: 'あいうえおかきくけこアイウエオカキクケコー東京人日本',
    Arabic: 'ابتثجحخدذرزسشصضطظعغفقكلمنهوي',
    Hebrew: 'אבגדהוזחטיכלמנסעפצקרשת',
  };
  const word = (alphabet: string) => fc.array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: 8 }).map((a) => a.join(''));
  /** A real name: words of one alphabet, digits and spaces, at least one letter with no Latin look-alike. */
  const realName = fc.constantFrom(...Object.keys(REAL)).chain((k) => {
    const alphabet = REAL[k as keyof typeof REAL];
    const own = k === 'Latin' ? 'a' : { Greek: 'λ', Cyrillic: 'ж', Japanese: '東', Arabic: 'ج', Hebrew: 'ש' }[k] ?? '';
    return fc.array(fc.oneof(word(alphabet), fc.constantFrom(' ', '7', '-', ' 2026')), { minLength: 0, maxLength: 4 }).map((parts) => own + parts.join(''));
  });
  /** NFKC-stable letters and letter-like symbols from technical, phonetic and obsolete ranges and excluded scripts. */
  const hostile = fc.oneof(
    fc.integer({ min: 0x1d00, max: 0x1dbf }),
    fc.integer({ min: 0xa720, max: 0xa7ff }),
    fc.integer({ min: 0xab30, max: 0xab6f }),
    fc.integer({ min: 0x2c60, max: 0x2c7f }),
    fc.integer({ min: 0x2100, max: 0x214f }),
    fc.integer({ min: 0x2200, max: 0x22ff }),
    fc.integer({ min: 0x2336, max: 0x237a }),
    fc.integer({ min: 0x02b0, max: 0x02ff }),
    fc.constantFrom(0x0251, 0x0261, 0x026a, 0x028f, 0x0280, 0x0299, 0x029c, 0x029f, 0x0274, 0x0262, 0x01c0, 0x01c3),
    fc.integer({ min: 0x13a0, max: 0x13f5 }),
    fc.integer({ min: 0x16a0, max: 0x16ea }),
    fc.integer({ min: 0xa4d0, max: 0xa4f7 }),
  ).map((cp) => String.fromCodePoint(cp)).filter((c) => /^[\p{L}\p{S}]$/u.test(c) && c.normalize('NFKC') === c);

  it('every real name of one alphabet reads as itself, and inserting any technical, phonetic, modifier or letter-like character anywhere makes it not (property)', () => {
    fc.assert(
      fc.property(realName, hostile, fc.nat(), (name, c, at) => {
        expect(readsAsItself(name)).toBe(true);
        const chars = [...name];
        chars.splice(at % (chars.length + 1), 0, c);
        expect(readsAsItself(chars.join(''))).toBe(false);
      }),
      { seed: 2026, numRuns: 2000 },
    );
  });
});
