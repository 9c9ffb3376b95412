// A name one party writes and another reads as an identity: a certificate subject value, an IDN label, a URI's
// decoded path segment (libs/pki device-names) and a key's certificate name (`CertificateNameText`: the API and the
// console's forms). One rule, here, with no runtime dependency, so the SPA imports `@keyserver/api-contract/name-text`
// alone (ADR 0010 addenda, ADR 0047 addendum).
import { hasMixedNumbers, isHighlyRestrictive, isWholeScriptConfusable } from './scripts';

// The parts of the rule, for tests and oracles elsewhere (libs/pki).
export { hasMixedNumbers, isHighlyRestrictive, isWholeScriptConfusable, resolvedScripts } from './scripts';
export { LATIN_LOOKALIKES } from './latin-lookalikes.generated';

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
 * Whether a name reads as itself: no forbidden character ({@link hasForbiddenCharacter}), its own NFKC form
 * ({@link isNfkcStable}), not mixing scripts (UTS #39 5.2 Highly Restrictive: one script, or Latin with Han and
 * Japanese kana, Bopomofo or Hangul; digits, punctuation and other Common characters go with any), not written only in
 * another script's look-alikes of ASCII letters (UTS #39 4: an all-Cyrillic `СА`) and digits of one decimal system
 * (UTS #39 5.4). Ordinary words of any script (`Москва`, `Συσκευή`, `東京`, `서울`) read as themselves.
 */
export function readsAsItself(s: string): boolean {
  return !hasForbiddenCharacter(s) && isNfkcStable(s) && isHighlyRestrictive(s) && !isWholeScriptConfusable(s) && !hasMixedNumbers(s);
}

/** The message of a refusal by {@link readsAsItself} (zod, the console's forms). */
export const NAME_TEXT_RULE =
  'a name reads as itself: no control, bidi or invisible character, its own NFKC form (no full-width, mathematical, circled or ligature letters), one script (Latin may go with Han, kana, Hangul or Bopomofo), not only look-alikes of Latin letters, one digit system';
