/**
 * UTS #39 (Unicode Security Mechanisms) 5.1 resolved script sets and the 5.2 "Highly Restrictive" restriction
 * level, with the runtime's Unicode property escapes (ADR 0010 addendum "look-alike letters"); 4 whole-script
 * confusables against Latin, from a table generated from confusables.txt, and 5.4 mixed numbers (ADR 0010 addendum
 * "whole-script look-alikes, mixed numbers, percent-encoded text").
 */
import { LATIN_LOOKALIKES } from './latin-lookalikes.generated';

/**
 * Every Unicode script (Script_Extensions values) except Common, Inherited and Unknown, as of Unicode 17 (Node 24).
 * scripts.spec.ts checks that every assigned code point of the runtime is in one of these or Common/Inherited, so
 * a runtime with a newer Unicode fails there instead of reading a new script's letters as no script.
 */
export const SCRIPTS = (
  'Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali Beria_Erfe Bhaiksuki ' +
  'Bopomofo Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee Chorasmian ' +
  'Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs ' +
  'Elbasan Elymaic Ethiopic Garay Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi Gurmukhi Gurung_Khema ' +
  'Han Hangul Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inscriptional_Pahlavi Inscriptional_Parthian ' +
  'Javanese Kaithi Kannada Katakana Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki Khudawadi Kirat_Rai Lao ' +
  'Latin Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean Marchen ' +
  'Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi Mongolian Mro ' +
  'Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong Ogham Ol_Chiki ' +
  'Ol_Onal Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian Old_Turkic ' +
  'Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi Rejang Runic ' +
  'Samaritan Saurashtra Sharada Shavian Siddham Sidetic SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese ' +
  'Sunuwar Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Tai_Yo Takri Tamil Tangsa Tangut Telugu Thaana ' +
  'Thai Tibetan Tifinagh Tirhuta Todhri Tolong_Siki Toto Tulu_Tigalari Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi ' +
  'Zanabazar_Square'
)
  .split(' ')
  .filter((s) => {
    // A runtime older than the list does not know its newest scripts; their letters are unassigned (Cn) there and
    // refused as such before this check.
    try {
      new RegExp(`\\p{scx=${s}}`, 'u');
      return true;
    } catch {
      return false;
    }
  });

const PATTERNS = SCRIPTS.map((s) => [s, new RegExp(`\\p{scx=${s}}`, 'u')] as const);

/** Script_Extensions {Common} or {Inherited}: UTS #39 gives them every script (ALL). */
const ANY_SCRIPT = /^[\p{scx=Zyyy}\p{scx=Zinh}]$/u;

/**
 * The three covers of Highly Restrictive (UTS #39 5.2): a string each of whose characters shares a script with one
 * of them. Common and Inherited characters share a script with every set.
 */
const COVERS = [
  /^[\p{scx=Zyyy}\p{scx=Zinh}\p{scx=Latn}\p{scx=Hani}\p{scx=Hira}\p{scx=Kana}]*$/u,
  /^[\p{scx=Zyyy}\p{scx=Zinh}\p{scx=Latn}\p{scx=Hani}\p{scx=Bopo}]*$/u,
  /^[\p{scx=Zyyy}\p{scx=Zinh}\p{scx=Latn}\p{scx=Hani}\p{scx=Hang}]*$/u,
];

/** Augmented script sets (UTS #39 5.1): Han writes Chinese (Hanb), Japanese (Jpan) and Korean (Kore), and so on. */
function augmented(scripts: string[]): Set<string> {
  const out = new Set(scripts);
  if (out.has('Han')) ['Hanb', 'Jpan', 'Kore'].forEach((s) => out.add(s));
  if (out.has('Hiragana') || out.has('Katakana')) out.add('Jpan');
  if (out.has('Hangul')) out.add('Kore');
  if (out.has('Bopomofo')) out.add('Hanb');
  return out;
}

// The script set of a character, cached: a value's non-Common characters are few, a burst repeats them.
const SCRIPTS_OF = new Map<number, Set<string>>();
function scriptsOf(c: string): Set<string> {
  const cp = c.codePointAt(0) as number;
  let set = SCRIPTS_OF.get(cp);
  if (!set) {
    set = augmented(PATTERNS.filter(([, p]) => p.test(c)).map(([s]) => s));
    if (SCRIPTS_OF.size >= 4096) SCRIPTS_OF.delete(SCRIPTS_OF.keys().next().value as number);
    SCRIPTS_OF.set(cp, set);
  }
  return set;
}

/**
 * The resolved script set of a string (UTS #39 5.1): the intersection of its characters' augmented
 * Script_Extensions, Common and Inherited counting as every script ('ALL' when only they occur). Empty: the string
 * mixes scripts.
 */
export function resolvedScripts(s: string): Set<string> | 'ALL' {
  // undefined: only Common and Inherited characters so far (every script).
  let resolved: Set<string> | undefined;
  for (const c of s) {
    if (ANY_SCRIPT.test(c)) continue;
    const set = scriptsOf(c);
    const before: Set<string> | undefined = resolved;
    resolved = before ? new Set([...before].filter((x) => set.has(x))) : new Set(set);
    if (resolved.size === 0) break;
  }
  return resolved ?? 'ALL';
}

/**
 * UTS #39 5.2 Highly Restrictive: the string is single-script (its resolved script set is not empty) or covered by
 * Latin + Han + Hiragana + Katakana, Latin + Han + Bopomofo or Latin + Han + Hangul. ASCII is Latin and Common.
 */
export function isHighlyRestrictive(s: string): boolean {
  if (COVERS.some((c) => c.test(s))) return true;
  const r = resolvedScripts(s);
  return r === 'ALL' || r.size > 0;
}

/** Printable ASCII, or nothing: Latin and Common only, one digit system, no other script. Such a value skips the tables. */
const ASCII = /^\p{ASCII}*$/u;
const LETTER = /^\p{L}$/u;
const ASCII_LETTER = /[A-Za-z]/;
const MARK = /^\p{M}$/u;

/**
 * UTS #39 4 whole-script confusable with Latin: the value is written in scripts other than Latin, holds a letter,
 * and every character that is not Common or Inherited (after NFD: a precomposed `ё` is `е` and a mark) has an ASCII
 * prototype in confusables.txt (combining marks aside), at least one letter's prototype being an ASCII letter. So its skeleton is ASCII
 * text: an all-Cyrillic `СА` or `рауре` is drawn as the Latin name. Only ASCII prototypes count (as Chromium's IDN
 * display lists of Latin look-alikes): letters whose prototype is another Latin letter (Cyrillic `к` -> `ĸ`, `т` ->
 * `ᴛ`) are not read as plain Latin, and counting them would refuse ordinary words such as `Москва` or `Συσκευή`.
 */
export function isWholeScriptConfusable(s: string): boolean {
  if (ASCII.test(s)) return false;
  let letter = false;
  for (const c of s.normalize('NFD')) {
    const proto = LATIN_LOOKALIKES.get(c.codePointAt(0) as number);
    if (proto === undefined) {
      // Marks (Inherited, or with a Script_Extensions such as U+0308's) sit on a letter the rule judges already.
      if (ANY_SCRIPT.test(c) || MARK.test(c)) continue;
      return false;
    }
    if (LETTER.test(c) && ASCII_LETTER.test(proto)) letter = true;
  }
  return letter;
}

const DECIMAL = /^\p{Nd}$/u;
const ZEROS = new Map<number, number>();

/**
 * The code point of the zero of a decimal digit's system (UTS #39 5.4). Unicode encodes each set of decimal digits
 * (General_Category Nd) as ten contiguous code points from 0 to 9; adjacent sets (the mathematical digits) follow
 * each other directly, so the zero is the digit's offset within its run of Nd code points, modulo ten.
 */
export function decimalZero(cp: number): number {
  let zero = ZEROS.get(cp);
  if (zero === undefined) {
    let start = cp;
    while (start > 0 && DECIMAL.test(String.fromCodePoint(start - 1))) start--;
    zero = cp - ((cp - start) % 10);
    ZEROS.set(cp, zero);
  }
  return zero;
}

/**
 * UTS #39 5.4 mixed numbers: the value holds decimal digits of more than one system (`0` with an Arabic-Indic `٣`,
 * ASCII with fullwidth or Devanagari digits), which read as one number and compare as another.
 */
export function hasMixedNumbers(s: string): boolean {
  if (ASCII.test(s)) return false;
  let zero: number | undefined;
  for (const c of s) {
    if (!DECIMAL.test(c)) continue;
    const z = c.charCodeAt(0) <= 0x39 ? 0x30 : decimalZero(c.codePointAt(0) as number);
    if (zero !== undefined && z !== zero) return true;
    zero = z;
  }
  return false;
}
