// A name one party writes and another reads as an identity: a certificate subject value, an IDN label, a URI's
// decoded path segment (libs/pki device-names) and a key's certificate name (`CertificateNameText`: the API and the
// console's forms). One rule, here, with no runtime dependency, so the SPA imports `@keyserver/api-contract/name-text`
// alone (ADR 0010 addenda, ADR 0047 addendum).
import { inRanges } from './idna';
import { hasMixedNumbers, isHighlyRestrictive, isWholeScriptConfusable } from './scripts';

// The parts of the rule, for tests and oracles elsewhere (libs/pki).
export { hasMixedNumbers, isHighlyRestrictive, isWholeScriptConfusable, resolvedScripts } from './scripts';
export { LATIN_LOOKALIKES } from './latin-lookalikes.generated';
// IDNA2008 U-labels and the Bidi Rule, for the host names of device certificates (libs/pki device-names).
export { isULabel, satisfiesBidiRule } from './idna';

/**
 * Characters never allowed in a name: every character a reader does not see as itself (controls, format characters
 * such as bidi controls, zero-width characters, soft hyphen and tags, line and paragraph separators, every
 * default-ignorable code point such as variation selectors and the Hangul fillers: a superset of what the console
 * names with \u{...}, ADR 0047), lone surrogates, private use, unassigned code points and noncharacters (their
 * normalisation is not fixed by the Unicode version we check with), and U+FFFD (the trace of a bad decoding).
 */
const FORBIDDEN = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}\ufffd]/u;
/** A combining mark first in a value is drawn over what precedes it when the DN is printed (e.g. U+0338 over "="). */
const LEADING_MARK = /^\p{M}/u;

/** True when a name contains a character a name may never carry, or starts with a combining mark. */
export function hasForbiddenCharacter(s: string): boolean {
  return FORBIDDEN.test(s) || LEADING_MARK.test(s);
}

/**
 * Whether a name is its own NFKC form (Unicode normalization form KC). A compatibility character (mathematical
 * alphanumerics `𝐃`, full-width `Ｄ` and half-width forms, circled `ⓓ` and parenthesised `⒟` letters, superscripts,
 * ligatures `ﬁ`, roman numerals `Ⅸ`, `ſ`, the micro sign, a no-break space; the Kelvin and Ohm signs are already not
 * NFC) is drawn as, or close to, the letters NFKC folds it to, and compares as other code points: a name made of
 * them is Common (no script) and passes every script rule. NFKC-stable text is NFC too.
 */
export function isNfkcStable(s: string): boolean {
  return s.normalize('NFKC') === s;
}

/**
 * UAX #31 Table 4 Recommended scripts, the scripts of UTS #39's General Security Profile (Identifier_Status
 * Allowed). Excluded and Limited_Use scripts (Cherokee, Lisu, Canadian Aboriginal, Runic, Gothic, Coptic, ...) hold
 * many letters drawn as Latin ones and are refused; Common and Inherited characters go beside any script.
 */
const RECOMMENDED_SCRIPTS =
  'Zyyy Zinh Arab Armn Beng Bopo Cyrl Deva Ethi Geor Grek Gujr Guru Hani Hang Hebr Hira Knda Kana Khmr Laoo Latn Mlym Mymr Orya Sinh Taml Telu Thaa Thai Tibt';
const OUTSIDE_RECOMMENDED_SCRIPTS = new RegExp(`[^${RECOMMENDED_SCRIPTS.split(' ').map((s) => `\\p{scx=${s}}`).join('')}]`, 'u');

/**
 * Characters that are their own NFKC form yet drawn as ordinary letters (UTS #39 Identifier_Type Technical,
 * Obsolete, Uncommon_Use or Not_XID; JavaScript has no Block or Identifier_Type property, so the blocks are written
 * out): the IPA, spacing modifier letters (`ʼ`, `ʻ`, `ˈ`), phonetic extensions and small capitals (`ᴅᴇᴠɪᴄᴇ`),
 * Latin Extended-C to -G, the Cyrillic extensions (`ꙮ`, `ᲀ`), the letter-like symbols and number forms (`℮`, `Ⅎ`,
 * `⅁`), the mathematical operators (`∪`, `∨`, `∑`, `∆`) and APL symbols (`⍺`), and the Latin clicks `ǀ ǁ ǂ ǃ`
 * (drawn as `l`, `‖`, `ǂ`, `!`). NFKC has already folded the rest of those blocks to ordinary letters.
 */
const TECHNICAL: readonly (readonly [number, number])[] = [
  [0x01c0, 0x01c3],
  [0x0250, 0x02ff],
  [0x1c80, 0x1c8f],
  [0x1d00, 0x1dbf],
  [0x2100, 0x218f],
  [0x2200, 0x22ff],
  [0x2336, 0x237a],
  [0x27c0, 0x27ef],
  [0x2980, 0x2aff],
  [0x2c60, 0x2c7f],
  [0x2de0, 0x2dff],
  [0xa640, 0xa69f],
  [0xa700, 0xa7ff],
  [0xab30, 0xab6f],
  [0x10780, 0x107bf],
  [0x1df00, 0x1dfff],
  [0x1e030, 0x1e08f],
];
/**
 * The IPA letters that are letters of living alphabets (African reference alphabet, Azerbaijani `ə`, Ewe, Hausa,
 * Fula, Lingala ...): the lower case of a Latin Extended-B capital. `ʀ` (whose capital is the Old Norse yr) is a small
 * capital and stays out.
 */
const ALPHABET_IPA = /[\u0253\u0254\u0256\u0257\u0259\u025b\u0260\u0263\u0268\u0269\u026f\u0272\u0275\u0283\u0288\u0289\u028a\u028b\u028c\u0292]/u;
/** A modifier letter of no script (Common), wherever it is encoded: a mark drawn as a letter or an apostrophe. */
const COMMON_MODIFIER = /(?=\p{Lm})\p{scx=Zyyy}/u;

/**
 * Whether every character of a name is one of everyday writing: of a UAX #31 Recommended script (or Common or
 * Inherited), not of a technical, phonetic, obsolete or letter-like block ({@link TECHNICAL}) unless an IPA letter of
 * a living alphabet, and not a Common modifier letter (ADR 0010 addendum, session 26).
 */
export function hasOnlyEverydayCharacters(s: string): boolean {
  if (/^[\x20-\x7e]*$/.test(s)) return true;
  for (const c of s) {
    if (OUTSIDE_RECOMMENDED_SCRIPTS.test(c) || COMMON_MODIFIER.test(c)) return false;
    if (inRanges(c, TECHNICAL) && !ALPHABET_IPA.test(c)) return false;
  }
  return true;
}

/**
 * Whether a name reads as itself: no forbidden character ({@link hasForbiddenCharacter}), its own NFKC form
 * ({@link isNfkcStable}), only characters of everyday writing ({@link hasOnlyEverydayCharacters}: no small capitals,
 * IPA or modifier letters, letter-like symbols or letters of Excluded and Limited_Use scripts), not mixing scripts (UTS #39 5.2 Highly Restrictive: one script, or Latin with Han and
 * Japanese kana, Bopomofo or Hangul; digits, punctuation and other Common characters go with any), not written only in
 * another script's look-alikes of ASCII letters (UTS #39 4: an all-Cyrillic `СА`) and digits of one decimal system
 * (UTS #39 5.4). Ordinary words of any script (`Москва`, `Συσκευή`, `東京`, `서울`) read as themselves.
 */
export function readsAsItself(s: string): boolean {
  return !hasForbiddenCharacter(s) && isNfkcStable(s) && hasOnlyEverydayCharacters(s) && isHighlyRestrictive(s) && !isWholeScriptConfusable(s) && !hasMixedNumbers(s);
}

/** The message of a refusal by {@link readsAsItself} (zod, the console's forms). */
export const NAME_TEXT_RULE =
  'a name reads as itself: no control, bidi or invisible character, its own NFKC form (no full-width, mathematical, circled or ligature letters), no small capital, IPA, modifier or letter-like character, a script in common use, one script (Latin may go with Han, kana, Hangul or Bopomofo), not only look-alikes of Latin letters, one digit system';
