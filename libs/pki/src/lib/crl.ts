import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { HsmKeyInfo, HsmSigner } from './hsm-signer';
import { OID, toAb, toPem } from './der';
import { PkiError } from './pki-error';
import { akiExtension, ext, parseIssuer, x509Time } from './certificates';
import { ensurePkijsEngine, signData, signatureAlgorithm } from './sign';

/** RFC 5280 CRLReason values we emit. */
export const CRL_REASONS = {
  unspecified: 0,
  keyCompromise: 1,
  cACompromise: 2,
  affiliationChanged: 3,
  superseded: 4,
  cessationOfOperation: 5,
  certificateHold: 6,
  privilegeWithdrawn: 9,
} as const;
export type CrlReason = keyof typeof CRL_REASONS;

export interface RevokedCertificateEntry {
  /** Serial as lower-case hex of the DER INTEGER content (as returned at issuance). */
  serialHex: string;
  revocationDate: Date;
  reason?: CrlReason;
}

export interface CrlResult {
  crlDer: Uint8Array;
  crlPem: string;
}

/**
 * The DER INTEGER content of a positive serial: a leading zero byte only before a byte with its high bit (X.690
 * 8.3.2), so that the CRL is DER and lists the integer the certificate carries, not another spelling of it.
 */
function positiveInteger(hexValue: string, maxBytes: number): Uint8Array {
  if (typeof hexValue !== 'string' || !/^(?:[0-9a-f]{2})+$/.test(hexValue) || hexValue.length / 2 > maxBytes) {
    throw new PkiError('invalid_crl_input', 'serial must be even-length lower-case hex of at most 20 bytes');
  }
  const b = new Uint8Array(Buffer.from(hexValue, 'hex'));
  if (b[0] & 0x80 || b.every((x) => x === 0)) throw new PkiError('invalid_crl_input', 'serial must be positive');
  if (b.length > 1 && b[0] === 0 && !(b[1] & 0x80)) throw new PkiError('invalid_crl_input', 'serial must be the minimal DER INTEGER content (no leading zero byte it does not need)');
  return b;
}

/** Ascending integer order of minimal positive INTEGER contents: shorter first, then byte by byte. */
function compareSerials(a: Uint8Array, b: Uint8Array): number {
  return a.length - b.length || Buffer.compare(a, b);
}

/**
 * v2 CRL for `caCert` with AKI and cRLNumber, signed in the HSM by `caKey`: DER, one encoding per revoked set
 * (entries in ascending serial order, times in whole seconds, UTCTime to 2049 and GeneralizedTime after, a reasonCode
 * except for unspecified, no invalidityDate: docs/adr/0029 addendum of session 25).
 */
export async function createCrl(
  signer: HsmSigner,
  caKey: HsmKeyInfo,
  caCert: string | Uint8Array,
  revoked: RevokedCertificateEntry[],
  crlNumber: bigint | number,
  thisUpdate: Date,
  nextUpdate: Date,
): Promise<CrlResult> {
  ensurePkijsEngine();
  const issuer = parseIssuer({ key: caKey, certificate: caCert });
  const kuExt = issuer.cert.extensions?.find((e) => e.extnID === OID.keyUsage);
  const ku = new Uint8Array((kuExt?.parsedValue as asn1js.BitString).valueBlock.valueHexView);
  if (!(ku[0] & 0x02)) throw new PkiError('issuer_not_ca', 'CA certificate lacks cRLSign');
  const n = BigInt(crlNumber);
  if (n < 0n || n >= 1n << 159n) throw new PkiError('invalid_crl_input', 'crlNumber out of range');
  // Compared as written (whole seconds): a nextUpdate in thisUpdate's second would be equal to it in the CRL.
  const second = (d: Date) => Math.floor(d.getTime() / 1000);
  if (!(thisUpdate instanceof Date) || !(nextUpdate instanceof Date) || !(second(nextUpdate) > second(thisUpdate))) throw new PkiError('invalid_validity');
  const seen = new Set<string>();
  const checked = revoked.map((r) => {
    if (seen.has(r.serialHex)) throw new PkiError('invalid_crl_input', 'duplicate serial');
    seen.add(r.serialHex);
    if (!(r.revocationDate instanceof Date) || isNaN(+r.revocationDate)) throw new PkiError('invalid_crl_input', 'bad revocation date');
    // Own keys only: `in` would take toString, constructor or __proto__ for a reason.
    if (r.reason !== undefined && !(typeof r.reason === 'string' && Object.hasOwn(CRL_REASONS, r.reason))) throw new PkiError('invalid_crl_input', 'bad reason');
    return { serial: positiveInteger(r.serialHex, 20), revocationDate: r.revocationDate, reason: r.reason };
  });
  // One DER per revoked set: entries in ascending serial order, whatever order the caller read them in.
  const entries = checked
    .sort((a, b) => compareSerials(a.serial, b.serial))
    .map(
      (r) =>
        new pkijs.RevokedCertificate({
          userCertificate: new asn1js.Integer({ valueHex: toAb(r.serial) }),
          revocationDate: x509Time(r.revocationDate),
          ...(r.reason !== undefined && r.reason !== 'unspecified'
            ? { crlEntryExtensions: new pkijs.Extensions({ extensions: [ext(OID.crlReason, false, new asn1js.Enumerated({ value: CRL_REASONS[r.reason] }))] }) }
            : {}),
        }),
    );
  const crl = new pkijs.CertificateRevocationList();
  crl.version = 1;
  crl.signature = signatureAlgorithm(caKey);
  crl.signatureAlgorithm = signatureAlgorithm(caKey);
  crl.issuer = issuer.cert.subject;
  crl.thisUpdate = x509Time(thisUpdate);
  crl.nextUpdate = x509Time(nextUpdate);
  if (entries.length) crl.revokedCertificates = entries;
  let nHex = n.toString(16);
  if (nHex.length % 2) nHex = `0${nHex}`;
  if (parseInt(nHex.slice(0, 2), 16) & 0x80) nHex = `00${nHex}`;
  crl.crlExtensions = new pkijs.Extensions({
    extensions: [akiExtension(issuer.spki, issuer.keyIdentifier), ext(OID.crlNumber, false, new asn1js.Integer({ valueHex: toAb(new Uint8Array(Buffer.from(nHex, 'hex'))) }))],
  });
  // toSchema(true) re-encodes the TBS part from the fields set above.
  crl.tbsView = new Uint8Array((crl.toSchema(true) as asn1js.Sequence).valueBlock.value[0].toBER(false));
  const sig = await signData(signer, caKey, crl.tbsView);
  crl.signatureValue = new asn1js.BitString({ valueHex: toAb(sig) });
  const der = new Uint8Array(crl.toSchema().toBER(false));
  return { crlDer: der, crlPem: toPem('X509 CRL', der) };
}
