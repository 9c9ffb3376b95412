/**
 * IDNA2008 rules on U-labels (RFC 5891, RFC 5892) and RFC 5893's Bidi Rule, with the runtime's Unicode property
 * escapes (ADR 0010 addendum, session 26). Node's `domainToUnicode`/`domainToASCII` (UTS #46, nontransitional, no
 * CheckHyphens, no CheckBidi, no CheckJoiners) decode and re-encode, but let through symbols and emoji, CONTEXTO
 * characters anywhere (`xn--ab-0ea` is `a·b`) and any mix of directions; JavaScript has no Bidi_Class property, so
 * the classes are derived from scripts and general categories below. The name rule (`readsAsItself`) judges a label's
 * letters besides.
 */

/**
 * RFC 5892 2.1-2.2 LetterDigits that a U-label may hold: lower-case and other letters, modifier letters, marks and
 * decimal digits (upper- and title-case letters are Unstable: NFKC_Casefold changes them; checked per character below).
 */
const LETTER_DIGIT = /^[\p{Ll}\p{Lo}\p{Lm}\p{Mn}\p{Mc}\p{Nd}]$/u;
/** RFC 5892 2.6 exceptions: PVALID though not LetterDigits or not stable under case folding. */
const PVALID_EXCEPTION = /^[\u00df\u03c2\u06fd\u06fe\u0f0b\u3007]$/u;
/**
 * RFC 5892 2.6 DISALLOWED exceptions (tatweel, N'Ko lajanyalan, Hangul tone marks, vertical kana repeat marks, the
 * vertical ideographic iteration mark), 2.9 OldHangulJamo and 2.8 IgnorableBlocks (combining marks for symbols,
 * musical symbols, ancient Greek musical notation).
 */
const DISALLOWED: readonly (readonly [number, number])[] = [
  [0x0640, 0x0640],
  [0x07fa, 0x07fa],
  [0x302e, 0x302f],
  [0x3031, 0x3035],
  [0x303b, 0x303b],
  [0x1100, 0x11ff],
  [0xa960, 0xa97f],
  [0xd7b0, 0xd7ff],
  [0x20d0, 0x20ff],
  [0x1d100, 0x1d24f],
];
/** Whether a code point is in one of these ranges (combining marks in a regex class read as combined characters). */
export function inRanges(c: string, ranges: readonly (readonly [number, number])[]): boolean {
  const cp = c.codePointAt(0) as number;
  return ranges.some(([from, to]) => cp >= from && cp <= to);
}
/** RFC 5892 Appendix A CONTEXTO characters outside LetterDigits (the Arabic-Indic digits are judged with the label). */
const CONTEXTO = /^[\u00b7\u0375\u05f3\u05f4\u30fb]$/u;

/** Whether one code point of a U-label is PVALID or CONTEXTO (RFC 5892 section 3), apart from its context. */
function isValidCodePoint(c: string): boolean {
  if (/^[a-z0-9-]$/.test(c) || PVALID_EXCEPTION.test(c) || CONTEXTO.test(c)) return true;
  if (inRanges(c, DISALLOWED) || !LETTER_DIGIT.test(c)) return false;
  // Unstable (RFC 5892 2.3): NFKC_Casefold would change it. Casefold beyond lower-casing (Cherokee small letters)
  // belongs to scripts the name rule refuses.
  return c.normalize('NFKC') === c && c.toLowerCase() === c;
}

/** RFC 5892 Appendix A.3-A.9: each CONTEXTO character in its required context. (A.1-A.2 CONTEXTJ: see isULabel.) */
function contextOk(chars: string[], i: number): boolean {
  const c = chars[i];
  const before = chars[i - 1] ?? '';
  const after = chars[i + 1] ?? '';
  switch (c) {
    case '\u00b7': // A.3 MIDDLE DOT: between two l (Catalan l·l).
      return before === 'l' && after === 'l';
    case '\u0375': // A.4 GREEK LOWER NUMERAL SIGN: before a Greek character.
      return /^\p{sc=Greek}$/u.test(after);
    case '\u05f3': // A.5, A.6 HEBREW GERESH and GERSHAYIM: after a Hebrew character.
    case '\u05f4':
      return /^\p{sc=Hebrew}$/u.test(before);
    case '\u30fb': // A.7 KATAKANA MIDDLE DOT: in a label holding Hiragana, Katakana or Han.
      return chars.some((x) => x !== '\u30fb' && /^[\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Han}]$/u.test(x));
    default:
      return true;
  }
}

/**
 * Whether a string is a U-label by IDNA2008: not empty, NFC, every code point PVALID or CONTEXTO in its context
 * (RFC 5892: no upper case, symbols, punctuation but the hyphen, spaces, compatibility characters, DISALLOWED
 * exceptions; A.3-A.9 middle dot, Greek keraia, Hebrew geresh and gershayim, Katakana middle dot, and no Arabic-Indic
 * digits with extended Arabic-Indic ones), no leading combining mark (RFC 5891 4.2.3.2) and the hyphen rules of RFC
 * 5891 4.2.3.1. CONTEXTJ ZWJ and ZWNJ (A.1, A.2) are refused in every context: the name rule refuses every
 * invisible character, and a device name has no need for the Persian or Indic joining forms they select.
 */
export function isULabel(u: string): boolean {
  if (u === '' || u.normalize('NFC') !== u || /^\p{M}/u.test(u)) return false;
  if (u.startsWith('-') || u.endsWith('-') || u.slice(2, 4) === '--') return false;
  const chars = [...u];
  if (!chars.every((c, i) => isValidCodePoint(c) && contextOk(chars, i))) return false;
  // A.8, A.9: the two sets of Arabic-Indic digits never in one label.
  return !(/[\u0660-\u0669]/.test(u) && /[\u06f0-\u06f9]/.test(u));
}

type BidiClass = 'L' | 'R' | 'AL' | 'AN' | 'EN' | 'ES' | 'NSM' | 'ON';

/** Scripts whose letters are Bidi_Class AL (Arabic letters); the other right-to-left scripts' letters are R. */
const ARABIC_LETTER = /^[\p{sc=Arabic}\p{sc=Syriac}\p{sc=Thaana}\p{sc=Hanifi_Rohingya}\p{sc=Sogdian}]$/u;
const RIGHT_TO_LEFT =
  /^[\p{sc=Hebrew}\p{sc=Nko}\p{sc=Samaritan}\p{sc=Mandaic}\p{sc=Adlam}\p{sc=Mende_Kikakui}\p{sc=Imperial_Aramaic}\p{sc=Phoenician}\p{sc=Kharoshthi}\p{sc=Old_South_Arabian}\p{sc=Old_North_Arabian}\p{sc=Avestan}\p{sc=Inscriptional_Parthian}\p{sc=Inscriptional_Pahlavi}\p{sc=Psalter_Pahlavi}\p{sc=Old_Turkic}\p{sc=Old_Hungarian}\p{sc=Hatran}\p{sc=Nabataean}\p{sc=Palmyrene}\p{sc=Manichaean}\p{sc=Lydian}\p{sc=Cypriot}\p{sc=Old_Sogdian}\p{sc=Elymaic}\p{sc=Chorasmian}\p{sc=Yezidi}\p{sc=Old_Uyghur}]$/u;

/**
 * The Bidi_Class of a character a U-label may hold (the PVALID and CONTEXTO ones above; anything else is refused
 * before). ASCII and extended Arabic-Indic digits are EN, Arabic-Indic digits AN, the hyphen ES, nonspacing and
 * enclosing marks NSM, the geresh and gershayim R, the other CONTEXTO punctuation ON, letters and digits of
 * right-to-left scripts R or AL, everything else (letters, spacing marks and digits of left-to-right scripts) L.
 */
function bidiClass(c: string): BidiClass {
  if (/^[0-9\u06f0-\u06f9]$/.test(c)) return 'EN';
  if (/^[\u0660-\u0669]$/.test(c)) return 'AN';
  if (c === '-') return 'ES';
  if (/^[\p{Mn}\p{Me}]$/u.test(c)) return 'NSM';
  if (c === '\u05f3' || c === '\u05f4') return 'R';
  if (/^[\u00b7\u0375\u30fb]$/.test(c)) return 'ON';
  if (ARABIC_LETTER.test(c)) return 'AL';
  if (RIGHT_TO_LEFT.test(c)) return 'R';
  return 'L';
}

const RTL_LABEL = /^(?:R|AL)$/;

/** RFC 5893 2 conditions 1-6 on one label's classes. */
function labelOk(classes: BidiClass[]): boolean {
  const first = classes[0];
  // The last class that is not NSM (conditions 3 and 6: "followed by zero or more NSM").
  const last = [...classes].reverse().find((k) => k !== 'NSM');
  if (RTL_LABEL.test(first)) {
    if (!classes.every((k) => ['R', 'AL', 'AN', 'EN', 'ES', 'ON', 'NSM'].includes(k))) return false;
    if (!['R', 'AL', 'EN', 'AN'].includes(last ?? '')) return false;
    return !(classes.includes('EN') && classes.includes('AN'));
  }
  if (first !== 'L') return false;
  return classes.every((k) => ['L', 'EN', 'ES', 'ON', 'NSM'].includes(k)) && (last === 'L' || last === 'EN');
}

/**
 * RFC 5893 section 2, the Bidi Rule: when a domain name holds a right-to-left label (one with an R, AL or AN
 * character: a "Bidi domain name"), every label of it, ASCII ones included, must keep the rule's six conditions, so
 * that the name is displayed in one order everywhere (`1device` next to a Hebrew label starts with a digit and is
 * refused; Latin letters inside a Hebrew label are refused). Labels are U-labels (A-labels decoded) or LDH labels.
 */
export function satisfiesBidiRule(labels: string[]): boolean {
  const classes = labels.map((l) => [...l].map(bidiClass));
  if (!classes.some((cs) => cs.some((k) => k === 'R' || k === 'AL' || k === 'AN'))) return true;
  return classes.every((cs) => cs.length > 0 && labelOk(cs));
}
