import { Inject, Injectable } from '@nestjs/common';
import { createHash } from 'node:crypto';
import type { SignDigestOrderRequest, SignMessageOrderRequest, SignOrderRequest, SignOrderResponse } from '@keyserver/api-contract';
import { KeyRepository, SignOrderRepository, requestFingerprint, type Key, type SignOrder } from '@keyserver/data-access';
import { checkDigestOrder, checkMessage, decodeDigestInfo, signDigest, signMessage } from '@keyserver/pki';
import { ApiError, ApiErrorCode } from '../common/api-error';
import type { Actor } from '../common/actor';
import { Audited, auditEvent, type AuditScope } from '../common/audited';
import { IDEMPOTENT_ROUTE, auditReplay, checkIdempotencyKey } from '../common/idempotency-key';
import { HSM_SIGNER } from '../app/tokens';
import { toHashName, toPkiAlgorithm } from '../keys/key-algorithms';
import { usableKey } from '../certificates/key-chain';
import { requireAccess } from '@keyserver/authz';
import type { HsmSigner } from '@keyserver/pki';

const ROUTE = IDEMPOTENT_ROUTE.signOrders;
/** The sign_order row's inputpadding of a message order (its inputdata is the message's SHA-256). */
const MESSAGE_PADDING = 'message';

/** Decodes sign-order input data; undefined when the text is not valid in its format. */
export function decodeInput(data: string, format: 'hex' | 'base64'): Uint8Array | undefined {
  if (format === 'hex') return /^(?:[0-9a-fA-F]{2})+$/.test(data) ? new Uint8Array(Buffer.from(data, 'hex')) : undefined;
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(data) || data.length === 0) return undefined;
  const bytes = Buffer.from(data, 'base64');
  // Canonical only (RFC 4648 3.5): pad bits set ('AB==' beside 'AA==') would be a second text for the same bytes.
  return bytes.toString('base64') === data ? new Uint8Array(bytes) : undefined;
}

/**
 * POST /api/signorders as explicit stages:
 * decode -> authorize (per-key SIGN) -> check the key (FW, ACTIVE, and the order's form fits its algorithm:
 * `checkDigestOrder`/`checkMessage`) ->
 * reserve a usage, sign in the HSM, persist and audit (one transaction) -> respond. A refusal at any stage is
 * audited and consumes nothing.
 *
 * Two forms: a digest order (RSA, ECDSA keys: `inputdata` is the digest or DigestInfo) and a message order (Ed25519
 * keys: `message` is the whole message, PureEdDSA). A message is bound to the operation by its SHA-256, which is
 * also all the audit log and the sign_order row keep of it (ADR 0030).
 */
@Injectable()
export class SignOrderService {

  constructor(
    private readonly keys: KeyRepository,
    private readonly orders: SignOrderRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    private readonly audited: Audited,
  ) {}

  async create(actor: Actor, dto: SignOrderRequest, idempotencyKey: string | undefined, requestId: string): Promise<SignOrderResponse> {
    return this.audited.run(auditEvent('signorder.create', actor, requestId, { keyid: dto.keyid, operationId: dto.operationid }), async (a) => {
      checkIdempotencyKey(idempotencyKey);
      return 'message' in dto ? this.signMessageOrder(a, actor, dto, idempotencyKey, requestId) : this.signDigestOrder(a, actor, dto, idempotencyKey, requestId);
    });
  }

  private async signDigestOrder(a: AuditScope, actor: Actor, dto: SignDigestOrderRequest, idempotencyKey: string | undefined, requestId: string): Promise<SignOrderResponse> {
    const input = this.decode(dto);
    this.authorize(actor, dto.keyid);
    const key = await this.usableKey(dto.keyid);
    const form = { input, inputPadding: dto.inputpadding, signatureFormat: dto.signatureformat, hash: toHashName(key.hash) };
    // Before any usage is reserved: the order's form must be one the key's algorithm honestly produces (a digest is
    // never signed by Ed25519 as if it were the message, PSS or a DigestInfo never by ECDSA, p1363 never by RSA), so
    // a refused order never holds a usage that a legitimate order racing it would be refused for.
    checkDigestOrder(toPkiAlgorithm(key.algorithm), form);
    const hsmKey = await this.signer.getKey(key.hsmKeyId);
    const inputHex = Buffer.from(input).toString('hex');
    const digest = this.digestOf(dto.inputpadding, input);
    const recorded = await this.orders.recordWithUsage(
      {
        operationId: dto.operationid,
        keyid: dto.keyid,
        subjectId: actor.subjectId,
        description: dto.description,
        inputdata: inputHex,
        inputformat: dto.inputformat,
        inputpadding: dto.inputpadding,
        signatureformat: dto.signatureformat,
        digest,
        idempotencyKey: idempotencyKey ?? null,
        // The key is bound to every field of the validated body: any difference on a retry is a 422.
        requestHash: idempotencyKey ? requestFingerprint(ROUTE, idempotencyKey, dto) : null,
        requestId,
        audit: { ...a.event, details: { inputpadding: dto.inputpadding, signatureformat: dto.signatureformat } },
      },
      async () => {
        const sig = await signDigest(this.signer, hsmKey, form);
        return Buffer.from(sig).toString('hex');
      },
    );
    if (recorded.replayed) await this.auditReplay(a, recorded.signOrder, digest);
    return { keyid: dto.keyid, inputdata: dto.inputdata, signatureformat: dto.signatureformat, result: recorded.signOrder.result };
  }

  private async signMessageOrder(a: AuditScope, actor: Actor, dto: SignMessageOrderRequest, idempotencyKey: string | undefined, requestId: string): Promise<SignOrderResponse> {
    const message = decodeInput(dto.message, 'base64');
    if (!message) throw new ApiError(ApiErrorCode.InvalidInputEncoding, 'message is not valid base64 (RFC 4648 section 4, padded)');
    // What the operation's digests and the audit log know of the message (never the message): its SHA-256.
    const sha256 = createHash('sha256').update(message).digest('hex');
    a.event.digest = sha256;
    a.event.details = { inputpadding: MESSAGE_PADDING, messageBytes: message.length };
    this.authorize(actor, dto.keyid);
    const key = await this.usableKey(dto.keyid);
    checkMessage(toPkiAlgorithm(key.algorithm), message);
    const hsmKey = await this.signer.getKey(key.hsmKeyId);
    const recorded = await this.orders.recordWithUsage(
      {
        operationId: dto.operationid,
        keyid: dto.keyid,
        subjectId: actor.subjectId,
        description: dto.description,
        inputdata: sha256,
        inputformat: 'hex',
        inputpadding: MESSAGE_PADDING,
        signatureformat: 'raw',
        digest: sha256,
        idempotencyKey: idempotencyKey ?? null,
        requestHash: idempotencyKey ? requestFingerprint(ROUTE, idempotencyKey, dto) : null,
        requestId,
        audit: { ...a.event },
      },
      async () => Buffer.from(await signMessage(this.signer, hsmKey, message)).toString('hex'),
    );
    if (recorded.replayed) await this.auditReplay(a, recorded.signOrder, sha256);
    return { keyid: dto.keyid, messageSha256: sha256, result: recorded.signOrder.result };
  }

  /** A stored signature handed out again: one `signorder.replayed` event ({@link auditReplay}, shared with certificates). */
  private async auditReplay(a: AuditScope, order: SignOrder, digest: string): Promise<void> {
    await auditReplay(this.audited, a, 'signorder', order.requestId, { digest, details: { signOrderId: order.id } });
  }

  private decode(dto: SignDigestOrderRequest): Uint8Array {
    const bytes = decodeInput(dto.inputdata, dto.inputformat);
    if (!bytes) throw new ApiError(ApiErrorCode.InvalidInputEncoding, `inputdata is not valid ${dto.inputformat}`);
    return bytes;
  }

  private authorize(actor: Actor, keyid: string): void {
    requireAccess(actor, 'SIGN', keyid, () => new ApiError(ApiErrorCode.KeyNotPermitted, `not allowed to sign with ${keyid}`));
  }

  // Raw signatures only with firmware keys (a raw signature by a CA or ROOT key could forge certificates), ACTIVE and
  // inside their certificate's validity: the one check firmware signatures and certificates make too.
  private usableKey(keyid: string): Promise<Key> {
    return usableKey(this.keys, keyid, 'FW', 'sign orders');
  }

  /** Operations list the digests that may be signed; for a DigestInfo that is the digest inside it. */
  private digestOf(padding: SignDigestOrderRequest['inputpadding'], input: Uint8Array): string {
    const digest = padding === 'digestinfo' ? decodeDigestInfo(input).digest : input;
    return Buffer.from(digest).toString('hex');
  }
}
