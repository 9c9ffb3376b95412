import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Inject, Injectable } from '@nestjs/common';
import type { FirmwareSignatureQuery } from '@keyserver/api-contract';
import { KeyLifecycleRepository, KeyRepository, SignOrderRepository } from '@keyserver/data-access';
import { HASHES, signCms } from '@keyserver/pki';
import { ApiError, ApiErrorCode, transportGone, transportRefusal } from '../common/api-error';
import type { Actor } from '../common/actor';
import { Audited, auditEvent } from '../common/audited';
import { API_CONFIG, HSM_SIGNER } from '../app/tokens';
import { KeyChainCache, usableKey } from '../certificates/key-chain';
import { cmsHashOf } from '../keys/key-algorithms';
import { requireAccess } from '@keyserver/authz';
import type { HsmSigner } from '@keyserver/pki';
import type { ApiConfig } from '../config/api-config';
import { SignatureTimestamps } from '../tsa/signature-timestamps';
import { proceedToBody } from '../edge/edge';

/** The request itself: its headers, and the body as a stream that is never buffered. */
export type StreamedRequest = Readable & {
  headers: Record<string, string | string[] | undefined>;
  /** The response (streamedRequest links it): used to close a connection whose body was not read to the end. */
  res?: { headersSent: boolean; setHeader(name: string, value: string): unknown };
  /** The connection (an HTTP request's socket): destroyed, or no longer writable, once the client is gone. */
  socket?: { destroyed: boolean; writable: boolean } | null;
};

/**
 * POST /api/v1/firmware/signatures as stages: content type -> authorize (SIGN on an FW key) -> check the key ->
 * check the operation could give the key a usage now (no reservation) -> `100 Continue` when the caller expects it ->
 * hash the image while it streams (constant memory, capped) -> reserve one usage, sign the CMS in the HSM, add the
 * signature timestamp (ADR 0024), persist and audit (one transaction, the digest checked against the operation)
 * -> the CMS SignedData DER.
 */
@Injectable()
export class FirmwareService {
  private readonly chains: KeyChainCache;

  constructor(
    private readonly keys: KeyRepository,
    private readonly orders: SignOrderRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly audited: Audited,
    private readonly timestamps: SignatureTimestamps,
    lifecycle: KeyLifecycleRepository,
  ) {
    this.chains = new KeyChainCache(this.keys, lifecycle, this.signer);
  }

  async sign(actor: Actor, q: FirmwareSignatureQuery, req: StreamedRequest, requestId: string): Promise<Buffer> {
    const drain = () => {
      if (!req.readableEnded) {
        // The rest of a refused body is discarded, and the connection is not reused for another request.
        if (req.res && !req.res.headersSent) req.res.setHeader('connection', 'close');
        req.resume();
      }
    };
    return this.audited.run(auditEvent('firmware.sign', actor, requestId, { keyid: q.keyid, operationId: q.operationid }), async (a) => {
      const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
      if (type !== 'application/octet-stream') throw new ApiError(ApiErrorCode.UnsupportedMediaType, 'the firmware image must be sent as application/octet-stream');
      const cap = this.config.firmwareMaxBytes;
      const declared = req.headers['content-length'];
      if (declared !== undefined && Number(declared) > cap) throw new ApiError(ApiErrorCode.PayloadTooLarge, `the image exceeds ${cap} bytes`);
      requireAccess(actor, 'SIGN', q.keyid, () => new ApiError(ApiErrorCode.KeyNotPermitted, `not allowed to sign with ${q.keyid}`));
      const hash = cmsHashOf(await usableKey(this.keys, q.keyid, 'FW', 'firmware signatures'));
      // Before a byte of the image is read (ADR 0011 addendum "refused before the image"): an operation that could not
      // give this key a usage now is refused at once, so a caller with a valid token and nothing to sign cannot make
      // the server read and hash gigabytes. Nothing is reserved here; the reservation after the body decides again.
      await this.orders.assertUsableNow(q.operationid, q.keyid);
      // The caller may send the image now: the `100 Continue` its `Expect` waits for (none was sent before the checks),
      // and the connection no longer closed on an answer (a refusal until here left the image unread).
      proceedToBody(req);
      const { digest, bytes } = await hashStream(req, HASHES[hash].node, cap);
      if (bytes === 0) throw new ApiError(ApiErrorCode.ValidationFailed, 'the firmware image is empty');
      // The body may have streamed for minutes (up to HTTP_REQUEST_TIMEOUT_MS): the key is judged again at the
      // instant of signing, so a certificate that expired, or a key retired, revoked or rotated meanwhile, counts
      // as it would for a sign order decided in milliseconds (ADR 0007 addendum "a key that changes while the image
      // streams"). The row read now is the one the HSM key id and the certificate come from.
      const key = await usableKey(this.keys, q.keyid, 'FW', 'firmware signatures');
      if (cmsHashOf(key) !== hash) throw new ApiError(ApiErrorCode.KeyNotUsable, `${q.keyid} changed its digest algorithm while the image was sent`);
      // Nobody could receive the signature: the client left after its last byte, or the transport refused what it sent
      // after the body (a Content-Length shorter than the body) and answered 400. No usage for it (ADR 0011 addendum).
      if (transportGone(req)) throw transportRefusal(req);
      const digestHex = Buffer.from(digest).toString('hex');
      const cms = await this.chains.cmsSigner(key);
      const details: Record<string, unknown> = { bytes, hash };
      // Decided before the usage is reserved; the token is asked for inside the reservation, over the signature.
      const timestamp = await this.timestamps.stamper(hash, requestId, (facts) => (details['timestamp'] = facts));
      const recorded = await this.orders.recordWithUsage(
        {
          operationId: q.operationid,
          keyid: q.keyid,
          subjectId: actor.subjectId,
          description: q.description,
          inputdata: digestHex,
          inputformat: 'hex',
          inputpadding: 'cms',
          signatureformat: 'cms',
          digest: digestHex,
          requestId,
          audit: { ...a.event, details },
        },
        async () => Buffer.from(await signCms(this.signer, cms, { digest, hash, timestamp })).toString('hex'),
      );
      return Buffer.from(recorded.signOrder.result, 'hex');
    }, { onError: drain });
  }
}

/** Body bytes received (all uploads of this process) between two young-generation collections. */
export const SCAVENGE_EVERY_BYTES = 8 * 1024 * 1024;

/**
 * V8's young-generation collection (a scavenge: only the young objects, ~1 ms), or undefined when this runtime does
 * not offer it. `gc` exists only in the context made here: the flag is set back at once, so neither the API's own
 * global nor a later context gets it.
 */
function youngGenerationGc(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? () => (gc as (o: { type: 'minor' }) => void)({ type: 'minor' }) : undefined;
  } catch {
    return undefined;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

let scavenge: (() => void) | undefined | null = null;
let sinceScavenge = 0;

/**
 * Node's HTTP parser copies every socket read of a body into a new Buffer (~64 KiB). Hashed synchronously, each
 * dies at once, but V8 frees a Buffer's memory only in a collection, and an upload allocates too few JS objects to
 * start a young-generation one: the dead Buffers piled up until V8's external-memory trigger (~64 MiB) ran a
 * mark-compact of the whole heap, i.e. 64-81 MiB of RSS growth per upload (docs/benchmarks.md). Collecting the young
 * generation after every SCAVENGE_EVERY_BYTES received frees them while they are young; backpressure or smaller
 * reads do not help (measured: the allocation per read stays), see ADR 0034.
 */
function countReceived(bytes: number): void {
  sinceScavenge += bytes;
  if (sinceScavenge < SCAVENGE_EVERY_BYTES) return;
  sinceScavenge = 0;
  if (scavenge === null) scavenge = youngGenerationGc();
  scavenge?.();
}

/**
 * Hashes a stream chunk by chunk in constant memory. More than `cap` bytes is a 413 at once; the stream is
 * left flowing (not destroyed, which would kill the socket before the answer is written). A body that ends early
 * is the transport's refusal (request_timeout) or the client's abort (request_aborted), audited as such.
 */
export function hashStream(stream: Readable, nodeHash: string, cap: number): Promise<{ digest: Uint8Array; bytes: number }> {
  return new Promise((resolve, reject) => {
    const h = createHash(nodeHash);
    let bytes = 0;
    let failed = false;
    const onData = (chunk: Buffer) => {
      if (failed) return;
      bytes += chunk.length;
      if (bytes > cap) {
        failed = true;
        reject(new ApiError(ApiErrorCode.PayloadTooLarge, `the image exceeds ${cap} bytes`));
        return;
      }
      h.update(chunk);
      countReceived(chunk.length);
    };
    stream.on('data', onData);
    stream.once('end', () => {
      if (!failed) resolve({ digest: new Uint8Array(h.digest()), bytes });
    });
    // The body ended early: the client went away (request_aborted) or the server stopped reading (request_timeout).
    const ended = () => {
      if (failed) return;
      failed = true;
      reject(transportRefusal(stream));
    };
    stream.once('error', ended);
    stream.once('close', () => {
      if (!stream.readableEnded) ended();
    });
    // Gone before the route was reached (the client left, or the transport refused what followed, while the token
    // and the key were checked): its 'error' and 'close' were emitted already and will not come again.
    if (stream.destroyed && !stream.readableEnded) ended();
  });
}
