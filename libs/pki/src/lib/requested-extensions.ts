import { OID, isStrictDer, keyIdentifier } from './der';
import { DerShapeError, children, contentsOf, hasAsn1jsHazard, oidString, readTlv } from './der-reader';
import { PkiError } from './pki-error';

/** One Extension of a request's extensionRequest, as either reader found it (after its refusal checks). */
export interface RequestedExtension {
  id: string;
  critical: boolean;
  /** The extnValue's contents. */
  value: Uint8Array;
  /** keyUsage: the named bits (the BIT STRING's contents after the unused-bits byte). */
  keyUsage?: Uint8Array;
}

/** What a device certificate of this request carries, the yardstick of "honoured". */
export interface GrantedExtensions {
  /** Our re-encoded key: the SKI is its key identifier. */
  spki: Uint8Array;
  /** keyUsage carries keyAgreement too (EC key, profile `keyAgreement`). */
  keyAgreement: boolean;
}

const DIGITAL_SIGNATURE = 0x80;
const KEY_AGREEMENT = 0x08;

/**
 * Whether the certificate carries what a requested extension asks for (docs/device-profile.md "Extensions"):
 * basicConstraints (cA false by then) and subjectAltName (every entry copied, or the request refused) always;
 * keyUsage when every bit asked for is one we set; extKeyUsage when it asks for clientAuth only; subjectKeyIdentifier
 * when it is our key identifier. Criticality is the profile's (RFC 5280): it is not part of what is honoured.
 * undefined: an extension the profile does not know.
 */
function honoured(x: RequestedExtension, granted: GrantedExtensions): boolean | undefined {
  switch (x.id) {
    case OID.basicConstraints:
    case OID.subjectAltName:
      return true;
    case OID.keyUsage: {
      const bits = x.keyUsage ?? new Uint8Array();
      const allowed = DIGITAL_SIGNATURE | (granted.keyAgreement ? KEY_AGREEMENT : 0);
      return bits.every((b, i) => (i === 0 ? (b & ~allowed) === 0 : b === 0));
    }
    case OID.extKeyUsage:
      return readDer(x.value, (v) => {
        const purposes = children(v, readTlv(v, 0));
        return v[0] === 0x30 && purposes.length > 0 && purposes.every((p) => p.tag === 0x06 && oidString(v, p) === OID.clientAuth);
      });
    case OID.subjectKeyIdentifier:
      return readDer(x.value, (v) => v[0] === 0x04 && Buffer.from(contentsOf(v, readTlv(v, 0))).equals(Buffer.from(keyIdentifier(granted.spki))));
    default:
      return undefined;
  }
}

/** `read` over a strict DER value; a value that is not one (or not of the shape read expects) is not honoured. */
function readDer(v: Uint8Array, read: (v: Uint8Array) => boolean): boolean {
  if (!isStrictDer(v) || hasAsn1jsHazard(v)) return false;
  try {
    return read(v);
  } catch (e) {
    if (e instanceof DerShapeError) return false;
    throw e;
  }
}

/**
 * A requested extension the certificate does not honour: critical, the request is refused (a critical extension
 * says "do not use me without it": `csr_unknown_critical_extension` for one we do not know, `csr_extension_unsupported`
 * for one we know and do not grant as asked); non-critical, its OID is added to `ignored` (the certificate is issued
 * without it, and the answer and the audit event say so).
 */
export function judgeRequestedExtension(x: RequestedExtension, granted: GrantedExtensions, ignored: string[]): void {
  const h = honoured(x, granted);
  if (h) return;
  if (x.critical) throw new PkiError(h === undefined ? 'csr_unknown_critical_extension' : 'csr_extension_unsupported', x.id);
  ignored.push(x.id);
}
