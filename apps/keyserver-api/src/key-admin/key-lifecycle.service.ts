import { Inject, Injectable } from '@nestjs/common';
import type { z } from 'zod';
import {
  CancelPendingRequest,
  ExternalChainRequest,
  ImportCertificateRequest,
  isNewKeyId,
  NewKeyVersionRequest,
  NoBodyRequest,
  RootCeremonyRequest,
  type KeyDetail,
  type KeyVersionList,
  type PendingCancellation,
  type PendingKeyView,
  type RootCeremonyResult,
} from '@keyserver/api-contract';
import { DataAccessError, externalChainValidity, KeyLifecycleRepository, KeyRepository, SubjectRepository, type AdminSession, type AuditInput, type DestructionPlan, type Key, type KeyBelow } from '@keyserver/data-access';
import {
  createCaCertificate,
  createFirmwareSigningCertificate,
  createKeyCsr,
  createRootCertificate,
  nameSpecOf,
  spkiSha256,
  splitPemCertificates,
  subjectAndKeyOf,
  verifyImportedCaCertificate,
  type HsmKeyInfo,
  type HsmSigner,
  type IssuedCertificate,
} from '@keyserver/pki';
import { X509Certificate } from 'node:crypto';
import { visibility } from '@keyserver/authz';
import type { Actor } from '../common/actor';
import { Audited, auditEvent } from '../common/audited';
import type { Logger } from 'pino';
import { API_CONFIG, HSM_SIGNER, LOGGER } from '../app/tokens';
import type { ApiConfig } from '../config/api-config';
import { validateBody } from '../admin-sessions/admin-request';
import { AdminSessionGate, auditableSessionId } from '../admin-sessions/admin-session-gate';
import { hashForAlgorithm, toPkiAlgorithm } from '../keys/key-algorithms';
import { KeysService } from '../keys/keys.service';
import { KeyAdminError, KeyAdminErrorCode } from './key-admin-error';
import { retrySerial } from './serial-retry';
import { assertCaFitsBelow } from './ca-path';
import { discardUnlessNamed } from './discard';
import { issuerEnd } from '../certificates/key-chain';
import { disposeCancelledKeyPairs } from './hsm-key-disposer';
import { crlUrl } from '../crl/crl-url';
import { CrlService } from '../crl/crl.service';

/** The self-signed anchor at the end of a stored PEM chain (an externally certified key's first import). */
const anchorOf = (chainPem: string): X509Certificate | null => {
  const pems = chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return pems.length ? new X509Certificate(pems[pems.length - 1]) : null;
};

const DAY_MS = 86_400_000;

/**
 * How far ahead of this clock a renewed external certificate's notBefore may be (the offline CA's clock running
 * ahead): accepted, and the sign path waits for it (usableKey), as relying parties with a correct clock would.
 */
const EXTERNAL_NOT_BEFORE_SKEW_MS = 5 * 60_000;

const sha256Of = (pem: string) => new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase();
const sameBytes = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));
const derList = (pems: string[]) => pems.map((p) => new X509Certificate(p).raw.toString('base64')).join(',');

/** A pending row the earlier three-step cancellation marked (before ADR 0042's addendum): repeating it finishes it. */
const cancelling = (keyid: string) =>
  new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, `the certificate request of ${keyid} was cancelled; repeat the cancellation to finish it`);

/**
 * The key lifecycle in ACTIVE four-eyes admin sessions (docs/adr/0020-bootstrap-and-key-lifecycle.md): the ROOT
 * ceremony (self-signed, or a CSR for an external root and the import of its certificate, or its cancellation:
 * docs/adr/0042-pending-hsm-keys.md), renewal (same key pair,
 * new certificate), rotation (new key pair, same keyid: a new version), retirement and destruction. Each change:
 * gate -> validate -> check the state -> HSM work -> one transaction with its audit event; a refusal is audited,
 * and an HSM key generated for a change that did not commit is destroyed again.
 */
@Injectable()
export class KeyLifecycleService {
  constructor(
    private readonly keys: KeyRepository,
    private readonly lifecycle: KeyLifecycleRepository,
    private readonly subjects: SubjectRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    @Inject(LOGGER) private readonly logger: Logger,
    private readonly gate: AdminSessionGate,
    private readonly outcome: Audited,
    private readonly keyViews: KeysService,
    private readonly crls: CrlService,
  ) {}

  /**
   * Runs one audited change (common/audited.ts): `fn` ends with the commit that writes the SUCCESS event; a refusal
   * or failure before it is recorded, and an HSM key `fn` generated for it is destroyed again (and said so).
   */
  private async audited<T>(actor: Actor, sessionId: string | undefined, action: string, keyid: string, requestId: string, fn: (audit: AuditInput, generated: (id: string) => void) => Promise<T>): Promise<T> {
    let generated: string | undefined;
    return this.outcome.run(
      auditEvent(action, actor, requestId, { keyid: keyid.slice(0, 128), adminSessionId: auditableSessionId(sessionId) }),
      async (a) => {
        const result = await fn(a.event, (id) => (generated = id));
        a.committed();
        return result;
      },
      { refusal: async (e) => (generated ? { ...e, details: { hsmKeyId: generated, hsmKey: await discardUnlessNamed(this.keys, this.signer, this.logger, generated, keyid) } } : e) },
    );
  }

  /** The administrators of a session (creator and authorizers); the ceremony needs two distinct ones. */
  private async administrators(session: AdminSession): Promise<{ subjectId: string; displayName: string }[]> {
    const ids = [...new Set([session.creatorId, ...session.approverIds])];
    if (ids.length < 2) throw new KeyAdminError(KeyAdminErrorCode.CeremonyNeedsTwoAdministrators, 'a ROOT ceremony needs an ACTIVE session authorized by at least two administrators');
    return Promise.all(ids.map(async (subjectId) => ({ subjectId, displayName: (await this.subjects.getById(subjectId).catch(() => null))?.displayName ?? subjectId })));
  }

  async rootCeremony(actor: Actor, sessionId: string | undefined, body: unknown, requestId: string): Promise<RootCeremonyResult> {
    const keyid = typeof (body as { keyid?: unknown })?.keyid === 'string' ? String((body as { keyid: string }).keyid) : '';
    return this.audited<RootCeremonyResult>(actor, sessionId, 'key.root_ceremony', keyid, requestId, async (audit, generated) => {
      const session = await this.gate.require(actor, sessionId);
      const administrators = await this.administrators(session);
      const dto = validateBody(RootCeremonyRequest, body);
      if ((await this.keys.findByKeyid(dto.keyid)) || (await this.lifecycle.findPending(dto.keyid))) throw new KeyAdminError(KeyAdminErrorCode.KeyExists, `key ${dto.keyid} exists`);
      const hsmKey = await this.signer.generateKey({ algorithm: toPkiAlgorithm(dto.algorithm), label: dto.keyid });
      generated(hsmKey.hsmKeyId);
      const fingerprint = spkiSha256(hsmKey.spki);
      const hash = dto.hash ?? hashForAlgorithm(dto.algorithm);
      const base = { ...audit, adminSessionId: session.id };
      const common = { mode: dto.mode, algorithm: dto.algorithm, hash, subject: dto.subject, pathLen: dto.pathLen ?? null, requiredApprovers: dto.requiredApprovers, administrators, spkiSha256: fingerprint };
      if (dto.mode === 'external') {
        const { csrPem } = await createKeyCsr(this.signer, hsmKey, dto.subject);
        await this.lifecycle
          .createPending(
            { keyid: dto.keyid, type: 'ROOT', algorithm: dto.algorithm, hash, requiredApprovers: dto.requiredApprovers, hsmKeyId: hsmKey.hsmKeyId, csrPem, adminSessionId: session.id },
            { ...base, details: { ...common, csr: csrPem } },
            session,
          )
          .catch((err: unknown) => {
            throw err instanceof DataAccessError && err.code === 'conflict' ? new KeyAdminError(KeyAdminErrorCode.KeyExists, `key ${dto.keyid} exists`) : err;
          });
        return { keyid: dto.keyid, state: 'AWAITING_CERTIFICATE' as const, algorithm: dto.algorithm, spkiSha256: fingerprint, certificate: null, csr: csrPem, administrators, adminSessionId: session.id };
      }
      const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
      const notAfter = new Date(notBefore.getTime() + dto.validityDays * DAY_MS);
      const cert = await createRootCertificate(this.signer, hsmKey, { subject: dto.subject, notBefore, notAfter, pathLen: dto.pathLen });
      await this.keys
        .create(
          {
            keyid: dto.keyid,
            type: 'ROOT',
            algorithm: dto.algorithm,
            hash,
            requiredApprovers: dto.requiredApprovers,
            hsmKeyId: hsmKey.hsmKeyId,
            parentKeyid: null,
            certificatePem: cert.certificatePem,
            certificateSerial: cert.serialHex,
            notBefore,
            notAfter,
            pathLen: dto.pathLen ?? null,
          },
          { ...base, details: { ...common, serial: cert.serialHex, notBefore: notBefore.toISOString(), notAfter: notAfter.toISOString(), certificate: cert.certificatePem } },
          session,
        )
        .catch((err: unknown) => {
          throw err instanceof DataAccessError && err.code === 'conflict' ? new KeyAdminError(KeyAdminErrorCode.KeyExists, `key ${dto.keyid} exists`) : err;
        });
      return { keyid: dto.keyid, state: 'ACTIVE' as const, algorithm: dto.algorithm, spkiSha256: fingerprint, certificate: cert.certificatePem, csr: null, administrators, adminSessionId: session.id };
    });
  }

  /**
   * The external CA above an imported ROOT renewed (ADR 0020 addendum "the renewed external chain"): a new chain
   * (the offline intermediate re-certified, same key pair) and, when given, the ROOT's certificate re-issued for the
   * same key pair and subject, which becomes its next version. Verified before anything is stored: the certificate is
   * for the ROOT's HSM key, names the same subject (the same bytes: the keys below carry them as their issuer), chains
   * with every signature, CA flag and pathLen up to the anchor the ROOT was imported under (same name and public key),
   * each certificate valid now (notBefore at most {@link EXTERNAL_NOT_BEFORE_SKEW_MS} ahead); then, under the ROOT's
   * lock, every ACTIVE key below it must still end inside the new path and fit its pathLen. A ROOT is a trust anchor
   * for the keys below it: the session needs two administrators, as for its ceremony.
   */
  async replaceExternalChain(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    await this.audited(actor, sessionId, 'key.external_chain_replace', keyid, requestId, async (audit) => {
      const session = await this.gate.require(actor, sessionId);
      const administrators = await this.administrators(session);
      const dto = validateBody(ExternalChainRequest, body);
      const key = await this.find(keyid);
      if (key.parentKeyid || !key.issuerChainPem) throw new KeyAdminError(KeyAdminErrorCode.NotExternallyCertified, `key ${keyid} is not a ROOT certified by an external root: it has no external chain`);
      if (key.state !== 'ACTIVE' || key.destroyedAt) throw new KeyAdminError(KeyAdminErrorCode.KeyNotActive, `key ${keyid} is ${key.state}`);
      const hsmKey = await this.signer.getKey(key.hsmKeyId);
      const v = verifyImportedCaCertificate(hsmKey, dto.certificate ?? key.certificatePem, dto.chain, new Date(), { notBeforeSkewMs: EXTERNAL_NOT_BEFORE_SKEW_MS });
      if (!sameBytes(subjectAndKeyOf(v.certificatePem).subject, subjectAndKeyOf(key.certificatePem).subject)) {
        throw new KeyAdminError(KeyAdminErrorCode.SubjectMismatch, `the certificate must name the subject of ${keyid}'s current certificate, encoded the same way`);
      }
      const newChain = splitPemCertificates(v.chainPem);
      const oldChain = splitPemCertificates(key.issuerChainPem);
      const [known, anchor] = [subjectAndKeyOf(oldChain[oldChain.length - 1]), subjectAndKeyOf(newChain[newChain.length - 1])];
      if (!sameBytes(known.subject, anchor.subject) || !sameBytes(known.spki, anchor.spki)) {
        throw new KeyAdminError(KeyAdminErrorCode.AnchorMismatch, `the chain must end at the external root ${keyid} was imported under (${new X509Certificate(oldChain[oldChain.length - 1]).subject.replace(/\n/g, ', ')}, same public key)`);
      }
      const reissued = !new X509Certificate(v.certificatePem).raw.equals(new X509Certificate(key.certificatePem).raw);
      if (!reissued && derList(newChain) === derList(oldChain)) throw new KeyAdminError(KeyAdminErrorCode.ExternalChainUnchanged, `key ${keyid} already has this certificate and chain`);
      if (reissued && (await this.lifecycle.findPendingVersion(keyid))) throw new KeyAdminError(KeyAdminErrorCode.VersionPending, `key ${keyid} has a rotation waiting for its certificate: import or cancel it first`);
      // The end of every path through the new certificate and chain (ADR 0020 addendum, session 25).
      const chainValidity = externalChainValidity(v.chainPem);
      const end = chainValidity && chainValidity.notAfter < v.notAfter ? { at: chainValidity.notAfter, bound: chainValidity.bound } : { at: v.notAfter, bound: `the certificate of ${keyid} until ${v.notAfter.toISOString()}` };
      const pathLen = v.pathLen ?? null;
      const assertBelow = (below: KeyBelow[]) => {
        const outliving = below.filter((k) => k.notAfter > end.at);
        if (outliving.length) {
          const named = outliving.slice(0, 10).map((k) => `${k.keyid} (until ${k.notAfter.toISOString()})`).join(', ');
          throw new KeyAdminError(KeyAdminErrorCode.KeysBelowOutliveChain, `${outliving.length} ACTIVE key(s) below ${keyid} would end after ${end.bound}: ${named}; retire them or ask for a longer certificate`);
        }
        // A CA at depth d needs d CA levels below the ROOT, and the ROOT one more than the pathLen of each CA it certified.
        const needed = Math.max(0, ...below.filter((k) => k.type === 'CA').map((k) => (k.depth === 1 ? Math.max(1, (k.pathLen ?? 0) + 1) : k.depth)));
        if (pathLen !== null && pathLen < needed) throw new KeyAdminError(KeyAdminErrorCode.ChainPathLenTooSmall, `the new certificate and chain allow ${pathLen} CA level(s) below ${keyid}; the CA keys there need ${needed}`);
      };
      const previous = { version: key.currentVersion, certificateSha256: sha256Of(key.certificatePem), chainSha256: oldChain.map(sha256Of) };
      await this.lifecycle
        .replaceExternalChain(
          keyid,
          {
            expected: { version: key.currentVersion, certificatePem: key.certificatePem, issuerChainPem: key.issuerChainPem },
            certificate: reissued ? { certificatePem: v.certificatePem, certificateSerial: v.serialHex, notBefore: v.notBefore, notAfter: v.notAfter } : null,
            issuerChainPem: v.chainPem,
            pathLen,
          },
          assertBelow,
          {
            ...audit,
            adminSessionId: session.id,
            details: {
              administrators,
              spkiSha256: spkiSha256(hsmKey.spki),
              reissued,
              ...(reissued ? { serial: v.serialHex, certificate: v.certificatePem, notBefore: v.notBefore.toISOString(), notAfter: v.notAfter.toISOString() } : {}),
              certificateSha256: sha256Of(v.certificatePem),
              chainSha256: newChain.map(sha256Of),
              chain: v.chainPem,
              anchorSubject: new X509Certificate(newChain[newChain.length - 1]).subject,
              pathEnd: end.at.toISOString(),
              pathLen,
              previous,
            },
          },
          session,
        )
        .catch(async (err: unknown) => {
          if (err instanceof DataAccessError && err.code === 'conflict') throw new KeyAdminError((await this.lifecycle.findPendingVersion(keyid)) && reissued ? KeyAdminErrorCode.VersionPending : KeyAdminErrorCode.VersionConflict, err.detail);
          if (err instanceof DataAccessError && err.code === 'invalid_state') throw new KeyAdminError(KeyAdminErrorCode.KeyNotActive, err.detail);
          throw err;
        });
    });
    return this.keyViews.detail(actor, keyid);
  }

  /** The CSR of a key awaiting its first certificate, or of an externally certified key's pending rotation. */
  async pending(keyid: string): Promise<z.infer<typeof PendingKeyView>> {
    const p = isNewKeyId(keyid) ? await this.lifecycle.findPending(keyid) : null;
    if (p) {
      if (p.cancelledAt) throw cancelling(keyid);
      const hsmKey = await this.signer.getKey(p.hsmKeyId);
      return { keyid: p.keyid, version: 1, algorithm: p.algorithm, csr: p.csrPem, spkiSha256: spkiSha256(hsmKey.spki), createdAt: p.createdAt.toISOString() };
    }
    const key = isNewKeyId(keyid) ? await this.keys.findByKeyid(keyid) : null;
    const pv = key ? await this.lifecycle.findPendingVersion(keyid) : null;
    if (!key || !pv) throw new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, `key ${keyid.slice(0, 128)} is not waiting for a certificate`);
    if (pv.cancelledAt) throw cancelling(keyid);
    const hsmKey = await this.signer.getKey(pv.hsmKeyId);
    return { keyid, version: pv.version, algorithm: key.algorithm, csr: pv.csrPem, spkiSha256: spkiSha256(hsmKey.spki), createdAt: pv.createdAt.toISOString() };
  }

  async importCertificate(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    await this.audited(actor, sessionId, 'key.certificate_import', keyid, requestId, async (audit) => {
      const session = await this.gate.require(actor, sessionId);
      const administrators = await this.administrators(session);
      const dto = validateBody(ImportCertificateRequest, body);
      const p = isNewKeyId(keyid) ? await this.lifecycle.findPending(keyid) : null;
      if (!p) return this.importVersion(keyid, dto, session, administrators, audit);
      if (dto.version !== undefined && dto.version !== 1) throw new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, `key ${keyid} awaits the certificate of version 1, not ${dto.version}`);
      if (p.cancelledAt) throw cancelling(keyid);
      const hsmKey = await this.signer.getKey(p.hsmKeyId);
      const v = verifyImportedCaCertificate(hsmKey, dto.certificate, dto.chain);
      const anchor = new X509Certificate(dto.chain[dto.chain.length - 1]);
      await this.lifecycle
        .activatePending(
          keyid,
          {
            keyid,
            type: p.type,
            algorithm: p.algorithm,
            hash: p.hash,
            requiredApprovers: p.requiredApprovers,
            hsmKeyId: p.hsmKeyId,
            parentKeyid: null,
            certificatePem: v.certificatePem,
            certificateSerial: v.serialHex,
            notBefore: v.notBefore,
            notAfter: v.notAfter,
            pathLen: v.pathLen ?? null,
            issuerChainPem: v.chainPem,
          },
          {
            ...audit,
            adminSessionId: session.id,
            details: { administrators, spkiSha256: spkiSha256(hsmKey.spki), serial: v.serialHex, certificate: v.certificatePem, anchorSubject: anchor.subject, anchorSha256: anchor.fingerprint256 },
          },
          session,
        )
        .catch((err: unknown) => {
          throw err instanceof DataAccessError && err.code === 'invalid_state' ? new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, err.detail) : err;
        });
    });
    return this.keyViews.detail(actor, keyid);
  }

  /**
   * The certificate the external root issued for an externally certified key's pending rotation: verified like the
   * first import (same public key as the pending HSM key, CA flags, chain) and, in addition, to the same anchor as
   * that first import and for the same subject; then the pending version becomes the current one (ADR 0029).
   */
  private async importVersion(keyid: string, dto: ImportCertificateRequest, session: AdminSession, administrators: { subjectId: string; displayName: string }[], audit: AuditInput): Promise<void> {
    const key = isNewKeyId(keyid) ? await this.keys.findByKeyid(keyid) : null;
    const pv = key ? await this.lifecycle.findPendingVersion(keyid) : null;
    if (!key || !pv) throw new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, `key ${keyid.slice(0, 128)} is not waiting for a certificate`);
    if (dto.version !== undefined && dto.version !== pv.version) throw new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, `version ${dto.version} of ${keyid} is not pending (version ${pv.version} is)`);
    if (pv.cancelledAt) throw cancelling(keyid);
    const hsmKey = await this.signer.getKey(pv.hsmKeyId);
    const v = verifyImportedCaCertificate(hsmKey, dto.certificate, dto.chain);
    const anchor = new X509Certificate(dto.chain[dto.chain.length - 1]);
    const known = key.issuerChainPem ? anchorOf(key.issuerChainPem) : null;
    if (!known || !anchor.raw.equals(known.raw)) throw new KeyAdminError(KeyAdminErrorCode.AnchorMismatch, `the chain must end at the external root ${keyid} was first imported under (${known?.subject.replace(/\n/g, ', ') ?? 'unknown'})`);
    if (new X509Certificate(v.certificatePem).subject !== new X509Certificate(key.certificatePem).subject) throw new KeyAdminError(KeyAdminErrorCode.SubjectMismatch, `the certificate must name the subject of ${keyid}'s current certificate`);
    await this.lifecycle
      .activatePendingVersion(
        keyid,
        pv.version,
        { hsmKeyId: pv.hsmKeyId, certificatePem: v.certificatePem, certificateSerial: v.serialHex, notBefore: v.notBefore, notAfter: v.notAfter, issuerKeyid: null, issuerVersion: null, issuerChainPem: v.chainPem, pathLen: v.pathLen ?? null },
        {
          ...audit,
          adminSessionId: session.id,
          details: { administrators, spkiSha256: spkiSha256(hsmKey.spki), serial: v.serialHex, certificate: v.certificatePem, anchorSubject: anchor.subject, anchorSha256: anchor.fingerprint256, rotation: true },
        },
        session,
      )
      .catch((err: unknown) => {
        if (err instanceof DataAccessError && err.code === 'invalid_state') throw new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, err.detail);
        if (err instanceof DataAccessError && err.code === 'conflict') throw new KeyAdminError(KeyAdminErrorCode.VersionConflict, err.detail);
        throw err;
      });
  }

  /**
   * Cancels what waits for an external certificate (ADR 0042 and its addendum): an external ceremony's pending key
   * (its keyid is free again) or an externally certified key's pending rotation (the key keeps its current version),
   * in a session of two administrators like the ceremony. The database decides first, in one transaction: the pending
   * row goes, its key pair is recorded for disposal, the SUCCESS event is written. Then the HSM objects are destroyed
   * (`keyPairDestroyed`); when that fails or is interrupted the recorded key pair is destroyed by a later pass
   * (the next cancellation, the disposer every replica runs), never left unrecorded.
   */
  async cancelPending(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<PendingCancellation> {
    const r = await this.audited(actor, sessionId, 'key.csr_cancel', keyid, requestId, async (audit) => {
      const session = await this.gate.require(actor, sessionId);
      const administrators = await this.administrators(session);
      const dto = validateBody(CancelPendingRequest, body);
      const shown = keyid.slice(0, 128);
      // A keyid no ceremony can have made waits for nothing.
      if (!isNewKeyId(keyid)) throw new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, `key ${shown} is not waiting for a certificate`);
      // The fingerprint for the record, read before the decision while the HSM holds the key pair (null if it does not).
      const waiting = (await this.lifecycle.findPending(keyid))?.hsmKeyId ?? (await this.lifecycle.findPendingVersion(keyid))?.hsmKeyId;
      const fingerprint = waiting ? await this.fingerprint(waiting) : null;
      const p = await this.lifecycle
        .cancelPending(keyid, dto.version, (c) => ({
          ...audit,
          adminSessionId: session.id,
          details: { version: c.version, hsmKeyId: c.hsmKeyId, spkiSha256: c.hsmKeyId === waiting ? fingerprint : null, pendingSince: c.createdAt.toISOString(), administrators },
        }), session)
        .catch((err: unknown) => {
          throw err instanceof DataAccessError && err.code === 'invalid_state' ? new KeyAdminError(KeyAdminErrorCode.NotAwaitingCertificate, err.detail) : err;
        });
      return { keyid, version: p.version, hsmKeyId: p.hsmKeyId, spkiSha256: p.hsmKeyId === waiting ? fingerprint : null, administrators, adminSessionId: session.id };
    });
    // After the decision committed (and was audited): its own key pair first, then whatever earlier passes left.
    const destroyed = (await disposeCancelledKeyPairs(this.lifecycle, this.signer, this.logger, r.hsmKeyId)) === 1;
    if (destroyed) await disposeCancelledKeyPairs(this.lifecycle, this.signer, this.logger);
    return { keyid: r.keyid, version: r.version, spkiSha256: r.spkiSha256, administrators: r.administrators, adminSessionId: r.adminSessionId, keyPairDestroyed: destroyed };
  }

  private async fingerprint(hsmKeyId: string): Promise<string | null> {
    return this.signer.getKey(hsmKeyId).then(
      (k) => spkiSha256(k.spki),
      (err: unknown) => {
        if ((err as { code?: string }).code === 'key_not_found') return null;
        throw err;
      },
    );
  }

  async renew(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    return this.newVersion(actor, sessionId, keyid, body, requestId, 'renew');
  }

  async rotate(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    return this.newVersion(actor, sessionId, keyid, body, requestId, 'rotate');
  }

  /** Renewal (same key pair) or rotation (a new key pair): a new version certified by the issuer's current version. */
  private async newVersion(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string, kind: 'renew' | 'rotate'): Promise<z.infer<typeof KeyDetail>> {
    await this.audited(actor, sessionId, kind === 'renew' ? 'key.renew' : 'key.rotate', keyid, requestId, async (audit, generated) => {
      const session = await this.gate.require(actor, sessionId);
      const dto = validateBody(NewKeyVersionRequest, body);
      const key = await this.find(keyid);
      if (key.state !== 'ACTIVE') throw new KeyAdminError(KeyAdminErrorCode.KeyNotActive, `key ${keyid} is ${key.state}: only an ACTIVE key gets a new version`);
      if (key.issuerChainPem) {
        if (kind === 'renew') throw new KeyAdminError(KeyAdminErrorCode.ExternallyCertified, `key ${keyid} is certified by an external root: rotate it (a CSR for that root) or have the root renew its certificate`);
        return this.rotateExternal(key, session, audit, generated);
      }
      // A self-signed ROOT's new version is a new trust anchor: the ceremony's two administrators (rotateExternal
      // asks for them itself).
      const administrators = key.type === 'ROOT' ? await this.administrators(session) : undefined;
      const issuer = key.parentKeyid ? await this.find(key.parentKeyid) : null;
      if (issuer && (issuer.state !== 'ACTIVE' || issuer.destroyedAt)) throw new KeyAdminError(KeyAdminErrorCode.IssuerNotUsable, `the issuer ${issuer.keyid} is ${issuer.state}`);
      let hsmKey: HsmKeyInfo;
      if (kind === 'rotate') {
        hsmKey = await this.signer.generateKey({ algorithm: toPkiAlgorithm(key.algorithm), label: keyid });
        generated(hsmKey.hsmKeyId);
      } else {
        hsmKey = await this.signer.getKey(key.hsmKeyId);
      }
      // A serial the issuer already used is refused by the database (serial_in_use): certified again, fresh serial.
      await retrySerial(async () => {
        const cert = await this.certify(key, issuer, hsmKey, dto.validityDays);
        await this.lifecycle
          .addVersion(
            keyid,
            key.currentVersion,
            { hsmKeyId: hsmKey.hsmKeyId, certificatePem: cert.certificatePem, certificateSerial: cert.serialHex, notBefore: cert.notBefore, notAfter: cert.notAfter, issuerKeyid: issuer?.keyid ?? null, issuerVersion: issuer?.currentVersion ?? null },
            {
              ...audit,
              adminSessionId: session.id,
              details: { spkiSha256: spkiSha256(hsmKey.spki), serial: cert.serialHex, notBefore: cert.notBefore.toISOString(), notAfter: cert.notAfter.toISOString(), issuer: issuer?.keyid ?? keyid, newKeyPair: kind === 'rotate', ...(administrators ? { administrators } : {}) },
            },
            session,
          )
          .catch(async (err: unknown) => {
            if (err instanceof DataAccessError && err.code === 'conflict') throw new KeyAdminError(KeyAdminErrorCode.VersionConflict, err.detail);
            // Refused under the locks (ADR 0045): the key left ACTIVE (never to return), or else its issuer did.
            if (err instanceof DataAccessError && err.code === 'invalid_state') {
              throw new KeyAdminError((await this.find(keyid)).state === 'ACTIVE' ? KeyAdminErrorCode.IssuerNotUsable : KeyAdminErrorCode.KeyNotActive, err.detail);
            }
            throw err;
          });
      });
    });
    return this.keyViews.detail(actor, keyid);
  }

  /**
   * Rotation of an externally certified key (ADR 0029): a new key pair in the HSM and a CSR for the external root
   * (same subject), recorded as a pending version. The key keeps signing with its current version until
   * `POST .../certificate` imports the root's certificate for the pending one.
   */
  private async rotateExternal(key: Key, session: AdminSession, audit: AuditInput, generated: (id: string) => void): Promise<void> {
    if (await this.lifecycle.findPendingVersion(key.keyid)) throw new KeyAdminError(KeyAdminErrorCode.VersionPending, `key ${key.keyid} already has a rotation waiting for its certificate`);
    const administrators = await this.administrators(session);
    const hsmKey = await this.signer.generateKey({ algorithm: toPkiAlgorithm(key.algorithm), label: key.keyid });
    generated(hsmKey.hsmKeyId);
    const { csrPem } = await createKeyCsr(this.signer, hsmKey, nameSpecOf(key.certificatePem));
    await this.lifecycle
      .createPendingVersion(key.keyid, key.currentVersion, { hsmKeyId: hsmKey.hsmKeyId, csrPem, adminSessionId: session.id }, {
        ...audit,
        adminSessionId: session.id,
        details: { administrators, spkiSha256: spkiSha256(hsmKey.spki), csr: csrPem, newKeyPair: true, external: true },
      }, session)
      .catch(async (err: unknown) => {
        // Of two rotations at once one commits; the other finds its pending version (or a newer current one).
        if (err instanceof DataAccessError && err.code === 'conflict') throw new KeyAdminError((await this.lifecycle.findPendingVersion(key.keyid)) ? KeyAdminErrorCode.VersionPending : KeyAdminErrorCode.VersionConflict, err.detail);
        if (err instanceof DataAccessError && err.code === 'invalid_state') throw new KeyAdminError(KeyAdminErrorCode.KeyNotActive, err.detail);
        throw err;
      });
  }

  /** A certificate for `hsmKey` with the key's subject and path length, from its issuer's current version (a ROOT: itself). */
  private async certify(key: Key, issuer: Key | null, hsmKey: HsmKeyInfo, validityDays: number): Promise<IssuedCertificate & { notBefore: Date; notAfter: Date }> {
    const subject = nameSpecOf(key.certificatePem);
    const earliest = Math.floor(Date.now() / 1000) * 1000 - 60_000;
    const notBefore = new Date(issuer ? Math.max(earliest, issuer.notBefore.getTime() + 1000) : earliest);
    const notAfter = new Date(notBefore.getTime() + validityDays * DAY_MS);
    if (!issuer) return { ...(await createRootCertificate(this.signer, hsmKey, { subject, notBefore, notAfter, pathLen: key.pathLen ?? undefined })), notBefore, notAfter };
    // Narrowed by the external chain above the issuer's ROOT (ADR 0020 addendum, session 25).
    const end = await issuerEnd(this.keys, issuer);
    if (notAfter > end.notAfter) throw new KeyAdminError(KeyAdminErrorCode.ValidityExceedsRoot, `the certificate would outlive its issuer: ${end.bound}`);
    // The issuer's stored pathLen may be tighter than when this CA was made (an external issuer's imported chain).
    if (key.type === 'CA') assertCaFitsBelow(issuer, key.pathLen ?? 0);
    const ref = { key: await this.signer.getKey(issuer.hsmKeyId), certificate: issuer.certificatePem };
    const opts = { subject, notBefore, notAfter, crlDistributionPointUrl: crlUrl(this.config.publicUrl, issuer.keyid, issuer.currentVersion) };
    const cert = key.type === 'CA' ? await createCaCertificate(this.signer, ref, hsmKey, { ...opts, pathLen: key.pathLen ?? 0 }) : await createFirmwareSigningCertificate(this.signer, ref, hsmKey, opts);
    return { ...cert, notBefore, notAfter };
  }

  async retire(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    await this.audited(actor, sessionId, 'key.retire', keyid, requestId, async (audit) => {
      const session = await this.gate.require(actor, sessionId);
      validateBody(NoBodyRequest, body);
      const key = await this.find(keyid);
      if (key.state !== 'ACTIVE') throw new KeyAdminError(KeyAdminErrorCode.KeyNotActive, `key ${keyid} is ${key.state}`);
      await this.lifecycle.retire(keyid, { ...audit, adminSessionId: session.id, details: { version: key.currentVersion } }, session).catch((err: unknown) => {
        throw err instanceof DataAccessError && err.code === 'invalid_state' ? new KeyAdminError(KeyAdminErrorCode.KeyNotActive, err.detail) : err;
      });
    });
    return this.keyViews.detail(actor, keyid);
  }

  async destroy(actor: Actor, sessionId: string | undefined, keyid: string, body: unknown, requestId: string): Promise<z.infer<typeof KeyDetail>> {
    await this.audited(actor, sessionId, 'key.destroy', keyid, requestId, async (audit) => {
      const session = await this.gate.require(actor, sessionId);
      validateBody(NoBodyRequest, body);
      const key = await this.find(keyid);
      // Decided under the key's lock, against every key below it (ADR 0045), in the session held (ADR 0012 addendum),
      // before anything is signed or deleted.
      await this.destructionDecision(keyid, session);
      // Each unexpired version of a ROOT/CA signs its last CRL first (served until its certificates expired); a
      // failure here destroys nothing.
      const finalCrls =
        key.type === 'ROOT' || key.type === 'CA'
          ? await this.crls.finalCrls(keyid).catch((err: unknown) => {
              throw new KeyAdminError(KeyAdminErrorCode.FinalCrlFailed, `the final CRLs of ${keyid} could not be signed: ${(err as Error).message}`);
            })
          : [];
      // Decided again, the session held again, at the last point a refusal leaves the key material intact: a session
      // closed or a co-authorizer disabled on another replica while the final CRLs were signed stops it here (what is
      // left, final CRLs and a RETIRED or REVOKED key, is what a failed HSM deletion leaves: a retry finishes it).
      const { hsmKeyIds, state } = await this.destructionDecision(keyid, session);
      // HSM first: deleting an object that is gone is a no-op, so a failure below leaves a state a retry finishes.
      for (const id of hsmKeyIds) await this.signer.destroyKey(id);
      // Not held: the key material is gone, so the record is made whatever became of the session since (refusing it
      // would leave the database naming keys that no longer exist). Of two destructions at once one records it; the
      // other, whose deletions were no-ops, is `key_already_destroyed`.
      await this.lifecycle.markDestroyed(keyid, hsmKeyIds, { ...audit, adminSessionId: session.id, details: { state, finalCrlVersions: finalCrls } }).catch((err: unknown) => {
        throw err instanceof DataAccessError && err.code === 'invalid_state' ? new KeyAdminError(KeyAdminErrorCode.KeyAlreadyDestroyed, err.detail) : err;
      });
    });
    return this.keyViews.detail(actor, keyid);
  }

  /** A destruction's decision in the session held: refused (4xx) unless the key may be destroyed now; what to delete. */
  private async destructionDecision(keyid: string, session: AdminSession): Promise<DestructionPlan> {
    const plan = await this.lifecycle.destructionPlan(keyid, session);
    if (plan.state === 'ACTIVE') throw new KeyAdminError(KeyAdminErrorCode.KeyStillActive, `key ${keyid} is ACTIVE: retire or revoke it before destroying it`);
    if (plan.destroyed) throw new KeyAdminError(KeyAdminErrorCode.KeyAlreadyDestroyed, `key ${keyid} was destroyed`);
    if (plan.activeBelow.length) throw new KeyAdminError(KeyAdminErrorCode.KeyHasActiveChildren, `ACTIVE keys below ${keyid} (${plan.activeBelow.join(', ')}) would become unverifiable: retire or revoke them first`);
    return plan;
  }

  /** Every version's verification material (anyone who may see the key). */
  async versions(actor: Actor, keyid: string): Promise<KeyVersionList> {
    // A key the caller may not see does not exist for them (the same 404 as an unknown key).
    if (!visibility.key(actor, keyid)) throw new KeyAdminError(KeyAdminErrorCode.KeyNotFound, `no key ${keyid.slice(0, 128)}`);
    const key = await this.find(keyid);
    const items = await this.lifecycle.versions(keyid);
    return {
      keyid,
      state: key.state,
      currentVersion: key.currentVersion,
      pendingVersion: (await this.lifecycle.findPendingVersion(keyid))?.version ?? null,
      destroyedAt: key.destroyedAt?.toISOString() ?? null,
      items: items.map((v) => ({
        version: v.version,
        state: v.state,
        current: v.version === key.currentVersion && v.state === 'ACTIVE',
        certificate: v.certificatePem,
        serial: v.certificateSerial,
        notBefore: v.notBefore.toISOString(),
        notAfter: v.notAfter.toISOString(),
        spkiSha256: spkiSha256(new Uint8Array(new X509Certificate(v.certificatePem).publicKey.export({ type: 'spki', format: 'der' }))),
        issuerKeyid: v.issuerKeyid,
        issuerVersion: v.issuerVersion,
        createdAt: v.createdAt.toISOString(),
        retiredAt: v.retiredAt?.toISOString() ?? null,
        revokedAt: v.revokedAt?.toISOString() ?? null,
        revocationReason: v.revocationReason,
        destroyedAt: v.destroyedAt?.toISOString() ?? null,
      })),
    };
  }

  private async find(keyid: string): Promise<Key> {
    const key = keyid.length <= 128 ? await this.keys.findByKeyid(keyid) : null;
    if (!key) throw new KeyAdminError(KeyAdminErrorCode.KeyNotFound, `no key ${keyid.slice(0, 128)}`);
    return key;
  }
}
