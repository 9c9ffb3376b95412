import { Inject, Injectable } from '@nestjs/common';
import { AUDIT_CHECKPOINT_POLICY_OID } from '@keyserver/audit-chain';
import { DataAccessError, KeyLifecycleRepository, KeyRepository, TimestampRepository, type AuditInput, type Key } from '@keyserver/data-access';
import {
  createTimeStampToken,
  grantedResponse,
  hex,
  MAX_TIMESTAMP_QUERY_BYTES,
  parseTimeStampQuery,
  rejectionResponse,
  TsaError,
  TsaErrorCode,
  type IssuedTimeStamp,
  type TimeStampAuthority,
  type TimeStampQuery,
  type HsmSigner,
} from '@keyserver/pki';
import { ApiError, ApiErrorCode, transportRefusal } from '../common/api-error';
import { errorCodeOf, outcomeOf } from '../common/audited';
import { API_CONFIG, HSM_SIGNER } from '../app/tokens';
import type { ApiConfig } from '../config/api-config';
import { KeyChainCache, usableNow } from '../certificates/key-chain';
import { cmsHashOf } from '../keys/key-algorithms';
import { EDGE, ipKey, remoteIp, type EdgeServices } from '../edge/edge';
import type { StreamedRequest } from '../firmware/firmware.service';

/** What the public route answers: always a TimeStampResp, granted or rejected (RFC 3161 3.4). */
export interface TsaAnswer {
  der: Buffer;
  granted: boolean;
}

/**
 * The Keyserver as an RFC 3161 TSA (docs/adr/0024): the newest ACTIVE TSA key whose certificate is valid now (or
 * the one TSA_KEYID names) signs TSTInfo tokens in the HSM; every token is written to the register
 * (timestamp_token) before it is returned, and a serial that is already there is never handed out twice.
 * The public route is anonymous by design (a timestamp says "these bytes existed then", nothing more), so
 * there is no access check: callers are rate-limited per IP at the edge and refusals are audited (bounded).
 */
@Injectable()
export class TsaService {
  private readonly chains: KeyChainCache;

  constructor(
    private readonly keys: KeyRepository,
    private readonly register: TimestampRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(EDGE) private readonly edge: EdgeServices,
    lifecycle: KeyLifecycleRepository,
  ) {
    this.chains = new KeyChainCache(this.keys, lifecycle, this.signer);
  }

  /** POST /api/v1/tsa: content type -> body (capped) -> parse -> sign -> register -> TimeStampResp. */
  async answer(req: StreamedRequest, requestId: string): Promise<TsaAnswer> {
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/timestamp-query') {
      req.resume();
      if (req.res && !req.res.headersSent) req.res.setHeader('connection', 'close');
      const refusal = new ApiError(ApiErrorCode.UnsupportedMediaType, 'a time-stamp query is sent as application/timestamp-query');
      await this.auditRefusal(req, requestId, refusal, { status: refusal.status });
      throw refusal;
    }
    let bytes = 0;
    try {
      const body = await readCapped(req, MAX_TIMESTAMP_QUERY_BYTES);
      bytes = body.length;
      const query = parseTimeStampQuery(body, { policy: this.config.tsa.policy });
      const issued = await this.issue(query, 'public', requestId);
      return { der: Buffer.from(grantedResponse(issued.token)), granted: true };
    } catch (err) {
      // The body ended early: the client went away (request_aborted) or the server stopped reading it (request_timeout,
      // already answered 408). Audited as such, like the firmware upload; nobody is left to read a TimeStampResp.
      if (err instanceof ApiError && (err.code === ApiErrorCode.RequestAborted || err.code === ApiErrorCode.RequestTimeout || err.code === ApiErrorCode.ServiceUnavailable)) {
        await this.auditRefusal(req, requestId, err, { status: err.status });
        throw err;
      }
      if (!(err instanceof TsaError)) throw err;
      if (!req.readableEnded) {
        if (req.res && !req.res.headersSent) req.res.setHeader('connection', 'close');
        req.resume();
      }
      await this.auditRefusal(req, requestId, err, { bytes, failInfo: err.failInfoBit });
      return { der: Buffer.from(rejectionResponse(err)), granted: false };
    }
  }

  /**
   * A timestamp for a CMS signature made by this Keyserver (the firmware route): the same TSA, register
   * source "firmware". Undefined when there is no usable TSA key (the signature then goes without one).
   */
  async forSignature(): Promise<((query: Pick<TimeStampQuery, 'hash' | 'messageImprintDer' | 'nonceDer' | 'certReq'>, requestId: string) => Promise<IssuedTimeStamp>) | undefined> {
    const current = await this.authority().catch((err: unknown) => {
      if (err instanceof TsaError && err.code === TsaErrorCode.TsaNotAvailable) return undefined;
      throw err;
    });
    if (!current) return undefined;
    return (query, requestId) => this.issueWith(current, query, 'firmware', requestId);
  }

  /**
   * The current TSA for the audit sealer (docs/adr/0048): signs a token over the given MessageImprint, with the TSA
   * certificate in it (certReq), and writes nothing: the caller stores the token and its register row together, or
   * discards it unissued. Undefined when there is no usable TSA key (the chain then stays unsealed).
   */
  async forAuditCheckpoint(): Promise<{ key: Key; policy: string; sign: (messageImprintDer: Uint8Array) => Promise<IssuedTimeStamp> } | undefined> {
    const current = await this.authority().catch((err: unknown) => {
      if (err instanceof TsaError && err.code === TsaErrorCode.TsaNotAvailable) return undefined;
      throw err;
    });
    if (!current) return undefined;
    // Under the checkpoint policy, which the anonymous route never issues (ADR 0048 addendum).
    const sealing = { ...current.tsa, policy: AUDIT_CHECKPOINT_POLICY_OID };
    return { key: current.key, policy: sealing.policy, sign: (messageImprintDer) => createTimeStampToken(this.signer, sealing, { messageImprintDer, certReq: true }) };
  }

  private async issue(query: TimeStampQuery, source: 'public' | 'firmware', requestId: string): Promise<IssuedTimeStamp> {
    return this.issueWith(await this.authority(), query, source, requestId);
  }

  private async issueWith(current: { key: Key; tsa: TimeStampAuthority }, query: Pick<TimeStampQuery, 'hash' | 'messageImprintDer' | 'nonceDer' | 'certReq'>, source: 'public' | 'firmware', requestId: string): Promise<IssuedTimeStamp> {
    // A random 128-bit serial repeats with negligible probability; the register's primary key makes it impossible.
    for (let attempt = 0; ; attempt++) {
      const issued = await createTimeStampToken(this.signer, current.tsa, query);
      try {
        await this.register.record({
          serialHex: issued.serialHex,
          tsaKeyid: current.key.keyid,
          genTime: issued.genTime,
          policy: current.tsa.policy,
          hashAlgorithm: query.hash,
          messageImprint: hex(query.messageImprintDer),
          nonceHex: query.nonceDer ? hex(query.nonceDer) : null,
          source,
          requestId: requestId || null,
        });
        return issued;
      } catch (err) {
        if (!(err instanceof DataAccessError && err.code === 'conflict') || attempt >= 2) throw err;
      }
    }
  }

  /**
   * The signing TSA: TSA_KEYID's key, else the ACTIVE TSA key certified most recently, valid now: its certificate and
   * the external chain above its ROOT (the check of every signing route, certificates/key-chain.ts).
   */
  private async authority(): Promise<{ key: Key; tsa: TimeStampAuthority }> {
    const now = Date.now();
    const wanted = this.config.tsa.keyid;
    const candidates = (await this.keys.list({ type: 'TSA', state: 'ACTIVE' }))
      .filter((k) => !wanted || k.keyid === wanted)
      .sort((a, b) => b.notBefore.getTime() - a.notBefore.getTime() || b.createdAt.getTime() - a.createdAt.getTime());
    let key: Key | undefined;
    for (const k of candidates) {
      if (await usableNow(this.keys, k, now)) {
        key = k;
        break;
      }
    }
    if (!key) throw new TsaError(TsaErrorCode.TsaNotAvailable, wanted ? `TSA key ${wanted} is not ACTIVE and valid now` : 'this Keyserver has no ACTIVE TSA key valid now');
    const cms = await this.chains.cmsSigner(key);
    return { key, tsa: { cms, hash: cmsHashOf(key), policy: this.config.tsa.policy, accuracyMs: this.config.tsa.accuracyMs } };
  }

  /** The anonymous route's refusals, with the outcome rule of every audited request (common/audited.ts). */
  private auditRefusal(req: StreamedRequest, requestId: string, err: ApiError | TsaError, details: Record<string, unknown>): Promise<void> {
    const raw = req as unknown as Parameters<typeof remoteIp>[0];
    const ip = remoteIp(raw);
    const code = errorCodeOf(err);
    const input: AuditInput = { action: 'timestamp.rejected', outcome: outcomeOf(err), errorCode: code, requestId: requestId || null, details: { ip, ...details } };
    // Bounded like every anonymous refusal: identical ones per caller are aggregated (ADR 0011).
    return this.edge.refusals.record(`timestamp.rejected|${code}|${ipKey(raw)}`, input);
  }
}

/**
 * The whole body when it is at most `cap` bytes; a longer one is refused as soon as it is seen (nothing more is kept).
 * A body that ends early is the transport's refusal or the client's abort ({@link transportRefusal}), never a
 * malformed query: nothing was there to parse.
 */
function readCapped(req: StreamedRequest, cap: number): Promise<Uint8Array> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > cap) return Promise.reject(new TsaError(TsaErrorCode.QueryTooLarge, `queries are at most ${cap} bytes`));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (c: Buffer) => {
      if (done) return;
      size += c.length;
      if (size > cap) {
        done = true;
        reject(new TsaError(TsaErrorCode.QueryTooLarge, `queries are at most ${cap} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.once('end', () => {
      if (!done) resolve(new Uint8Array(Buffer.concat(chunks)));
      done = true;
    });
    const ended = () => {
      if (!done) reject(transportRefusal(req));
      done = true;
    };
    req.once('error', ended);
    req.once('close', () => {
      if (!req.readableEnded) ended();
    });
    // Gone before the route was reached: its 'error' and 'close' were emitted already and will not come again.
    if (req.destroyed && !req.readableEnded) ended();
  });
}
