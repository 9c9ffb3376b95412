import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { constants, verify as nodeVerify, type KeyObject, type X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { DigestHash } from './digest-signatures';
import { isDeadlineError } from './deadline';
import { CliError, Exit } from './errors';
import { keyUsage } from './verify';

// Revocation for `ksctl verify --crl/--crl-fetch`: every certificate below the trust anchor must be covered
// by a current CRL of its issuer, signed by the issuer's key, that does not list it (RFC 5280 §6.3, for
// complete CRLs of the certificate's issuer only: no delta, indirect or partitioned CRLs).

const OID = {
  crlDistributionPoints: '2.5.29.31',
  crlNumber: '2.5.29.20',
  crlReason: '2.5.29.21',
  invalidityDate: '2.5.29.24',
  authorityKeyIdentifier: '2.5.29.35',
  issuerAltName: '2.5.29.18',
  rsaPss: '1.2.840.113549.1.1.10',
  mgf1: '1.2.840.113549.1.1.8',
};

/** Extensions whose meaning this checker implements; any other critical one makes a CRL unusable (RFC 5280 §5.2). */
const UNDERSTOOD_CRL_EXTENSIONS = new Set([OID.crlNumber, OID.authorityKeyIdentifier, OID.issuerAltName]);
const UNDERSTOOD_ENTRY_EXTENSIONS = new Set([OID.crlReason, OID.invalidityDate]);

const DIGEST_OIDS: Record<string, DigestHash> = {
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
};

/** X.509 signature algorithms (no SHA-1): the hash Node should use (null: the key's own, EdDSA) and the key type. */
const SIGNATURE_OIDS: Record<string, { hash: DigestHash | null; key: string }> = {
  '1.2.840.113549.1.1.11': { hash: 'sha256', key: 'rsa' },
  '1.2.840.113549.1.1.12': { hash: 'sha384', key: 'rsa' },
  '1.2.840.113549.1.1.13': { hash: 'sha512', key: 'rsa' },
  '1.2.840.10045.4.3.2': { hash: 'sha256', key: 'ec' },
  '1.2.840.10045.4.3.3': { hash: 'sha384', key: 'ec' },
  '1.2.840.10045.4.3.4': { hash: 'sha512', key: 'ec' },
  '1.3.101.112': { hash: null, key: 'ed25519' },
  '1.3.101.113': { hash: null, key: 'ed448' },
};

const CRL_REASONS = [
  'unspecified',
  'keyCompromise',
  'cACompromise',
  'affiliationChanged',
  'superseded',
  'cessationOfOperation',
  'certificateHold',
  undefined,
  'removeFromCRL',
  'privilegeWithdrawn',
  'aACompromise',
];

/** Short names of the usual name attributes, for messages. */
const NAME_ATTRIBUTES: Record<string, string> = { '2.5.4.3': 'CN', '2.5.4.6': 'C', '2.5.4.7': 'L', '2.5.4.8': 'ST', '2.5.4.10': 'O', '2.5.4.11': 'OU' };

/** KeyUsage cRLSign (first octet of the BIT STRING). */
const KU_CRL_SIGN = 0x02;

export const CRL_FETCH_TIMEOUT_MS = 10_000;
/**
 * How far a CRL's thisUpdate may lie ahead of the verifier's clock when checking "now" (no --at): CAs issue CRLs
 * on demand, so one can be issued while it is downloaded, and servers' clocks drift. A CRL from the near future
 * is still the CA's newest word; with an explicit --at the check is exact.
 */
export const CRL_CLOCK_SKEW_MS = 5 * 60_000;
export const CRL_FETCH_MAX_BYTES = 10 * 1024 * 1024;

/** One parsed CRL and where it came from (a file or a URL), for messages. */
export interface Crl {
  source: string;
  crl: pkijs.CertificateRevocationList;
}

/** The CRL that covered one certificate of the path. */
export interface CrlUse {
  certificate: string;
  serial: string;
  issuer: string;
  crl: string;
  thisUpdate: string;
  nextUpdate?: string;
  crlNumber?: string;
}

function ab(b: Uint8Array): ArrayBuffer {
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
}

const subjectOf = (c: X509Certificate): string => c.subject.replace(/\n/g, ', ');
const issuerOf = (c: X509Certificate): string => c.issuer.replace(/\n/g, ', ');
const serialOf = (c: X509Certificate): string => c.serialNumber.toLowerCase();
const integerHex = (i: asn1js.Integer): string => Buffer.from(i.valueBlock.valueHexView).toString('hex').replace(/^(00)+(?=.)/, '');

function failure(code: string, message: string, cert: X509Certificate, extra: Record<string, unknown> = {}): CliError {
  return new CliError(message, Exit.Invalid, code, undefined, { certificate: subjectOf(cert), serial: serialOf(cert), issuer: issuerOf(cert), ...extra });
}

/**
 * The CRLs of one file or download: PEM (any number of `X509 CRL` blocks, e.g. CRLs of several issuers in
 * one bundle) or DER (one CRL, or several concatenated). Anything that does not parse is `crl_invalid`.
 */
export function parseCrls(data: Buffer, source: string): Crl[] {
  const bad = (why: string) => new CliError(`${source}: ${why}`, Exit.Invalid, 'crl_invalid', undefined, { crl: source });
  const text = data.toString('latin1');
  let ders: Buffer[];
  if (text.includes('-----BEGIN')) {
    const blocks = [...text.matchAll(/-----BEGIN X509 CRL-----([\s\S]+?)-----END X509 CRL-----/g)];
    if (blocks.length === 0) throw bad('holds no PEM X509 CRL');
    ders = blocks.map((m) => Buffer.from(m[1].replace(/\s+/g, ''), 'base64'));
  } else {
    ders = [];
    let rest = data;
    while (rest.length > 0) {
      const asn = asn1js.fromBER(ab(rest));
      if (asn.offset === -1 || asn.offset === 0) throw bad('is neither PEM nor DER');
      ders.push(rest.subarray(0, asn.offset));
      rest = rest.subarray(asn.offset);
    }
    if (ders.length === 0) throw bad('is empty');
  }
  return ders.map((der) => {
    try {
      return { source, crl: pkijs.CertificateRevocationList.fromBER(ab(der)) };
    } catch (err) {
      throw bad(`not an X.509 CRL (${(err as Error).message})`);
    }
  });
}

/** The CRLs of a --crl file. */
export function readCrlFile(path: string): Crl[] {
  if (!existsSync(path)) throw new CliError(`--crl not found: ${path}`, Exit.Usage);
  return parseCrls(readFileSync(path), path);
}

/** The http(s) URLs of a certificate's CRL distribution points (full names only; LDAP and relative names are skipped). */
export function crlDistributionPointUrls(cert: X509Certificate): string[] {
  const parsed = pkijs.Certificate.fromBER(ab(cert.raw));
  const ext = parsed.extensions?.find((e) => e.extnID === OID.crlDistributionPoints);
  if (!ext) return [];
  const asn = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
  if (asn.offset === -1) return [];
  let dps: pkijs.CRLDistributionPoints;
  try {
    dps = new pkijs.CRLDistributionPoints({ schema: asn.result });
  } catch {
    return [];
  }
  const urls: string[] = [];
  for (const dp of dps.distributionPoints) {
    // A point with its own cRLIssuer names an indirect CRL, which this checker does not accept.
    if (dp.cRLIssuer || !Array.isArray(dp.distributionPoint)) continue;
    for (const name of dp.distributionPoint) {
      if (name.type === 6 && typeof name.value === 'string' && /^https?:\/\//i.test(name.value)) urls.push(name.value);
    }
  }
  return urls;
}

/** Downloads (once per URL) the CRLs named in certificates, with a time and size limit. */
export class CrlFetcher {
  private readonly cache = new Map<string, Promise<Crl[]>>();
  private readonly timeoutMs: number;
  private readonly maxBytes: number;
  /** The command's deadline (deadline.ts): a download ends by it too, and it is reported as itself (exit 7). */
  private readonly deadline?: AbortSignal;

  constructor(o: { timeoutMs?: number; maxBytes?: number; deadline?: AbortSignal } = {}) {
    this.timeoutMs = o.timeoutMs ?? CRL_FETCH_TIMEOUT_MS;
    this.maxBytes = o.maxBytes ?? CRL_FETCH_MAX_BYTES;
    this.deadline = o.deadline;
  }

  /** The CRLs at the first of `cert`'s distribution points that answers; `error` when every one failed. */
  async forCertificate(cert: X509Certificate): Promise<{ crls: Crl[]; error?: CliError; urls: string[] }> {
    const urls = crlDistributionPointUrls(cert);
    let error: CliError | undefined;
    for (const url of urls) {
      try {
        return { crls: await this.get(url), urls };
      } catch (err) {
        if (isDeadlineError(err)) throw err; // not a CRL that is unreachable: no time is left for any
        error ??= err instanceof CliError ? err : new CliError(`${url}: ${(err as Error).message}`, Exit.Unavailable, 'crl_unreachable', undefined, { url });
      }
    }
    return { crls: [], error, urls };
  }

  private get(url: string): Promise<Crl[]> {
    let p = this.cache.get(url);
    if (!p) {
      p = this.download(url).then((der) => parseCrls(der, url));
      this.cache.set(url, p);
    }
    return p;
  }

  private async download(url: string): Promise<Buffer> {
    const unreachable = (why: string) => new CliError(`cannot download the CRL at ${url}: ${why}`, Exit.Unavailable, 'crl_unreachable', undefined, { url });
    const perCrl = AbortSignal.timeout(this.timeoutMs);
    const signal = this.deadline ? AbortSignal.any([perCrl, this.deadline]) : perCrl;
    try {
      const res = await fetch(url, { signal, redirect: 'follow', headers: { accept: 'application/pkix-crl, */*' } });
      if (!res.ok) {
        await res.body?.cancel();
        throw unreachable(`HTTP ${res.status}`);
      }
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > this.maxBytes) {
        await res.body?.cancel();
        throw unreachable(`${declared} bytes, more than ${this.maxBytes}`);
      }
      const chunks: Buffer[] = [];
      let total = 0;
      if (res.body) {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          total += chunk.length;
          if (total > this.maxBytes) throw unreachable(`more than ${this.maxBytes} bytes`);
          chunks.push(Buffer.from(chunk));
        }
      }
      return Buffer.concat(chunks);
    } catch (err) {
      if (err instanceof CliError) throw err;
      if (this.deadline?.aborted) throw this.deadline.reason;
      if (signal.aborted) throw unreachable(`no complete answer within ${this.timeoutMs} ms`);
      const cause = (err as Error & { cause?: Error }).cause;
      throw unreachable(cause?.message ?? (err as Error).message);
    }
  }
}

type Verdict = { ok: true } | { ok: false; code: 'crl_invalid' | 'crl_expired' | 'crl_not_yet_valid'; why: string };

function signatureVerifies(crl: pkijs.CertificateRevocationList, key: KeyObject): boolean | string {
  const outer = Buffer.from(crl.signatureAlgorithm.toSchema().toBER(false));
  const inner = Buffer.from(crl.signature.toSchema().toBER(false));
  if (!outer.equals(inner)) return 'its two signature algorithm fields differ';
  const oid = crl.signatureAlgorithm.algorithmId;
  const signature = Buffer.from(crl.signatureValue.valueBlock.valueHexView);
  const tbs = Buffer.from(crl.tbsView);
  try {
    if (oid === OID.rsaPss) {
      const params = new pkijs.RSASSAPSSParams({ schema: crl.signatureAlgorithm.algorithmParams });
      const hash = DIGEST_OIDS[params.hashAlgorithm.algorithmId];
      const mgfHash = params.maskGenAlgorithm.algorithmId === OID.mgf1 ? new pkijs.AlgorithmIdentifier({ schema: params.maskGenAlgorithm.algorithmParams }).algorithmId : undefined;
      if (!hash || mgfHash !== params.hashAlgorithm.algorithmId) return 'an unsupported RSA-PSS parameter set';
      if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') return false;
      return nodeVerify(hash, tbs, { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: params.saltLength }, signature);
    }
    const alg = SIGNATURE_OIDS[oid];
    if (!alg) return `the unsupported signature algorithm ${oid}`;
    if (key.asymmetricKeyType !== alg.key) return false;
    return nodeVerify(alg.hash, tbs, key, signature);
  } catch {
    return false;
  }
}

function judge(c: Crl, issuer: X509Certificate, at: Date, skewMs: number): Verdict {
  const ku = keyUsage(issuer);
  if (ku !== undefined && !(ku & KU_CRL_SIGN)) return { ok: false, code: 'crl_invalid', why: `${subjectOf(issuer)} may not sign CRLs (keyUsage)` };
  const sig = signatureVerifies(c.crl, issuer.publicKey);
  if (sig !== true) return { ok: false, code: 'crl_invalid', why: sig === false ? `its signature does not verify with the key of ${subjectOf(issuer)}` : `it uses ${sig}` };
  const critical = [
    ...(c.crl.crlExtensions?.extensions ?? []).filter((e) => e.critical && !UNDERSTOOD_CRL_EXTENSIONS.has(e.extnID)),
    ...(c.crl.revokedCertificates ?? []).flatMap((r) => r.crlEntryExtensions?.extensions ?? []).filter((e) => e.critical && !UNDERSTOOD_ENTRY_EXTENSIONS.has(e.extnID)),
  ];
  if (critical.length) return { ok: false, code: 'crl_invalid', why: `it has the critical extension ${critical[0].extnID}, which ksctl does not implement` };
  const thisUpdate = c.crl.thisUpdate.value;
  const nextUpdate = c.crl.nextUpdate?.value;
  if (thisUpdate.getTime() > at.getTime() + skewMs) return { ok: false, code: 'crl_not_yet_valid', why: `it was issued ${thisUpdate.toISOString()}, after ${at.toISOString()}` };
  if (nextUpdate && nextUpdate.getTime() < at.getTime()) return { ok: false, code: 'crl_expired', why: `its next update was due ${nextUpdate.toISOString()}` };
  return { ok: true };
}

function reasonOf(entry: pkijs.RevokedCertificate): string | undefined {
  const ext = entry.crlEntryExtensions?.extensions.find((e) => e.extnID === OID.crlReason);
  if (!ext) return undefined;
  const asn = asn1js.fromBER(ext.extnValue.valueBlock.valueHexView);
  if (!(asn.result instanceof asn1js.Enumerated)) return undefined;
  const n = asn.result.valueBlock.valueDec;
  return CRL_REASONS[n] ?? `reason ${n}`;
}

function crlNumberOf(crl: pkijs.CertificateRevocationList): string | undefined {
  const ext = crl.crlExtensions?.extensions.find((e) => e.extnID === OID.crlNumber);
  const asn = ext ? asn1js.fromBER(ext.extnValue.valueBlock.valueHexView) : undefined;
  return asn?.result instanceof asn1js.Integer ? asn.result.toBigInt().toString() : undefined;
}

/** Which verdict to report when no CRL of an issuer is usable: the one that tells the user what to fetch. */
const PRECEDENCE = ['crl_expired', 'crl_not_yet_valid', 'crl_invalid'];

/**
 * Checks every certificate of `path` (leaf..anchor, as {@link verifyChain} returns it) except the anchor
 * against the CRLs of its issuer: given in `crls`, and with `fetcher` also downloaded from the certificate's
 * distribution points. A usable CRL has the certificate's issuer name, verifies with the issuer's key (the
 * next certificate of the path), has only critical extensions ksctl implements, and is current at `at`
 * (thisUpdate <= at <= nextUpdate; without `at`, the clock read after the download, with {@link CRL_CLOCK_SKEW_MS}
 * allowed for thisUpdate and revocation dates). Throws (exit 6) `certificate_revoked` when a usable CRL lists the serial
 * with a revocation date <= at, `crl_missing` when no CRL names the issuer, and `crl_invalid`, `crl_expired`
 * or `crl_not_yet_valid` when none of them is usable; a failed download without another CRL of that issuer is
 * `crl_unreachable` (exit 5). Returns the CRL that covered each certificate.
 */
export async function checkRevocation(path: X509Certificate[], crls: Crl[], o: { at?: Date; fetcher?: CrlFetcher; now?: () => Date } = {}): Promise<CrlUse[]> {
  const uses: CrlUse[] = [];
  for (let i = 0; i < path.length - 1; i++) {
    const cert = path[i];
    const issuer = path[i + 1];
    const parsed = pkijs.Certificate.fromBER(ab(cert.raw));
    const fetched = o.fetcher ? await o.fetcher.forCertificate(cert) : undefined;
    // An explicit --at is exact; "now" is read after the download and allows the server's clock some skew.
    const at = o.at ?? (o.now ?? (() => new Date()))();
    const skewMs = o.at ? 0 : CRL_CLOCK_SKEW_MS;
    const candidates = [...crls, ...(fetched?.crls ?? [])].filter((c) => c.crl.issuer.isEqual(parsed.issuer));
    if (candidates.length === 0) {
      if (fetched?.error) throw fetched.error;
      // The certificate's own distribution point serving another issuer's CRL is a wrong CRL, not a missing one.
      const foreign = fetched?.crls[0];
      if (foreign) {
        const by = foreign.crl.issuer.typesAndValues.map((t) => `${NAME_ATTRIBUTES[t.type] ?? t.type}=${t.value.valueBlock.value}`).join(', ');
        throw failure('crl_invalid', `the CRL at ${foreign.source} for ${subjectOf(cert)} is issued by another CA (${by}), not by ${issuerOf(cert)}`, cert, { crl: foreign.source });
      }
      const hint = fetched && fetched.urls.length === 0 ? '; the certificate names no http(s) CRL distribution point' : '';
      throw failure('crl_missing', `no CRL of ${issuerOf(cert)} for ${subjectOf(cert)} (serial ${serialOf(cert)})${hint}`, cert);
    }
    const judged = candidates.map((c) => ({ c, v: judge(c, issuer, at, skewMs) }));
    const usable = judged.filter((j) => j.v.ok).map((j) => j.c);
    if (usable.length === 0) {
      const worst = judged
        .map((j) => ({ c: j.c, v: j.v as Exclude<Verdict, { ok: true }> }))
        .sort((a, b) => PRECEDENCE.indexOf(a.v.code) - PRECEDENCE.indexOf(b.v.code))[0];
      throw failure(worst.v.code, `the CRL of ${issuerOf(cert)} for ${subjectOf(cert)} from ${worst.c.source} cannot be used: ${worst.v.why}`, cert, { crl: worst.c.source });
    }
    const serial = integerHex(parsed.serialNumber);
    for (const c of usable) {
      const entry = (c.crl.revokedCertificates ?? []).find((r) => integerHex(r.userCertificate) === serial && r.revocationDate.value.getTime() <= at.getTime() + skewMs);
      const reason = entry && reasonOf(entry);
      // removeFromCRL belongs to delta CRLs; in a complete CRL it un-lists nothing, so it does not revoke either.
      if (!entry || reason === 'removeFromCRL') continue;
      const when = entry.revocationDate.value.toISOString();
      throw failure(
        'certificate_revoked',
        `${subjectOf(cert)} (serial ${serialOf(cert)}) was revoked ${when}${reason ? ` (${reason})` : ''}: listed in the CRL of ${issuerOf(cert)} from ${c.source}`,
        cert,
        { revocationDate: when, ...(reason ? { reason } : {}), crl: c.source },
      );
    }
    const newest = usable.reduce((a, b) => (b.crl.thisUpdate.value > a.crl.thisUpdate.value ? b : a));
    const crlNumber = crlNumberOf(newest.crl);
    uses.push({
      certificate: subjectOf(cert),
      serial: serialOf(cert),
      issuer: issuerOf(cert),
      crl: newest.source,
      thisUpdate: newest.crl.thisUpdate.value.toISOString(),
      ...(newest.crl.nextUpdate ? { nextUpdate: newest.crl.nextUpdate.value.toISOString() } : {}),
      ...(crlNumber ? { crlNumber } : {}),
    });
  }
  return uses;
}
