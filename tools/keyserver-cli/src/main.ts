#!/usr/bin/env node
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync, statSync } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { MAX_SIGN_MESSAGE_BYTES } from '@keyserver/api-contract/limits';
import { jsonEscapeHidden } from '@keyserver/api-contract/visible-text';
import { anchoredCheckpointTrust, auditVerifyStatus, unsealedTail, unsealedTailWarning, verifyAuditExportFile } from '@keyserver/audit-chain';
import type { AssertionAlgorithm } from './lib/assertion';
import { adminCommand } from './lib/admin';
import { answerShape, boundedBody, MAX_ANSWER_BYTES } from './lib/answer';
import { api, apiRaw, accessToken, CliError, Exit, type Connection, type LoginMethod } from './lib/client';
import { commandSpec, completionScript } from './lib/commands';
import { APPROVAL_WAIT_SECONDS, Deadline, DEFAULT_TIMEOUT_SECONDS, isDeadlineError, parseTimeout, SECONDS_PER_MIB, SIGN_IN_SECONDS, timeoutFor } from './lib/deadline';
import { DIGEST_INFO_PREFIX, HASH_LENGTH, type DigestHash } from './lib/digest-signatures';
import { certificateOutput, errorText, jsonOutput, outputMode, renderTable, type OutputMode } from './lib/output';
import { checkOutputPath, discardOpenTemporaries, outputStream, writeOutputFile } from './lib/output-file';
import { pkceLogin } from './lib/pkce-login';
import { ProgressBar, wantsProgress } from './lib/progress';
import { checkRevocation, CrlFetcher, readCrlFile, type Crl, type CrlUse } from './lib/revocation';
import { defaultHashFor, readPemCertificates, verifyChain, verifyCms, verifyMessageSignature, verifyRawSignature } from './lib/verify';
import { verifySignatureTimestamp } from './lib/timestamp';
import { ciProvenance } from './lib/provenance';
import { versionText } from './lib/version';

const USAGE = `ksctl: the Keyserver client for CI pipelines and provisioning stations

Usage: ksctl [options] <command>        ksctl <command> --help (or ksctl help <command>): that command's help
  login                                       get and cache a token (--pkce opens a browser sign-in)
  keys list                                   keys you may use
  keys show KEYID [--chain FILE]              one key; --chain writes its PEM chain (key certificate first)
  operations create --key KEYID=N... --description TEXT [--hours H] [--digest HEX...]
       [--valid-from ISO-TIME --idempotency-key K]
                                              a rerun with the same key and window returns the
                                              same operation, never a second one
  operations show ID
  operations wait ID [--timeout SECONDS]      until APPROVED (exit 4 if rejected, cancelled or expired)
  sign --operation ID --key KEYID (--digest HEX | --file PATH) [--hash sha256|sha384|sha512]
       [--padding none|digestinfo|pss] [--format asn1|p1363] [--description TEXT] [--out FILE]
       [--idempotency-key K]                  the file is hashed locally as it streams;
                                              --hash defaults to the key's hash (--digest: its length)
  sign --cms --operation ID --key KEYID --file PATH --out FILE.p7s
                                              the image streams to the Keyserver, which returns CMS
  cert issue --operation ID --key CA_KEYID --csr FILE [--out CERT.pem] [--chain-out CHAIN.pem]
       [--idempotency-key K]                  a retry returns the same certificate, no second usage
  cert revoke CERTIFICATE_ID [--reason keyCompromise|superseded|...]
  verify --signature FILE.sig (--file PATH | --digest HEX) --chain CHAIN.pem --ca ROOT.pem
       [--hash H] [--padding none|digestinfo|pss] [--format asn1|p1363] [--at ISO-TIME]
  verify --cms --signature FILE.p7s --file PATH --ca ROOT.pem [--chain CHAIN.pem] [--at ISO-TIME]
                                              offline: signature, chain to --ca, codeSigning usage
       [--crl FILE]... [--crl-fetch]          revocation of every certificate below --ca: CRLs from
                                              files (DER or PEM) and/or downloaded from the
                                              certificates' CRL distribution points (the only online part)
  audit export [--out FILE.jsonl]             the whole audit log as JSON lines (auditors)
  audit verify FILE.jsonl [--root ROOT.pem] [--tsa-cert TSA.pem]
                                              offline: every entry's hash and link, and the signed
                                              checkpoints against the ROOT (and TSA certificate) given
  admin session|root-ceremony|key|role|subject ...
                                              administrators: sessions, the ROOT ceremony, key lifecycle,
                                              roles and subjects
                                              (ksctl admin --help)
  completion bash|zsh                         a shell completion script (source <(ksctl completion bash))

Options: --api URL (KEYSERVER_URL), --token-endpoint URL (KEYSERVER_TOKEN_ENDPOINT), --client-id ID
(KEYSERVER_CLIENT_ID), --client-secret S (KEYSERVER_CLIENT_SECRET), --scope S (KEYSERVER_SCOPE), a ready
token in KEYSERVER_TOKEN, --demo [FILE.json] (use .keyserver/demo.json and its demo clients), --no-progress
(no progress bar on stderr for large files), --timeout SECONDS (KSCTL_TIMEOUT), --version.
Deadline: every command that goes online ends within --timeout (else KSCTL_TIMEOUT, else 120 s; sign --file/--cms:
120 s + 1 s per MiB of the file; audit export: + 1 s per MiB received), token request included: exit 7
deadline_exceeded, no file written. operations wait and login --pkce: --timeout is the time for the approval (600 s)
or the sign-in (300 s); each of their requests ends by KSCTL_TIMEOUT (120 s). ksctl retries nothing itself, but
for one case: a cached token the API refuses (401 invalid_token, never carried out) is renewed once and the request
sent once more.
Output: tables for people by default; --json (or --output json) for scripts: one JSON document on stdout,
errors too ({"error","code","status"}); --output pem|der prints the certificate of cert issue / keys show
(pem: with its chain).
Login: client credentials with a secret (default); --certificate FILE [--private-key FILE]
(KEYSERVER_CLIENT_CERTIFICATE, KEYSERVER_CLIENT_PRIVATE_KEY, passphrase in KEYSERVER_CLIENT_KEY_PASSPHRASE,
--assertion-alg PS256|RS256): a certificate credential (private_key_jwt); --wif: Azure DevOps workload
identity federation (SYSTEM_OIDCREQUESTURI + SYSTEM_ACCESSTOKEN + --service-connection-id /
AZURESUBSCRIPTION_SERVICE_CONNECTION_ID, or --federated-token-file / AZURE_FEDERATED_TOKEN_FILE), exchanged as
client_assertion; --pkce: a user signs in on a loopback redirect (--redirect-uri, default PKCE_REDIRECT_URI or
http://127.0.0.1:0/callback). Tokens are cached in ~/.cache/ksctl (KSCTL_CACHE_DIR), one 0600 file per
token endpoint (tenant), client, scope and credential (a changed secret or certificate gets a new token).
Exit codes: 0 ok, 1 failure (also an answer that is not the API's: unexpected_answer, answer_too_large), 2 usage
(also insecure_url, tls_verification_disabled, output_not_regular_file, output_directory_missing), 3 authentication,
4 refused by the Keyserver (also redirect_refused: the API, the token endpoint or the OIDC endpoint redirected),
5 unavailable, 6 verification failed (signature, certificate chain, revocation or audit chain), 7 deadline passed
(deadline_exceeded: the Keyserver or the identity provider did not answer in time; a request without an
Idempotency-Key may have been carried out). token_malformed: KEYSERVER_TOKEN (exit 2) or the token endpoint's token
(exit 3) is no RFC 6750 bearer token.
Files (--out, --chain-out, --chain, FILE.p7s): a regular file or nothing, never a symlink; checked before the request,
written whole (a new file renamed over the name). No redirect is followed; NODE_TLS_REJECT_UNAUTHORIZED=0 is refused
(trust a private CA with NODE_EXTRA_CA_CERTS).`;

type Values = Record<string, string | boolean | string[] | undefined>;

const HASHES: DigestHash[] = ['sha256', 'sha384', 'sha512'];

function loginMethod(v: Values): LoginMethod {
  if (process.env['KEYSERVER_TOKEN']) return 'token';
  if (v['wif']) return 'wif';
  if (v['pkce']) return 'pkce';
  if (v['certificate'] || process.env['KEYSERVER_CLIENT_CERTIFICATE']) return 'certificate';
  return 'secret';
}

function connection(v: Values): Connection & { authorizationEndpoint?: string; redirectUri: string } {
  const env = process.env;
  const method = loginMethod(v);
  const alg = v['assertion-alg'] as string | undefined;
  if (alg !== undefined && alg !== 'PS256' && alg !== 'RS256') throw new CliError('--assertion-alg must be PS256 or RS256', Exit.Usage);
  const certificateFile = (v['certificate'] as string) ?? env['KEYSERVER_CLIENT_CERTIFICATE'];
  const c: Connection & { authorizationEndpoint?: string; redirectUri: string } = {
    method,
    authorizationEndpoint: env['KEYSERVER_AUTHORIZATION_ENDPOINT'],
    redirectUri: (v['redirect-uri'] as string) ?? env['PKCE_REDIRECT_URI'] ?? 'http://127.0.0.1:0/callback',
    wif: {
      tokenFile: (v['federated-token-file'] as string) ?? env['AZURE_FEDERATED_TOKEN_FILE'],
      requestUri: env['SYSTEM_OIDCREQUESTURI'],
      systemAccessToken: env['SYSTEM_ACCESSTOKEN'],
      serviceConnectionId: (v['service-connection-id'] as string) ?? env['AZURESUBSCRIPTION_SERVICE_CONNECTION_ID'],
    },
    ...(certificateFile
      ? {
          certificate: {
            certificateFile,
            privateKeyFile: (v['private-key'] as string) ?? env['KEYSERVER_CLIENT_PRIVATE_KEY'],
            passphrase: env['KEYSERVER_CLIENT_KEY_PASSPHRASE'] || undefined,
            algorithm: alg as AssertionAlgorithm | undefined,
          },
        }
      : {}),
    apiUrl: (v['api'] as string) ?? env['KEYSERVER_URL'] ?? 'http://127.0.0.1:3000',
    tokenEndpoint: (v['token-endpoint'] as string) ?? env['KEYSERVER_TOKEN_ENDPOINT'],
    clientId: (v['client-id'] as string) ?? env['KEYSERVER_CLIENT_ID'] ?? (method === 'wif' ? env['AZURESUBSCRIPTION_CLIENT_ID'] : undefined),
    clientSecret: (v['client-secret'] as string) ?? env['KEYSERVER_CLIENT_SECRET'],
    scope: (v['scope'] as string) ?? env['KEYSERVER_SCOPE'],
    token: env['KEYSERVER_TOKEN'] || undefined,
    cacheDir: env['KSCTL_CACHE_DIR'],
  };
  if (v['demo'] !== undefined) {
    const file = typeof v['demo'] === 'string' && v['demo'] ? v['demo'] : '.keyserver/demo.json';
    if (!existsSync(file)) throw new CliError(`${file} not found: run npm start first`, Exit.Usage);
    const demo = JSON.parse(readFileSync(file, 'utf8')) as {
      urls: { api: string };
      tokenEndpoint: string;
      scope: string;
      defaultScope: string;
      provisioningClientId: string;
      ciClients: { name?: string; clientId: string; clientSecret?: string }[];
    };
    c.apiUrl = (v['api'] as string) ?? demo.urls.api;
    c.tokenEndpoint ??= demo.tokenEndpoint;
    c.authorizationEndpoint ??= demo.tokenEndpoint.replace(/\/token$/, '/authorize');
    const demoClient = (name: string) => demo.ciClients.find((x) => x.name === name)?.clientId;
    if (method === 'pkce') {
      c.scope ??= demo.scope;
      c.clientId ??= demo.provisioningClientId;
    } else if (method === 'wif') {
      c.scope ??= demo.defaultScope;
      c.clientId ??= demoClient('demo-ado-wif');
    } else if (method === 'certificate') {
      c.scope ??= demo.defaultScope;
      c.clientId ??= demoClient('demo-ci-cert');
    } else {
      c.scope ??= demo.defaultScope;
      c.clientId ??= demo.ciClients[0].clientId;
      c.clientSecret ??= demo.ciClients[0].clientSecret;
    }
  }
  return c;
}

function need(v: Values, name: string): string {
  const x = v[name];
  if (typeof x !== 'string' || !x) throw new CliError(`--${name} is required`, Exit.Usage);
  return x;
}

/** PEM blocks one after another, each ending with a newline (OpenSSL refuses `-----END...-----BEGIN`). */
function pemBundle(pems: string[]): string {
  return pems.map((p) => (p.endsWith('\n') ? p : `${p}\n`)).join('');
}

/** A repeatable option used once (sign takes one --key). */
function single(x: string[] | undefined, name: string): string {
  if (!x || x.length !== 1 || !x[0]) throw new CliError(`exactly one --${name} is required`, Exit.Usage);
  return x[0];
}

/** The hash a --digest was made with, told by its length. */
function hashOfDigest(digest: Buffer): DigestHash {
  const hash = HASHES.find((h) => HASH_LENGTH[h] === digest.length);
  if (!hash) throw new CliError(`a ${digest.length}-byte --digest is no SHA-256, SHA-384 or SHA-512 digest`, Exit.Usage);
  return hash;
}

async function keyHash(c: Connection, keyid: string): Promise<DigestHash> {
  const key = await api<{ hash: unknown }>(c, 'GET', `/api/v1/keys/${encodeURIComponent(keyid)}`);
  if (typeof key?.hash !== 'string') throw new CliError(`GET /api/v1/keys/${keyid}: the answer names no hash`, Exit.Failure, 'unexpected_answer');
  const hash = key.hash.toLowerCase() as DigestHash;
  if (!HASHES.includes(hash)) throw new CliError(`key ${keyid} signs with ${key.hash}, which ksctl cannot hash`, Exit.Failure);
  return hash;
}

function hashOption(v: Values): DigestHash | undefined {
  if (v['hash'] === undefined) return undefined;
  const hash = String(v['hash']).toLowerCase() as DigestHash;
  if (!HASHES.includes(hash)) throw new CliError('--hash must be sha256, sha384 or sha512', Exit.Usage);
  return hash;
}

function hexDigestOption(v: Values): Buffer | undefined {
  const hex = (v['digest'] as string[] | undefined)?.[0];
  if (hex === undefined) return undefined;
  if (!/^(0x)?([0-9a-fA-F]{2})+$/.test(hex)) throw new CliError('--digest must be hex', Exit.Usage);
  return Buffer.from(hex.replace(/^0x/, ''), 'hex');
}

/** A bar on stderr for a large file, when stderr is a terminal and neither --json nor --no-progress is given. */
function progressFor(v: Values, label: string, bytes: number): ProgressBar | undefined {
  const on = wantsProgress({ isTTY: process.stderr.isTTY, json: mode === 'json', noProgress: Boolean(v['no-progress']), bytes });
  return on ? new ProgressBar(label, bytes, process.stderr) : undefined;
}

function existingFile(path: string): number {
  if (!existsSync(path) || !statSync(path).isFile()) throw new CliError(`no such file: ${path}`, Exit.Usage);
  return statSync(path).size;
}

/** Hashes a file as it streams from disk (constant memory), with a progress bar when one is wanted. */
async function hashFile(v: Values, path: string, algorithm: DigestHash): Promise<Buffer> {
  const bar = progressFor(v, `hashing ${path}`, existingFile(path));
  const h = createHash(algorithm);
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
      deadline?.signal.throwIfAborted();
      h.update(chunk as Buffer);
      bar?.tick((chunk as Buffer).length);
    }
  } finally {
    bar?.finish();
  }
  return h.digest();
}

function atOption(v: Values): Date | undefined {
  if (v['at'] === undefined) return undefined;
  const at = new Date(String(v['at']));
  if (isNaN(at.getTime())) throw new CliError('--at must be an ISO 8601 time', Exit.Usage);
  return at;
}

const subjectLine = (s: string) => s.replace(/\n/g, ', ');

/** --crl FILE (repeatable) and --crl-fetch; undefined when revocation is not to be checked. */
function revocationOptions(v: Values): { crls: Crl[]; fetcher?: CrlFetcher } | undefined {
  const files = (v['crl'] as string[] | undefined) ?? [];
  if (files.length === 0 && !v['crl-fetch']) return undefined;
  return { crls: files.flatMap((f) => readCrlFile(f)), ...(v['crl-fetch'] ? { fetcher: new CrlFetcher({ deadline: deadline?.signal }) } : {}) };
}

/** `ksctl verify`: a raw signature or a detached CMS, offline, against a chain leading to --ca. */
async function verifyCommand(v: Values): Promise<unknown> {
  const signatureFile = need(v, 'signature');
  existingFile(signatureFile);
  const anchors = readPemCertificates(need(v, 'ca'), '--ca');
  const chain = v['chain'] ? readPemCertificates(String(v['chain']), '--chain') : [];
  const at = atOption(v);
  const revocation = revocationOptions(v);
  // Said in every result, so a script cannot take a signature checked without CRLs for one checked with them.
  const revocationState = revocation ? 'checked' : 'not-checked';
  const crlsOf = async (path: Parameters<typeof checkRevocation>[0]): Promise<{ crls?: CrlUse[] }> =>
    revocation ? { crls: await checkRevocation(path, revocation.crls, { at, fetcher: revocation.fetcher }) } : {};
  const signature = readFileSync(signatureFile);
  if (v['cms']) {
    const file = need(v, 'file');
    existingFile(file);
    const digests = new Map<DigestHash, Promise<Buffer>>();
    const digestOf = (hash: DigestHash): Promise<Buffer> => {
      if (!digests.has(hash)) digests.set(hash, hashFile(v, file, hash));
      return digests.get(hash) as Promise<Buffer>;
    };
    const { signers, certificates } = await verifyCms(signature, digestOf, chain);
    const verified = [];
    for (const s of signers) {
      // A verified signature timestamp proves when the signature existed: the signer's chain is then checked at
      // that time, so a signature outlives its FW certificate (ADR 0024). A token that does not verify fails.
      const ts = s.timestampToken ? verifySignatureTimestamp(s.timestampToken, s.signatureValue, anchors, [...certificates, ...chain], at) : undefined;
      const path = verifyChain(s.certificate, [...certificates, ...chain], anchors, { at: ts ? new Date(ts.time) : at, codeSigning: true });
      const tsaCrls = ts ? await crlsOf(ts.chain) : {};
      verified.push({
        signer: subjectLine(s.certificate.subject),
        serial: s.certificate.serialNumber.toLowerCase(),
        hash: s.hash,
        ...(s.signingTime ? { signingTime: s.signingTime } : {}),
        timestamp: ts
          ? {
              time: ts.time,
              ...(ts.accuracyMs !== undefined ? { accuracyMs: ts.accuracyMs } : {}),
              serial: ts.serial,
              policy: ts.policy,
              tsa: subjectLine(ts.tsa.subject),
              chain: ts.chain.map((c) => subjectLine(c.subject)),
              ...(tsaCrls.crls ? { crls: tsaCrls.crls } : {}),
            }
          : 'none',
        validAt: ts ? ts.time : (at ?? new Date()).toISOString(),
        chain: path.map((c) => subjectLine(c.subject)),
        ...(await crlsOf(path)),
      });
    }
    return { verified: true, kind: 'cms', file, revocation: revocationState, signers: verified };
  }
  if (chain.length === 0) throw new CliError('--chain is required (the signing key certificate first, as `ksctl keys show KEYID --chain FILE` writes it)', Exit.Usage);
  const leaf = chain[0];
  if (v['message']) {
    const message = String(v['message']);
    if (v['file'] || v['digest'] || v['hash'] || v['padding'] || v['format']) throw new CliError('--message takes no --file, --digest, --hash, --padding or --format', Exit.Usage);
    existingFile(message);
    verifyMessageSignature({ signature, message: readFileSync(message), publicKey: leaf.publicKey });
    const path = verifyChain(leaf, chain.slice(1), anchors, { at, codeSigning: true });
    return {
      verified: true,
      kind: 'message',
      message,
      messageSha256: createHash('sha256').update(readFileSync(message)).digest('hex'),
      signer: subjectLine(leaf.subject),
      serial: leaf.serialNumber.toLowerCase(),
      chain: path.map((c) => subjectLine(c.subject)),
      revocation: revocationState,
      ...(await crlsOf(path)),
    };
  }
  const given = hexDigestOption(v);
  const file = v['file'] as string | undefined;
  if (Boolean(given) === Boolean(file)) throw new CliError('give either --file or --digest', Exit.Usage);
  const hash = hashOption(v) ?? (given ? hashOfDigest(given) : defaultHashFor(leaf.publicKey));
  const padding = (v['padding'] ?? 'none') as 'none' | 'digestinfo' | 'pss';
  if (!['none', 'digestinfo', 'pss'].includes(padding)) throw new CliError('--padding must be none, digestinfo or pss', Exit.Usage);
  const format = (v['format'] ?? 'asn1') as 'asn1' | 'p1363';
  if (!['asn1', 'p1363'].includes(format)) throw new CliError('--format must be asn1 or p1363', Exit.Usage);
  const digest = given ?? (await hashFile(v, file as string, hash));
  verifyRawSignature({ signature, digest, hash, padding, format, publicKey: leaf.publicKey });
  const path = verifyChain(leaf, chain.slice(1), anchors, { at, codeSigning: true });
  const crls = await crlsOf(path);
  return {
    verified: true,
    kind: 'raw',
    ...(file ? { file } : {}),
    hash,
    digest: digest.toString('hex'),
    signer: subjectLine(leaf.subject),
    serial: leaf.serialNumber.toLowerCase(),
    chain: path.map((c) => subjectLine(c.subject)),
    revocation: revocationState,
    ...crls,
  };
}

/**
 * `ksctl audit verify FILE [--root ROOT.pem [--tsa-cert TSA.pem]]`: the export's hash chain, offline; every bad entry
 * is listed (link_broken / content_changed). The export's signed checkpoints (docs/adr/0048) are checked against the
 * ROOT (and TSA certificate) given out of band: a rewritten entry at or before one is checkpoint_mismatch even when
 * every later hash was recomputed, a deleted checkpoint whose record is in the chain checkpoint_missing. Without --root they are checked against the certificate each token carries only.
 */
async function auditVerifyCommand(file: string | undefined, v: Values): Promise<unknown> {
  if (!file) throw new CliError('usage: ksctl audit verify FILE.jsonl [--root ROOT.pem] [--tsa-cert TSA.pem]', Exit.Usage);
  existingFile(file);
  if (v['tsa-cert'] && !v['root']) throw new CliError('--tsa-cert needs --root (the ROOT the TSA certificate chains to)', Exit.Usage);
  const trust = v['root']
    ? anchoredCheckpointTrust({
        roots: readPemCertificates(String(v['root']), '--root'),
        tsaCerts: v['tsa-cert'] ? readPemCertificates(String(v['tsa-cert']), '--tsa-cert') : undefined,
      })
    : undefined;
  // Streams the file: bounded memory whatever the export's size (ADR 0048 addendum).
  const r = await verifyAuditExportFile(file, trust);
  if (!r.ok) {
    throw new CliError(
      `audit chain broken at ${r.firstBadSeq?.startsWith('line') ? '' : 'seq '}${r.firstBadSeq}: ${r.reason} (${r.checked} entries verified before it; ${r.problemCount} problem(s): ${r.problems
        .slice(0, 20)
        .map((p) => `${p.kind} ${p.seq}`)
        .join(', ')}${r.problemCount > 20 ? ', …' : ''})`,
      Exit.Invalid,
      'audit_chain_broken',
      undefined,
      {
        firstBadSeq: r.firstBadSeq, reason: r.reason, checked: r.checked, total: r.total,
        problems: r.problems, problemCount: r.problemCount, legacy: r.legacy, legacyCount: r.legacyCount, seal: r.seal,
      },
    );
  }
  // A valid chain is not a complete one: entries after the last signed checkpoint verify by the hash chain alone, and
  // a copy cut within them looks like a shorter valid chain (ADR 0048 addendum "the unsealed tail"). Said on stderr and
  // in the result; the exit stays 0 (the chain verifies), so scripts that read 0 as "valid" keep their meaning.
  const tail = unsealedTail(r);
  if (tail) process.stderr.write(`${unsealedTailWarning('ksctl', tail)}\n`);
  return {
    verified: true, status: auditVerifyStatus(tail), checked: r.checked, total: r.total, lastHash: r.lastHash, unsealedTail: tail,
    legacy: r.legacy, legacyCount: r.legacyCount, seal: r.seal,
  };
}

/** The states an operation has (api-contract OperationState): anything else is no answer of the API. */
const OPERATION_STATES = ['REQUESTED', 'APPROVED', 'EXHAUSTED', 'EXPIRED', 'REJECTED', 'CANCELLED'];

/** The command's deadline (lib/deadline.ts), once it has one; `deadlineExplicit` when --timeout or KSCTL_TIMEOUT set it. */
let deadline: Deadline | undefined;
let deadlineExplicit = false;
/** How long after its deadline a command that did not end is ended by the watchdog (exit 7). */
const WATCHDOG_GRACE_MS = 2000;

/** Starts the command's deadline and its watchdog: --timeout, KSCTL_TIMEOUT, or the default for `payloadBytes`. */
function startDeadline(v: Values, payloadBytes = 0): Deadline {
  const t = timeoutFor({ option: v['timeout'] as string | undefined, env: process.env['KSCTL_TIMEOUT'], payloadBytes });
  deadlineExplicit = t.explicit;
  return watched(new Deadline(t.seconds));
}

function watched(d: Deadline): Deadline {
  deadline = d;
  d.watchdog(WATCHDOG_GRACE_MS, (err) => {
    discardOpenTemporaries();
    report(err);
    process.exit(err.exit);
  });
  return d;
}

/** The size of an existing regular file, else 0 (the command refuses a missing one itself). */
function sizeOf(path: unknown): number {
  try {
    return typeof path === 'string' && statSync(path).isFile() ? statSync(path).size : 0;
  } catch {
    return 0;
  }
}

/** Without an explicit --timeout, a download that keeps coming moves the deadline by SECONDS_PER_MIB per MiB. */
function extendFor(bytes: number): void {
  if (!deadlineExplicit) deadline?.extend((bytes / (1 << 20)) * SECONDS_PER_MIB * 1000);
}

interface OperationView {
  id: string;
  state: string;
  description: string;
  keys: { keyid: string; usagesAllowed: number; usagesUsed: number; requiredApprovers: number; approvals: number }[];
}

/** `--demo` takes a file only when one ending in .json follows, so `ksctl --demo keys list` works. */
function normalizeDemoFlag(argv: string[]): string[] {
  return argv.flatMap((a, i) => (a === '--demo' && !/\.json$/i.test(argv[i + 1] ?? '') ? ['--demo='] : [a]));
}

async function run(argv: string[]): Promise<unknown> {
  const { values: v, positionals: pos } = parseArgs({
    args: normalizeDemoFlag(argv),
    allowPositionals: true,
    options: {
      api: { type: 'string' },
      'token-endpoint': { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      scope: { type: 'string' },
      demo: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      chain: { type: 'string' },
      key: { type: 'string', multiple: true },
      description: { type: 'string' },
      hours: { type: 'string' },
      digest: { type: 'string', multiple: true },
      timeout: { type: 'string' },
      operation: { type: 'string' },
      file: { type: 'string' },
      message: { type: 'string' },
      hash: { type: 'string' },
      padding: { type: 'string' },
      format: { type: 'string' },
      out: { type: 'string' },
      'idempotency-key': { type: 'string' },
      'valid-from': { type: 'string' },
      wif: { type: 'boolean' },
      pkce: { type: 'boolean' },
      certificate: { type: 'string' },
      'private-key': { type: 'string' },
      'assertion-alg': { type: 'string' },
      'redirect-uri': { type: 'string' },
      'no-browser': { type: 'boolean' },
      'no-progress': { type: 'boolean' },
      'federated-token-file': { type: 'string' },
      'service-connection-id': { type: 'string' },
      cms: { type: 'boolean' },
      csr: { type: 'string' },
      'chain-out': { type: 'string' },
      reason: { type: 'string' },
      signature: { type: 'string' },
      ca: { type: 'string' },
      root: { type: 'string' },
      'tsa-cert': { type: 'string' },
      at: { type: 'string' },
      crl: { type: 'string', multiple: true },
      'crl-fetch': { type: 'boolean' },
      output: { type: 'string', short: 'o' },
      version: { type: 'boolean', short: 'V' },
      session: { type: 'string' },
      keyid: { type: 'string' },
      algorithm: { type: 'string' },
      cn: { type: 'string' },
      org: { type: 'string' },
      ou: { type: 'string' },
      country: { type: 'string' },
      days: { type: 'string' },
      'path-len': { type: 'string' },
      approvers: { type: 'string' },
      external: { type: 'boolean' },
      powers: { type: 'boolean' },
      type: { type: 'string' },
      issuer: { type: 'string' },
      product: { type: 'string' },
      'cert-file': { type: 'string' },
      'key-version': { type: 'string' },
      name: { type: 'string' },
      natures: { type: 'string' },
      grant: { type: 'string', multiple: true },
      kind: { type: 'string' },
      tid: { type: 'string' },
      oid: { type: 'string' },
      'display-name': { type: 'string' },
      roles: { type: 'string' },
    },
  });
  mode = outputMode(v.output, v.json);
  if (v.version) {
    process.stdout.write(versionText(mode === 'json'));
    return undefined;
  }
  if (v.help || pos.length === 0 || pos[0] === 'help') {
    const topic = pos[0] === 'help' ? pos[1] : pos[0];
    const spec = commandSpec(topic);
    if (topic !== undefined && !spec) throw new CliError(`unknown command: ${topic} (see ksctl --help)`, Exit.Usage);
    process.stdout.write(`${spec ? spec.help : USAGE}\n`);
    return undefined;
  }
  const [cmd, sub, arg] = pos;
  if (cmd === 'completion') {
    process.stdout.write(completionScript(sub));
    return undefined;
  }
  // Offline commands: no connection, no token (verify --crl-fetch downloads CRLs: by the deadline).
  if (cmd === 'verify') {
    if (v['crl-fetch']) startDeadline(v, sizeOf(v.file));
    return verifyCommand(v);
  }
  if (cmd === 'audit' && sub === 'verify') return auditVerifyCommand(arg, v);

  const c = connection(v);
  // Every request to the Keyserver and the identity provider ends by the command's deadline (ADR 0015 addendum
  // 2026-12-08). A command that waits for a person (an approval, a sign-in) has --timeout for that wait, and each of
  // its requests is bounded by KSCTL_TIMEOUT (default 120 s) alone.
  const requestSeconds = parseTimeout(process.env['KSCTL_TIMEOUT'], 'KSCTL_TIMEOUT') ?? DEFAULT_TIMEOUT_SECONDS;
  const waitsForPerson = (cmd === 'operations' && sub === 'wait') || (cmd === 'login' && c.method === 'pkce');
  if (!waitsForPerson) c.deadline = startDeadline(v, cmd === 'sign' && !v.message ? sizeOf(v.file) : 0);
  if (cmd === 'login') {
    if (c.method === 'pkce') {
      if (!c.authorizationEndpoint) throw new CliError('set KEYSERVER_AUTHORIZATION_ENDPOINT (or use --demo)', Exit.Usage);
      const signIn = parseTimeout(v.timeout, '--timeout') ?? SIGN_IN_SECONDS;
      watched(new Deadline(signIn + requestSeconds));
      const r = await pkceLogin(c, { authorizationEndpoint: c.authorizationEndpoint, redirectUri: c.redirectUri, openBrowser: !v['no-browser'], timeoutMs: signIn * 1000, requestTimeoutSeconds: requestSeconds });
      return { loggedIn: true, method: c.method, expiresAt: new Date(r.expiresAt).toISOString() };
    }
    await accessToken(c);
    return { loggedIn: true, method: c.method };
  }
  if (cmd === 'admin') return adminCommand((method, path, body, headers) => api(c, method, path, body, headers), pos.slice(1), v);
  if (cmd === 'audit' && sub === 'export') {
    if (v.out) checkOutputPath(v.out, '--out');
    const r = await apiRaw(c, 'GET', '/api/v1/audit/export');
    if (!r.body) throw new CliError('the Keyserver sent an empty export', Exit.Failure);
    const body = Readable.fromWeb(r.body as Parameters<typeof Readable.fromWeb>[0]);
    // The export streams (ADR 0048 addendum): a Keyserver that fails after the headers cuts the response without its
    // last chunk, and a body that ends so is a truncated export, never a shorter valid-looking one.
    let cut: Error | undefined;
    body.once('error', (err) => (cut = err));
    // A passed deadline is reported as itself (exit 7), not as an export the Keyserver cut (exit 5).
    const truncated = (err: unknown, written: string) =>
      isDeadlineError(err) || isDeadlineError(cut)
        ? (isDeadlineError(err) ? err : cut)
        : cut
          ? new CliError(`the audit export was cut short (${(cut.cause as Error | undefined)?.message ?? cut.message}): ${written}; export again`, Exit.Unavailable, 'audit_export_truncated')
          : err;
    if (!v.out) {
      // JSON lines to a terminal or a pipe: the same values, no raw character a terminal obeys or hides (ADR 0047).
      await pipeline(body.setEncoding('utf8'), async function* (lines: AsyncIterable<string>) {
        for await (const chunk of lines) {
          extendFor(Buffer.byteLength(chunk));
          yield jsonEscapeHidden(chunk);
        }
      }, process.stdout, { end: false }).catch((err: unknown) => {
        throw truncated(err, 'what was written to stdout is incomplete');
      });
      return undefined;
    }
    // Written to a new file beside it and renamed when whole: --out names a complete export or nothing new.
    const file = outputStream(v.out, '--out');
    try {
      await pipeline(body, async function* (chunks: AsyncIterable<Buffer>) {
        for await (const chunk of chunks) {
          extendFor(chunk.length);
          yield chunk;
        }
      }, file.stream);
    } catch (err) {
      file.discard();
      throw truncated(err, `nothing written to ${v.out}`);
    }
    file.commit();
    return { out: v.out, bytes: statSync(v.out).size };
  }
  if (cmd === 'cert' && sub === 'issue') {
    const csrFile = need(v, 'csr');
    if (!existsSync(csrFile)) throw new CliError(`no such file: ${csrFile}`, Exit.Usage);
    if (v.out) checkOutputPath(v.out, '--out');
    if (v['chain-out']) checkOutputPath(v['chain-out'], '--chain-out');
    const r = await api<{ id: string; certificate: string; chain: string[]; serial: string }>(
      c,
      'POST',
      '/api/v1/certificates',
      { operationid: need(v, 'operation'), keyid: single(v.key, 'key'), csr: readFileSync(csrFile, 'utf8') },
      v['idempotency-key'] ? { 'idempotency-key': v['idempotency-key'] } : {},
    );
    // Both checked before either file is written: a bad chain leaves no certificate file behind either.
    const certificate = answerShape.pem(r?.certificate, 'certificate');
    const chain = v['chain-out'] ? answerShape.pemList(r.chain, 'chain') : [];
    if (v.out) writeOutputFile(v.out, certificate, '--out');
    if (v['chain-out']) writeOutputFile(v['chain-out'], pemBundle([certificate, ...chain]), '--chain-out');
    return r;
  }
  if (cmd === 'cert' && sub === 'revoke' && arg) {
    return api(c, 'POST', `/api/v1/certificates/${encodeURIComponent(arg)}/revocation`, { reason: v.reason ?? 'unspecified' });
  }
  if (cmd === 'sign' && v.cms) {
    // The firmware route stores no answer to replay (the API refuses the header there): no false promise of a safe retry.
    if (v['idempotency-key']) throw new CliError('--cms takes no --idempotency-key: a CMS signature is not replayed; a retry signs again and uses another usage', Exit.Usage);
    const file = need(v, 'file');
    const size = existingFile(file);
    const out = v.out ?? `${file}.p7s`;
    checkOutputPath(out, v.out ? '--out' : `${file}.p7s`);
    const query = new URLSearchParams({ operationid: need(v, 'operation'), keyid: single(v.key, 'key'), description: v.description ?? `ksctl sign ${file}`.slice(0, 1000) });
    // Authenticate before the bar starts, so a login failure is not drawn over.
    await accessToken(c);
    const bar = progressFor(v, `uploading ${file}`, size);
    // A function that opens the file again: apiRaw sends the image once more after a refused cached token (a 401 comes
    // before the API reads any of it). The bar counts each byte once.
    let shown = 0;
    const upload = () => {
      let sent = 0;
      const counted = Readable.from(
        (async function* () {
          for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
            sent += (chunk as Buffer).length;
            if (sent > shown) {
              bar?.tick(sent - shown);
              shown = sent;
            }
            yield chunk as Buffer;
          }
        })(),
      );
      return Readable.toWeb(counted) as unknown as BodyInit;
    };
    let r: Response;
    try {
      r = await apiRaw(
        c,
        'POST',
        `/api/v1/firmware/signatures?${query}`,
        { 'content-type': 'application/octet-stream', 'content-length': String(size) },
        upload,
        { duplex: 'half' } as RequestInit,
      );
    } finally {
      bar?.finish();
    }
    if ((r.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase() !== 'application/pkcs7-signature') {
      throw new CliError('POST /api/v1/firmware/signatures: the answer is no CMS signature (content type)', Exit.Failure, 'unexpected_answer', r.status);
    }
    const der = await boundedBody(r, MAX_ANSWER_BYTES);
    // DER SignedData is one SEQUENCE: an empty or other answer is not written as a .p7s.
    if (der.length < 2 || der[0] !== 0x30) throw new CliError('POST /api/v1/firmware/signatures: the answer is no CMS signature', Exit.Failure, 'unexpected_answer', r.status);
    writeOutputFile(out, der, v.out ? '--out' : `${file}.p7s`);
    return { out, bytes: der.length, imageBytes: size };
  }
  if (cmd === 'keys' && sub === 'list') return api(c, 'GET', '/api/keys');
  if (cmd === 'keys' && sub === 'show' && arg) {
    if (v.chain) checkOutputPath(v.chain, '--chain');
    const key = await api<{ chain: string[] }>(c, 'GET', `/api/v1/keys/${encodeURIComponent(arg)}`);
    if (v.chain) writeOutputFile(v.chain, pemBundle(answerShape.pemList(key?.chain, 'chain')), '--chain');
    return key;
  }
  if (cmd === 'operations' && sub === 'create') {
    const keys = (v.key ?? []).map((k) => {
      const m = /^([^=]+)=(\d+)$/.exec(k);
      if (!m) throw new CliError(`--key must be KEYID=USAGES, got ${k}`, Exit.Usage);
      return { keyid: m[1], usages: Number(m[2]) };
    });
    if (keys.length === 0) throw new CliError('at least one --key KEYID=USAGES is required', Exit.Usage);
    const hours = Number(v.hours ?? '24');
    if (!(hours > 0)) throw new CliError('--hours must be a positive number', Exit.Usage);
    // An Idempotency-Key is bound to the whole body (ADR 0007 addendum "operations and Idempotency-Key"): a rerun with
    // the key must send the same window, so the key needs a fixed --valid-from rather than one taken from the clock.
    const idempotencyKey = v['idempotency-key'];
    if (idempotencyKey !== undefined && v['valid-from'] === undefined) {
      throw new CliError('--idempotency-key needs --valid-from ISO-TIME: a rerun must send the same window, or the Keyserver answers 422 idempotency_key_reused', Exit.Usage);
    }
    const from = v['valid-from'] === undefined ? Date.now() - 60_000 : new Date(v['valid-from']).getTime();
    if (isNaN(from)) throw new CliError('--valid-from must be an ISO 8601 time', Exit.Usage);
    return api<OperationView>(
      c,
      'POST',
      '/api/v1/operations',
      {
        description: need(v, 'description'),
        validFrom: new Date(from).toISOString(),
        validTo: new Date(from + hours * 3_600_000).toISOString(),
        keys,
        ...(v.digest ? { digests: v.digest.map((d) => d.toLowerCase()) } : {}),
        // In Azure Pipelines or GitHub Actions: project, pipeline, run, commit and link, shown to the approvers.
        ...((prov) => (prov ? { provenance: prov } : {}))(ciProvenance(process.env)),
      },
      idempotencyKey ? { 'idempotency-key': idempotencyKey } : {},
    );
  }
  if (cmd === 'operations' && sub === 'show' && arg) return api<OperationView>(c, 'GET', `/api/v1/operations/${encodeURIComponent(arg)}`);
  if (cmd === 'operations' && sub === 'wait' && arg) {
    // --timeout: how long to wait for the approval (exit 1 `timeout`); each poll ends by KSCTL_TIMEOUT (exit 7). The
    // last poll may start as the wait ends: the command ends at most one request's deadline after --timeout.
    const waitSeconds = parseTimeout(v.timeout, '--timeout') ?? APPROVAL_WAIT_SECONDS;
    const end = Date.now() + waitSeconds * 1000;
    watched(new Deadline(waitSeconds + requestSeconds));
    for (;;) {
      c.deadline = new Deadline(requestSeconds);
      const op = await api<OperationView>(c, 'GET', `/api/v1/operations/${encodeURIComponent(arg)}`);
      c.deadline.clear();
      // The state becomes an exit code and a code: only one of the API's states does.
      if (typeof op?.state !== 'string' || !OPERATION_STATES.includes(op.state) || !Array.isArray(op.keys)) {
        throw new CliError(`GET /api/v1/operations/${arg}: the answer is no operation`, Exit.Failure, 'unexpected_answer');
      }
      if (op.state === 'APPROVED' || op.state === 'EXHAUSTED') return op;
      const usableNow = op.state === 'REQUESTED' && op.keys.every((k) => k?.requiredApprovers === 0);
      if (usableNow) return op;
      if (op.state !== 'REQUESTED') throw new CliError(`operation ${arg} is ${op.state}`, Exit.Refused, `operation_${op.state.toLowerCase()}`);
      if (Date.now() >= end) throw new CliError(`operation ${arg} still waiting for approval`, Exit.Failure, 'timeout');
      await new Promise((r) => setTimeout(r, Math.min(2000, end - Date.now())));
    }
  }
  if (cmd === 'sign' && v.message) {
    // Ed25519 (PureEdDSA) signs the message itself: the file goes whole, base64 (the API caps it at 64 KiB).
    if (v.file || v.digest || v.padding || v.format || v.hash) throw new CliError('--message takes no --file, --digest, --hash, --padding or --format', Exit.Usage);
    const size = existingFile(v.message);
    if (v.out) checkOutputPath(v.out, '--out');
    if (size > MAX_SIGN_MESSAGE_BYTES) throw new CliError(`--message: ${v.message} is ${size} bytes; a message sign order takes at most ${MAX_SIGN_MESSAGE_BYTES} (sign larger files with --cms)`, Exit.Usage);
    const message = readFileSync(v.message);
    const order = await api<{ result: string; messageSha256: string }>(
      c,
      'POST',
      '/api/signorders',
      {
        operationid: need(v, 'operation'),
        keyid: single(v.key, 'key'),
        message: message.toString('base64'),
        description: v.description ?? `ksctl sign ${v.message}`.slice(0, 1000).padEnd(8, '.'),
      },
      v['idempotency-key'] ? { 'idempotency-key': v['idempotency-key'] } : {},
    );
    const signature = answerShape.hex(order?.result, 'signature');
    if (v.out) writeOutputFile(v.out, signature, '--out');
    return { ...order, ...(v.out ? { out: v.out } : {}) };
  }
  if (cmd === 'sign') {
    const keyid = single(v.key, 'key');
    const padding = v.padding ?? 'none';
    const given = hexDigestOption(v);
    if (!v.file && !given) throw new CliError('--file or --digest is required', Exit.Usage);
    if (v.out) checkOutputPath(v.out, '--out');
    // Without --hash: a --digest tells its hash by its length; a file is hashed with the key's own hash (a P-384
    // key signs SHA-384 digests, and the API refuses any other length).
    const hash = hashOption(v) ?? (given ? hashOfDigest(given) : await keyHash(c, keyid));
    const digest = v.file ? await hashFile(v, v.file, hash) : (given as Buffer);
    const input = padding === 'digestinfo' ? Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[hash], 'hex'), digest]) : digest;
    const order = await api<{ result: string }>(
      c,
      'POST',
      '/api/signorders',
      {
        operationid: need(v, 'operation'),
        keyid,
        inputdata: input.toString('hex'),
        inputformat: 'hex',
        inputpadding: padding,
        signatureformat: v.format ?? 'asn1',
        description: v.description ?? `ksctl sign ${v.file ?? 'digest'}`.slice(0, 1000).padEnd(8, '.'),
      },
      v['idempotency-key'] ? { 'idempotency-key': v['idempotency-key'] } : {},
    );
    const signature = answerShape.hex(order?.result, 'signature');
    if (v.out) writeOutputFile(v.out, signature, '--out');
    return { ...order, digest: digest.toString('hex'), ...(v.out ? { out: v.out } : {}) };
  }
  throw new CliError(`unknown command: ${pos.join(' ')} (see ksctl --help)`, Exit.Usage);
}

/** How the result is printed; set from the options once they are parsed (--json before that, for usage errors). */
let mode: OutputMode = 'table';

function print(result: unknown): void {
  if (result === undefined) return;
  if (mode === 'json') process.stdout.write(jsonOutput(result));
  else if (mode === 'pem' || mode === 'der') process.stdout.write(certificateOutput(result, mode));
  else process.stdout.write(`${renderTable(result)}\n`);
}

const argv = process.argv.slice(2);
mode = argv.includes('--json') ? 'json' : 'table';
/** A failure on stderr (and stdout with --json), one line. */
function report(e: CliError): void {
  if (mode === 'json') process.stdout.write(jsonOutput({ error: e.message, code: e.code ?? null, status: e.status ?? null, ...e.details }));
  process.stderr.write(errorText(e));
}

run(argv)
  .then(print)
  .catch((err: unknown) => {
    // Whatever an aborted read surfaced as (fetch's own TypeError, a stream's AbortError), a passed deadline is the cause.
    const failed = !(err instanceof CliError) && deadline?.signal.aborted ? deadline.signal.reason : err;
    const e = failed instanceof CliError ? failed : new CliError((failed as Error).message, /Unknown option|Unexpected argument|argument missing/.test(String(failed)) ? Exit.Usage : Exit.Failure);
    report(e);
    process.exitCode = e.exit;
    // An aborted connect (a TLS handshake that never comes) lingers in undici until its own connect timeout (10 s):
    // a passed deadline ends ksctl now (stdout and stderr are written synchronously to files and pipes on Linux).
    if (e.exit === Exit.Timeout) process.exit(e.exit);
  })
  .finally(() => deadline?.clear());
