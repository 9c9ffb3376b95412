import { Inject, Injectable } from '@nestjs/common';
import type { z } from 'zod';
import { CreateKeyRequest, DEFAULT_DEVICE_PROFILE, RevokeKeyRequest, UpdateKeyRequest, type KeyDetail, type KeyRevocationResult, type RevokedBelowKey } from '@keyserver/api-contract';
import { DataAccessError, KeyRepository, type AuditInput, type Key } from '@keyserver/data-access';
import { createCaCertificate, createFirmwareSigningCertificate, createTimestampingCertificate, type IssuedCertificate } from '@keyserver/pki';
import type { Actor } from '../common/actor';
import { Audited, auditEvent } from '../common/audited';
import { API_CONFIG, HSM_SIGNER, LOGGER } from '../app/tokens';
import { validateBody } from '../admin-sessions/admin-request';
import { AdminSessionGate, auditableSessionId } from '../admin-sessions/admin-session-gate';
import { hashForAlgorithm, toPkiAlgorithm } from '../keys/key-algorithms';
import { KeysService } from '../keys/keys.service';
import { CrlService } from '../crl/crl.service';
import { crlUrl } from '../crl/crl-url';
import { KeyAdminError, KeyAdminErrorCode } from './key-admin-error';
import { assertCaFitsBelow } from './ca-path';
import { retrySerial } from './serial-retry';
import { discardUnlessNamed } from './discard';
import { issuerEnd } from '../certificates/key-chain';
import type { HsmSigner } from '@keyserver/pki';
import type { ApiConfig } from '../config/api-config';
import type { Logger } from 'pino';

/**
 * Key administration inside an ACTIVE admin session. Creating a key uses the ROOT (it certifies the new
 * key), which is why it needs the session: gate -> validate -> pick the ROOT and check the validity
 * -> generate in the HSM -> certify with the ROOT -> store -> audit.
 */
@Injectable()
export class KeyAdminService {

  constructor(
    private readonly keys: KeyRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly gate: AdminSessionGate,
    private readonly audited: Audited,
    private readonly keyViews: KeysService,
    private readonly crls: CrlService,
  ) {}

  async create(actor: Actor, sessionId: string | undefined, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    let generated: { hsmKeyId: string; keyid: string } | undefined;
    // A key generated for this request but never stored would be an orphan in the HSM: a refusal destroys it.
    const refusal = async (e: AuditInput): Promise<AuditInput> =>
      generated ? { ...e, details: { hsmKeyId: generated.hsmKeyId, hsmKey: await discardUnlessNamed(this.keys, this.signer, this.logger, generated.hsmKeyId, generated.keyid) } } : e;
    return this.audited.run(auditEvent('key.create', actor, requestId, { adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(CreateKeyRequest, body);
      a.event.keyid = dto.keyid;
      if (await this.keys.findByKeyid(dto.keyid)) throw new KeyAdminError(KeyAdminErrorCode.KeyExists, `key ${dto.keyid} exists`);
      const root = dto.issuer ? await this.issuer(dto.issuer) : await this.root();
      if (dto.pathLen !== undefined && dto.type !== 'CA') throw new KeyAdminError(KeyAdminErrorCode.IssuerNotUsable, 'pathLen is for CA keys only');
      const pathLen = dto.type === 'CA' ? (dto.pathLen ?? 0) : null;
      if (pathLen !== null) assertCaFitsBelow(root, pathLen);
      // Start a second after the ROOT at the earliest, so the chain nests; refuse before touching the HSM.
      const notBefore = new Date(Math.max(Math.floor(Date.now() / 1000) * 1000 - 60_000, root.notBefore.getTime() + 1000));
      const notAfter = new Date(notBefore.getTime() + dto.validityDays * 86_400_000);
      // The issuer's notAfter, or the end of the external chain above its ROOT when that comes first (ADR 0020
      // addendum, session 25): a certificate reaching past it would be unusable for its tail.
      const end = await issuerEnd(this.keys, root);
      if (notAfter > end.notAfter) throw new KeyAdminError(KeyAdminErrorCode.ValidityExceedsRoot, `the key would outlive its issuer: ${end.bound}`);

      const hsmKey = await this.signer.generateKey({ algorithm: toPkiAlgorithm(dto.algorithm), label: dto.keyid });
      generated = { hsmKeyId: hsmKey.hsmKeyId, keyid: dto.keyid };
      const rootKey = await this.signer.getKey(root.hsmKeyId);
      const issuer = { key: rootKey, certificate: root.certificatePem };
      const opts = {
        subject: { commonName: dto.commonName, organization: dto.organization, country: dto.country },
        notBefore,
        notAfter,
        crlDistributionPointUrl: crlUrl(this.config.publicUrl, root.keyid, root.currentVersion),
      };
      const hash = dto.hash ?? hashForAlgorithm(dto.algorithm);
      // A product names the firmware an FW key signs; a TSA key stamps anything.
      const product = dto.type === 'TSA' ? null : (dto.product ?? null);
      // The database refuses a serial the issuer already used (serial_in_use, ADR 0020 addendum "serial numbers per
      // issuer"): the same key pair is certified again with a fresh serial, a few times at most.
      const store = async (): Promise<Key> => {
        const cert: IssuedCertificate =
          dto.type === 'CA'
            ? await createCaCertificate(this.signer, issuer, hsmKey, { ...opts, pathLen: pathLen ?? 0 })
            : dto.type === 'TSA'
              ? await createTimestampingCertificate(this.signer, issuer, hsmKey, opts)
              : await createFirmwareSigningCertificate(this.signer, issuer, hsmKey, opts);
        const success: AuditInput = {
          ...a.event,
          adminSessionId: session.id,
          details: {
            type: dto.type,
            algorithm: dto.algorithm,
            hash,
            requiredApprovers: dto.requiredApprovers,
            issuer: root.keyid,
            pathLen,
            serial: cert.serialHex,
            notBefore: notBefore.toISOString(),
            notAfter: notAfter.toISOString(),
            product,
          },
        };
        // The key and its audit event are written in one transaction: no unaudited key, no key without its event.
        return this.keys
          .create(
            {
              keyid: dto.keyid,
              type: dto.type,
              algorithm: dto.algorithm,
              hash,
              requiredApprovers: dto.requiredApprovers,
              hsmKeyId: hsmKey.hsmKeyId,
              parentKeyid: root.keyid,
              parentVersion: root.currentVersion,
              certificatePem: cert.certificatePem,
              certificateSerial: cert.serialHex,
              notBefore,
              notAfter,
              product,
              profile: dto.type === 'CA' ? { ...DEFAULT_DEVICE_PROFILE } : {},
              pathLen,
            },
            success,
            session,
          )
          .catch((err: unknown) => {
            if (err instanceof DataAccessError && err.code === 'conflict') throw new KeyAdminError(KeyAdminErrorCode.KeyExists, `key ${dto.keyid} exists`);
            // The issuer was revoked (or retired) after the check above: decided again under its lock (ADR 0041).
            if (err instanceof DataAccessError && err.code === 'invalid_state') throw new KeyAdminError(KeyAdminErrorCode.IssuerNotUsable, err.detail);
            throw err;
          });
      };
      const key = await retrySerial(store);
      a.committed();
      return await this.keyViews.detail(actor, key.keyid);
    }, { refusal });
  }

  async update(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    return this.audited.run(auditEvent('key.update', actor, requestId, { keyid: keyid.slice(0, 128), adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(UpdateKeyRequest, body);
      await this.find(keyid);
      // The repository reads `before` under a row lock and writes the change with its event in one transaction.
      // A lowering needs a session opened with powers (checked under the same lock: 403 admin_session_scope).
      await this.keys.setRequiredApprovers(keyid, dto.requiredApprovers, { ...a.event, adminSessionId: session.id }, session);
      a.committed();
      return await this.keyViews.detail(actor, keyid);
    });
  }

  /**
   * Revokes a key and every key below it (ADR 0041: keys certified by a revoked CA would sign and issue what every
   * relying party rejects); the answer lists the keys revoked with it.
   */
  async revoke(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<KeyRevocationResult> {
    return this.audited.run(auditEvent('key.revoke', actor, requestId, { keyid: keyid.slice(0, 128), adminSessionId: auditableSessionId(sessionId) }), async (a) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(RevokeKeyRequest, body);
      const key = await this.find(keyid);
      if (key.type === 'ROOT') throw new KeyAdminError(KeyAdminErrorCode.RootNotRevocable, 'the ROOT is retired, not revoked');
      if (key.destroyedAt) throw new KeyAdminError(KeyAdminErrorCode.KeyAlreadyDestroyed, `key ${keyid} was destroyed`);
      if (key.state === 'REVOKED') throw new KeyAdminError(KeyAdminErrorCode.KeyAlreadyRevoked, `key ${keyid} is already revoked`);
      // A destroyed issuer's final CRL cannot list it any more (ADR 0029).
      const parent = key.parentKeyid ? await this.keys.findByKeyid(key.parentKeyid) : null;
      if (parent?.destroyedAt) throw new KeyAdminError(KeyAdminErrorCode.IssuerNotUsable, `the issuer ${parent.keyid} was destroyed: its final CRL cannot list ${keyid}`);
      // The key, every key below it and their events in one transaction; a concurrent revocation that lost is refused, not audited twice.
      const revoked = await this.keys.revoke(keyid, dto.reason, undefined, { ...a.event, adminSessionId: session.id, details: { reason: dto.reason } }, session).catch(async (err: unknown) => {
        if (!(err instanceof DataAccessError && err.code === 'invalid_state')) throw err;
        // Revoked by another change (REVOKED stays), or else its issuer signed its final CRL meanwhile (ADR 0045).
        if ((await this.find(keyid)).state === 'REVOKED') throw new KeyAdminError(KeyAdminErrorCode.KeyAlreadyRevoked, `key ${keyid} is already revoked`);
        throw new KeyAdminError(KeyAdminErrorCode.IssuerNotUsable, `the issuer ${key.parentKeyid ?? ''} signed its final CRL (it is being destroyed): it cannot list ${keyid}`);
      });
      a.committed();
      // Each issuer signs a new CRL with the serials it certified now, not on the next fetch.
      for (const issuer of new Set([key.parentKeyid, ...revoked.revokedBelow.map((b) => b.issuer)])) if (issuer) await this.crls.refreshKey(issuer);
      const revokedBelow = revoked.revokedBelow.map((b) => ({ ...b, reason: b.reason as RevokedBelowKey['reason'] }));
      return { ...(await this.keyViews.detail(actor, keyid)), revokedBelow };
    });
  }

  /** An explicitly named issuer: an ACTIVE ROOT or CA key whose HSM objects exist. */
  private async issuer(keyid: string): Promise<Key> {
    const k = await this.find(keyid);
    // FW and TSA keys are end entities (CA:false, no keyCertSign): refused here, before the HSM generates a key pair.
    if ((k.type !== 'ROOT' && k.type !== 'CA') || k.state !== 'ACTIVE' || k.destroyedAt) throw new KeyAdminError(KeyAdminErrorCode.IssuerNotUsable, `${keyid} is a ${k.state} ${k.type} key: the issuer must be an ACTIVE ROOT or CA key`);
    return k;
  }

  private async find(keyid: string): Promise<Key> {
    const key = keyid.length <= 128 ? await this.keys.findByKeyid(keyid) : null;
    if (!key) throw new KeyAdminError(KeyAdminErrorCode.KeyNotFound, `no key ${keyid.slice(0, 128)}`);
    return key;
  }

  private async root(): Promise<Key> {
    const roots = await this.keys.list({ type: 'ROOT', state: 'ACTIVE' });
    if (roots.length !== 1) throw new KeyAdminError(KeyAdminErrorCode.RootNotAvailable, `expected one active ROOT, found ${roots.length}`);
    return roots[0];
  }
}
