import { readPemCertificates, sha256Hex, type PemCertificate } from '../../core/pem';

/** The chain the API takes above the ROOT (api-contract `ExternalChainRequest`: 1 to 8 certificates). */
export const MAX_EXTERNAL_CHAIN = 8;

/** One certificate of the ROOT's path before and after the replacement, by SHA-256 of its DER (hex). */
export interface ChainRow {
  /** Its place: the ROOT's own certificate, an issuer above it, the self-signed anchor at the top. */
  place: string;
  current: string | null;
  next: string | null;
  change: 'kept' | 'unchanged' | 'replaced' | 'added' | 'removed';
}

async function fingerprintOf(pem: string): Promise<string | null> {
  const r = readPemCertificates(pem, 1);
  return r.ok ? sha256Hex(r.certificates[0].der) : null;
}

function placeOf(i: number, length: number): string {
  if (i === 0) return 'ROOT certificate';
  if (i === length - 1) return 'Anchor (self-signed root)';
  return i === 1 ? 'Issuer of the ROOT' : `Issuer ${i}`;
}

/**
 * What a replacement changes in the ROOT's path, certificate by certificate: the current ones as the API answers them
 * (`KeyDetail.chain`: the ROOT's certificate, then the external chain up to the anchor), the new ones as pasted.
 * Without a re-issued certificate the ROOT's stays (`kept`).
 */
export async function chainChanges(current: readonly string[], next: { certificate: PemCertificate | null; chain: readonly PemCertificate[] }): Promise<ChainRow[]> {
  const now = await Promise.all(current.map(fingerprintOf));
  const root = next.certificate ? await sha256Hex(next.certificate.der) : now[0];
  const above = await Promise.all(next.chain.map((c) => sha256Hex(c.der)));
  const after = [root, ...above];
  const length = Math.max(now.length, after.length);
  return Array.from({ length }, (_, i): ChainRow => {
    const cur = now[i] ?? null;
    const nxt = after[i] ?? null;
    const change = i === 0 && !next.certificate ? 'kept' : cur === null ? 'added' : nxt === null ? 'removed' : cur === nxt ? 'unchanged' : 'replaced';
    return { place: placeOf(i, i < after.length ? after.length : now.length), current: cur, next: nxt, change };
  });
}
