#!/usr/bin/env node
// Signing throughput of @keyserver/pkcs11-signer's session pool against the same SoftHSM token driven from C.
// Usage: npm run bench:hsm  (or: node scripts/bench-hsm.mjs [--seconds 3] [--pool 4])
// Offline: builds the signer from TypeScript with esbuild and the C baseline with gcc into a temp dir.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SECONDS = arg('seconds', 3);
const POOL = arg('pool', 4);
const MODULE = process.env.PKCS11_MODULE ?? '/usr/lib/softhsm/libsofthsm2.so';

const work = mkdtempSync(join(tmpdir(), 'ks-bench-'));
process.on('exit', () => rmSync(work, { recursive: true, force: true }));

// A throwaway token: SOFTHSM2_CONF must be set before the module is initialised.
mkdirSync(join(work, 'tokens'));
const conf = join(work, 'softhsm2.conf');
writeFileSync(conf, `directories.tokendir = ${join(work, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
process.env.SOFTHSM2_CONF = conf;
const label = 'bench';
const pin = randomBytes(8).toString('hex');
execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', randomBytes(8).toString('hex')], { stdio: 'pipe' });

// Build the library (TypeScript, tsconfig paths) into one CommonJS file.
const esbuild = require('esbuild');
const bundle = join(work, 'signer.cjs');
await esbuild.build({
  entryPoints: [join(root, 'libs/pkcs11-signer/src/index.ts')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  outfile: bundle,
  tsconfig: join(root, 'tsconfig.base.json'),
  external: ['pkcs11js', 'pkijs', 'asn1js', 'pvtsutils', 'tslib'],
  nodePaths: [join(root, 'node_modules')],
  logLevel: 'error',
});
process.env.NODE_PATH = join(root, 'node_modules');
require('node:module').Module._initPaths();
const { createPkcs11Signer } = require(bundle);
const pkcs11js = require('pkcs11js');

// The C baseline: same token, same key, same mechanism, no Node in between.
let p11speed;
try {
  p11speed = join(work, 'p11speed');
  execFileSync('gcc', ['-O2', '-o', p11speed, join(root, 'scripts/bench/p11speed.c'), '-I', join(root, 'node_modules/pkcs11js/includes'), '-ldl', '-lpthread'], { stdio: 'pipe' });
} catch (e) {
  p11speed = undefined;
  console.error(`gcc build of the C baseline failed, skipping it: ${e.message}`);
}

const signer = await createPkcs11Signer({ module: MODULE, tokenLabel: label, pin, poolSize: POOL });
const keys = {
  'RSA-3072': await signer.generateKey({ algorithm: 'RSA-3072', label: 'bench-rsa' }),
  'P-256': await signer.generateKey({ algorithm: 'EC-P256', label: 'bench-ec' }),
};
const digest = createHash('sha256').update('bench').digest();
const digestInfo = Buffer.concat([Buffer.from('3031300d060960864801650304020105000420', 'hex'), digest]);
const inputs = {
  'RSA-3072': { mech: { kind: 'rsa-pkcs1' }, data: digestInfo, c: ['rsa', digestInfo.length] },
  'P-256': { mech: { kind: 'ecdsa' }, data: digest, c: ['ecdsa', digest.length] },
};

/** Signatures/s through the pool with `concurrency` callers; also the worst event-loop stall seen meanwhile. */
async function poolRate(alg, concurrency) {
  const { mech, data } = inputs[alg];
  const id = keys[alg].hsmKeyId;
  let count = 0;
  let maxLag = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const t = performance.now();
    maxLag = Math.max(maxLag, t - last - 10);
    last = t;
  }, 10);
  const end = performance.now() + SECONDS * 1000;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        await signer.sign(id, mech, data);
        count++;
      }
    }),
  );
  clearInterval(timer);
  return { rate: count / ((performance.now() - start) / 1000), maxLag };
}

/** The synchronous pkcs11js API on one session, for the sync-vs-async choice (it blocks the event loop). */
function syncRate(alg) {
  const p11 = new pkcs11js.PKCS11();
  p11.load(MODULE);
  try {
    p11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
  } catch {
    // already initialised by the signer in this process
  }
  const slot = p11.C_GetSlotList(true).find((s) => p11.C_GetTokenInfo(s).label.trim() === label);
  const session = p11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION);
  p11.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
    { type: pkcs11js.CKA_ID, value: Buffer.from(keys[alg].hsmKeyId, 'hex') },
  ]);
  const [key] = p11.C_FindObjects(session, 1);
  p11.C_FindObjectsFinal(session);
  const mechanism = { mechanism: alg === 'P-256' ? pkcs11js.CKM_ECDSA : pkcs11js.CKM_RSA_PKCS };
  const out = Buffer.alloc(512);
  let count = 0;
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    p11.C_SignInit(session, mechanism, key);
    p11.C_Sign(session, inputs[alg].data, out);
    count++;
  }
  p11.C_CloseSession(session);
  return count / ((performance.now() - start) / 1000);
}

function cRate(alg, threads) {
  if (!p11speed) return NaN;
  const [mech, len] = inputs[alg].c;
  const out = execFileSync(p11speed, [MODULE, label, pin, keys[alg].hsmKeyId, mech, String(len), String(SECONDS), String(threads)], { env: process.env });
  return Number(out.toString().trim());
}

const fmt = (n) => (Number.isFinite(n) ? n.toFixed(0).padStart(7) : '    n/a');
console.log(`SoftHSM ${MODULE}, pool ${POOL} sessions, ${SECONDS}s per cell, ${(await import('node:os')).cpus().length} CPUs, libuv pool ${process.env.UV_THREADPOOL_SIZE ?? 4}\n`);
for (const alg of ['RSA-3072', 'P-256']) {
  const rows = [];
  for (const c of [1, 8, 32]) rows.push([c, await poolRate(alg, c)]);
  // Close the signer's sessions? No: the C tool is a separate process with its own module instance.
  const c1 = cRate(alg, 1);
  const c2 = cRate(alg, 2);
  const sync = syncRate(alg);
  const best = Math.max(...rows.map(([, r]) => r.rate));
  console.log(`${alg}`);
  for (const [c, r] of rows) console.log(`  pool (async C_Sign), concurrency ${String(c).padStart(2)}: ${fmt(r.rate)} sig/s   max event-loop stall ${r.maxLag.toFixed(1)} ms`);
  console.log(`  pkcs11js sync C_Sign, 1 session:      ${fmt(sync)} sig/s   (blocks the event loop for every signature)`);
  console.log(`  C baseline (p11speed), 1 thread:      ${fmt(c1)} sig/s`);
  console.log(`  C baseline (p11speed), 2 threads:     ${fmt(c2)} sig/s`);
  console.log(`  ratio best pool / C 1 thread: ${(best / c1).toFixed(2)}   best pool / C 2 threads: ${(best / c2).toFixed(2)}\n`);
}
await signer.close();
