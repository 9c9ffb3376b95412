import fc from 'fast-check';
import { hasHiddenCharacters, jsonWithVisibleText, visibleJson, visibleText } from './visible-text';

/** What a reader cannot see as itself: C0, DEL, C1, format characters (bidi, zero-width, tags), line separators. */
// eslint-disable-next-line no-control-regex
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\p{Cf}\u2028\u2029\u115f\u1160\u3164\uffa0]|\p{Cs}/u;

describe(visibleText.name, () => {
  it.each([
    ['ok plain text stays', 'Release 1.2.3 für Produkt A', 'Release 1.2.3 für Produkt A'],
    ['ok a backslash stays', 'C:\\build\\out', 'C:\\build\\out'],
    ['ok right-to-left letters stay (they are letters)', 'שלום 12', 'שלום 12'],
    ['ok an emoji stays', 'key \u{1F511}', 'key \u{1F511}'],
    ['fail ESC of a CSI sequence', 'a\u001b[2Kb', 'a\\u{1b}[2Kb'],
    ['fail CR that would overwrite the line', 'ok\rEVIL', 'ok\\u{d}EVIL'],
    ['fail newline and tab', 'a\nb\tc', 'a\\u{a}b\\u{9}c'],
    ['fail OSC 52 clipboard write', '\u001b]52;c;ZXZpbA==\u0007', '\\u{1b}]52;c;ZXZpbA==\\u{7}'],
    ['fail 8-bit CSI (C1)', '\u009b2J', '\\u{9b}2J'],
    ['fail DEL', 'a\u007f', 'a\\u{7f}'],
    ['fail right-to-left override (Trojan Source)', '\u202egnp.exe\u202c', '\\u{202e}gnp.exe\\u{202c}'],
    ['fail isolates', '\u2066x\u2069\u2067\u2068', '\\u{2066}x\\u{2069}\\u{2067}\\u{2068}'],
    ['fail bidi marks', '\u200e\u200f\u061c', '\\u{200e}\\u{200f}\\u{61c}'],
    ['fail zero-width space, joiners, word joiner, BOM', 'a\u200bb\u200cc\u200dd\u2060e\ufeff', 'a\\u{200b}b\\u{200c}c\\u{200d}d\\u{2060}e\\u{feff}'],
    ['fail soft hyphen', 'us\u00adages', 'us\\u{ad}ages'],
    ['fail line and paragraph separators', 'a\u2028b\u2029', 'a\\u{2028}b\\u{2029}'],
    ['fail tag characters (invisible, outside the BMP)', 'x\u{E0041}\u{E007F}', 'x\\u{e0041}\\u{e007f}'],
    ['fail Hangul fillers (blank letters)', '\u3164\u115f', '\\u{3164}\\u{115f}'],
    ['fail a lone surrogate', 'a\ud800b', 'a\\u{d800}b'],
  ])('%s', (_n, input, want) => {
    expect(visibleText(input)).toBe(want);
    expect(hasHiddenCharacters(input)).toBe(input !== want);
  });

  it('leaves nothing hidden and changes nothing that was visible (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const v = visibleText(s);
        expect(v).not.toMatch(HIDDEN);
        if (!HIDDEN.test(s)) expect(v).toBe(s);
      }),
      { seed: 47, numRuns: 1000 },
    );
  });
});

describe(visibleJson.name, () => {
  it('makes every string visible, keys included, and keeps numbers, booleans and null', () => {
    expect(visibleJson({ 'a\u202e': ['x\u200b', 1, true, null, { b: 'c\rd' }] })).toEqual({ 'a\\u{202e}': ['x\\u{200b}', 1, true, null, { b: 'c\\u{d}d' }] });
  });

  it('for HTML keeps tab, CR and LF (whitespace there) and names every other hidden character', () => {
    expect(visibleJson({ pem: '-----BEGIN X-----\r\nA\tB\n', 'k\n\u202e': 'a\u0007\u0085\u2028b' }, 'html')).toEqual({
      pem: '-----BEGIN X-----\r\nA\tB\n',
      'k\n\\u{202e}': 'a\\u{7}\\u{85}\\u{2028}b',
    });
  });
});

describe(jsonWithVisibleText.name, () => {
  it('is JSON of the same value with no character a terminal obeys or hides (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string({ unit: 'binary', maxLength: 100 }), (value, s) => {
        const doc = { value, s, [s]: s };
        const text = jsonWithVisibleText(doc);
        expect(text).not.toMatch(HIDDEN);
        expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(doc)));
      }),
      { seed: 47, numRuns: 500 },
    );
  });
});
