import * as pkcs11js from 'pkcs11js';
import { randomBytes } from 'node:crypto';
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

/** Connection settings; the PIN comes from config (e.g. PKCS11_PIN_FILE), never from code. */
export interface Pkcs11SignerOptions {
  /** Path of the PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so. */
  module: string;
  tokenLabel: string;
  pin: string;
  /** Number of sessions in the pool = maximum concurrent token operations. Default 4. */
  poolSize?: number;
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

const HSM_KEY_ID = /^(?:[0-9a-f]{2}){1,64}$/;

/**
 * HsmSigner over a PKCS#11 token with raw pkcs11js.
 * Signing uses the asynchronous C_Sign (runs in the libuv pool) so a slow RSA signature never blocks the
 * event loop; the session pool bounds how many run at once (each session allows one active operation).
 */
export class Pkcs11Signer implements HsmSigner {
  private readonly p11 = new pkcs11js.PKCS11();
  private readonly poolSize: number;
  private gen = 0;
  private slot?: Buffer;
  private idle: Session[] = [];
  private busy = new Map<number, number>();
  private waiters: { resolve: (s: Session) => void; reject: (e: Error) => void }[] = [];
  /** Set when re-initialisation failed: the next call tries again instead of waiting for a pool that is gone. */
  private broken = false;
  private drained: (() => void)[] = [];
  private reinitializing?: Promise<void>;
  private readonly infos = new Map<string, HsmKeyInfo>();
  private closed = false;
  /** How many times the module was re-initialised after a failure (observability and tests). */
  recoveries = 0;

  constructor(private readonly opts: Pkcs11SignerOptions) {
    this.poolSize = Math.max(1, Math.floor(opts.poolSize ?? 4));
  }

  /** Loads the module, initialises it, logs in and opens the session pool. */
  async open(): Promise<void> {
    try {
      this.p11.load(this.opts.module);
    } catch (e) {
      throw new HsmError('hsm_unavailable', 'cannot load the PKCS#11 module', { cause: e });
    }
    this.connect();
  }

  private connect(): void {
    try {
      this.p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (e) {
      if (ckr(e) !== pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw new HsmError('hsm_unavailable', 'C_Initialize failed', { cause: e });
    }
    const slot = this.p11
      .C_GetSlotList(true)
      .find((s) => this.p11.C_GetTokenInfo(s).label.trim() === this.opts.tokenLabel);
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
    return this.run(async (s) => {
      await this.p11.C_GenerateKeyPairAsync(s.handle, { mechanism }, pub, priv);
      const info = this.readInfo(s, hsmKeyId);
      this.infos.set(hsmKeyId, info);
      return info;
    });
  }

  /** Looks a key pair up by CKA_ID (hex); `key_not_found` when there is no such private key. */
  async getKey(hsmKeyId: string): Promise<HsmKeyInfo> {
    if (typeof hsmKeyId !== 'string' || !HSM_KEY_ID.test(hsmKeyId)) throw new HsmError('key_not_found', 'malformed key id');
    const cached = this.infos.get(hsmKeyId);
    if (cached) return cached;
    const info = await this.run((s) => this.readInfo(s, hsmKeyId));
    this.infos.set(hsmKeyId, info);
    return info;
  }

  /** Signs prepared input with the private key `hsmKeyId` (see {@link SignMechanism} for what `data` is). */
  async sign(hsmKeyId: string, mechanism: SignMechanism, data: Uint8Array): Promise<Uint8Array> {
    const info = await this.getKey(hsmKeyId);
    const { mech, outLen } = this.mechanismFor(info.algorithm, mechanism, data);
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    return this.run(async (s) => {
      let key = this.privateKey(s, hsmKeyId);
      try {
        this.p11.C_SignInit(s.handle, mech, key);
      } catch (e) {
        if (!STALE_HANDLE.has(ckr(e) ?? -1)) throw e;
        s.keys.delete(hsmKeyId);
        key = this.privateKey(s, hsmKeyId);
        this.p11.C_SignInit(s.handle, mech, key);
      }
      const sig = await this.p11.C_SignAsync(s.handle, input, Buffer.alloc(outLen));
      return new Uint8Array(sig);
    });
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
      return { mech: { mechanism: pkcs11js.CKM_ECDSA }, outLen: 2 * curveSize(alg) };
    }
    if (m.kind !== 'eddsa') throw bad();
    return { mech: { mechanism: CKM_EDDSA }, outLen: 64 };
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
