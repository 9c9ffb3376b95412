// Medium tier: the sign-order service with its real repositories on a real PostgreSQL and a real PKCS#11 signer
// on a throwaway SoftHSM token, wired by constructor exactly as the composition root wires it (no HTTP, no processes).
import { constants, createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { Permission, type SignDigestOrderRequest } from '@keyserver/api-contract';
import { AuditRepository, KeyRepository, OperationRepository, SignOrderRepository, observeReservations, type Db } from '@keyserver/data-access';
import { encodeDigestInfo, type HsmKeyInfo } from '@keyserver/pki';
import { Audited } from '../common/audited';
import { codeOf, mediumActor, mediumDatabase, mediumOpenssl, mediumSigner, seedKey } from '../testing/medium';
import { HOSTILE_IDEMPOTENCY_KEYS } from '../testing/idempotency-keys';
import { SignOrderService } from './sign-order.service';

describe(`${SignOrderService.name} (medium: real PostgreSQL, SoftHSM)`, () => {
  const pg = mediumDatabase('ks_api_medium_signorders');
  const hsm = mediumSigner('medium-signorders');
  const openssl = mediumOpenssl('medium-signorders');
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
  async function signingSetup(opts: { usages?: number; approved?: boolean; alsoSignWith?: string[]; rsa?: boolean; certificate?: { notBefore: Date; notAfter: Date } } = {}) {
    const fwKey: HsmKeyInfo = await hsm.signer.generateKey({ algorithm: opts.rsa ? 'RSA-2048' : 'EC-P256', label: `medium-fw-${randomBytes(4).toString('hex')}` });
    const keyid = await seedKey(db, { requiredApprovers: 1, hsmKeyId: fwKey.hsmKeyId, ...(opts.rsa ? { algorithm: 'RSA_2048' as const } : {}) });
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
    // A certificate that changes after the order and the approval (both refuse a window it does not cover: ADR 0017
    // addendum session 25): the sign path judges the instant of use.
    if (opts.certificate) await db.prisma.key.update({ where: { keyid }, data: opts.certificate });
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

  // An order whose form its key cannot honestly produce is refused before a usage is reserved: a reservation, even one
  // given back, holds the operation's last usage while the HSM is asked, and a legitimate order racing it is refused.
  it.each([
    ['fail pss padding with an ECDSA key', false, { inputpadding: 'pss' }, 'padding_not_supported_for_key'],
    ['fail a DigestInfo with an ECDSA key', false, { inputpadding: 'digestinfo', inputdata: Buffer.from(encodeDigestInfo('SHA-256', firmware(5))).toString('hex') }, 'padding_not_supported_for_key'],
    ['fail a 20-byte digest for an ECDSA key that hashes with SHA-256', false, { inputdata: 'ab'.repeat(20) }, 'digest_length_mismatch'],
    ['fail an RSA signature asked for in p1363 (an ECDSA encoding)', true, { signatureformat: 'p1363' }, 'signature_format_not_supported_for_key'],
    ['fail a SHA-384 DigestInfo for an RSA key that hashes with SHA-256', true, { inputpadding: 'digestinfo', inputdata: Buffer.from(encodeDigestInfo('SHA-384', createHash('sha384').update('x').digest())).toString('hex') }, 'digestinfo_hash_mismatch'],
    ['fail a 48-byte digest with pss for an RSA key that hashes with SHA-256', true, { inputpadding: 'pss', inputdata: 'ab'.repeat(48) }, 'digest_length_mismatch'],
  ] as const)('%s: refused before any usage is reserved, one DENIED event', async (_n, rsa, change, code) => {
    const { keyid, signer, operationId } = await signingSetup({ rsa });
    const reservations: string[] = [];
    observeReservations((_kind, _s, outcome) => reservations.push(outcome));
    const rid = requestId();
    try {
      expect(await codeOf(service.create(signer, { ...order(operationId, keyid, firmware(5)), ...change }, undefined, rid))).toBe(code);
    } finally {
      observeReservations(undefined);
    }
    expect(reservations).toEqual([]);
    expect(await usagesUsed(operationId)).toEqual([0]);
    const events = (await audit.list({ action: 'signorder.create', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', code]]);
  });

  it.each([
    ['fail a key whose certificate expired a second ago', -86_400_000, -1_000],
    ['fail a key whose certificate is valid only from tomorrow', 86_400_000, 2 * 86_400_000],
  ] as const)('%s: 409 key_not_usable before any usage is reserved, one DENIED event, nothing signed', async (_n, from, to) => {
    const now = Math.floor(Date.now() / 1000) * 1000;
    const { keyid, signer, operationId } = await signingSetup({ certificate: { notBefore: new Date(now + from), notAfter: new Date(now + to) } });
    const seen: unknown[] = [];
    observeReservations((_kind, _s, outcome) => seen.push(outcome));
    const rid = requestId();
    try {
      expect(await codeOf(service.create(signer, order(operationId, keyid, firmware(7)), undefined, rid))).toBe('key_not_usable');
    } finally {
      observeReservations(undefined);
    }
    expect(seen).toEqual([]);
    expect(await usagesUsed(operationId)).toEqual([0]);
    const events = (await audit.list({ action: 'signorder.create', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'key_not_usable']]);
  });

  it('ok an RSA key signs asn1 with none, digestinfo and pss (salt = hash length, MGF1 with the same hash): Node and openssl pkeyutl verify each', async () => {
    const { keyid, fwKey, signer, operationId } = await signingSetup({ rsa: true, usages: 3 });
    const publicKey = createPublicKey({ key: Buffer.from(fwKey.spki), format: 'der', type: 'spki' });
    const pub = openssl.write('rsa-pub.der', fwKey.spki);
    const digest = firmware(6);
    const digestFile = openssl.write('digest.bin', digest);
    for (const [inputpadding, inputdata] of [['none', digest], ['digestinfo', Buffer.from(encodeDigestInfo('SHA-256', digest))], ['pss', digest]] as const) {
      const res = await service.create(signer, { ...order(operationId, keyid, digest), inputpadding, inputdata: Buffer.from(inputdata).toString('hex') }, undefined, requestId());
      // The salt length is pinned (a verifier told "digest" refuses any other), not left to AUTO detection.
      const padding = inputpadding === 'pss' ? { padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST } : {};
      expect([inputpadding, verify('sha256', Buffer.from('firmware image 6'), { key: publicKey, ...padding }, Buffer.from(res.result, 'hex'))]).toEqual([inputpadding, true]);
      const pss = inputpadding === 'pss' ? ['-pkeyopt', 'rsa_padding_mode:pss', '-pkeyopt', 'rsa_pss_saltlen:32', '-pkeyopt', 'rsa_mgf1_md:sha256'] : [];
      const sigFile = openssl.write(`sig-${inputpadding}.bin`, Buffer.from(res.result, 'hex'));
      const checked = openssl.run('pkeyutl', '-verify', '-pubin', '-keyform', 'DER', '-inkey', pub, '-in', digestFile, '-sigfile', sigFile, '-pkeyopt', 'digest:sha256', ...pss);
      expect([inputpadding, checked.status, checked.out]).toEqual([inputpadding, 0, expect.stringContaining('Signature Verified Successfully')]);
    }
    expect(await usagesUsed(operationId)).toEqual([3]);
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

  it('ok a replay is audited once as signorder.replayed under the retry\'s request id, naming the stored order; signorder.create stays one event', async () => {
    const { keyid, signer, operationId } = await signingSetup({ usages: 2 });
    const dto = order(operationId, keyid, firmware(5));
    const [r1, r2] = [requestId(), requestId()];
    await service.create(signer, dto, 'audit-me-1', r1);
    await service.create(signer, dto, 'audit-me-1', r2);
    const created = (await audit.list({ action: 'signorder.create', operationId })).items;
    const replayed = (await audit.list({ action: 'signorder.replayed', operationId })).items;
    expect(created.map((e) => [e.outcome, e.requestId])).toEqual([['SUCCESS', r1]]);
    expect(replayed.map((e) => ({ outcome: e.outcome, requestId: e.requestId, keyid: e.keyid, actor: e.actorSubjectId, of: e.details['signOrderId'], first: e.details['firstRequestId'] }))).toEqual([
      { outcome: 'SUCCESS', requestId: r2, keyid, actor: signer.subjectId, of: created[0].details['signOrderId'], first: r1 },
    ]);
    expect(await usagesUsed(operationId)).toEqual([1]);
  });

  // One canonical form, and no normalisation: a key is 1-128 of [A-Za-z0-9._:-], compared byte for byte (case counts).
  it.each(HOSTILE_IDEMPOTENCY_KEYS)('%s: 400 idempotency_key_invalid, no usage spent, audited DENIED', async (_n, key) => {
    const { keyid, signer, operationId } = await signingSetup({ usages: 1 });
    const rid = requestId();
    expect(await codeOf(service.create(signer, order(operationId, keyid, firmware(6)), key, rid))).toBe('idempotency_key_invalid');
    expect(await usagesUsed(operationId)).toEqual([0]);
    const events = (await audit.list({ action: 'signorder.create', requestId: rid })).items;
    expect(events.map((e) => [e.outcome, e.errorCode])).toEqual([['DENIED', 'idempotency_key_invalid']]);
    // The hostile key itself is stored nowhere, the audit included.
    expect(JSON.stringify(events[0]).includes(key.length > 0 ? key : '\u0000never')).toBe(false);
  });

  it('ok ABC and abc are two keys (case counts): two orders, two usages, two signatures', async () => {
    const { keyid, signer, operationId } = await signingSetup({ usages: 2 });
    const dto = order(operationId, keyid, firmware(7));
    const upper = await service.create(signer, dto, 'ABC', requestId());
    const lower = await service.create(signer, dto, 'abc', requestId());
    expect(lower.result).not.toBe(upper.result);
    expect(await usagesUsed(operationId)).toEqual([2]);
  });

  it('ok one caller\'s key is never another\'s: the same key and body from a second signer get their own signature and usage', async () => {
    const { keyid, signer, operationId } = await signingSetup({ usages: 2 });
    const other = await mediumActor(db, { natures: ['ORDERER'], grants: ['SIGN'], keyids: [keyid] }, Permission.SignOrdersCreate);
    const dto = order(operationId, keyid, firmware(8));
    const mine = await service.create(signer, dto, 'shared-key', requestId());
    const theirs = await service.create(other, dto, 'shared-key', requestId());
    expect(theirs.result).not.toBe(mine.result);
    expect(await usagesUsed(operationId)).toEqual([2]);
    // And each one's retry replays its own.
    expect((await service.create(other, dto, 'shared-key', requestId())).result).toBe(theirs.result);
    expect((await service.create(signer, dto, 'shared-key', requestId())).result).toBe(mine.result);
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
