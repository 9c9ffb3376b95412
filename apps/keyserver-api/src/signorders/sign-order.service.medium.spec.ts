// Medium tier: the sign-order service with its real repositories on a real PostgreSQL and a real PKCS#11 signer
// on a throwaway SoftHSM token, wired by constructor exactly as the composition root wires it (no HTTP, no processes).
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { Permission, type SignDigestOrderRequest } from '@keyserver/api-contract';
import { AuditRepository, KeyRepository, OperationRepository, SignOrderRepository, type Db } from '@keyserver/data-access';
import type { HsmKeyInfo } from '@keyserver/pki';
import { Audited } from '../common/audited';
import { codeOf, mediumActor, mediumDatabase, mediumSigner, seedKey } from '../testing/medium';
import { SignOrderService } from './sign-order.service';

describe(`${SignOrderService.name} (medium: real PostgreSQL, SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_signorders');
  const hsm = mediumSigner('medium-signorders');
  let db: Db;
  let operations: OperationRepository;
  let audit: AuditRepository;
  let service: SignOrderService;

  beforeAll(async () => {
    db = pg.db;
    operations = new OperationRepository(db);
    audit = new AuditRepository(db);
    service = new SignOrderService(new KeyRepository(db), new SignOrderRepository(db, { leaseMs: 60_000 }), hsm.signer, new Audited(audit));
  });

  const firmware = (n: number) => createHash('sha256').update(`firmware image ${n}`).digest();

  /** A new FW key on the token, a signer holding SIGN on it, and an operation for it with `usages` (approved unless said). */
  async function signingSetup(opts: { usages?: number; approved?: boolean; alsoSignWith?: string[] } = {}) {
    const fwKey: HsmKeyInfo = await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `medium-fw-${randomBytes(4).toString('hex')}` });
    const keyid = await seedKey(db, { requiredApprovers: 1, hsmKeyId: fwKey.hsmKeyId });
    const orderer = await mediumActor(db, { natures: ['ORDERER'], grants: ['ORDER'], keyids: [keyid] }, Permission.OperationsCreate);
    const approver = await mediumActor(db, { natures: ['APPROVER'], grants: ['APPROVE'], keyids: [keyid] }, Permission.OperationsApprove);
    const signer = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [keyid, ...(opts.alsoSignWith ?? [])] }, Permission.SignOrdersCreate);
    const op = await operations.create({
      description: 'medium sign orders',
      ordererId: orderer.subjectId,
      validFrom: new Date(Date.now() - 60_000),
      validTo: new Date(Date.now() + 3_600_000),
      keys: [{ keyid, usagesAllowed: opts.usages ?? 1 }],
    });
    if (opts.approved ?? true) await operations.approve(op.id, [keyid], approver.subjectId);
    return { keyid, fwKey, signer, operationId: op.id };
  }

  const order = (operationid: string, keyid: string, digest: Buffer): SignDigestOrderRequest => ({
    operationid,
    keyid,
    inputdata: digest.toString('hex'),
    inputformat: 'hex',
    inputpadding: 'none',
    signatureformat: 'asn1',
    description: 'medium sign order',
  });

  const usagesUsed = async (operationId: string) => (await operations.get(operationId)).keys.map((k) => k.usagesUsed);
  const requestId = () => `req-${randomBytes(4).toString('hex')}`;

  it('signs a digest order on an APPROVED operation with the HSM key: Node verifies the signature, one usage is spent', async () => {
    const { keyid, fwKey, signer, operationId } = await signingSetup({ usages: 2 });
    const digest = firmware(1);
    const rid = requestId();
    const res = await service.create(signer, order(operationId, keyid, digest), undefined, rid);
    const publicKey = createPublicKey({ key: Buffer.from(fwKey.spki), format: 'der', type: 'spki' });
    // The caller sent the image's SHA-256: a device checks the signature over the image itself.
    expect(verify('sha256', Buffer.from('firmware image 1'), { key: publicKey, dsaEncoding: 'der' }, Buffer.from(res.result, 'hex'))).toBe(true);
    expect(await usagesUsed(operationId)).toEqual([1]);
    const events = (await audit.list({ action: 'signorder.create', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.keyid, e.operationId])).toEqual([['SUCCESS', keyid, operationId]]);
  });

  it.each([
    ['fail an order when the operation has no usage left', 'exhausted', 'usage_exhausted'],
    ['fail an order with a key the signer holds no SIGN grant on', 'wrong-key', 'key_not_permitted'],
    ['fail an order with a key the signer may use that the operation does not list', 'unlisted-key', 'key_not_in_operation'],
    ['fail an order on an operation still waiting for its approval', 'not-approved', 'operation_not_usable'],
  ] as const)('%s: refused with its code, no usage spent, one DENIED event', async (_n, kind, code) => {
    const unlisted = kind === 'unlisted-key' ? await seedKey(db, { hsmKeyId: (await hsm.signer.generateKey({ algorithm: 'EC-P256', label: `medium-fw-${randomBytes(4).toString('hex')}` })).hsmKeyId }) : undefined;
    const { keyid, signer, operationId } = await signingSetup({ approved: kind !== 'not-approved', alsoSignWith: unlisted ? [unlisted] : [] });
    if (kind === 'exhausted') await service.create(signer, order(operationId, keyid, firmware(2)), undefined, requestId());
    const before = await usagesUsed(operationId);
    const otherKey = kind === 'wrong-key' ? await seedKey(db) : (unlisted ?? keyid);
    const rid = requestId();
    expect(await codeOf(service.create(signer, order(operationId, otherKey, firmware(3)), undefined, rid))).toBe(code);
    expect(await usagesUsed(operationId)).toEqual(before);
    const events = (await audit.list({ action: 'signorder.create', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode, e.keyid])).toEqual([['DENIED', code, otherKey]]);
  });

  it('answers a retry with the same Idempotency-Key from the stored order: the same signature, the usage counted once', async () => {
    const { keyid, signer, operationId } = await signingSetup({ usages: 2 });
    const dto = order(operationId, keyid, firmware(4));
    const first = await service.create(signer, dto, 'build-42.fw', requestId());
    const retry = await service.create(signer, dto, 'build-42.fw', requestId());
    // ECDSA signatures are randomised: an equal one was not signed again.
    expect(retry.result).toBe(first.result);
    expect(await usagesUsed(operationId)).toEqual([1]);
  });

  it('lets exactly 3 of 8 concurrent orders through an operation with 3 usages, the rest usage_exhausted', async () => {
    const { keyid, signer, operationId } = await signingSetup({ usages: 3 });
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => codeOf(service.create(signer, order(operationId, keyid, firmware(10 + i)), undefined, requestId()))));
    expect(results.filter((c) => c === 'ok')).toHaveLength(3);
    expect(results.filter((c) => c !== 'ok')).toEqual(Array(5).fill('usage_exhausted'));
    expect(await usagesUsed(operationId)).toEqual([3]);
    const outcomes = (await audit.list({ action: 'signorder.create', operationId })).items.map((e) => e.outcome).sort();
    expect(outcomes).toEqual([...Array(5).fill('DENIED'), ...Array(3).fill('SUCCESS')]);
  });
});
