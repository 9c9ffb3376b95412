import * as pkcs11js from 'pkcs11js';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import {
  HASHES,
  HsmKeyInfo,
  HsmSigner,
  KEY_ALGORITHMS,
  KeyAlgorithm,
  KeySpec,
  SignMechanism,
  curveSize,
  ecParamsFor,
  ecSpki,
  isEc,
  isRsa,
  rsaSpki,
} from '@keyserver/pki';
import { HsmError } from './hsm-error';
import { LANE_DATA_BYTES, LANE_DEPTH, LANE_MAX_ITEMS, LaneItem, LaneResult, SignLane, laneBytes, laneCarries } from './sign-lane';

/** Connection settings; the PIN comes from config (e.g. PKCS11_PIN_FILE), never from code. */
export interface Pkcs11SignerOptions {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel: string;
  pin: string;
  /** Number of sessions in the pool = maximum concurrent token operations. Default 4. */
  poolSize?: number;
  /**
   * Worker threads that sign, each batch on a session taken from the pool: EC and EdDSA signatures in batches of
   * up to 16, RSA one per batch. Default: min(poolSize, CPUs). 0: C_SignInit on the event loop and C_Sign in the
   * libuv pool, for every signature.
   */
  signWorkers?: number;
  /** How long open() tries again while the token is missing or unreadable (ms). Default {@link OPEN_RETRY_MS}. */
  openRetryMs?: number;
}

// Constants pkcs11js 2.1.7 does not export (PKCS#11 3.0).
const CKK_EC_EDWARDS = 0x40;
const CKM_EC_EDWARDS_KEY_PAIR_GEN = 0x1055;
const CKM_EDDSA = 0x1057;

/** Return values after which the module, the login or the sessions are gone: re-initialise and retry once. */
const RECOVERABLE = new Set<number>([
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_SLOT_ID_INVALID,
]);

/**
 * How long open() tries again while the token is missing or unreadable. Replicas started at once on one SoftHSM
 * token see it so for a moment: C_Login rewrites the token's file (its PIN-count flags), and a process reading the
 * token directory then finds the token absent (token_not_found) or unreadable (CKR_GENERAL_ERROR,
 * CKR_USER_PIN_NOT_INITIALIZED at C_Login). A network HSM's slots can also appear a moment after its client starts.
 */
export const OPEN_RETRY_MS = 10_000;

/** Return values of a token read while another process rewrites it: worth another try at open. */
const UNREADABLE_AT_OPEN = new Set<number>([
  pkcs11js.CKR_GENERAL_ERROR,
  pkcs11js.CKR_FUNCTION_FAILED,
  pkcs11js.CKR_USER_PIN_NOT_INITIALIZED,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED,
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_SLOT_ID_INVALID,
]);

const STALE_HANDLE = new Set<number>([pkcs11js.CKR_KEY_HANDLE_INVALID, pkcs11js.CKR_OBJECT_HANDLE_INVALID]);

interface Session {
  handle: Buffer;
  gen: number;
  /** CKA_ID hex -> private key object handle, valid for this session's generation. */
  keys: Map<string, Buffer>;
}

function ckr(e: unknown): number | undefined {
  if (e instanceof pkcs11js.Pkcs11Error) return e.code;
  // A few pkcs11js paths throw a plain Error whose message is 'CKR_NAME:code'.
  const m = e instanceof Error ? /^CKR_\w+:(\d+)/.exec(e.message) : null;
  return m ? Number(m[1]) : undefined;
}

const NO_KEY = Buffer.alloc(0);

// Shared, never mutated: the small-signature path allocates nothing per call for its mechanism.
const EC_SIGN = Object.fromEntries(
  KEY_ALGORITHMS.filter(isEc).map((a) => [a, { mech: { mechanism: pkcs11js.CKM_ECDSA }, outLen: 2 * curveSize(a) }]),
) as Record<KeyAlgorithm, { mech: pkcs11js.Mechanism; outLen: number }>;
const EDDSA_SIGN = { mech: { mechanism: CKM_EDDSA }, outLen: 64 };

// webpack (the API build) turns require.resolve into a module id; its __non_webpack_require__ is Node's require.
declare const __non_webpack_require__: NodeJS.Require | undefined;
/** Absolute path of pkcs11js for the workers, which load it themselves. */
function pkcs11jsPath(): string {
  const nodeRequire = typeof __non_webpack_require__ === 'function' ? __non_webpack_require__ : createRequire(__filename);
  return nodeRequire.resolve('pkcs11js');
}

/** Fewest signatures a batch takes when more are waiting: each batch costs a thread hop both ways. */
const MIN_BATCH = 4;
/**
 * Most slow signatures (RSA) one batch carries. They wait only when every lane slot is taken, and a batch's
 * signatures come back together, so the requests behind them finish (and commit) together: RSA-3072 orders at 32
 * callers took 0.33-0.61 database transactions each instead of 0.66-1.04 (issue 20, ADR 0038). Four keep a batch
 * under ~10 ms of RSA-3072 on this hardware.
 */
const RSA_BATCH_MAX = 4;

interface QueuedSign extends LaneItem {
  hsmKeyId: string;
  resolve: (sig: Uint8Array) => void;
  reject: (e: Error) => void;
  /** Already re-run once after a recovery / a stale key handle. */
  recovered: boolean;
  refound: boolean;
  /** A slow signature (RSA): batched only with other slow ones (ADR 0038), so it never holds fast ones behind it. */
  slow: boolean;
}

/** See {@link Pkcs11Signer.poolStats}. */
export interface Pkcs11PoolStats {
  /** Sessions in the pool (PKCS11_POOL_SIZE). */
  sessions: number;
  /** Sessions lent to an operation or a worker batch. */
  inUse: number;
  /** Calls waiting for a free session. */
  waiting: number;
  /** Signatures waiting for a worker lane. */
  queued: number;
  /** Worker lanes signing (0: the libuv pool signs). */
  lanes: number;
  /** Re-initialisations after a lost session, login or module. */
  recoveries: number;
  /** Signatures made in worker lanes. */
  laneSignatures: number;
}

const HSM_KEY_ID = /^(?:[0-9a-f]{2}){1,64}$/;

/**
 * HsmSigner over a PKCS#11 token with raw pkcs11js.
 * Signatures run in worker threads ({@link SignLane}), so the event loop never waits for the token: EC and EdDSA
 * (~0.1 ms in SoftHSM, where a libuv round trip per call costs as much again) in batches, RSA one per batch.
 * Without workers (`signWorkers: 0`) C_Sign runs in the libuv pool. The session pool bounds how many token
 * operations run at once (each session allows one active operation); a worker batch holds one session.
 */
export class Pkcs11Signer implements HsmSigner {
  private readonly p11 = new pkcs11js.PKCS11();
  private readonly poolSize: number;
  private gen = 0;
  private slot?: Buffer;
  private idle: Session[] = [];
  /** Every session of the current generation, idle or lent (their key-handle caches). */
  private sessions: Session[] = [];
  private busy = new Map<number, number>();
  private waiters: { resolve: (s: Session) => void; reject: (e: Error) => void }[] = [];
  /** Set when re-initialisation failed: the next call tries again instead of waiting for a pool that is gone. */
  private broken = false;
  private drained: (() => void)[] = [];
  private reinitializing?: Promise<void>;
  private readonly infos = new Map<string, HsmKeyInfo>();
  /**
   * Object creation and destruction, one at a time: SoftHSM's file-backed object store fails concurrent writes from
   * several sessions of one process with CKR_GENERAL_ERROR (softhsm/SoftHSMv2#573; seen here with 3 key pairs
   * generated at once). Key management is rare; signing with a cached key handle never waits for it (a key lookup
   * waits for a key pair generation in flight: {@link generating}).
   */
  private objectWrites: Promise<unknown> = Promise.resolve();
  /**
   * Settles when the key pair generation in flight (C_GenerateKeyPair in the libuv pool) has returned; undefined when
   * none is. A key lookup (C_FindObjectsInit) runs only when none is: `while (this.generating) await this.generating;`
   * right before it, the check and the lookup in one synchronous step, so that no generation starts in between (a
   * helper returning a promise would leave microtask turns between them). A lookup makes SoftHSM re-read every object
   * file whose generation changed, also the file C_GenerateKeyPair is writing in another thread at that moment (its
   * fcntl locks do not exclude threads of one process, softhsm/SoftHSMv2#573): it finds that object empty or half
   * written and marks it invalid, and the generation fails (CKR_GENERAL_ERROR, CKR_FUNCTION_FAILED or
   * CKR_TEMPLATE_INCONSISTENT: hsm_operation_failed), at times leaving an object without attributes. Most likely how
   * two concurrent rotations in CI were answered 200 + 502: the first one's certification by the issuer looked the
   * issuer's key up on a session that had not cached its handle while the second one's key pair was being written.
   * Signing with a cached handle (C_SignInit, C_Sign) re-reads only its own key object and never waits.
   */
  private generating?: Promise<unknown>;
  private closed = false;
  /** How many times the module was re-initialised after a failure (observability and tests). */
  recoveries = 0;
  /** Signatures made in worker lanes (observability and tests). */
  laneSignatures = 0;
  /** Batches posted to worker lanes (observability and tests). */
  laneBatches = 0;
  private readonly laneCount: number;
  private readonly lanes: SignLane[] = [];
  /** Batches each lane has out (index as `lanes`), at most LANE_DEPTH. */
  private readonly laneBusy: number[] = [];
  /** Signatures waiting for a worker lane. */
  private queue: QueuedSign[] = [];
  private pumpScheduled = false;
  /** Set when a lane's worker could not start: signatures then use the libuv pool. */
  private lanesFailed = false;

  constructor(private readonly opts: Pkcs11SignerOptions) {
    this.poolSize = Math.max(1, Math.floor(opts.poolSize ?? 4));
    const workers = opts.signWorkers ?? Math.min(this.poolSize, availableParallelism());
    this.laneCount = Math.max(0, Math.min(this.poolSize, Math.floor(workers)));
  }

  /** Loads the module, initialises it, logs in and opens the session pool. */
  async open(): Promise<void> {
    try {
      this.p11.load(this.opts.module);
    } catch (e) {
      throw new HsmError('hsm_unavailable', 'cannot load the PKCS#11 module', { cause: e });
    }
    await this.connectAtOpen();
    if (this.laneCount > 0) {
      const data = { pkcs11js: pkcs11jsPath(), module: this.opts.module };
      for (let i = 0; i < this.laneCount; i++) this.lanes.push(new SignLane(data));
      this.laneBusy.push(...this.lanes.map(() => 0));
    }
  }

  /**
   * connect(), tried again with growing pauses while the token is missing or unreadable ({@link OPEN_RETRY_MS}). Only
   * when this signer initialised the module: finalising a module another signer of this process uses would end that
   * signer's sessions (tests open several). A wrong or locked PIN is never tried again: each try counts.
   */
  private async connectAtOpen(): Promise<void> {
    const deadline = Date.now() + (this.opts.openRetryMs ?? OPEN_RETRY_MS);
    for (let attempt = 0; ; attempt++) {
      let initialised = false;
      try {
        initialised = this.initialize();
        this.connect(false);
        return;
      } catch (e) {
        const unreadable = e instanceof HsmError && (e.code === 'token_not_found' || (e.code === 'hsm_unavailable' && UNREADABLE_AT_OPEN.has(ckr(e.cause) ?? -1)));
        if (!initialised || !unreadable || Date.now() >= deadline) throw e;
        this.safe(() => this.p11.C_Finalize());
        const pause = Math.min(500, 25 * 2 ** attempt) * (0.5 + Math.random());
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(pause, deadline - Date.now()))));
      }
    }
  }

  /** C_Initialize; true when this call initialised the module, false when it already was. */
  private initialize(): boolean {
    try {
      this.p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
      return true;
    } catch (e) {
      if (ckr(e) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw new HsmError('hsm_unavailable', 'C_Initialize failed', { cause: e });
      return false;
    }
  }

  private connect(initialize = true): void {
    if (initialize) this.initialize();
    let slot: Buffer | undefined;
    try {
      slot = this.p11.C_GetSlotList(true).find((s) => this.p11.C_GetTokenInfo(s).label.trim() === this.opts.tokenLabel);
    } catch (e) {
      throw new HsmError('hsm_unavailable', 'cannot list the tokens', { cause: e });
    }
    if (!slot) throw new HsmError('token_not_found', `no token labelled ${this.opts.tokenLabel}`);
    this.slot = slot;
    const sessions: Session[] = [];
    try {
      for (let i = 0; i < this.poolSize; i++) {
        const handle = this.p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
        sessions.push({ handle, gen: this.gen, keys: new Map() });
      }
      try {
        // Login state belongs to the application: once for all sessions.
        this.p11.C_Login(sessions[0].handle, pkcs11js.CKU_USER, this.opts.pin);
      } catch (e) {
        if (ckr(e) !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
          const code = ckr(e) === pkcs11js.CKR_PIN_INCORRECT || ckr(e) === pkcs11js.CKR_PIN_LOCKED ? 'hsm_login_failed' : 'hsm_unavailable';
          throw new HsmError(code, 'C_Login failed', { cause: e });
        }
      }
    } catch (e) {
      for (const s of sessions) this.safe(() => this.p11.C_CloseSession(s.handle));
      throw e instanceof HsmError ? e : new HsmError('hsm_unavailable', 'cannot open sessions', { cause: e });
    }
    this.idle = sessions;
    this.sessions = [...sessions];
    this.busy.set(this.gen, 0);
    for (const s of this.idle.splice(0, this.waiters.length)) {
      this.busy.set(this.gen, (this.busy.get(this.gen) ?? 0) + 1);
      this.waiters.shift()?.resolve(s);
    }
  }

  private safe(fn: () => void): void {
    try {
      fn();
    } catch {
      // best effort while tearing down a broken module state
    }
  }

  /** Takes a session of the current generation; a session counts as busy from the moment it is handed out. */
  private async acquire(): Promise<Session> {
    for (;;) {
      if (this.closed) throw new HsmError('signer_closed');
      if (this.reinitializing) await this.reinitializing;
      if (this.broken) await this.reinit(this.gen);
      let s = this.idle.pop();
      if (s) this.busy.set(s.gen, (this.busy.get(s.gen) ?? 0) + 1);
      else s = await new Promise<Session>((resolve, reject) => this.waiters.push({ resolve, reject }));
      if (this.closed) {
        this.release(s);
        throw new HsmError('signer_closed');
      }
      if (s.gen === this.gen) return s;
      // Handed over just before a re-initialisation: its handle may now name someone else's session.
      this.release(s);
    }
  }

  private release(s: Session): void {
    if (s.gen === this.gen && !this.closed) {
      const w = this.waiters.shift();
      if (w) {
        w.resolve(s);
        return;
      }
    }
    const left = (this.busy.get(s.gen) ?? 1) - 1;
    this.busy.set(s.gen, left);
    if (s.gen === this.gen) {
      if (!this.closed) this.idle.push(s);
    } else if (left === 0) {
      this.drained.splice(0).forEach((r) => r());
    }
  }

  /** Single-flight: finalize, initialize, login, rebuild the pool. Waits for old-generation calls to return first. */
  private reinit(failedGen: number): Promise<void> {
    if (failedGen !== this.gen) return this.reinitializing ?? Promise.resolve();
    if (this.reinitializing) return this.reinitializing;
    const old = this.gen;
    this.gen++;
    this.idle = [];
    this.recoveries++;
    const p = (async () => {
      if ((this.busy.get(old) ?? 0) > 0) await new Promise<void>((r) => this.drained.push(r));
      this.busy.delete(old);
      this.safe(() => this.p11.C_Finalize());
      try {
        this.connect();
        this.broken = false;
      } catch (e) {
        this.broken = true;
        const err = e instanceof HsmError ? e : new HsmError('hsm_unavailable', 're-initialisation failed', { cause: e });
        this.waiters.splice(0).forEach((w) => w.reject(err));
        throw err;
      }
    })();
    // Assigned before clearing: the body may finish synchronously when nothing is in flight.
    this.reinitializing = p;
    p.then(
      () => (this.reinitializing = undefined),
      () => (this.reinitializing = undefined),
    );
    return p;
  }

  /** Runs `fn` on a pooled session; on a lost session/module/login, re-initialises and retries once. */
  private async run<T>(fn: (s: Session) => Promise<T> | T): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const s = await this.acquire();
      let failure: unknown;
      try {
        return await fn(s);
      } catch (e) {
        failure = e;
      } finally {
        this.release(s);
      }
      const code = ckr(failure);
      if (attempt === 0 && code !== undefined && RECOVERABLE.has(code) && !this.closed) {
        await this.reinit(s.gen);
        continue;
      }
      throw this.mapError(failure);
    }
  }

  private mapError(e: unknown): Error {
    if (e instanceof HsmError) return e;
    const code = ckr(e);
    if (code === undefined) return new HsmError('hsm_operation_failed', e instanceof Error ? e.message : undefined, { cause: e });
    if (RECOVERABLE.has(code)) return new HsmError('hsm_unavailable', (e as Error).message, { cause: e });
    if (code === pkcs11js.CKR_MECHANISM_INVALID || code === pkcs11js.CKR_MECHANISM_PARAM_INVALID || code === pkcs11js.CKR_KEY_TYPE_INCONSISTENT) {
      return new HsmError('mechanism_not_supported', (e as Error).message, { cause: e });
    }
    if (code === pkcs11js.CKR_DATA_LEN_RANGE || code === pkcs11js.CKR_DATA_INVALID) {
      return new HsmError('invalid_sign_input', (e as Error).message, { cause: e });
    }
    return new HsmError('hsm_operation_failed', (e as Error).message, { cause: e });
  }

  private find(s: Session, template: pkcs11js.Template): Buffer[] {
    this.p11.C_FindObjectsInit(s.handle, template);
    try {
      return this.p11.C_FindObjects(s.handle, 4);
    } finally {
      this.p11.C_FindObjectsFinal(s.handle);
    }
  }

  private privateKey(s: Session, hsmKeyId: string): Buffer {
    const cached = s.keys.get(hsmKeyId);
    if (cached) return cached;
    const found = this.find(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(hsmKeyId, 'hex') },
    ]);
    if (found.length !== 1) throw new HsmError('key_not_found', found.length ? 'CKA_ID is ambiguous' : undefined);
    s.keys.set(hsmKeyId, found[0]);
    return found[0];
  }

  private readInfo(s: Session, hsmKeyId: string): HsmKeyInfo {
    this.privateKey(s, hsmKeyId);
    const [pub] = this.find(s, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_ID, value: Buffer.from(hsmKeyId, 'hex') },
    ]);
    if (!pub) throw new HsmError('key_not_found', 'public key object missing');
    const [type, label] = this.p11.C_GetAttributeValue(s.handle, pub, [{ type: pkcs11js.CKA_KEY_TYPE }, { type: pkcs11js.CKA_LABEL }]);
    const keyType = Number((type.value as Buffer).readBigUInt64LE(0));
    const labelText = (label.value as Buffer).toString('utf8');
    if (keyType === pkcs11js.CKK_RSA) {
      const [mod, exp] = this.p11.C_GetAttributeValue(s.handle, pub, [{ type: pkcs11js.CKA_MODULUS }, { type: pkcs11js.CKA_PUBLIC_EXPONENT }]);
      const modulus = mod.value as Buffer;
      const algorithm = `RSA-${modulus.length * 8}` as KeyAlgorithm;
      if (!KEY_ALGORITHMS.includes(algorithm)) throw new HsmError('key_not_found', 'unsupported RSA size');
      return { hsmKeyId, label: labelText, algorithm, spki: rsaSpki(modulus, exp.value as Buffer) };
    }
    const [params, point] = this.p11.C_GetAttributeValue(s.handle, pub, [{ type: pkcs11js.CKA_EC_PARAMS }, { type: pkcs11js.CKA_EC_POINT }]);
    const algorithm = KEY_ALGORITHMS.find(
      (a) => (isEc(a) || a === 'Ed25519') && Buffer.from(ecParamsFor(a)).equals(params.value as Buffer),
    );
    if (!algorithm) throw new HsmError('key_not_found', 'unsupported key type');
    return { hsmKeyId, label: labelText, algorithm, spki: ecSpki(algorithm, point.value as Buffer) };
  }

  /** Generates a sign-only, non-extractable key pair inside the token. */
  async generateKey(spec: KeySpec): Promise<HsmKeyInfo> {
    if (!KEY_ALGORITHMS.includes(spec?.algorithm)) throw new HsmError('invalid_key_spec', 'unknown algorithm');
    if (typeof spec.label !== 'string' || spec.label.length === 0 || Buffer.byteLength(spec.label) > 128) {
      throw new HsmError('invalid_key_spec', 'label must be 1..128 bytes');
    }
    const id = randomBytes(16);
    const common = [
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: spec.label },
      { type: pkcs11js.CKA_ID, value: id },
    ];
    const priv: pkcs11js.Template = [
      ...common,
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
      { type: pkcs11js.CKA_PRIVATE, value: true },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_SIGN, value: true },
      { type: pkcs11js.CKA_SIGN_RECOVER, value: false },
      { type: pkcs11js.CKA_DECRYPT, value: false },
      { type: pkcs11js.CKA_UNWRAP, value: false },
      { type: pkcs11js.CKA_DERIVE, value: false },
    ];
    const pub: pkcs11js.Template = [
      ...common,
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PUBLIC_KEY },
      { type: pkcs11js.CKA_PRIVATE, value: false },
      { type: pkcs11js.CKA_VERIFY, value: true },
      { type: pkcs11js.CKA_ENCRYPT, value: false },
      { type: pkcs11js.CKA_WRAP, value: false },
    ];
    let mechanism: number;
    if (isRsa(spec.algorithm)) {
      mechanism = pkcs11js.CKM_RSA_PKCS_KEY_PAIR_GEN;
      priv.push({ type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA });
      pub.push(
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_RSA },
        { type: pkcs11js.CKA_MODULUS_BITS, value: Number(spec.algorithm.slice(4)) },
        { type: pkcs11js.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
      );
    } else {
      const keyType = spec.algorithm === 'Ed25519' ? CKK_EC_EDWARDS : pkcs11js.CKK_EC;
      mechanism = spec.algorithm === 'Ed25519' ? CKM_EC_EDWARDS_KEY_PAIR_GEN : pkcs11js.CKM_EC_KEY_PAIR_GEN;
      priv.push({ type: pkcs11js.CKA_KEY_TYPE, value: keyType });
      pub.push({ type: pkcs11js.CKA_KEY_TYPE, value: keyType }, { type: pkcs11js.CKA_EC_PARAMS, value: Buffer.from(ecParamsFor(spec.algorithm)) });
    }
    const hsmKeyId = id.toString('hex');
    return this.oneObjectWrite(() =>
      this.run(async (s) => {
        const generation = this.p11.C_GenerateKeyPairAsync(s.handle, { mechanism }, pub, priv);
        // Set in the same synchronous step as the call: no key lookup can start after it without seeing it.
        const returned = (this.generating = generation.then(
          () => undefined,
          () => undefined,
        ));
        try {
          await generation;
        } finally {
          if (this.generating === returned) this.generating = undefined;
        }
        // The signer's only object write in flight was this one (oneObjectWrite): this lookup races nothing.
        const info = this.readInfo(s, hsmKeyId);
        this.infos.set(hsmKeyId, info);
        return info;
      }),
    );
  }

  /** Runs `write` after every object write started before it has settled (see {@link objectWrites}). */
  private oneObjectWrite<T>(write: () => Promise<T>): Promise<T> {
    const next = this.objectWrites.then(write, write);
    this.objectWrites = next.catch(() => undefined);
    return next;
  }

  /** Destroys the private and public key objects with this CKA_ID (see {@link HsmSigner.destroyKey}). */
  async destroyKey(hsmKeyId: string): Promise<void> {
    if (typeof hsmKeyId !== 'string' || !HSM_KEY_ID.test(hsmKeyId)) throw new HsmError('key_not_found', 'malformed key id');
    const id = Buffer.from(hsmKeyId, 'hex');
    await this.oneObjectWrite(() =>
      this.run((s) => {
        for (const cls of [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY]) {
          for (const o of this.find(s, [{ type: pkcs11js.CKA_CLASS, value: cls }, { type: pkcs11js.CKA_ID, value: id }])) this.p11.C_DestroyObject(s.handle, o);
        }
      }),
    );
    // A token may hand the freed handle to a later object: no session may keep it.
    for (const s of this.sessions) s.keys.delete(hsmKeyId);
    this.infos.delete(hsmKeyId);
  }

  /** Looks a key pair up by CKA_ID (hex); `key_not_found` when there is no such private key. */
  async getKey(hsmKeyId: string): Promise<HsmKeyInfo> {
    if (typeof hsmKeyId !== 'string' || !HSM_KEY_ID.test(hsmKeyId)) throw new HsmError('key_not_found', 'malformed key id');
    const cached = this.infos.get(hsmKeyId);
    if (cached) return cached;
    const info = await this.run(async (s) => {
      while (this.generating) await this.generating;
      return this.readInfo(s, hsmKeyId);
    });
    this.infos.set(hsmKeyId, info);
    return info;
  }

  /** Signs prepared input with the private key `hsmKeyId` (see {@link SignMechanism} for what `data` is). */
  sign(hsmKeyId: string, mechanism: SignMechanism, data: Uint8Array): Promise<Uint8Array> {
    // Not async: the cached-key path allocates no extra promise, which shows at ~10k small signatures/s.
    const info = this.infos.get(hsmKeyId);
    if (!info) return this.getKey(hsmKeyId).then((i) => this.signWith(i, mechanism, data));
    return this.signWith(info, mechanism, data);
  }

  private signWith(info: HsmKeyInfo, mechanism: SignMechanism, data: Uint8Array): Promise<Uint8Array> {
    const hsmKeyId = info.hsmKeyId;
    let m: { mech: pkcs11js.Mechanism; outLen: number };
    try {
      m = this.mechanismFor(info.algorithm, mechanism, data);
    } catch (e) {
      return Promise.reject(e);
    }
    const { mech, outLen } = m;
    if (this.lanes.length > 0 && !this.lanesFailed && laneCarries(mech) && data.byteLength + outLen <= LANE_DATA_BYTES) {
      return new Promise<Uint8Array>((resolve, reject) => {
        const slow = isRsa(info.algorithm);
        this.queue.push({ hsmKeyId, key: NO_KEY, mechanism: mech, data, outLen, resolve, reject, recovered: false, refound: false, slow });
        this.schedulePump();
      });
    }
    return this.signInLibuv(hsmKeyId, mech, data, outLen);
  }

  /** C_SignInit here, C_Sign in the libuv pool: without lanes, and for an EdDSA message over the lane's size. */
  private signInLibuv(hsmKeyId: string, mech: pkcs11js.Mechanism, data: Uint8Array, outLen: number): Promise<Uint8Array> {
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this.run(async (s) => {
      if (!s.keys.has(hsmKeyId)) while (this.generating) await this.generating;
      let key = this.privateKey(s, hsmKeyId);
      try {
        this.p11.C_SignInit(s.handle, mech, key);
      } catch (e) {
        if (!STALE_HANDLE.has(ckr(e) ?? -1)) throw e;
        s.keys.delete(hsmKeyId);
        while (this.generating) await this.generating;
        key = this.privateKey(s, hsmKeyId);
        this.p11.C_SignInit(s.handle, mech, key);
      }
      const sig = await this.p11.C_SignAsync(s.handle, input, Buffer.alloc(outLen));
      return new Uint8Array(sig);
    });
  }

  /** Deferred to the end of the current microtasks so that callers woken by one batch fill the next one. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => {
      this.pumpScheduled = false;
      while (this.queue.length > 0) {
        const slow = this.queue[0].slow;
        const idle = this.laneBusy.reduce((n, b) => n + (b === 0 ? 1 : 0), 0);
        // An EC/EdDSA batch takes an idle lane only: one batch per lane keeps batches large (ADR 0008). A slow
        // signature (RSA) may also wait as a lane's second batch when no lane is idle, so the worker starts it the
        // moment the one before ends instead of waiting for this thread's turn to read back and post (ADR 0034).
        let k = this.laneBusy.indexOf(0);
        if (k < 0 && slow) k = this.laneBusy.findIndex((b) => b < LANE_DEPTH);
        if (k < 0) break;
        // EC/EdDSA: the queue shared among the idle lanes, at least MIN_BATCH. RSA: spread over the free slots, so idle
        // lanes start first and a batch is only as large as the backlog (ADR 0038).
        const most = slow
          ? Math.min(RSA_BATCH_MAX, Math.ceil(this.queue.length / this.freeSlots()))
          : Math.min(LANE_MAX_ITEMS, Math.max(MIN_BATCH, Math.ceil(this.queue.length / Math.max(1, idle))));
        let n = 0;
        for (let bytes = 0; n < most && n < this.queue.length && this.queue[n].slow === slow && bytes + laneBytes(this.queue[n]) <= LANE_DATA_BYTES; n++) bytes += laneBytes(this.queue[n]);
        this.laneBusy[k]++;
        this.laneBatches++;
        void this.drive(k, this.queue.splice(0, n));
      }
    });
  }

  /** Batches the lanes can still take (each lane holds up to LANE_DEPTH). */
  private freeSlots(): number {
    return this.laneBusy.reduce((n, b) => n + LANE_DEPTH - b, 0);
  }

  private async drive(k: number, batch: QueuedSign[]): Promise<void> {
    const lane = this.lanes[k];
    try {
      await this.signBatch(lane, batch);
    } finally {
      this.laneBusy[k]--;
      if (this.queue.length > 0) this.schedulePump();
    }
  }

  /**
   * One batch on one pooled session in a worker, with the same recovery as {@link run}: a lost session, login or
   * module re-initialises once and the affected signatures run again; a stale key handle is looked up again once.
   */
  private async signBatch(lane: SignLane, batch: QueuedSign[]): Promise<void> {
    let s: Session;
    try {
      s = await this.acquire();
    } catch (e) {
      // The pool is closed or could not be rebuilt: every waiting signature would fail the same way now.
      const err = this.mapError(e);
      for (const q of [...batch, ...this.queue.splice(0)]) q.reject(err);
      return;
    }
    const again: QueuedSign[] = [];
    let lost = false;
    const fail = (q: QueuedSign, e: unknown) => {
      const code = ckr(e) ?? -1;
      if (STALE_HANDLE.has(code) && !q.refound) {
        s.keys.delete(q.hsmKeyId);
        q.refound = true;
        again.push(q);
      } else if (RECOVERABLE.has(code) && !q.recovered && !this.closed) {
        q.recovered = true;
        lost = true;
        again.push(q);
      } else {
        q.reject(this.mapError(e));
      }
    };
    try {
      // A handle this session has not cached yet is looked up: not while a key pair is being generated.
      if (this.generating && batch.some((q) => !s.keys.has(q.hsmKeyId))) {
        while (this.generating) await this.generating;
        if (this.closed) {
          for (const q of batch) q.reject(new HsmError('signer_closed'));
          return;
        }
      }
      const sent: QueuedSign[] = [];
      for (const q of batch) {
        try {
          q.key = this.privateKey(s, q.hsmKeyId);
          sent.push(q);
        } catch (e) {
          fail(q, e);
        }
      }
      if (sent.length > 0) {
        let results: LaneResult[];
        try {
          results = await lane.run(s.handle, sent);
        } catch (e) {
          results = [];
          if (lane.neverStarted && !this.closed) {
            // Workers cannot run here (e.g. pkcs11js not loadable in a worker): sign as before, on the libuv pool.
            this.lanesFailed = true;
            for (const q of [...sent, ...this.queue.splice(0)]) this.signInLibuv(q.hsmKeyId, q.mechanism, q.data, q.outLen).then(q.resolve, q.reject);
          } else {
            // The worker died (not the token): an operation error for its batch; the lane restarts on next use.
            for (const q of sent) q.reject(this.closed ? new HsmError('signer_closed') : this.mapError(e));
          }
        }
        results.forEach((r, i) => {
          if ('sig' in r) {
            this.laneSignatures++;
            sent[i].resolve(r.sig);
          } else fail(sent[i], r.rv > 0 ? new pkcs11js.Pkcs11Error(r.message, r.rv, 'C_Sign') : new Error(r.message));
        });
      }
    } finally {
      this.release(s);
    }
    if (lost) {
      try {
        await this.reinit(s.gen);
      } catch (e) {
        const err = this.mapError(e);
        for (const q of again.splice(0)) q.reject(err);
      }
    }
    this.queue.unshift(...again);
  }

  private mechanismFor(alg: KeyAlgorithm, m: SignMechanism, data: Uint8Array): { mech: pkcs11js.Mechanism; outLen: number } {
    const bad = () => new HsmError('mechanism_not_supported', `${m?.kind} with ${alg}`);
    if (!(data instanceof Uint8Array) || data.length === 0) throw new HsmError('invalid_sign_input', 'empty input');
    if (isRsa(alg)) {
      const outLen = Number(alg.slice(4)) / 8;
      if (m.kind === 'rsa-pkcs1') {
        if (data.length > outLen - 11) throw new HsmError('invalid_sign_input', 'input too long for the modulus');
        return { mech: { mechanism: pkcs11js.CKM_RSA_PKCS }, outLen };
      }
      if (m.kind === 'rsa-pss') {
        const h = HASHES[m.hash];
        if (!h) throw bad();
        if (data.length !== h.length) throw new HsmError('invalid_sign_input', 'digest length does not match the PSS hash');
        const [hashAlg, mgf] = {
          'SHA-256': [pkcs11js.CKM_SHA256, pkcs11js.CKG_MGF1_SHA256],
          'SHA-384': [pkcs11js.CKM_SHA384, pkcs11js.CKG_MGF1_SHA384],
          'SHA-512': [pkcs11js.CKM_SHA512, pkcs11js.CKG_MGF1_SHA512],
        }[m.hash];
        return {
          mech: { mechanism: pkcs11js.CKM_RSA_PKCS_PSS, parameter: { type: pkcs11js.CK_PARAMS_RSA_PSS, hashAlg, mgf, saltLen: h.length } as pkcs11js.RsaPSS },
          outLen,
        };
      }
      throw bad();
    }
    if (isEc(alg)) {
      if (m.kind !== 'ecdsa') throw bad();
      if (data.length > 64) throw new HsmError('invalid_sign_input', 'ECDSA input must be a digest');
      return EC_SIGN[alg];
    }
    if (m.kind !== 'eddsa') throw bad();
    return EDDSA_SIGN;
  }

  /** Whether any private key object is on the token (the bootstrap refuses a token that is not empty). */
  async holdsKeys(): Promise<boolean> {
    return this.run(async (s) => {
      while (this.generating) await this.generating;
      return this.find(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY }]).length > 0;
    });
  }

  /** The pool's state right now (metrics read it at scrape time; nothing is counted per call for it). */
  poolStats(): Pkcs11PoolStats {
    return {
      sessions: this.poolSize,
      inUse: this.closed ? 0 : (this.busy.get(this.gen) ?? 0),
      waiting: this.waiters.length,
      queued: this.queue.length,
      lanes: this.lanesFailed ? 0 : this.lanes.length,
      recoveries: this.recoveries,
      laneSignatures: this.laneSignatures,
    };
  }

  /** Checks the token answers through a pooled session (recovering once if the module was reset). */
  async health(): Promise<void> {
    await this.run((s) => {
      this.p11.C_GetSessionInfo(s.handle);
    });
  }

  /** Closes the sessions, logs out and finalises the module. Further calls fail with `signer_closed`. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.splice(0).forEach((q) => q.reject(new HsmError('signer_closed')));
    // Batches already in a worker finish; the workers stop before the module is finalised and unloaded.
    await Promise.all(this.lanes.map((l) => l.close()));
    if (this.reinitializing) await this.reinitializing.catch(() => undefined);
    const s = this.idle[0];
    if (s) this.safe(() => this.p11.C_Logout(s.handle));
    if (this.slot) this.safe(() => this.p11.C_CloseAllSessions(this.slot as Buffer));
    this.idle = [];
    this.waiters.splice(0).forEach((w) => w.reject(new HsmError('signer_closed')));
    this.safe(() => this.p11.C_Finalize());
    this.safe(() => this.p11.close());
  }
}

/** Opens a pooled, logged-in signer on the token labelled `tokenLabel`. */
export async function createPkcs11Signer(opts: Pkcs11SignerOptions): Promise<Pkcs11Signer> {
  const signer = new Pkcs11Signer(opts);
  await signer.open();
  return signer;
}
