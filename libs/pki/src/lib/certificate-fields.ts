import { children, contentsOf, oidString, readTlv } from './der-reader';
import { OID } from './der';

// The certificate table stores an issued device certificate's subject, SANs and validity as Node's X509Certificate
// prints them (`subject` lines joined by ", ", `subjectAltName` split on ", "). Parsing the certificate we have just
// written cost ~120 us of CPU per certificate (OpenSSL 3 decodes the whole certificate and its key; issue 20); these
// print the same text from the DER parts we wrote. Anything outside the shapes a device certificate has (one
// attribute per RDN of the profile's attributes, UTF8String or PrintableString, the four SAN types) is undefined,
// and the caller then asks Node (certificate-fields.spec.ts holds both to the same text).

/** The fields of the certificate table that describe the certificate. */
export interface CertificateFields {
  subjectDn: string;
  sans: string[];
  notBefore: Date;
  notAfter: Date;
}

const SHORT_NAMES: Record<string, string> = {
  [OID.commonName]: 'CN',
  [OID.serialNumber]: 'serialNumber',
  [OID.country]: 'C',
  [OID.locality]: 'L',
  [OID.state]: 'ST',
  [OID.organization]: 'O',
  [OID.organizationalUnit]: 'OU',
};

/** OpenSSL's RFC 2253 escaping (ASN1_STRFLGS_ESC_2253 | ESC_CTRL | UTF8_CONVERT), as X509_NAME_print_ex applies it. */
function escape2253(value: string): string {
  const chars = [...value];
  let out = '';
  chars.forEach((ch, i) => {
    const c = ch.codePointAt(0) as number;
    if (',+"\\<>;'.includes(ch) || (i === 0 && (ch === '#' || ch === ' ')) || (i === chars.length - 1 && ch === ' ')) out += `\\${ch}`;
    else if (c < 0x20 || c === 0x7f) out += `\\${c.toString(16).toUpperCase().padStart(2, '0')}`;
    else out += ch;
  });
  return out;
}

/** A Name as `X509Certificate.subject` prints it, its lines joined by ", "; undefined for shapes not handled here. */
export function subjectText(name: Uint8Array): string | undefined {
  try {
    const seq = readTlv(name, 0);
    if (seq.tag !== 0x30 || seq.end !== name.length) return undefined;
    const parts: string[] = [];
    for (const rdn of children(name, seq)) {
      const atvs = rdn.tag === 0x31 ? children(name, rdn) : [];
      if (atvs.length !== 1 || atvs[0].tag !== 0x30) return undefined;
      const [type, value, ...rest] = children(name, atvs[0]);
      if (!type || !value || rest.length > 0 || type.tag !== 0x06) return undefined;
      const short = SHORT_NAMES[oidString(name, type)];
      if (!short) return undefined;
      const bytes = Buffer.from(contentsOf(name, value));
      let text: string;
      if (value.tag === 0x0c) text = bytes.toString('utf8');
      else if (value.tag === 0x13) text = bytes.toString('latin1');
      else return undefined;
      if (!Buffer.from(text, value.tag === 0x0c ? 'utf8' : 'latin1').equals(bytes)) return undefined;
      parts.push(`${short}=${escape2253(text)}`);
    }
    return parts.length > 0 ? parts.join(', ') : undefined;
  } catch {
    return undefined;
  }
}

/** Node's test for printing an IA5 alt name as is (src/crypto: IsSafeAltName, ASCII mode). */
const safeAltName = (s: string): boolean => /^[\x20-\x7e]*$/.test(s) && !/["\\,']/.test(s);

/** Node's printing of an alt name that is not safe: JSON-like quoting, other bytes as \u00XX. */
function quotedAltName(bytes: Buffer): string {
  let out = '"';
  for (const b of bytes) {
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x22) out += '\\"';
    else if (b >= 0x20 && b !== 0x2c && b <= 0x7e) out += String.fromCharCode(b);
    else out += `\\u00${b.toString(16).padStart(2, '0')}`;
  }
  return `${out}"`;
}

const ALT_PREFIX: Record<number, string> = { 0x81: 'email:', 0x82: 'DNS:', 0x86: 'URI:' };

/** GeneralNames as `X509Certificate.subjectAltName` prints them, split into entries; undefined for shapes not handled. */
export function subjectAltNameTexts(generalNames: Uint8Array): string[] | undefined {
  try {
    const seq = readTlv(generalNames, 0);
    if (seq.tag !== 0x30 || seq.end !== generalNames.length) return undefined;
    const out: string[] = [];
    for (const gn of children(generalNames, seq)) {
      const bytes = Buffer.from(contentsOf(generalNames, gn));
      const prefix = ALT_PREFIX[gn.tag];
      if (prefix) {
        const text = bytes.toString('latin1');
        out.push(prefix + (safeAltName(text) ? text : quotedAltName(bytes)));
      } else if (gn.tag === 0x87 && bytes.length === 4) out.push(`IP Address:${[...bytes].join('.')}`);
      else if (gn.tag === 0x87 && bytes.length === 16) {
        out.push(`IP Address:${Array.from({ length: 8 }, (_, j) => ((bytes[2 * j] << 8) | bytes[2 * j + 1]).toString(16).toUpperCase()).join(':')}`);
      } else return undefined;
    }
    return out;
  } catch {
    return undefined;
  }
}
