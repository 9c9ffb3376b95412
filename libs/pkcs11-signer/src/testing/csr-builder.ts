import * as asn1js from 'asn1js';
import { KeyObject, sign as nodeSign } from 'node:crypto';

const ab = (u: Uint8Array) => u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;

export const oid = (value: string) => new asn1js.ObjectIdentifier({ value });

/** Name with one attribute per RDN; values are UTF8String unless an asn1js value is given. */
export function name(attrs: [string, string | asn1js.AsnType][]): asn1js.Sequence {
  return new asn1js.Sequence({
    value: attrs.map(([type, v]) => new asn1js.Set({ value: [new asn1js.Sequence({ value: [oid(type), typeof v === 'string' ? new asn1js.Utf8String({ value: v }) : v] })] })),
  });
}

export function extension(id: string, critical: boolean, value: Uint8Array | ArrayBuffer): asn1js.Sequence {
  const v = value instanceof Uint8Array ? ab(value) : value;
  return new asn1js.Sequence({
    value: [oid(id), ...(critical ? [new asn1js.Boolean({ value: true })] : []), new asn1js.OctetString({ valueHex: v })],
  });
}

export function extensionRequest(exts: asn1js.Sequence[]): asn1js.Sequence {
  return new asn1js.Sequence({ value: [oid('1.2.840.113549.1.9.14'), new asn1js.Set({ value: [new asn1js.Sequence({ value: exts })] })] });
}

export interface CsrParts {
  spki: Uint8Array;
  subject: asn1js.Sequence;
  attributes?: asn1js.AsnType[];
  version?: number;
  signKey: KeyObject;
  /** Node digest name, or null for Ed25519. */
  hash: string | null;
  sigOid: string;
  /** RSA signature algorithms carry NULL parameters. */
  nullParams?: boolean;
  /** Replaces the signature bytes. */
  signature?: Uint8Array;
}

/** Builds a PKCS#10 CertificationRequest by hand so tests can produce exactly the hostile shape they need. */
export function buildCsr(p: CsrParts): Uint8Array {
  const spki = asn1js.fromBER(ab(p.spki)).result;
  const tbs = new asn1js.Sequence({
    value: [
      new asn1js.Integer({ value: p.version ?? 0 }),
      p.subject,
      spki,
      new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 0 }, value: p.attributes ?? [] }),
    ],
  });
  const tbsDer = new Uint8Array(tbs.toBER(false));
  const sig = p.signature ?? new Uint8Array(nodeSign(p.hash, tbsDer, p.signKey));
  return new Uint8Array(
    new asn1js.Sequence({
      value: [
        tbs,
        new asn1js.Sequence({ value: [oid(p.sigOid), ...(p.nullParams ? [new asn1js.Null()] : [])] }),
        new asn1js.BitString({ valueHex: ab(sig) }),
      ],
    }).toBER(false),
  );
}

export function pem(label: string, der: Uint8Array): string {
  return `-----BEGIN ${label}-----\n${(Buffer.from(der).toString('base64').match(/.{1,64}/g) ?? []).join('\n')}\n-----END ${label}-----\n`;
}
