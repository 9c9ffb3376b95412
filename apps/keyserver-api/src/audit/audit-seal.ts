import { X509Certificate } from 'node:crypto';
import type { Logger } from 'pino';
import { AuditCheckpointVerifier, auditCheckpointImprintDer, type AuditCheckpoint, type CheckpointTrust } from '@keyserver/audit-chain';
import { Inject, Injectable } from '@nestjs/common';
import { AuditCheckpointRepository, DataAccessError, KeyLifecycleRepository, KeyRepository, type ChainSeals } from '@keyserver/data-access';
import { HSM_SIGNER } from '../app/tokens';
import { hex, type HsmSigner } from '@keyserver/pki';
import { PeriodicJob } from '../common/periodic-job';
import { certificateChain } from '../certificates/key-chain';
import type { TsaService } from '../tsa/tsa.service';

/** What one pass of the sealer did. */
export type SealOutcome = 'sealed' | 'unchanged' | 'no_tsa' | 'lost' | 'failed';

/**
 * Seals the audit chain's head with the Keyserver's own TSA (docs/adr/0048-signed-audit-checkpoints.md). Every replica
 * runs one: every `everyMs` (0: never), when the head moved past the last checkpoint and a TSA key is usable, it signs
 * (sha256, head hash) in the HSM with no database lock held, then stores the checkpoint and its register row in one
 * short transaction with its `audit.checkpoint` entry (seq and token hash: a deleted checkpoint is then
 * checkpoint_missing, ADR 0048 addendum); a replica that meets another's checkpoint at the same or a later seq, or a
 * record after its seq, stores nothing. The record alone is not a head to seal.
 */
export class AuditSealer {
  private readonly job = new PeriodicJob(() => this.run());
  private lastOutcome: SealOutcome | undefined;

  constructor(
    private readonly checkpoints: AuditCheckpointRepository,
    private readonly tsa: Pick<TsaService, 'forAuditCheckpoint'>,
    private readonly logger: Logger,
    private readonly everyMs: number,
  ) {}

  start(): void {
    if (this.everyMs > 0) this.job.start(this.everyMs);
  }

  stop(): Promise<void> {
    return this.job.stop();
  }

  /** One pass; never throws (a database or HSM outage is retried next time). */
  pass(): Promise<SealOutcome> {
    return this.job.pass();
  }

  private async run(): Promise<SealOutcome> {
    const outcome = await this.seal().catch((err: unknown) => {
      this.logger.warn({ err: (err as Error).message }, 'audit checkpoint not sealed; will retry');
      return 'failed' as const;
    });
    if (outcome === 'no_tsa' && this.lastOutcome !== 'no_tsa') this.logger.warn('no ACTIVE TSA key valid now: the audit chain is not sealed (docs/adr/0048)');
    this.lastOutcome = outcome;
    return outcome;
  }

  private async seal(): Promise<SealOutcome> {
    // Something after the last checkpoint other than its record (sealing a record alone would make a checkpoint every pass).
    const head = await this.checkpoints.headToSeal();
    if (!head) return 'unchanged';
    const tsa = await this.tsa.forAuditCheckpoint();
    if (!tsa) return 'no_tsa';
    const imprint = auditCheckpointImprintDer(head.hash);
    const issued = await tsa.sign(imprint);
    try {
      const stored = await this.checkpoints.record({
        seq: head.seq,
        entryHash: head.hash,
        tokenDer: issued.token,
        genTime: issued.genTime,
        tsaKeyid: tsa.key.keyid,
        tsaKeyVersion: tsa.key.currentVersion,
        serialHex: issued.serialHex,
        policy: tsa.policy,
        messageImprintHex: hex(imprint),
      });
      return stored ? 'sealed' : 'lost';
    } catch (err) {
      if (err instanceof DataAccessError && err.code === 'invalid_state') return 'lost';
      throw err;
    }
  }
}

/**
 * The API's trust in a checkpoint token: its signer is the certificate of the TSA key version the checkpoint names,
 * valid at genTime, whose chain (each link's signature) leads to a ROOT key whose key pair is in this Keyserver's HSM
 * (the top certificate's public key is the HSM's): rows an insider adds or edits cannot make a certificate the HSM's
 * ROOT did not sign. Each key version is looked up once, by `prepare` before the checkpoints naming it are verified
 * (a batch at a time: verification streams).
 */
export function hsmAnchoredTrust(keys: KeyRepository, lifecycle: KeyLifecycleRepository, signer: HsmSigner): { trust: CheckpointTrust; prepare(checkpoints: readonly AuditCheckpoint[]): Promise<void> } {
  const versions = new Map<string, { cert: X509Certificate } | { problem: string }>();
  return {
    async prepare(checkpoints) {
      for (const cp of checkpoints) {
        const id = `${cp.tsaKeyid}\n${cp.tsaKeyVersion}`;
        if (!versions.has(id)) versions.set(id, await tsaVersion(keys, lifecycle, signer, cp.tsaKeyid, cp.tsaKeyVersion).catch((err: Error) => ({ problem: `TSA key ${cp.tsaKeyid} version ${cp.tsaKeyVersion}: ${err.message}` })));
      }
    },
    trust: (token, cp) => {
      const v = versions.get(`${cp.tsaKeyid}\n${cp.tsaKeyVersion}`);
      if (!v) return 'no TSA key version for this checkpoint';
      if ('problem' in v) return v.problem;
      if (!token.signer.raw.equals(v.cert.raw)) return `the token is not signed by TSA key ${cp.tsaKeyid} version ${cp.tsaKeyVersion}`;
      const at = token.info.genTime.getTime();
      if (at < v.cert.validFromDate.getTime() || at > v.cert.validToDate.getTime()) return `TSA key ${cp.tsaKeyid} version ${cp.tsaKeyVersion} was not valid at genTime ${token.info.genTime.toISOString()}`;
      return null;
    },
  };
}

async function tsaVersion(keys: KeyRepository, lifecycle: KeyLifecycleRepository, signer: HsmSigner, keyid: string, version: number): Promise<{ cert: X509Certificate } | { problem: string }> {
  const key = await keys.findByKeyid(keyid);
  if (!key || key.type !== 'TSA') return { problem: `no TSA key ${keyid}` };
  const v = (await lifecycle.versions(keyid)).find((x) => x.version === version);
  if (!v) return { problem: `TSA key ${keyid} has no version ${version}` };
  const chain = (await certificateChain(keys, lifecycle, { ...key, certificatePem: v.certificatePem })).map((p) => new X509Certificate(p));
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i].checkIssued(chain[i + 1]) || !chain[i].verify(chain[i + 1].publicKey)) return { problem: `the certificate chain of TSA key ${keyid} version ${version} is broken` };
  }
  // The top Keyserver key (a ROOT): its certificate in the chain carries the public key of its key pair in the HSM.
  let top = key;
  for (let depth = 0; top.parentKeyid && depth < 10; depth++) {
    const parent = await keys.findByKeyid(top.parentKeyid);
    if (!parent) return { problem: `issuer ${top.parentKeyid} of TSA key ${keyid} not found` };
    top = parent;
  }
  if (top.type !== 'ROOT') return { problem: `TSA key ${keyid} does not lead to a ROOT` };
  const rootVersions = await lifecycle.versions(top.keyid);
  const hsmKeys = new Set<string>();
  for (const rv of rootVersions) {
    try {
      hsmKeys.add(Buffer.from((await signer.getKey(rv.hsmKeyId)).spki).toString('hex'));
    } catch {
      // A ROOT version whose key pair is no longer in the HSM anchors nothing.
    }
  }
  const anchored = chain.some((c) => hsmKeys.has(c.publicKey.export({ type: 'spki', format: 'der' }).toString('hex')));
  if (!anchored) return { problem: `the chain of TSA key ${keyid} version ${version} does not lead to a ROOT key pair in this Keyserver's HSM` };
  return { cert: chain[0] };
}

/** The stored checkpoints as the API verifies and exports them. */
@Injectable()
export class AuditSeals {
  constructor(
    private readonly checkpoints: AuditCheckpointRepository,
    private readonly keys: KeyRepository,
    private readonly lifecycle: KeyLifecycleRepository,
    @Inject(HSM_SIGNER) private readonly signer: HsmSigner,
  ) {}

  list(): Promise<AuditCheckpoint[]> {
    return this.checkpoints.list();
  }

  /** The stored checkpoints as the chain verification streams them, trusted as {@link hsmAnchoredTrust} says. */
  forVerification(): ChainSeals {
    const { trust, prepare } = hsmAnchoredTrust(this.keys, this.lifecycle, this.signer);
    return { verifier: new AuditCheckpointVerifier(trust), prepare };
  }
}
