/**
 * UTS #39 (Unicode Security Mechanisms) 5.1 resolved script sets and the 5.2 "Highly Restrictive" restriction
 * level, with the runtime's Unicode property escapes (no confusables data: a script mix is refused, a whole-script
 * look-alike such as an all-Cyrillic `СА` is not detected; ADR 0010 addendum "look-alike letters").
 */

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
