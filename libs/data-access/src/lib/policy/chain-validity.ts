import { X509Certificate } from 'node:crypto';

/**
 * The intersection of the validity periods of the external chain above a ROOT (an offline intermediate, the
 * customer's root), `bound` naming the certificate that ends first. The certificates the Keyserver issues nest inside
 * their issuer's (libs/pki `checkValidity`); an imported ROOT certificate may outlive its own issuer (RFC 5280 allows
 * it, the import accepts it), and then this, not the ROOT's notAfter, ends everything below it (ADR 0020 addendum,
 * session 25). One reading for the operation window check (data-access) and the sign path (`usableKey` in the API).
 */
export interface ExternalChainValidity {
  notBefore: Date;
  notAfter: Date;
  bound: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const MAX_ENTRIES = 256;
/** A ROOT's stored chain changes only with the ROOT row: parsed once per process (read on every signature). */
const parsed = new Map<string, ExternalChainValidity | null>();

/** The validity of a stored external chain (`key.issuerChainPem`), or null without one. The result is shared: do not mutate it. */
export function externalChainValidity(chainPem: string | null | undefined): ExternalChainValidity | null {
  if (!chainPem) return null;
  const hit = parsed.get(chainPem);
  if (hit !== undefined) return hit;
  let v: ExternalChainValidity | null = null;
  for (const pem of chainPem.match(PEM_CERTIFICATE) ?? []) {
    const x = new X509Certificate(pem);
    if (!v) v = { notBefore: x.validFromDate, notAfter: x.validToDate, bound: '' };
    if (x.validFromDate > v.notBefore) v.notBefore = x.validFromDate;
    if (!v.bound || x.validToDate < v.notAfter) {
      v.notAfter = x.validToDate;
      v.bound = `${x.subject.replace(/\n/g, ', ')} until ${x.validToDate.toISOString()}`;
    }
  }
  if (parsed.size >= MAX_ENTRIES) parsed.delete(parsed.keys().next().value as string);
  parsed.set(chainPem, v);
  return v;
}
