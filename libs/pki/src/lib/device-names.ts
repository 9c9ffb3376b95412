import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { isIP } from 'node:net';
import { domainToASCII, domainToUnicode } from 'node:url';
import { OID, certDer, derTlv, isStrictDer, parseStrictDer, toAb } from './der';
import { children, contentsOf, hasAsn1jsHazard, readTlv } from './der-reader';
import { PkiError } from './pki-error';
import { hasForbiddenCharacter, isULabel, readsAsItself, satisfiesBidiRule } from '@keyserver/api-contract/name-text';

export type SanType = 'dns' | 'uri' | 'email' | 'ip';

/**
 * A certificate name reads as itself by api-contract's one rule ({@link readsAsItself},
 * `@keyserver/api-contract/name-text`): no forbidden character (controls, format, default-ignorable, private use, unassigned, U+FFFD, a leading mark), its own
 * NFKC form, UTS #39 Highly Restrictive, no whole-script look-alike of Latin, one digit system (ADR 0010 addenda). The
 * same rule judges a key's own certificate name (`CertificateNameText`) in the API and the console.
 */
export { hasForbiddenCharacter };

/** Whether a subject value is one a device may carry: {@link readsAsItself}, not empty, no leading or trailing space. */
function isValidValue(s: string): boolean {
  return s.length > 0 && s.trim() === s && readsAsItself(s);
}

/** PrintableString's character set (X.680 41.4); a request's PrintableString holding anything else is malformed. */
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * A host name as a device certificate carries it: lower-cased ("fixed"), LDH labels of 1-63 characters, at most
 * 253 characters, no trailing dot, no wildcard, and not an IP literal (nor a name whose last label is numeric); an
 * xn-- label a real A-label whose U-label reads as itself (the subject's script, look-alike and digit rules, label by
 * label as browsers judge IDNs: an all-Cyrillic label under a Latin domain is fine, an all-Cyrillic `рауре` is not)
 * and an IDNA2008 U-label; with a right-to-left label, every label keeps RFC 5893's Bidi Rule.
 * Returns the lower-cased name or undefined.
 */
export function deviceDnsName(s: string): string | undefined {
  if (s.length === 0 || s.length > 253 || !/^[\x21-\x7e]+$/.test(s)) return undefined;
  const name = s.toLowerCase();
  if (isIP(name) || isIP(name.replace(/^\[|\]$/g, ''))) return undefined;
  const labels = name.split('.');
  if (!labels.every((l) => LDH_LABEL.test(l) && (!l.startsWith('xn--') || (isALabel(l) && readsAsItself(domainToUnicode(l)))))) return undefined;
  if (/^[0-9]+$/.test(labels[labels.length - 1])) return undefined;
  // RFC 5893: a name with a right-to-left U-label is displayed in one order only if every label keeps the Bidi Rule.
  if (!satisfiesBidiRule(labels.map((l) => (l.startsWith('xn--') ? domainToUnicode(l) : l)))) return undefined;
  return name;
}

/**
 * An xn-- label that is the Punycode of a U-label (UTS #46, as URL parsers read it): decoding changes it and the
 * result encodes back to exactly it, and the U-label is one by IDNA2008 ({@link isULabel}: RFC 5892's DISALLOWED
 * code points such as symbols, emoji and upper case, CONTEXTJ and CONTEXTO rules, and RFC 5891 4.2.3.1's hyphen rules),
 * which Node's UTS #46 reading does not check. Anything else is an
 * RFC 5890 fake A-label, which readers show as itself, as garbage or as another name, or refuse; RFC 5280 7.2 (and
 * RFC 9549) put only A-labels in certificates. UTS #46 maps compatibility characters, so the Punycode of a U-label
 * holding one (`𝐃ev`, `ﬁle`) does not encode back to itself and is refused here.
 */
function isALabel(label: string): boolean {
  const u = domainToUnicode(label);
  return u !== '' && u !== label && domainToASCII(u) === label && isULabel(u);
}

function inDomains(host: string, domains: string[] | undefined): boolean {
  if (!domains?.length) return true;
  return domains.some((d) => host === d || host.endsWith(`.${d}`));
}

const DOT_ATOM = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;

export interface SanPolicy {
  allowedSanTypes: SanType[];
  maxSanCount: number;
  dnsDomains?: string[];
  uriSchemes: readonly string[];
}

/**
 * The SAN extension value of a request, validated entry by entry and re-encoded: strict DER, 1 to maxSanCount
 * entries, no duplicates, only the profile's types; dNSName (lower-cased), rfc822Name, URI and iPAddress as
 * described in docs/device-profile.md. Refusals are csr_san_invalid, csr_san_not_allowed or csr_san_too_many.
 */
export function deviceSans(extnValue: Uint8Array, policy: SanPolicy): pkijs.GeneralName[] {
  const node = parseStrictDer(extnValue);
  if (!(node instanceof asn1js.Sequence)) throw new PkiError('csr_san_invalid', 'SAN is not a DER SEQUENCE');
  if (node.valueBlock.value.length === 0) throw new PkiError('csr_san_invalid', 'empty SAN');
  if (node.valueBlock.value.length > policy.maxSanCount) throw new PkiError('csr_san_too_many', `at most ${policy.maxSanCount} SAN entries`);
  let names: pkijs.GeneralNames;
  try {
    names = new pkijs.GeneralNames({ schema: node });
  } catch (e) {
    throw new PkiError('csr_san_invalid', undefined, { cause: e });
  }
  const byType: Record<number, SanType> = { 1: 'email', 2: 'dns', 6: 'uri', 7: 'ip' };
  const seen = new Set<string>();
  return names.names.map((n) => {
    const t = byType[n.type];
    if (!t || !policy.allowedSanTypes.includes(t)) throw new PkiError('csr_san_not_allowed', `GeneralName type ${n.type}`);
    const out = sanEntry(t, n, policy);
    const id = `${out.type}:${out.type === 7 ? Buffer.from((out.value as asn1js.OctetString).valueBlock.valueHexView).toString('hex') : out.value}`;
    if (seen.has(id)) throw new PkiError('csr_san_invalid', 'duplicate SAN entry');
    seen.add(id);
    return out;
  });
}

function sanEntry(t: SanType, n: pkijs.GeneralName, policy: SanPolicy): pkijs.GeneralName {
  if (t === 'ip') {
    const v = n.value as asn1js.OctetString;
    if (!(v instanceof asn1js.OctetString) || v.idBlock.isConstructed) throw new PkiError('csr_san_invalid', 'bad iPAddress');
    const raw = sanValue(t, new Uint8Array(v.valueBlock.valueHexView), policy) as Uint8Array;
    return new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: toAb(raw) }) });
  }
  return new pkijs.GeneralName({ type: SAN_TAGS[t] as 1 | 2 | 6, value: sanValue(t, n.value as unknown, policy) as string });
}

const SAN_TAGS: Record<SanType, number> = { email: 1, dns: 2, uri: 6, ip: 7 };

/** One SAN entry's value checked and, for names, normalised (the rules of {@link deviceSans}). */
function sanValue(t: SanType, v: unknown, policy: SanPolicy): string | Uint8Array {
  if (t === 'ip') {
    const raw = v as Uint8Array;
    if (raw.length !== 4 && raw.length !== 16) throw new PkiError('csr_san_invalid', 'iPAddress is 4 or 16 bytes');
    return raw;
  }
  const s = v;
  // IA5String values: printable ASCII only (no spaces, no controls, nothing a decoder could read two ways).
  if (typeof s !== 'string' || s.length === 0 || !/^[\x21-\x7e]+$/.test(s)) throw new PkiError('csr_san_invalid', `bad ${t} value`);
  if (t === 'dns') {
    const name = deviceDnsName(s);
    if (!name) throw new PkiError('csr_san_invalid', 'dNSName is not a host name (no wildcards, no IP literals)');
    if (!inDomains(name, policy.dnsDomains)) throw new PkiError('csr_san_not_allowed', 'dNSName outside the allowed domains');
    return name;
  }
  if (t === 'email') {
    const at = s.lastIndexOf('@');
    const local = s.slice(0, at);
    const domain = at > 0 ? deviceDnsName(s.slice(at + 1)) : undefined;
    if (s.length > 254 || !domain || local.length > 64 || !DOT_ATOM.test(local)) throw new PkiError('csr_san_invalid', 'bad rfc822Name');
    if (!inDomains(domain, policy.dnsDomains)) throw new PkiError('csr_san_not_allowed', 'rfc822Name outside the allowed domains');
    return `${local}@${domain}`;
  }
  // URI: absolute (RFC 3986 scheme ":" ...), lower-case scheme from the profile, no credentials, no backslashes.
  const m = /^([a-z][a-z0-9+.-]*):(.+)$/.exec(s);
  if (!m || s.length > 1024 || s.includes('\\')) throw new PkiError('csr_san_invalid', 'URI is not absolute');
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    throw new PkiError('csr_san_invalid', 'URI does not parse');
  }
  if (!policy.uriSchemes.includes(m[1])) throw new PkiError('csr_san_not_allowed', `URI scheme ${m[1]}`);
  if (url.username || url.password) throw new PkiError('csr_san_invalid', 'URI with credentials');
  // WHATWG URL (Node, browsers) reads `https:evil.example` and `https:/evil.example` as https://evil.example/: a
  // host that RFC 3986 sees no authority for would pass no host check here and still name a host to such readers.
  if (!m[2].startsWith('//') && url.host !== '') throw new PkiError('csr_san_invalid', 'URI names a host without an authority (//)');
  if (m[2].startsWith('//')) {
    // The authority as written (what RFC 3986 readers and name-constraint checks take) must be the host the URL parser
    // read, with at most a port: no empty authority (`https:///host`, read as https://host/), no user info (even
    // empty), no percent-encoded or otherwise rewritten host.
    const written = /^\/\/([^/?#]*)/.exec(m[2])?.[1].replace(/:[0-9]*$/, '').toLowerCase();
    if (written !== url.hostname) throw new PkiError('csr_san_invalid', 'URI authority is not exactly its host');
    const host = deviceDnsName(url.hostname);
    if (!host) throw new PkiError('csr_san_invalid', 'URI host is not a host name');
    if (!inDomains(host, policy.dnsDomains)) throw new PkiError('csr_san_not_allowed', 'URI host outside the allowed domains');
  }
  if (!uriTextReadsAsItself(m[2].startsWith('//') ? m[2].replace(/^\/\/[^/?#]*/, '') : m[2])) throw new PkiError('csr_san_invalid', 'URI path, query or fragment does not read as itself');
  return s;
}

/** A percent sign that does not start an escape (RFC 3986 pct-encoded: "%" HEXDIG HEXDIG). */
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
/** The delimiters a URI's text is judged between: path segments, query parameters and their values, URN parts. */
const URI_UNIT = /[/?#&=:]/;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * A URI's path, query and fragment (or a URN's text) as a reader shows it: percent-escapes decoded as UTF-8 (invalid,
 * overlong or surrogate sequences refused), each part between delimiters judged as a subject value is
 * ({@link readsAsItself}: no control, bidi or zero-width character, its own NFKC form, one script, no whole-script
 * look-alike, one digit system). Browsers and log viewers show `%D0%B5` as `е`, so `/t%D0%B5st` is drawn as `/test`. Encoded ASCII
 * (`%2F`, `%2E`) is allowed: the profile has no rule on path text.
 */
function uriTextReadsAsItself(text: string): boolean {
  if (BAD_ESCAPE.test(text)) return false;
  // Literal text is printable ASCII (the IA5 check): only escapes can bring anything else.
  if (!text.includes('%')) return true;
  return text.split(URI_UNIT).every((unit) => {
    if (!unit.includes('%')) return true;
    const bytes = Buffer.from(unit.replace(/%([0-9A-Fa-f]{2})/g, (_e, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    let decoded: string;
    try {
      decoded = STRICT_UTF8.decode(bytes);
    } catch {
      return false;
    }
    return readsAsItself(decoded);
  });
}

const SAN_TYPE_OF_ID: Record<number, SanType> = { 0x81: 'email', 0x82: 'dns', 0x86: 'uri', 0x87: 'ip' };

/**
 * {@link deviceSans} written straight to the GeneralNames DER the certificate carries. A SAN value that is strict
 * DER and holds only primitive [1] rfc822Name, [2] dNSName, [6] URI and [7] iPAddress entries is read in place
 * (IA5 contents byte per character, as pkijs reads them); any other value takes deviceSans and its codes.
 */
export function deviceSanDer(extnValue: Uint8Array, policy: SanPolicy): Uint8Array {
  const entries = isStrictDer(extnValue) && extnValue[0] === 0x30 && !hasAsn1jsHazard(extnValue) ? children(extnValue, readTlv(extnValue, 0)) : [];
  if (entries.length === 0 || !entries.every((e) => SAN_TYPE_OF_ID[e.tag] !== undefined)) {
    return new Uint8Array(new pkijs.GeneralNames({ names: deviceSans(extnValue, policy) }).toSchema().toBER(false));
  }
  if (entries.length > policy.maxSanCount) throw new PkiError('csr_san_too_many', `at most ${policy.maxSanCount} SAN entries`);
  const seen = new Set<string>();
  const out = entries.map((e) => {
    const t = SAN_TYPE_OF_ID[e.tag];
    if (!policy.allowedSanTypes.includes(t)) throw new PkiError('csr_san_not_allowed', `GeneralName type ${e.tag & 0x1f}`);
    const raw = contentsOf(extnValue, e);
    const v = sanValue(t, t === 'ip' ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('latin1'), policy);
    const id = `${e.tag & 0x1f}:${typeof v === 'string' ? v : Buffer.from(v).toString('hex')}`;
    if (seen.has(id)) throw new PkiError('csr_san_invalid', 'duplicate SAN entry');
    seen.add(id);
    return derTlv(e.tag, typeof v === 'string' ? new Uint8Array(Buffer.from(v, 'latin1')) : v);
  });
  return derTlv(0x30, ...out);
}

/** The attribute types a device subject may have, with how many times each may occur. */
export const SUBJECT_ATTRIBUTES = {
  CN: { oid: OID.commonName, max: 1, printable: false },
  O: { oid: OID.organization, max: 1, printable: false },
  OU: { oid: OID.organizationalUnit, max: 4, printable: false },
  C: { oid: OID.country, max: 1, printable: true },
  L: { oid: OID.locality, max: 1, printable: false },
  ST: { oid: OID.state, max: 1, printable: false },
  serialNumber: { oid: OID.serialNumber, max: 1, printable: true },
} as const;
export type SubjectAttribute = keyof typeof SUBJECT_ATTRIBUTES;

/** The text of a directory string, or undefined for string types a device subject may not use. */
export function directoryString(v: unknown): string | undefined {
  if (v instanceof asn1js.Utf8String) {
    const raw = Buffer.from(v.valueBlock.valueHexView);
    const s = raw.toString('utf8');
    // Invalid UTF-8 would decode to U+FFFD: the text must re-encode to exactly the bytes sent.
    return Buffer.from(s, 'utf8').equals(raw) ? s : undefined;
  }
  if (v instanceof asn1js.PrintableString) {
    const s = v.valueBlock.value;
    return PRINTABLE.test(s) ? s : undefined;
  }
  if (v instanceof asn1js.IA5String) {
    const s = v.valueBlock.value;
    return /^[\x20-\x7e]*$/.test(s) ? s : undefined;
  }
  if (v instanceof asn1js.BmpString) return v.valueBlock.value;
  // TeletexString and UniversalString are read differently by different decoders: refused.
  return undefined;
}

/** The comparison form of a name value: NFKC, case-folded, inner whitespace collapsed, trimmed. */
const fold = (s: string) => s.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();

/** A DN as a comparable string: its (type, folded value) pairs, sorted. Two DNs equal under it are the same name. */
export function normalizedName(name: pkijs.RelativeDistinguishedNames): string {
  return normalizedPairs(
    name.typesAndValues.map((atv) => {
      const v = atv.value as { valueBlock?: { value?: unknown } } | undefined;
      return { type: atv.type, text: directoryString(v) ?? String(v?.valueBlock?.value ?? '') };
    }),
  );
}

/** {@link normalizedName} of a Name holding these (type, text) pairs. */
export function normalizedPairs(pairs: { type: string; text: string }[]): string {
  return pairs
    .map((p) => `${p.type}=${fold(p.text)}`)
    .sort()
    .join('\n');
}

/**
 * The names no device certificate may take, from the given certificates (PEM or DER): each one's normalised subject
 * DN ({@link normalizedName}) and, as {@link reservedCommonName}, each common name in it.
 */
export function reservedNames(certificates: (string | Uint8Array)[]): ReadonlySet<string> {
  const names = new Set<string>();
  for (const c of certificates) {
    const subject = pkijs.Certificate.fromBER(toAb(certDer(c))).subject;
    names.add(normalizedName(subject));
    for (const atv of subject.typesAndValues) {
      if (atv.type !== OID.commonName) continue;
      const v = atv.value as { valueBlock?: { value?: unknown } } | undefined;
      names.add(reservedCommonName(directoryString(v) ?? String(v?.valueBlock?.value ?? '')));
    }
  }
  return names;
}

/**
 * A common name as {@link reservedNames} holds it (folded like {@link normalizedName}; the prefix never starts a
 * normalised DN, whose lines start with an OID). UIs and CN-keyed authorisation show and match the CN alone, so a
 * device may not take a key's CN whatever the rest of its DN.
 */
export function reservedCommonName(text: string): string {
  return `cn:${fold(text)}`;
}

/** Whether a subject (its {@link normalizedName} and its CN) is a name no device may take: a key's DN or a key's CN. */
export function isReservedSubject(reserved: ReadonlySet<string> | undefined, normalized: string, commonName: string): boolean {
  return !!reserved && (reserved.has(normalized) || reserved.has(reservedCommonName(commonName)));
}

/**
 * The request's subject checked and re-encoded: only the profile's attribute types, each at most its count (one
 * CN at most, and one is required), 1-64 characters that read as themselves ({@link readsAsItself}: no forbidden
 * character, their own NFKC form, one script, ...), no leading or trailing space, C two upper-case letters and
 * serialNumber printable (both PrintableString), everything else UTF8String, one attribute per RDN in the request's
 * order. (The caller compares the result with the reserved names.)
 */
export function deviceSubject(subject: pkijs.RelativeDistinguishedNames, allowed: SubjectAttribute[]): pkijs.AttributeTypeAndValue[] {
  if (subject.toSchema().toBER(false).byteLength > 1024) throw new PkiError('csr_subject_too_long');
  const counts = new Map<SubjectAttribute, number>();
  const rdns: pkijs.AttributeTypeAndValue[] = [];
  for (const atv of subject.typesAndValues) {
    const name = (Object.keys(SUBJECT_ATTRIBUTES) as SubjectAttribute[]).find((k) => SUBJECT_ATTRIBUTES[k].oid === atv.type);
    if (!name || !allowed.includes(name)) throw new PkiError('csr_subject_attribute_not_allowed', atv.type);
    const spec = SUBJECT_ATTRIBUTES[name];
    const count = (counts.get(name) ?? 0) + 1;
    counts.set(name, count);
    if (count > spec.max) throw new PkiError('csr_subject_duplicate_attribute', `${name} at most ${spec.max}`);
    const s = directoryString(atv.value);
    if (s === undefined || !isValidValue(s)) throw new PkiError('csr_subject_invalid', name);
    if ([...s].length > 64) throw new PkiError('csr_subject_too_long', name);
    if (name === 'C' && !/^[A-Z]{2}$/.test(s)) throw new PkiError('csr_subject_invalid', name);
    if (spec.printable && !PRINTABLE.test(s)) throw new PkiError('csr_subject_invalid', name);
    rdns.push(new pkijs.AttributeTypeAndValue({ type: atv.type, value: spec.printable ? new asn1js.PrintableString({ value: s }) : new asn1js.Utf8String({ value: s }) }));
  }
  if (!counts.get('CN')) throw new PkiError('csr_subject_invalid', 'commonName is required');
  return rdns;
}

/** One attribute of a request's subject as the DER reader found it (csr.ts): type, string tag, raw contents. */
export interface RawAttribute {
  type: string;
  /** The OBJECT IDENTIFIER element's DER (copied into the certificate: DER has one encoding per OID). */
  typeDer: Uint8Array;
  tag: number;
  value: Uint8Array;
}

/**
 * {@link directoryString} over a raw element: UTF8String (0x0c) whose text re-encodes to exactly its bytes,
 * PrintableString (0x13, its X.680 character set) and IA5String (0x16, printable ASCII) read byte per character
 * (as asn1js does).
 * The reader hands over no other string type (BMPString and the rest go to the pkijs reading).
 */
function rawDirectoryString(tag: number, value: Uint8Array): string | undefined {
  const raw = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (tag === 0x0c) {
    const s = raw.toString('utf8');
    return Buffer.byteLength(s, 'utf8') === raw.length && Buffer.from(s, 'utf8').equals(raw) ? s : undefined;
  }
  if (tag === 0x13 || tag === 0x16) {
    const s = raw.toString('latin1');
    return (tag === 0x13 ? PRINTABLE : /^[\x20-\x7e]*$/).test(s) ? s : undefined;
  }
  return undefined;
}

/**
 * {@link deviceSubject} over the attributes the DER reader found, with the same rules in the same order, written
 * straight to DER: the certificate's subject, and its {@link normalizedName} and CN for the reserved-name check.
 */
export function deviceSubjectDer(attributes: RawAttribute[], subjectLength: number, allowed: SubjectAttribute[]): { der: Uint8Array; normalized: string; commonName: string } {
  if (subjectLength > 1024) throw new PkiError('csr_subject_too_long');
  const counts = new Map<SubjectAttribute, number>();
  const rdns: Uint8Array[] = [];
  const pairs: { type: string; text: string }[] = [];
  for (const atv of attributes) {
    const name = ATTRIBUTE_BY_OID.get(atv.type);
    if (!name || !allowed.includes(name)) throw new PkiError('csr_subject_attribute_not_allowed', atv.type);
    const spec = SUBJECT_ATTRIBUTES[name];
    const count = (counts.get(name) ?? 0) + 1;
    counts.set(name, count);
    if (count > spec.max) throw new PkiError('csr_subject_duplicate_attribute', `${name} at most ${spec.max}`);
    const s = rawDirectoryString(atv.tag, atv.value);
    if (s === undefined || !isValidValue(s)) throw new PkiError('csr_subject_invalid', name);
    if ([...s].length > 64) throw new PkiError('csr_subject_too_long', name);
    if (name === 'C' && !/^[A-Z]{2}$/.test(s)) throw new PkiError('csr_subject_invalid', name);
    if (spec.printable && !PRINTABLE.test(s)) throw new PkiError('csr_subject_invalid', name);
    // One attribute per RDN, PrintableString or UTF8String: the bytes nameOf(deviceSubject(...)) writes.
    rdns.push(derTlv(0x31, derTlv(0x30, atv.typeDer, derTlv(spec.printable ? 0x13 : 0x0c, new Uint8Array(Buffer.from(s, spec.printable ? 'latin1' : 'utf8'))))));
    pairs.push({ type: atv.type, text: s });
  }
  const commonName = pairs.find((p) => p.type === OID.commonName)?.text;
  if (commonName === undefined) throw new PkiError('csr_subject_invalid', 'commonName is required');
  return { der: derTlv(0x30, ...rdns), normalized: normalizedPairs(pairs), commonName };
}

const ATTRIBUTE_BY_OID = new Map<string, SubjectAttribute>((Object.keys(SUBJECT_ATTRIBUTES) as SubjectAttribute[]).map((k) => [SUBJECT_ATTRIBUTES[k].oid, k]));
