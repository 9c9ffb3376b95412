import * as pkcs11js from 'pkcs11js';
import { Worker } from 'node:worker_threads';

/** Most signatures one batch carries. */
export const LANE_MAX_ITEMS = 16;
/**
 * Batches a lane may have out at once: 2 lets the worker find the next batch ready. The signer posts a second
 * batch only for slow signatures (RSA) when no lane is idle: for EC it would halve the batch size at a given
 * concurrency, measured (P-256, 32 callers, 2 lanes) at ~161 vs ~142 us per signature (ADR 0008, ADR 0034).
 */
export const LANE_DEPTH = 2;
/** Input + output bytes one batch carries; a larger EdDSA message goes through the libuv pool instead. */
export const LANE_DATA_BYTES = 64 * 1024;

// Shared memory of a lane: control words, then LANE_DEPTH slots. A slot: item count, session handle, per item
// [mechanism, input offset, input length, output offset, output capacity, CK_RV, signature length, PSS hashAlg
// (0: no parameter), PSS mgf, PSS saltLen] and the key handle, then the data (inputs, then outputs).
const CTL_POSTED = 0; // batches the main thread has written
const CTL_DONE = 1; // batches the worker has finished
const CTL_STOP = 2;
const CTL_BYTES = 16;
const FIELDS = 10;
const SESSION_AT = 8;
const META_AT = 16;
const KEYS_AT = META_AT + LANE_MAX_ITEMS * FIELDS * 8;
const DATA_AT = KEYS_AT + LANE_MAX_ITEMS * 8;
const SLOT_BYTES = DATA_AT + LANE_DATA_BYTES;

/**
 * Runs in each lane's worker. It dlopens the same PKCS#11 module as the main thread, which yields the same
 * module instance (initialised, logged in, sessions owned by the main thread), so it never calls
 * C_Initialize/C_Login/C_Finalize: it only runs C_SignInit + C_Sign on the session handle lent with each batch.
 * Plain JavaScript in a string so it survives bundlers and coverage instrumentation unchanged.
 */
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const pkcs11js = require(workerData.pkcs11js);
const { sab, depth, slotBytes, ctlBytes, fields, sessionAt, metaAt, keysAt, dataAt, maxItems, pssParams } = workerData.layout;
const p11 = new pkcs11js.PKCS11();
p11.load(workerData.module);
// The native methods under pkcs11js's wrappers: no per-call rest arrays, applies and result subarrays.
const native = Object.getPrototypeOf(pkcs11js.PKCS11.prototype);
const signInit = typeof native.C_SignInit === 'function' ? native.C_SignInit : p11.C_SignInit;
const sign = typeof native.C_Sign === 'function' ? native.C_Sign : p11.C_Sign;
const rvOf = (e) => {
  if (e && typeof e.code === 'number' && e.code > 0) return e.code;
  const m = /CKR_\\w+:(\\d+)/.exec(String(e && e.message));
  return m ? Number(m[1]) : -1;
};
const ctl = new Int32Array(sab, 0, 4);
const slots = Array.from({ length: depth }, (_, k) => {
  const at = ctlBytes + k * slotBytes;
  return {
    head: new Int32Array(sab, at, 1),
    session: new Uint8Array(sab, at + sessionAt, 8),
    meta: new Float64Array(sab, at + metaAt, maxItems * fields),
    keys: Array.from({ length: maxItems }, (_, i) => new Uint8Array(sab, at + keysAt + 8 * i, 8)),
    data: new Uint8Array(sab, at + dataAt, slotBytes - dataAt),
  };
});
const mech = { mechanism: 0 };
const pss = { mechanism: 0, parameter: { type: pssParams, hashAlg: 0, mgf: 0, saltLen: 0 } };
function signBatch(s) {
  const n = s.head[0];
  const m = s.meta;
  for (let i = 0; i < n; i++) {
    const f = i * fields;
    try {
      let mm = mech;
      if (m[f + 7]) {
        mm = pss;
        pss.parameter.hashAlg = m[f + 7];
        pss.parameter.mgf = m[f + 8];
        pss.parameter.saltLen = m[f + 9];
      }
      mm.mechanism = m[f];
      signInit.call(p11, s.session, mm, s.keys[i]);
      const len = sign.call(p11, s.session, s.data.subarray(m[f + 1], m[f + 1] + m[f + 2]), s.data.subarray(m[f + 3], m[f + 3] + m[f + 4]));
      m[f + 5] = 0;
      m[f + 6] = typeof len === 'number' ? len : len.length;
    } catch (e) {
      m[f + 5] = rvOf(e);
    }
  }
}
parentPort.postMessage('ready');
for (let done = 0; !Atomics.load(ctl, 2); ) {
  if (Atomics.load(ctl, 0) === done) {
    Atomics.wait(ctl, 0, done);
    continue;
  }
  signBatch(slots[done % depth]);
  done++;
  Atomics.store(ctl, 1, done);
  Atomics.notify(ctl, 1);
}
`;

/** One signature request of a batch: a cached private key handle, the mechanism, the input. */
export interface LaneItem {
  key: Buffer;
  mechanism: pkcs11js.Mechanism;
  data: Uint8Array;
  outLen: number;
}

/** Mechanisms a lane can carry: none or RSA-PSS parameters. */
export function laneCarries(m: pkcs11js.Mechanism): boolean {
  return m.parameter === undefined || (m.parameter as pkcs11js.RsaPSS).type === pkcs11js.CK_PARAMS_RSA_PSS;
}

/** Per item: `sig` on success, otherwise the CK_RV (`rv`, -1 when not a PKCS#11 error) and its name. */
export type LaneResult = { sig: Uint8Array } | { rv: number; message: string };

/** Bytes an item takes in a batch. */
export function laneBytes(item: { data: Uint8Array; outLen: number }): number {
  return item.data.byteLength + item.outLen;
}

const CKR_NAMES = new Map<number, string>(
  Object.entries(pkcs11js)
    .filter(([k, v]) => k.startsWith('CKR_') && typeof v === 'number')
    .map(([k, v]) => [v as number, k]),
);

type WaitAsync = (a: Int32Array, index: number, value: number) => { async: boolean; value: Promise<unknown> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

interface Slot {
  head: Int32Array;
  session: Uint8Array;
  meta: Float64Array;
  keys: Uint8Array;
  data: Uint8Array;
}

interface Running {
  worker: Worker;
  ctl: Int32Array;
  slots: Slot[];
  ready: Promise<void>;
  dead: boolean;
  /** Batches posted and not yet read back, oldest first. */
  pending: { slot: Slot; n: number; resolve: (r: LaneResult[]) => void; reject: (e: Error) => void }[];
  posted: number;
  done: number;
  reading: boolean;
}

/**
 * A worker thread that signs batches synchronously, each on the session lent for it. Small EC signatures cost
 * ~0.1 ms in SoftHSM, about what a libuv round trip per call costs on top; a batch pays the thread hop once.
 * Batches travel through shared memory with Atomics (a MessagePort round trip cost ~4x the CPU here). The event
 * loop never runs PKCS#11 signing itself. The worker starts on first use and again after it died.
 */
export class SignLane {
  private running?: Running;
  /** True when the last worker died before it was ready (it could not load the module or pkcs11js). */
  neverStarted = false;
  private outstanding = 0;
  private closed = false;
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(private readonly opts: { pkcs11js: string; module: string }) {}

  private start(): Running {
    if (this.running) return this.running;
    const sab = new SharedArrayBuffer(CTL_BYTES + LANE_DEPTH * SLOT_BYTES);
    const layout = {
      sab,
      depth: LANE_DEPTH,
      slotBytes: SLOT_BYTES,
      ctlBytes: CTL_BYTES,
      fields: FIELDS,
      sessionAt: SESSION_AT,
      metaAt: META_AT,
      keysAt: KEYS_AT,
      dataAt: DATA_AT,
      maxItems: LANE_MAX_ITEMS,
      pssParams: pkcs11js.CK_PARAMS_RSA_PSS,
    };
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ...this.opts, layout } });
    if (this.outstanding === 0) worker.unref();
    const ctl = new Int32Array(sab, 0, 4);
    const slots: Slot[] = Array.from({ length: LANE_DEPTH }, (_, k) => {
      const at = CTL_BYTES + k * SLOT_BYTES;
      return {
        head: new Int32Array(sab, at, 1),
        session: new Uint8Array(sab, at + SESSION_AT, 8),
        meta: new Float64Array(sab, at + META_AT, LANE_MAX_ITEMS * FIELDS),
        keys: new Uint8Array(sab, at + KEYS_AT, LANE_MAX_ITEMS * 8),
        data: new Uint8Array(sab, at + DATA_AT, LANE_DATA_BYTES),
      };
    });
    const r: Running = {
      worker,
      ctl,
      slots,
      ready: Promise.resolve(),
      dead: false,
      pending: [],
      posted: 0,
      done: 0,
      reading: false,
    };
    r.ready = new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => {
        if (this.running === r) this.running = undefined;
        if (!started) this.neverStarted = true;
        reject(e);
        r.dead = true;
        r.pending.splice(0).forEach((p) => p.reject(e));
        // Wakes readBack's wait: no reply will come from this worker.
        Atomics.notify(r.ctl, CTL_DONE);
      };
      let started = false;
      worker.on('message', (m) => {
        if (m !== 'ready') return;
        started = true;
        this.neverStarted = false;
        resolve();
      });
      worker.on('error', fail);
      worker.on('exit', (code) => fail(new Error(`sign worker exited with code ${code}`)));
    });
    r.ready.catch(() => undefined);
    this.running = r;
    return r;
  }

  /** The worker keeps the process alive only while batches are out: a pending signature does, an idle signer not. */
  private holdProcess(): void {
    if (this.outstanding > 0) this.running?.worker.ref();
    else this.running?.worker.unref();
  }

  /**
   * Signs `items` in order on `session`; the caller holds the session until the promise settles. At most
   * LANE_DEPTH batches may be out at once, each of at most LANE_MAX_ITEMS items and LANE_DATA_BYTES bytes.
   */
  run(session: Buffer, items: LaneItem[]): Promise<LaneResult[]> {
    const p = this.runBatch(session, items);
    const tracked = p.catch(() => undefined);
    this.inFlight.add(tracked);
    void tracked.then(() => this.inFlight.delete(tracked));
    return p;
  }

  private async runBatch(session: Buffer, items: LaneItem[]): Promise<LaneResult[]> {
    if (this.closed) throw new Error('sign lane closed');
    if (items.length > LANE_MAX_ITEMS || items.reduce((n, it) => n + laneBytes(it), 0) > LANE_DATA_BYTES) throw new Error('batch too large');
    if (!items.every((it) => laneCarries(it.mechanism))) throw new Error('mechanism parameter not supported in a lane');
    const r = this.start();
    this.outstanding++;
    this.holdProcess();
    try {
      await r.ready;
      if (r.pending.length >= LANE_DEPTH) throw new Error('lane is full');
      return await new Promise<LaneResult[]>((resolve, reject) => {
        const slot = r.slots[r.posted % LANE_DEPTH];
        slot.head[0] = items.length;
        slot.session.set(session);
        let at = 0;
        for (let i = 0; i < items.length; i++) {
          const it = items[i];
          const f = i * FIELDS;
          slot.keys.set(it.key, 8 * i);
          slot.data.set(it.data, at);
          const pss = it.mechanism.parameter as pkcs11js.RsaPSS | undefined;
          slot.meta[f] = it.mechanism.mechanism;
          slot.meta[f + 1] = at;
          slot.meta[f + 2] = it.data.byteLength;
          slot.meta[f + 7] = pss ? pss.hashAlg : 0;
          slot.meta[f + 8] = pss ? pss.mgf : 0;
          slot.meta[f + 9] = pss ? pss.saltLen : 0;
          at += it.data.byteLength;
        }
        for (let i = 0; i < items.length; i++) {
          const f = i * FIELDS;
          slot.meta[f + 3] = at;
          slot.meta[f + 4] = items[i].outLen;
          at += items[i].outLen;
        }
        r.pending.push({ slot, n: items.length, resolve, reject });
        r.posted++;
        Atomics.store(r.ctl, CTL_POSTED, r.posted);
        Atomics.notify(r.ctl, CTL_POSTED);
        if (!r.reading) void this.readBack(r);
      });
    } finally {
      this.outstanding--;
      this.holdProcess();
    }
  }

  /** Waits (without blocking the event loop) for the worker to finish batches and hands their results back. */
  private async readBack(r: Running): Promise<void> {
    const ctl = r.ctl;
    r.reading = true;
    try {
      while (r.pending.length > 0 && !r.dead) {
        const done = Atomics.load(ctl, CTL_DONE);
        if (done === r.done) {
          const w = waitAsync(ctl, CTL_DONE, done);
          if (w.async) await w.value;
          continue;
        }
        for (; r.done < done; r.done++) {
          const p = r.pending.shift();
          if (p) p.resolve(this.results(p.slot, p.n));
        }
      }
    } finally {
      r.reading = false;
    }
  }

  private results(slot: Slot, n: number): LaneResult[] {
    const out: LaneResult[] = new Array(n);
    // The slot is reused by the next batch: one copy of the output area, one view per signature.
    const from = slot.meta[3];
    const outputs = slot.data.slice(from, slot.meta[(n - 1) * FIELDS + 3] + slot.meta[(n - 1) * FIELDS + 4]);
    for (let i = 0; i < n; i++) {
      const f = i * FIELDS;
      const rv = slot.meta[f + 5];
      const at = slot.meta[f + 3] - from;
      out[i] = rv === 0 ? { sig: outputs.subarray(at, at + slot.meta[f + 6]) } : { rv, message: CKR_NAMES.get(rv) ?? `CK_RV ${rv}` };
    }
    return out;
  }

  /** Lets the batches in flight finish, then stops the worker. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.inFlight]);
    const r = this.running;
    this.running = undefined;
    if (r) {
      Atomics.store(r.ctl, CTL_STOP, 1);
      Atomics.notify(r.ctl, CTL_POSTED);
      await r.worker.terminate();
    }
  }
}
