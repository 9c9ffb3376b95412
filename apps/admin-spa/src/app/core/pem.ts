// PEM certificates pasted or uploaded into the console's forms (the ROOT ceremony's import, the renewed external
// chain). Pasted text is hostile until proven otherwise: every function here is one pass over a bounded text, so a
// huge paste, text that is not PEM or any Unicode cannot freeze the page. The console has no certificate parser
// (no X.509 library in the browser): it finds the blocks, decodes their base64 and hashes the DER; what a
// certificate says is verified and answered by the API.

/** Largest certificate the API takes (api-contract key-lifecycle `Pem`: 64 KiB of PEM text). */
export const MAX_PEM_CERTIFICATE = 64 * 1024;
/** Most text one field reads: the API's largest chain (8 certificates of 64 KiB) plus a little text between them. */
export const MAX_PEM_TEXT = 8 * MAX_PEM_CERTIFICATE + 4096;

const BEGIN = '-----BEGIN CERTIFICATE-----';
const END = '-----END CERTIFICATE-----';

/**
 * The certificate PEM blocks of pasted text, in order (anything between them is ignored), each trimmed with one final
 * newline. Linear: a BEGIN without an END ends the search (the earlier regex scanned to the end of the text from
 * every BEGIN: 22 s for 1 MiB of BEGIN lines).
 */
export function splitPemCertificates(text: string): string[] {
  const blocks: string[] = [];
  let from = 0;
  for (;;) {
    const begin = text.indexOf(BEGIN, from);
    if (begin < 0) break;
    const end = text.indexOf(END, begin + BEGIN.length);
    if (end < 0) break;
    // A BEGIN repeated before the END starts the block at the last one, as the armour is read.
    const last = text.lastIndexOf(BEGIN, end - BEGIN.length);
    blocks.push(text.slice(last, end + END.length).trim() + '\n');
    from = end + END.length;
  }
  return blocks;
}

/** One certificate block: its PEM as sent, and its DER (the base64 between the armour lines, decoded). */
export interface PemCertificate {
  pem: string;
  der: Uint8Array;
}

export type PemProblem = 'too_large' | 'no_certificate' | 'too_many' | 'not_base64' | 'not_der' | 'unreadable';
export type PemReading = { ok: true; certificates: PemCertificate[] } | { ok: false; problem: PemProblem };

/** Plain words for a {@link PemProblem}, shown under the field. */
export const PEM_PROBLEMS: Readonly<Record<PemProblem, string>> = {
  too_large: 'The text is too large to be a certificate chain.',
  no_certificate: 'No PEM certificate (-----BEGIN CERTIFICATE-----) was found.',
  too_many: 'Too many certificates.',
  not_base64: 'A certificate block holds characters that are not base64, or is longer than 64 KiB.',
  not_der: 'A certificate block does not decode to a DER certificate.',
  unreadable: 'The file could not be read: choose it again.',
};

/**
 * Reads 1 to `max` certificates of `text`: refused before any search when the text is longer than
 * {@link MAX_PEM_TEXT}, and block by block when the base64 is not base64 or does not start a DER SEQUENCE.
 */
export function readPemCertificates(text: string, max: number): PemReading {
  if (text.length > MAX_PEM_TEXT) return { ok: false, problem: 'too_large' };
  const blocks = splitPemCertificates(text);
  if (blocks.length === 0) return { ok: false, problem: 'no_certificate' };
  if (blocks.length > max) return { ok: false, problem: 'too_many' };
  const certificates: PemCertificate[] = [];
  for (const pem of blocks) {
    if (pem.length > MAX_PEM_CERTIFICATE) return { ok: false, problem: 'not_base64' };
    const body = pem.slice(BEGIN.length, pem.length - END.length - 1).replace(/[\t\n\r ]/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return { ok: false, problem: 'not_base64' };
    const binary = atob(body);
    const der = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) der[i] = binary.charCodeAt(i);
    // A certificate is a DER SEQUENCE with a long-form length; anything else is not one (the API says which it is).
    if (der.length < 64 || der[0] !== 0x30) return { ok: false, problem: 'not_der' };
    certificates.push({ pem, der });
  }
  return { ok: true, certificates };
}

/** SHA-256 of `der`, lower-case hex (openssl `x509 -fingerprint -sha256`, without its colons). */
export async function sha256Hex(der: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', der as Uint8Array<ArrayBuffer>));
  return [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** `0123abcd…` -> `01:23:AB:CD…`, as fingerprints are read aloud and compared with openssl's output. */
export function colonHex(hex: string): string {
  return (hex.toUpperCase().match(/../g) ?? []).join(':');
}
