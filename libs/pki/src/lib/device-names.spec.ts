import * as fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { domainToASCII, domainToUnicode } from 'node:url';
import { buildCsr, extensionRequest, generalName, generateTestKey, nameDer, sanExtension, type NameEntry } from '../testing/csr-builder';
import { rawALabel } from '../testing/punycode';
import { createTestCa, tryIssue, type TestCa } from '../testing/test-ca';
import { hasHiddenCharacters } from '@keyserver/api-contract/visible-text';
import { derTlv, OID } from './der';
import { deviceDnsName, hasForbiddenCharacter } from './device-names';
import { isHighlyRestrictive, LATIN_LOOKALIKES } from '@keyserver/api-contract/name-text';

const key = generateTestKey('EC-P256');
const csrWith = (subject: NameEntry[], ...sans: Uint8Array[]) =>
  buildCsr({ subject: nameDer(subject), spki: key.spki, attributes: sans.length ? [extensionRequest(sanExtension(...sans))] : [], signatureAlgorithm: key.signatureAlgorithm, sign: key.sign });
const CN = (v: string, tag?: number): NameEntry => [OID.commonName, v, tag];
const dns = (v: string) => generalName(2, v);
const uri = (v: string) => generalName(6, v);
const email = (v: string) => generalName(1, v);
const ip = (...b: number[]) => generalName(7, new Uint8Array(b));
/** Whether a case variant is still made of look-alikes (a lower-case Cherokee letter mostly is not). */
const hasLookalikeCase = (v: string) => [...v.normalize('NFD')].every((c) => /\p{M}/u.test(c) || LATIN_LOOKALIKES.has(c.codePointAt(0) as number));

describe('device certificate subject and SAN policy', () => {
  let t: TestCa;
  beforeAll(async () => {
    t = await createTestCa();
  });

  describe('subject', () => {
    it.each([
      ['fail two CNs', [CN('a'), CN('b')], 'csr_subject_duplicate_attribute'],
      ['fail two O', [CN('a'), [OID.organization, 'x'], [OID.organization, 'y']] as NameEntry[], 'csr_subject_duplicate_attribute'],
      ['fail no CN', [[OID.organization, 'Acme']] as NameEntry[], 'csr_subject_invalid'],
      ['fail the CA DN', [[OID.organization, 'Acme'], CN('Test Device CA')] as NameEntry[], 'csr_subject_reserved'],
      ['fail the root DN in another order, case and spacing', [CN('test  ROOT'), [OID.organization, 'ACME']] as NameEntry[], 'csr_subject_reserved'],
      // Full-width letters are not their NFKC form: refused as themselves before any reserved-name comparison.
      ['fail the root DN in full-width letters (not NFKC-stable)', [CN('Ｔｅｓｔ Root'), [OID.organization, 'Acme']] as NameEntry[], 'csr_subject_invalid'],
      // UIs and CN-keyed authorisation show and match the CN alone: a key's CN is reserved whatever the rest of the DN.
      ['fail the CA common name alone', [CN('Test Device CA')], 'csr_subject_reserved'],
      ['fail the root common name with more attributes, in other case', [CN('TEST root'), [OID.organization, 'Acme'], [OID.organizationalUnit, 'Devices']] as NameEntry[], 'csr_subject_reserved'],
      ['fail the root common name with more attributes, in full-width letters (not NFKC-stable)', [CN('ＴＥＳＴ root'), [OID.organization, 'Acme'], [OID.organizationalUnit, 'Devices']] as NameEntry[], 'csr_subject_invalid'],
      ['fail the CA common name as a PrintableString with another O', [CN('Test Device CA', 0x13), [OID.organization, 'Evil']] as NameEntry[], 'csr_subject_reserved'],
      ['fail NUL', [CN('dev\u0000ice')], 'csr_subject_invalid'],
      ['fail DEL', [CN('dev\u007fice')], 'csr_subject_invalid'],
      ['fail C1 control', [CN('dev\u0085ice')], 'csr_subject_invalid'],
      ['fail right-to-left override', [CN('device\u202egpj.exe')], 'csr_subject_invalid'],
      ['fail first strong isolate', [CN('device\u2068x')], 'csr_subject_invalid'],
      ['fail left-to-right mark', [CN('device\u200e')], 'csr_subject_invalid'],
      ['fail Arabic letter mark', [CN('device\u061c')], 'csr_subject_invalid'],
      ['fail zero-width space', [CN('dev\u200bice')], 'csr_subject_invalid'],
      ['fail zero-width joiner', [CN('dev\u200dice')], 'csr_subject_invalid'],
      ['fail word joiner', [CN('dev\u2060ice')], 'csr_subject_invalid'],
      ['fail BOM', [CN('\ufeffdevice')], 'csr_subject_invalid'],
      ['fail line separator', [CN('a\u2028b')], 'csr_subject_invalid'],
      ['fail not NFC (e + combining acute)', [CN('caf\u0065\u0301')], 'csr_subject_invalid'],
      ['fail leading space', [CN(' device')], 'csr_subject_invalid'],
      ['fail 65 characters', [CN('x'.repeat(65))], 'csr_subject_too_long'],
      ['fail lowercase country', [CN('d'), [OID.country, 'de', 0x13]] as NameEntry[], 'csr_subject_invalid'],
      ['fail TeletexString', [[OID.commonName, 'device', 0x14]] as NameEntry[], 'csr_subject_invalid'],
      ['fail PrintableString country with UTF-8 bytes', [CN('d'), [OID.country, 'DÉ', 0x13]] as NameEntry[], 'csr_subject_invalid'],
      ['fail an attribute outside the profile (email in the DN)', [CN('d'), ['1.2.840.113549.1.9.1', 'a@b.c', 0x16]] as NameEntry[], 'csr_subject_attribute_not_allowed'],
      // Characters a reader does not see (the console names them \u{...}, ADR 0047) and NFKC keeps.
      ['fail a soft hyphen', [CN('dev\u00adice')], 'csr_subject_invalid'],
      ['fail the CA DN with a soft hyphen (drawn as the CA name, compares as another)', [[OID.organization, 'Acme'], CN('Test Device CA\u00ad')] as NameEntry[], 'csr_subject_invalid'],
      ['fail the root DN with a Hangul filler for its space (a letter drawn blank)', [CN('Test\u3164Root'), [OID.organization, 'Acme']] as NameEntry[], 'csr_subject_invalid'],
      ['fail a tag character', [CN('device\u{e0041}')], 'csr_subject_invalid'],
      ['fail the Mongolian vowel separator', [CN('dev\u180eice')], 'csr_subject_invalid'],
      ['fail an interlinear annotation anchor', [CN('a\ufff9b')], 'csr_subject_invalid'],
      ['fail a variation selector', [CN('device\ufe00')], 'csr_subject_invalid'],
      ['fail the combining grapheme joiner', [CN('dev\u034fice')], 'csr_subject_invalid'],
      ['fail a noncharacter outside the BMP', [CN('device\u{1fffe}')], 'csr_subject_invalid'],
      ['fail a private-use character', [CN('device\ue000')], 'csr_subject_invalid'],
      ['fail an unassigned code point (its normalisation may change with Unicode)', [CN('device\u0378')], 'csr_subject_invalid'],
      ['fail a value that starts with a combining mark (drawn over the "=" before it)', [CN('\u0338x')], 'csr_subject_invalid'],
      ['fail a PrintableString with a character outside its set', [CN('dev@ice', 0x13)], 'csr_subject_invalid'],
      ['fail a PrintableString serialNumber with an underscore', [CN('d'), [OID.serialNumber, 'SN_1', 0x13]] as NameEntry[], 'csr_subject_invalid'],
      // Look-alike letters: UTS #39 Highly Restrictive per value (ADR 0010 addendum "look-alike letters").
      ['fail mixed Latin+Cyrillic (the CA name with a Cyrillic е U+0435: drawn as it, compares as another)', [[OID.organization, 'Acme'], CN('T\u0435st Device CA')] as NameEntry[], 'csr_subject_invalid'],
      ['fail mixed Latin+Greek (a Greek omicron in the root CN)', [CN('Test R\u03bfot')], 'csr_subject_invalid'],
      ['fail mixed Latin+Cyrillic in an O beside a Latin CN', [CN('device-7'), [OID.organization, 'Ac\u043ce']] as NameEntry[], 'csr_subject_invalid'],
      ['fail mixed Latin+Cyrillic in an OU', [CN('device-7'), [OID.organizationalUnit, 'Line \u0421']] as NameEntry[], 'csr_subject_invalid'],
      // Whole-script look-alikes (UTS #39 4): one non-Latin script, every letter drawn as an ASCII letter.
      ['fail an all-Cyrillic CA (С U+0421, А U+0410)', [CN('\u0421\u0410')], 'csr_subject_invalid'],
      ['fail the CA name written only in Cyrillic capitals (ТЕЅТ)', [CN('\u0422\u0415\u0405\u0422')], 'csr_subject_invalid'],
      ['fail an all-Cyrillic рауре in an O', [CN('device-7'), [OID.organization, '\u0440\u0430\u0443\u0440\u0435']] as NameEntry[], 'csr_subject_invalid'],
      ['fail an all-Greek ΑΒΕ in an OU, with digits', [CN('device-7'), [OID.organizationalUnit, '\u0391\u0392\u0395 7']] as NameEntry[], 'csr_subject_invalid'],
      ['fail an all-Cyrillic look-alike in NFD (ё as е + U+0308)', [CN('\u0451\u0441')], 'csr_subject_invalid'],
      // Mixed numbers (UTS #39 5.4): digits of two decimal systems in one value.
      ['fail ASCII 0 with an Arabic-Indic ٣ in Arabic text (one script, two digit systems)', [CN('\u062c\u0647\u0627\u0632 0\u0663')], 'csr_subject_invalid'],
      ['fail ASCII digits with a fullwidth digit', [CN('device-1\uff12')], 'csr_subject_invalid'],
      ['fail ASCII digits with a Devanagari digit in Devanagari text', [CN('\u0909\u092a\u0915\u0930\u0923 7\u0967')], 'csr_subject_invalid'],
      // Compatibility characters (a value must be its own NFKC form, ADR 0010 addendum "compatibility look-alikes"):
      // Common (or Latin) characters drawn as ASCII letters, which a relying party compares as other code points.
      ['fail mathematical bold letters only (𝐃𝐞𝐯𝐢𝐜𝐞)', [CN('\u{1d403}\u{1d41e}\u{1d42f}\u{1d422}\u{1d41c}\u{1d41e}')], 'csr_subject_invalid'],
      ['fail mathematical monospace letters only (𝙳𝚎𝚟)', [CN('\u{1d673}\u{1d68e}\u{1d69f}')], 'csr_subject_invalid'],
      ['fail the CA common name in mathematical bold (was compared as the CA name after NFKC)', [CN('\u{1d413}\u{1d41e}\u{1d42c}\u{1d42d} Device CA')], 'csr_subject_invalid'],
      ['fail mathematical bold letters in an O beside a Latin CN', [CN('device-7'), [OID.organization, 'Ac\u{1d426}e']] as NameEntry[], 'csr_subject_invalid'],
      ['fail full-width letters only (ｄｅｖｉｃｅ)', [CN('\uff44\uff45\uff56\uff49\uff43\uff45')], 'csr_subject_invalid'],
      ['fail full-width digits only (１２３)', [CN('\uff11\uff12\uff13')], 'csr_subject_invalid'],
      ['fail circled letters (ⓓⓔⓥ)', [CN('\u24d3\u24d4\u24e5')], 'csr_subject_invalid'],
      ['fail parenthesised letters (⒟⒠⒱)', [CN('\u249f\u24a0\u24b1')], 'csr_subject_invalid'],
      ['fail a superscript digit (device²)', [CN('device\u00b2')], 'csr_subject_invalid'],
      ['fail superscript letters (ᵈᵉᵛ)', [CN('\u1d48\u1d49\u1d5b')], 'csr_subject_invalid'],
      ['fail a ligature (ﬁrmware)', [CN('\ufb01rmware')], 'csr_subject_invalid'],
      ['fail a roman numeral (device Ⅸ)', [CN('device \u2168')], 'csr_subject_invalid'],
      ['fail the Kelvin sign (K)', [CN('dev\u212a')], 'csr_subject_invalid'],
      ['fail the Ohm sign (Ω)', [CN('\u2126mega')], 'csr_subject_invalid'],
      ['fail a long s (ſtore)', [CN('\u017ftore')], 'csr_subject_invalid'],
      ['fail the micro sign (a Greek μ to NFKC)', [CN('5 \u00b5m')], 'csr_subject_invalid'],
      ['fail a no-break space for a space (drawn as Test Root)', [CN('Test\u00a0Root')], 'csr_subject_invalid'],
      ['fail a trade mark sign (™)', [CN('Acme\u2122')], 'csr_subject_invalid'],
      ['fail a half-width katakana (ﾃﾞﾊﾞｲｽ)', [CN('\uff83\uff9e\uff8a\uff9e\uff72\uff7d')], 'csr_subject_invalid'],
      ['fail an Arabic presentation form', [CN('\ufe8d\ufedf')], 'csr_subject_invalid'],
    ])('%s', async (_n, subject, code) => {
      expect(await tryIssue(t, csrWith(subject as NameEntry[]))).toEqual({ code });
    });

    it('fail invalid UTF-8 in a UTF8String', async () => {
      const bad = nameDer([CN('devicé')]);
      bad[Buffer.from(bad).indexOf(0xc3)] = 0xff;
      expect(await tryIssue(t, buildCsr({ subject: bad, spki: key.spki, signatureAlgorithm: key.signatureAlgorithm, sign: key.sign }))).toEqual({ code: 'csr_subject_invalid' });
    });

    it('fail a soft hyphen in a BMPString (the pkijs reading)', async () => {
      const bmp = Buffer.from('dev\u00adice', 'utf16le').swap16();
      const subject = derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x1e, new Uint8Array(bmp)))));
      expect(await tryIssue(t, buildCsr({ subject, spki: key.spki, signatureAlgorithm: key.signatureAlgorithm, sign: key.sign }))).toEqual({ code: 'csr_subject_invalid' });
    });

    it('ok a key\'s common name as another attribute (only the CN names the holder)', async () => {
      const out = await tryIssue(t, csrWith([[OID.organization, 'Test Root'], CN('device-7')]));
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subject).toBe('O=Test Root\nCN=device-7');
    });

    it('fail the CA common name alone in a BMPString (the pkijs reading)', async () => {
      const bmp = Buffer.from('Test Device CA', 'utf16le').swap16();
      const subject = derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x1e, new Uint8Array(bmp)))));
      expect(await tryIssue(t, buildCsr({ subject, spki: key.spki, signatureAlgorithm: key.signatureAlgorithm, sign: key.sign }))).toEqual({ code: 'csr_subject_reserved' });
    });

    it('ok a PrintableString of its whole set, an IA5String with @, both re-encoded', async () => {
      const out = await tryIssue(t, csrWith([CN("A-z 0'()+,./:=?", 0x13), [OID.organizationalUnit, 'ops@line-7', 0x16]]));
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subject).toBe("CN=A-z 0'()\\+\\,./:=?\nOU=ops@line-7");
    });

    it('ok non-BMP and accented names (NFKC), several OUs, re-encoded as UTF8String one per RDN', async () => {
      const out = await tryIssue(t, csrWith([CN('Gerät 🔐 ✓ 5°C'), [OID.organizationalUnit, 'a', 0x13], [OID.organizationalUnit, 'b']]));
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subject).toBe('CN=Gerät 🔐 ✓ 5°C\nOU=a\nOU=b');
    });

    it.each([
      ['ok all-Cyrillic', [CN('Устройство 7')]],
      ['ok Latin+Han+Katakana', [CN('Device 装置 デバイス')]],
      ['ok Latin+Han+Hangul', [CN('Acme 漢字 한국어')]],
      ['ok digits and punctuation with any one script (Greek)', [CN('Συσκευή-0001 (7)')]],
      ['ok one script per value, another in the next value (Cyrillic CN, Latin O)', [CN('Устройство'), [OID.organization, 'Acme']]],
      ['ok a real Cyrillic word some of whose letters look Latin (Москва)', [CN('Москва')]],
      ['ok a real Greek word (Σ, κ, η have no ASCII look-alike)', [CN('Συσκευή')]],
      ['ok Arabic with Arabic-Indic digits only (one decimal system)', [CN('جهاز ١٢٣')]],
      ['ok Devanagari with Devanagari digits only', [CN('उपकरण १२')]],
      ['ok a Japanese place name (東京)', [CN('東京')]],
      ['ok a Korean place name (서울)', [CN('서울')]],
      ['ok a Hangul word and Han (서울 漢字)', [CN('서울 漢字')]],
    ] as [string, NameEntry[]][])('%s', async (_n, subject) => {
      const out = await tryIssue(t, csrWith(subject));
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subject).toBe(subject.map(([oid, v]) => `${oid === OID.commonName ? 'CN' : 'O'}=${v}`).join('\n'));
    });

    it('fail mixed Latin+Cyrillic in a BMPString (the pkijs reading)', async () => {
      const bmp = Buffer.from('T\u0435st Device CA', 'utf16le').swap16();
      const subject = derTlv(0x30, derTlv(0x31, derTlv(0x30, derTlv(0x06, new Uint8Array([0x55, 0x04, 0x03])), derTlv(0x1e, new Uint8Array(bmp)))));
      expect(await tryIssue(t, buildCsr({ subject, spki: key.spki, signatureAlgorithm: key.signatureAlgorithm, sign: key.sign }))).toEqual({ code: 'csr_subject_invalid' });
    });

    it('subject values drawn from two incompatible scripts are refused; one script plus Common characters, with a letter that has no ASCII look-alike, is issued as itself (property)', async () => {
      const letters = (from: number, to: number, script: string) =>
        fc
          .integer({ min: from, max: to })
          .map((cp) => String.fromCodePoint(cp))
          // The Latin clicks (U+01C0-01C3, drawn as `l`, `‖`, `ǂ`, `!`) are refused as technical characters.
          .filter((c) => /^\p{L}$/u.test(c) && new RegExp(`^\\p{sc=${script}}$`, 'u').test(c) && c.normalize('NFKC') === c && !/[\u01c0-\u01c3]/u.test(c));
      const SCRIPT = { Latin: letters(0x41, 0x24f, 'Latin'), Cyrillic: letters(0x400, 0x4ff, 'Cyrillic'), Greek: letters(0x391, 0x3ce, 'Greek'), Armenian: letters(0x531, 0x587, 'Armenian') };
      const common = fc.constantFrom(...'0123456789-.:/()# '.split(''));
      const names = Object.keys(SCRIPT) as (keyof typeof SCRIPT)[];
      const pairs = names.flatMap((a) => names.filter((b) => b !== a).map((b) => [a, b] as const));
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...pairs).chain(([a, b]) =>
            fc.record({
              first: SCRIPT[a],
              other: SCRIPT[b],
              rest: fc.array(fc.oneof(SCRIPT[a], SCRIPT[b], common), { maxLength: 16 }),
              single: fc.array(fc.oneof(SCRIPT[a], common), { maxLength: 16 }),
              // Without it, a value of look-alikes only (`ΑΑ`) is a whole-script confusable, refused by its own rule.
              own: SCRIPT[a].filter((c) => !LATIN_LOOKALIKES.has(c.normalize('NFD').codePointAt(0) as number)),
              last: SCRIPT[a],
              at: fc.nat(),
            }),
          ),
          async ({ first, other, rest, single, own, last, at }) => {
            const mixed = [first, ...rest];
            mixed.splice(1 + (at % mixed.length), 0, other);
            expect(await tryIssue(t, csrWith([CN([...mixed, last].join(''))]))).toEqual({ code: 'csr_subject_invalid' });
            const cn = [first, own, ...single, last].join('');
            const out = await tryIssue(t, csrWith([CN(cn)]));
            expect('certificatePem' in out && new X509Certificate(out.certificatePem).subject).toBe(`CN=${cn}`);
          },
        ),
        { seed: 1305, numRuns: 60 },
      );
    });

    it('hostile Unicode never reaches a certificate: it is refused or carried unchanged (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.string({ unit: 'binary', minLength: 1, maxLength: 70 }), async (cn) => {
          const out = await tryIssue(t, csrWith([CN(cn)]));
          if ('code' in out) return;
          expect(hasForbiddenCharacter(cn)).toBe(false);
          expect(new X509Certificate(out.certificatePem).subject).toBe(`CN=${cn}`);
        }),
        { seed: 1305, numRuns: 150 },
      );
    });

    // Characters NFKC folds to something else, as the hostile spellings an attacker draws ASCII names with: the
    // mathematical alphanumerics, full-width and half-width forms, enclosed and parenthesised letters, superscripts
    // and subscripts, letter-like symbols, number forms, ligatures and presentation forms.
    const compatChar = fc
      .oneof(
        fc.integer({ min: 0x1d400, max: 0x1d7ff }),
        fc.integer({ min: 0xff00, max: 0xffef }),
        fc.integer({ min: 0x2460, max: 0x24ff }),
        fc.integer({ min: 0x2070, max: 0x209f }),
        fc.integer({ min: 0x2100, max: 0x218f }),
        fc.integer({ min: 0x1d2c, max: 0x1d6a }),
        fc.integer({ min: 0xfb00, max: 0xfb4f }),
        fc.integer({ min: 0xfe70, max: 0xfeff }),
        fc.integer({ min: 0x3300, max: 0x33ff }),
        fc.constantFrom(0x00a0, 0x00aa, 0x00b2, 0x00b5, 0x00ba, 0x00bd, 0x017f, 0x2126, 0x212a, 0x212b, 0x2024, 0x2025, 0x2026),
      )
      .map((cp) => String.fromCodePoint(cp));
    const hostileName = fc.array(fc.oneof(fc.constantFrom(...'Device-7 CA'.split('')), compatChar, fc.string({ unit: 'grapheme', maxLength: 2 })), { minLength: 1, maxLength: 12 }).map((a) => a.join(''));
    /** Single-script in UTS #39's sense (its resolved script set is not empty, or a CJK cover): the oracle is scripts.ts, tested on its own. */
    const nfkcStableAndSingleScript = (s: string) => s.normalize('NFKC') === s && isHighlyRestrictive(s);

    it('for any value s: issued(s) implies s is its own NFKC form and single-script; any compatibility character is refused (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(hostileName, fc.string({ unit: 'binary', minLength: 1, maxLength: 20 })), async (cn) => {
          const out = await tryIssue(t, csrWith([CN('device-7'), [OID.organizationalUnit, cn]]));
          if ('code' in out) return;
          expect(nfkcStableAndSingleScript(cn)).toBe(true);
          expect(new X509Certificate(out.certificatePem).subject).toBe(`CN=device-7\nOU=${cn}`);
        }),
        { seed: 1305, numRuns: 200 },
      );
      await fc.assert(
        fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 6 }), compatChar.filter((c) => c.normalize('NFKC') !== c), fc.string({ unit: 'grapheme', maxLength: 6 }), async (before, c, after) => {
          expect(await tryIssue(t, csrWith([CN(`d${before}${c}${after}`)]))).toHaveProperty('code');
        }),
        { seed: 1305, numRuns: 150 },
      );
    });

    it('the same property for a percent-encoded URI path segment and an IDN label (after ToUnicode)', async () => {
      await fc.assert(
        fc.asyncProperty(hostileName, async (text) => {
          const out = await tryIssue(t, csrWith([CN('device')], uri(`https://a.example/d/${encodeURIComponent(text)}`)));
          if (!('code' in out)) expect(nfkcStableAndSingleScript(text)).toBe(true);
          const label = domainToASCII(text);
          if (label === '' || label.length > 63 || label.includes('.')) return;
          const asDns = await tryIssue(t, csrWith([CN('device')], dns(`${label}.example`)));
          if (!('code' in asDns)) for (const l of label.split('.')) expect(nfkcStableAndSingleScript(domainToUnicode(l))).toBe(true);
        }),
        { seed: 1305, numRuns: 150 },
      );
    });

    it('issued non-Latin and symbol names parse with openssl and Node as written', async () => {
      const names = ['Москва', 'Συσκευή', '東京', '서울', 'Gerät 🔐 ✓ 5°C', 'جهاز ١٢٣'];
      for (const cn of names) {
        const out = await tryIssue(t, csrWith([CN(cn)], dns(`${domainToASCII(cn === '東京' ? '東京' : 'device')}.example`)));
        if (!('certificatePem' in out)) throw new Error(`not issued: ${cn} ${JSON.stringify(out)}`);
        expect(new X509Certificate(out.certificatePem).subject).toBe(`CN=${cn}`);
        const text = execFileSync('openssl', ['x509', '-noout', '-subject', '-ext', 'subjectAltName', '-nameopt', 'utf8,sep_comma_plus,space_eq'], { input: out.certificatePem, encoding: 'utf8' });
        expect(text).toContain(`subject=CN = ${cn}`);
      }
    });

    // The console's hidden characters (api-contract visible-text), private use, unassigned code points and every
    // default-ignorable code point: the oracle is Unicode's own classes, not the rule under test.
    const unseen = (c: string) => hasHiddenCharacters(c) || /[\p{Co}\p{Cn}\p{Default_Ignorable_Code_Point}]/u.test(c);
    const unseenChar = fc
      .oneof(
        fc.integer({ min: 0, max: 0x10ffff }),
        fc.integer({ min: 0, max: 0x24f }),
        fc.integer({ min: 0x2000, max: 0x206f }),
        fc.integer({ min: 0xfe00, max: 0xffff }),
        fc.integer({ min: 0xe0000, max: 0xe0fff }),
        fc.constantFrom(0x00ad, 0x034f, 0x115f, 0x1160, 0x17b4, 0x180e, 0x3164, 0xffa0, 0x1d173, 0x1bca0),
      )
      .map((cp) => String.fromCodePoint(cp))
      .filter(unseen);

    it('a character a reader does not see is never issued, anywhere in a value (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.string({ unit: 'grapheme', maxLength: 20 }), unseenChar, fc.string({ unit: 'grapheme', maxLength: 20 }), async (before, c, after) => {
          expect(await tryIssue(t, csrWith([CN(`d${before}${c}${after}`)]))).toHaveProperty('code');
        }),
        { seed: 1305, numRuns: 200 },
      );
    });

    // Whole-script look-alikes in hostile spellings: any case, NFC or NFD, fullwidth digits beside ASCII ones, a
    // zero-width or bidi character inserted. Each spelling is refused; none is issued.
    const LOOKALIKES = ['аеорсхуіјѕАВЕКМНОРСТХЅІЈ', 'αοιρνΑΒΕΖΗΙΚΜΝΟΡΤΥΧ', 'օսոհցզՕՍ', 'ᎪᏴᏟᎠᎬᎻᏦᎷᏢᏚᎢᏙᎳᎩᏃ'];
    const hostileSpelling = fc
      .tuple(
        fc.constantFrom(...LOOKALIKES).chain((set) => fc.array(fc.constantFrom(...set), { minLength: 1, maxLength: 10 })),
        fc.constantFrom('upper', 'lower', 'as is'),
        fc.constantFrom('NFC', 'NFD'),
        fc.option(fc.constantFrom('\u200b', '\u200c', '\u200d', '\u2060', '\ufeff', '\u202e', '\u2066', '\u200e', '\u061c')),
        fc.option(fc.constantFrom('7\uff17', '\uff10', '1')),
        fc.nat(),
      )
      .map(([letters, c, form, inserted, digits, at]) => {
        const cased = letters.map((l) => {
          const v = c === 'upper' ? l.toUpperCase() : c === 'lower' ? l.toLowerCase() : l;
          return hasLookalikeCase(v) ? v : l;
        });
        if (inserted) cased.splice(1 + (at % cased.length), 0, inserted);
        return `${cased.join('')}${digits ?? ''}`.normalize(form as 'NFC' | 'NFD');
      });

    it('a value written only in one script\'s Latin look-alikes is refused in every hostile spelling (property)', async () => {
      await fc.assert(
        fc.asyncProperty(hostileSpelling, async (cn) => {
          expect(await tryIssue(t, csrWith([CN('device-7'), [OID.organization, cn]]))).toEqual({ code: 'csr_subject_invalid' });
        }),
        { seed: 1305, numRuns: 150 },
      );
    });

    it('the same spellings, percent-encoded in a URI path segment, are refused (property)', async () => {
      await fc.assert(
        fc.asyncProperty(hostileSpelling, async (text) => {
          expect(await tryIssue(t, csrWith([CN('device')], uri(`https://a.example/d/${encodeURIComponent(text)}`)))).toEqual({ code: 'csr_san_invalid' });
        }),
        { seed: 1305, numRuns: 150 },
      );
    });

    it('a percent-encoded URI path segment is issued exactly when the same text is a valid subject value (property)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }).filter((s) => s.trim() === s && [...s].length <= 64),
          async (text) => {
            const asUri = await tryIssue(t, csrWith([CN('device')], uri(`https://a.example/d/${encodeURIComponent(text)}`)));
            const asSubject = await tryIssue(t, csrWith([CN('device-7'), [OID.organizationalUnit, text]]));
            expect('code' in asUri ? asUri.code : 'issued').toBe('code' in asSubject ? 'csr_san_invalid' : 'issued');
          },
        ),
        { seed: 1305, numRuns: 200 },
      );
    });

    it('the CA DN with such a character inserted anywhere is refused, not issued as a look-alike (property)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.integer({ min: 0, max: 14 }), unseenChar, async (at, c) => {
          const cn = `Test Device CA`.slice(0, at) + c + `Test Device CA`.slice(at);
          expect(await tryIssue(t, csrWith([[OID.organization, 'Acme'], CN(cn)]))).toHaveProperty('code');
        }),
        { seed: 1305, numRuns: 200 },
      );
    });
  });

  describe('SANs', () => {
    it.each([
      ['fail a wildcard dNSName', [dns('*.devices.example')], 'csr_san_invalid'],
      ['fail an IPv4 literal as dNSName', [dns('192.0.2.1')], 'csr_san_invalid'],
      ['fail an IPv6 literal as dNSName', [dns('[2001:db8::1]')], 'csr_san_invalid'],
      ['fail a numeric last label', [dns('device.123')], 'csr_san_invalid'],
      ['fail a trailing dot', [dns('device.example.')], 'csr_san_invalid'],
      ['fail an underscore', [dns('dev_ice.example')], 'csr_san_invalid'],
      ['fail a label of 64 characters', [dns(`${'a'.repeat(64)}.example`)], 'csr_san_invalid'],
      ['fail a leading hyphen', [dns('-device.example')], 'csr_san_invalid'],
      ['fail an empty label', [dns('device..example')], 'csr_san_invalid'],
      ['fail a NUL in a dNSName', [dns('device.example\u0000.evil')], 'csr_san_invalid'],
      ['fail non-ASCII in a dNSName', [dns('dévice.example')], 'csr_san_invalid'],
      ['fail a relative URI', [uri('/devices/7')], 'csr_san_invalid'],
      ['fail a URI without scheme-specific part', [uri('urn:')], 'csr_san_invalid'],
      ['fail a URI with a space', [uri('https://a.example/x y')], 'csr_san_invalid'],
      ['fail a URI with credentials', [uri('https://user:pw@a.example/')], 'csr_san_invalid'],
      ['fail a URI with an upper-case scheme', [uri('HTTPS://a.example/')], 'csr_san_invalid'],
      ['fail a URI scheme outside the profile', [uri('javascript:alert(1)')], 'csr_san_not_allowed'],
      ['fail a URI with an IP host', [uri('https://192.0.2.1/')], 'csr_san_invalid'],
      // WHATWG URL (Node, browsers) reads these as https://192.0.2.1/: a host without an RFC 3986 authority.
      ['fail a URI with an IP host a URL parser finds without //', [uri('https:192.0.2.1')], 'csr_san_invalid'],
      ['fail a URI with an IP host a URL parser finds after one slash', [uri('https:/192.0.2.1/')], 'csr_san_invalid'],
      ['fail a duplicate entry', [dns('a.example'), dns('A.example')], 'csr_san_invalid'],
      ['fail an rfc822Name outside the profile', [email('a@b.example')], 'csr_san_not_allowed'],
      ['fail an iPAddress outside the profile', [ip(192, 0, 2, 1)], 'csr_san_not_allowed'],
      ['fail a registeredID', [generalName(8, new Uint8Array([0x2a, 0x03]))], 'csr_san_not_allowed'],
      // RFC 5890 fake A-labels: xn-- that is not the Punycode of a U-label (RFC 5280 7.2 / RFC 9549 carry A-labels).
      ['fail a dNSName with a fake A-label', [dns('xn--abc.example')], 'csr_san_invalid'],
      ['fail a dNSName with an upper-case fake A-label', [dns('XN--A-ECP.example')], 'csr_san_invalid'],
      ['fail a URI host with a fake A-label', [uri('https://xn--abc.example/')], 'csr_san_invalid'],
      // The authority as written (RFC 3986 readers) must be the host a URL parser reads (WHATWG: Node, browsers).
      ['fail a URI with an empty authority a URL parser reads a host after', [uri('https:///evil.example/')], 'csr_san_invalid'],
      ['fail a URI with a percent-encoded host', [uri('https://%65vil.example/')], 'csr_san_invalid'],
      ['fail a URI with an empty user info', [uri('https://@a.example/')], 'csr_san_invalid'],
      ['fail nine entries (cap 8)', Array.from({ length: 9 }, (_, i) => dns(`d${i}.example`)), 'csr_san_too_many'],
      // Look-alike letters in IDN labels, judged after ToUnicode, label by label (UTS #39 Highly Restrictive).
      ['fail mixed Latin+Cyrillic in a dNSName label (pаypal with a Cyrillic а)', [dns(`${domainToASCII('p\u0430ypal')}.example`)], 'csr_san_invalid'],
      ['fail mixed Latin+Greek in a URI host label', [uri(`https://${domainToASCII('g\u03bfogle')}.example/`)], 'csr_san_invalid'],
      // Whole-script look-alikes and mixed numbers in IDN labels, judged after ToUnicode, label by label.
      ['fail an all-Cyrillic рауре dNSName label', [dns(`${domainToASCII('\u0440\u0430\u0443\u0440\u0435')}.example`)], 'csr_san_invalid'],
      ['fail an all-Greek URI host label (ορια)', [uri(`https://${domainToASCII('\u03bf\u03c1\u03b9\u03b1')}.example/`)], 'csr_san_invalid'],
      ['fail a dNSName label with ASCII and Devanagari digits', [dns(`${domainToASCII('\u0909\u092a\u0915\u0930\u09237\u0967')}.example`)], 'csr_san_invalid'],
      // Percent-encoded text in a URI's path, query and fragment: decoded (strict UTF-8) and judged as literal text.
      ['fail a URI path with an encoded Cyrillic е in a Latin segment', [uri('https://a.example/t%D0%B5st')], 'csr_san_invalid'],
      ['fail a URI path with an encoded all-Cyrillic look-alike segment', [uri('https://a.example/d/%D1%80%D0%B0%D1%83%D1%80%D0%B5')], 'csr_san_invalid'],
      ['fail a URI path with encoded invalid UTF-8', [uri('https://a.example/%C3%28')], 'csr_san_invalid'],
      ['fail a URI path with an encoded overlong slash', [uri('https://a.example/%C0%AF')], 'csr_san_invalid'],
      ['fail a URI path with an encoded UTF-8 surrogate', [uri('https://a.example/%ED%A0%80')], 'csr_san_invalid'],
      ['fail a URI path with an encoded NUL', [uri('https://a.example/a%00b')], 'csr_san_invalid'],
      ['fail a URI path with an encoded newline', [uri('https://a.example/a%0Ab')], 'csr_san_invalid'],
      ['fail a URI path with an encoded right-to-left override', [uri('https://a.example/device%E2%80%AEgpj.exe')], 'csr_san_invalid'],
      ['fail a URI path with an encoded zero-width space', [uri('https://a.example/dev%E2%80%8Bice')], 'csr_san_invalid'],
      ['fail a URI path with an encoded soft hyphen', [uri('https://a.example/dev%C2%ADice')], 'csr_san_invalid'],
      ['fail a URI path with text not in NFC (e + encoded combining acute)', [uri('https://a.example/cafe%CC%81')], 'csr_san_invalid'],
      ['fail a URI path segment starting with an encoded combining mark', [uri('https://a.example/%CC%B8x')], 'csr_san_invalid'],
      ['fail a URI path with encoded mixed numbers', [uri('https://a.example/line-0%D9%A3')], 'csr_san_invalid'],
      ['fail a URI query value with an encoded Greek omicron in Latin text', [uri('https://a.example/d?name=R%CE%BFot')], 'csr_san_invalid'],
      ['fail a URI fragment with an encoded bidi isolate', [uri('https://a.example/d#x%E2%81%A8y')], 'csr_san_invalid'],
      ['fail a URN with an encoded all-Cyrillic look-alike', [uri('urn:example:%D0%A1%D0%90')], 'csr_san_invalid'],
      ['fail a URI with a percent sign that is not an escape', [uri('https://a.example/100%')], 'csr_san_invalid'],
      ['fail a URI with a truncated escape', [uri('https://a.example/a%4')], 'csr_san_invalid'],
      // Compatibility characters in percent-encoded text: drawn as ASCII, compared as other code points.
      ['fail a URI path with encoded mathematical bold letters (𝐃ev)', [uri(`https://a.example/${encodeURIComponent('\u{1d403}ev')}`)], 'csr_san_invalid'],
      ['fail a URI path with encoded full-width letters', [uri(`https://a.example/d/${encodeURIComponent('\uff44\uff45\uff56')}`)], 'csr_san_invalid'],
      ['fail a URI query with an encoded ligature', [uri(`https://a.example/d?f=${encodeURIComponent('\ufb01rmware')}`)], 'csr_san_invalid'],
      ['fail a URI path with an encoded no-break space', [uri('https://a.example/a%C2%A0b')], 'csr_san_invalid'],
      // IDNA: A-labels only (RFC 5890/5891): a U-label may not start or end with a hyphen nor have -- in positions 3-4.
      ['fail an A-label whose U-label starts with a hyphen (xn----eha: -ü)', [dns('xn----eha.example')], 'csr_san_invalid'],
      ['fail an A-label whose U-label ends with a hyphen (xn----dha: ü-)', [dns('xn----dha.example')], 'csr_san_invalid'],
      ['fail an A-label whose U-label has -- in positions 3-4 (ab--ü)', [dns('xn--ab---3ra.example')], 'csr_san_invalid'],
      ['fail a URI host whose U-label starts with a hyphen', [uri('https://xn----eha.example/')], 'csr_san_invalid'],
      ['fail an upper-case A-label whose U-label mixes scripts (XN--: pаypal)', [dns(`${domainToASCII('p\u0430ypal').toUpperCase()}.example`)], 'csr_san_invalid'],
      ['fail an upper-case URI host A-label whose U-label is a whole-script look-alike', [uri(`https://${domainToASCII('\u0440\u0430\u0443\u0440\u0435').toUpperCase()}.example/`)], 'csr_san_invalid'],
      ['fail an A-label of mathematical bold letters (not a UTS #46 A-label)', [dns('xn--sy1hsbfbs1f.example')], 'csr_san_invalid'],
      ['fail an A-label of a ligature (ﬁle)', [dns('xn--le-1b1n.example')], 'csr_san_invalid'],
      ['fail an xn-- label with nothing after it', [dns('xn--.example')], 'csr_san_invalid'],
    ])('%s', async (_n, sans, code) => {
      expect(await tryIssue(t, csrWith([CN('device')], ...sans))).toEqual({ code });
    });

    it.each([
      ['fail a dNSName outside the allowed domains', [dns('device.evil.example')], 'csr_san_not_allowed'],
      ['fail a suffix that is not a label boundary', [dns('xdevices.example')], 'csr_san_not_allowed'],
      ['fail a URI host outside the allowed domains', [uri('https://evil.example/')], 'csr_san_not_allowed'],
      ['fail a URI host outside the allowed domains that a URL parser finds without //', [uri('https:evil.example')], 'csr_san_invalid'],
      ['fail a URI host outside the allowed domains that a URL parser finds after one slash', [uri('https:/evil.example/x')], 'csr_san_invalid'],
      ['fail a URI host inside the allowed domains without //', [uri('https:x.devices.example')], 'csr_san_invalid'],
      ['fail an rfc822Name domain outside the allowed domains', [email('a@evil.example')], 'csr_san_not_allowed'],
      ['fail an rfc822Name domain with a fake A-label', [email('a@xn--abc.devices.example')], 'csr_san_invalid'],
      ['fail a URI with an empty authority a URL parser reads an allowed host after', [uri('https:///x.devices.example/')], 'csr_san_invalid'],
      ['fail a URI with a percent-encoded allowed host', [uri('https://%78.devices.example/')], 'csr_san_invalid'],
      ['fail a bad rfc822Name', [email('a@@devices.example')], 'csr_san_invalid'],
      ['fail an iPAddress of 5 bytes', [ip(1, 2, 3, 4, 5)], 'csr_san_invalid'],
      ['fail two entries over a cap of one', [dns('a.devices.example'), dns('b.devices.example')], 'csr_san_too_many'],
      ['fail mixed Latin+Cyrillic in an rfc822Name domain label', [email(`ops@${domainToASCII('\u0430pple')}.devices.example`)], 'csr_san_invalid'],
      ['fail an upper-case rfc822Name domain A-label that mixes scripts', [email(`ops@${domainToASCII('\u0430pple').toUpperCase()}.devices.example`)], 'csr_san_invalid'],
      ['fail an rfc822Name domain whose U-label ends with a hyphen', [email('ops@xn----dha.devices.example')], 'csr_san_invalid'],
      ['fail an rfc822Name local part that is not ASCII (SmtpUTF8Mailbox is not offered)', [email('dév@devices.example')], 'csr_san_invalid'],
      ['fail an emoji U-label in a dNSName (IDNA2008 DISALLOWED)', [dns('xn--ls8h.devices.example')], 'csr_san_invalid'],
      ['fail a middle dot not between two l in a URI host (CONTEXTO)', [uri('https://xn--ab-0ea.devices.example/')], 'csr_san_invalid'],
      ['fail a Hebrew label beside a label starting with a digit in an rfc822Name domain (Bidi Rule)', [email(`ops@${rawALabel('שלום')}.7.devices.example`)], 'csr_san_invalid'],
    ])('%s (configured profile)', async (_n, sans, code) => {
      const profile = { allowedSanTypes: ['dns', 'uri', 'email', 'ip'] as const, dnsDomains: ['devices.example'], maxSanCount: 1 };
      expect(await tryIssue(t, csrWith([CN('device')], ...sans), { ...profile, allowedSanTypes: [...profile.allowedSanTypes] })).toEqual({ code });
    });

    it('ok IDN A-labels, a URI host in upper case with a port', async () => {
      const out = await tryIssue(t, csrWith([CN('device')], dns('xn--bcher-kva.devices.example'), uri('https://X.Devices.Example:8443/d'), email('ops@xn--55qx5d.devices.example')), {
        allowedSanTypes: ['dns', 'uri', 'email'],
        dnsDomains: ['devices.example'],
      });
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subjectAltName).toBe(
        'DNS:xn--bcher-kva.devices.example, URI:https://X.Devices.Example:8443/d, email:ops@xn--55qx5d.devices.example',
      );
    });

    it('ok an all-Cyrillic IDN label under a Latin domain, a Latin+Han+Katakana label (each label judged alone)', async () => {
      const cyrillic = domainToASCII('пример');
      const japanese = domainToASCII('acme装置デバイス');
      const out = await tryIssue(t, csrWith([CN('device')], dns(`${cyrillic}.devices.example`), uri(`https://${japanese}.devices.example/`)));
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subjectAltName).toBe(`DNS:${cyrillic}.devices.example, URI:https://${japanese}.devices.example/`);
    });

    it('ok percent-encoded text a reader reads as itself: an all-Cyrillic segment, accented Latin, encoded ASCII and delimiters (no path rule in the profile)', async () => {
      const uris = ['https://a.example/d/%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0/line-7', 'https://a.example/Ger%C3%A4t?n=%E6%9D%B1%E4%BA%AC#%C3%B1', 'https://a.example/a%2Fb/%2E%2E/%41%20b', 'urn:example:%D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0'];
      const out = await tryIssue(t, csrWith([CN('device')], ...uris.map(uri)));
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subjectAltName).toBe(uris.map((u) => `URI:${u}`).join(', '));
    });

    it('ok every allowed type within the profile, dNSNames lower-cased', async () => {
      const out = await tryIssue(t, csrWith([CN('device')], dns('Dev-7.Devices.Example'), uri('urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100'), uri('https://x.devices.example/d/7'), email('ops@devices.example'), ip(192, 0, 2, 1)), {
        allowedSanTypes: ['dns', 'uri', 'email', 'ip'],
        dnsDomains: ['devices.example'],
      });
      expect('certificatePem' in out && new X509Certificate(out.certificatePem).subjectAltName).toBe(
        'DNS:dev-7.devices.example, URI:urn:uuid:0f0e0d0c-0b0a-4908-8706-050403020100, URI:https://x.devices.example/d/7, email:ops@devices.example, IP Address:192.0.2.1',
      );
    });
  });

  describe(deviceDnsName.name, () => {
    it.each([
      ['ok', 'a.example', 'a.example'],
      ['ok xn-- label', 'xn--bcher-kva.example', 'xn--bcher-kva.example'],
      ['ok upper-case A-label, lower-cased', 'XN--BCHER-KVA.example', 'xn--bcher-kva.example'],
      ['fail fake A-label (not Punycode)', 'xn--abc.example', undefined],
      ['fail fake A-label (Punycode of nothing a URL parser maps)', 'xn--a-ecp', undefined],
      ['ok single label', 'device-7', 'device-7'],
      ['fail IPv4', '10.0.0.1', undefined],
      ['fail IPv6', '::1', undefined],
      ['fail 254 characters', `${'a.'.repeat(126)}ab`, undefined],
      // IDNA2008 (RFC 5892) on the decoded U-label, and RFC 5893's Bidi Rule over the name (ADR 0010, session 26).
      ['ok Catalan middle dot between two l (CONTEXTO)', `${rawALabel('col·lecció')}.example`, `${rawALabel('col·lecció')}.example`],
      ['ok Hebrew label under Latin labels', `${rawALabel('שלום')}.devices.example`, `${rawALabel('שלום')}.devices.example`],
      ['ok Arabic label with Arabic-Indic digits', `${rawALabel('مثال١')}.example`, `${rawALabel('مثال١')}.example`],
      ['fail an emoji U-label (DISALLOWED symbol)', 'xn--ls8h.example', undefined],
      ['fail a check mark in a U-label (DISALLOWED symbol)', `${rawALabel('ok✓')}.example`, undefined],
      ['fail a middle dot not between two l (CONTEXTO)', 'xn--ab-0ea.example', undefined],
      ['fail a leading middle dot (CONTEXTO)', 'xn--l-fda.example', undefined],
      ['fail a Greek keraia before a Latin letter (CONTEXTO)', `${rawALabel('͵a')}.example`, undefined],
      ['fail a Hebrew geresh first (CONTEXTO)', `${rawALabel('׳א')}.example`, undefined],
      ['fail a Katakana middle dot without kana or Han (CONTEXTO)', `${rawALabel('a・b')}.example`, undefined],
      ['fail Arabic-Indic digits mixed with extended ones (CONTEXTO)', `${rawALabel('مثال١۲')}.example`, undefined],
      ['fail a tatweel (DISALLOWED)', `${rawALabel('مـثال')}.example`, undefined],
      ['fail an old Hangul jamo (DISALLOWED)', `${rawALabel('\u1100\u1161')}.example`, undefined],
      ['fail a small-capital U-label (the name rule)', `${rawALabel('\u1d05\u1d07\u1d20')}.example`, undefined],
      ['fail Latin letters inside a Hebrew label (Bidi Rule)', `${rawALabel('שלוםabc')}.example`, undefined],
      ['fail a Latin label that starts with a digit beside a Hebrew label (Bidi Rule)', `${rawALabel('שלום')}.1device.example`, undefined],
      ['fail a right-to-left label that starts with a digit (Bidi Rule)', `${rawALabel('1שלום')}.example`, undefined],
      ['fail ASCII and Arabic-Indic digits in one right-to-left label (Bidi Rule)', `${rawALabel('א1٢')}.example`, undefined],
    ])('%s %s', (_n, input, expected) => {
      expect(deviceDnsName(input)).toBe(expected);
    });
  });
});
