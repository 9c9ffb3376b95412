/**
 * The CRL distribution point of a certificate signed by `version` of `keyid` (ADR 0029): the CRL that version's
 * key pair signs, so a relying party always gets a CRL whose signature and AKI match the certificate's issuer.
 */
export function crlUrl(publicUrl: string, keyid: string, version: number): string {
  return `${publicUrl.replace(/\/+$/, '')}/api/v1/crl/${encodeURIComponent(keyid)}/versions/${version}`;
}
